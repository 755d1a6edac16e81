"""Store writes are upserts on deterministic ids: re-running a node never duplicates a row."""

from chimera.ids import problem_id, topic_id
from chimera.store import MIGRATIONS, Store


def test_ids_are_deterministic_and_normalize_topic_names():
    assert topic_id("r", "Math", "Graphs", "Graph  Theory") == topic_id("r", "Math", "graphs", "graph theory!")
    assert topic_id("r", "Math", "Graphs", "Graph theory") != topic_id("r2", "Math", "Graphs", "Graph theory")
    assert topic_id("r", "Math", "Graphs", "Graph theory") != topic_id("r", "Math", "Algebra", "Graph theory")
    assert problem_id("r", "t1", 0) == problem_id("r", "t1", 0) != problem_id("r", "t1", 1)


def test_rewriting_the_same_slot_keeps_one_row(tmp_path):
    store = Store(tmp_path / "s.db")
    for _ in range(3):
        store.save_draft(id="p1", run="r", topic_id="t", subject="S", topic="T", slot=0, problem="Q", answer="A")
        store.record_vote("p1", round_=0, critic=1, vote={"verdict": "accept"})
        store.save_sample({"id": "p1", "problem_id": "p1", "run": "r", "subject": "S", "topic": "T",
                           "problem": "Q", "answer": "A", "reasoning": "", "solution": "", "truncated": 0})
    assert store.db["problems"].count == 1 and store.db["samples"].count == 1
    assert store.votes("p1", 0) == {1: {"verdict": "accept"}}


def test_migrations_are_recorded_and_applied_once(tmp_path):
    Store(tmp_path / "s.db").close()
    store = Store(tmp_path / "s.db")
    assert store.migrate() == []
    assert [r["name"] for r in store.db["_migrations"].rows] == [name for name, _ in MIGRATIONS]


def test_votes_of_a_database_from_before_the_votes_table_are_moved_into_it(tmp_path):
    import json

    import sqlite_utils

    db = sqlite_utils.Database(tmp_path / "old.db")
    db.table("_migrations").create({"name": str, "applied_at": float}, pk="name")
    for name, step in MIGRATIONS:
        if name == "0013_votes":
            break
        step(db)
        db.table("_migrations").insert({"name": name, "applied_at": 0.0})
    old = {"0": {"0": {"verdict": "revise"}, "1": {"verdict": "accept"}}, "1": {"0": {"verdict": "accept"}}}
    db.table("problems").insert({"id": "p1", "run": "r", "critic_verdicts": json.dumps(old)})
    db.close()
    store = Store(tmp_path / "old.db")
    assert store.all_votes("p1") == {0: {0: {"verdict": "revise"}, 1: {"verdict": "accept"}},
                                     1: {0: {"verdict": "accept"}}}
    store.record_vote("p1", round_=1, critic=0, vote={"verdict": "reject"})
    assert store.votes("p1", 1) == {0: {"verdict": "reject"}}


def test_an_upgrade_lands_whole_or_not_at_all(tmp_path, monkeypatch):
    import sqlite3

    import pytest

    import chimera.store.base as base

    path = tmp_path / "new.db"

    def boom(db):
        raise RuntimeError("step failed")

    monkeypatch.setattr(base, "MIGRATIONS", [*MIGRATIONS, ("9999_boom", boom)])
    with pytest.raises(RuntimeError, match="step failed"):
        Store(path)
    left = sqlite3.connect(path)
    assert left.execute("select name from sqlite_master").fetchall() == [], "no table of the failed upgrade stays"
    left.close()
    monkeypatch.undo()
    assert Store(path).migrate() == [], "a later open upgrades it whole"


def test_a_database_a_starting_run_has_not_given_its_schema_yet_is_named_so(tmp_path):
    import pytest

    from chimera.errors import ChimeraError

    (tmp_path / "new.db").touch()
    with pytest.raises(ChimeraError, match="no chimera schema yet"):
        Store(tmp_path / "new.db", read_only=True)


def test_the_replies_of_ended_threads_are_dropped_and_those_still_running_are_kept(tmp_path):
    store = Store(tmp_path / "s.db")
    for topic, status in (("done", "done"), ("running", "pending")):
        store.upsert_topic(id=topic, run="r", subject="S", name=topic, position=0, source="seed", status=status)
    for problem, topic, status in (("ended", "done", "accepted"), ("retrying", "done", "pending"),
                                   ("elsewhere", "running", "accepted")):
        store.save_draft(id=problem, run="r", topic_id=topic, subject="S", topic=topic, slot=0, problem="Q", answer="A")
        if status != "pending":
            store.finish_problem(problem, status)

    def call(key, topic_id, problem_id):
        store.log_call({"run": "r", "role": "solver", "topic_id": topic_id, "problem_id": problem_id, "outcome": "ok",
                        "request_key": key, "reply": '{"choices": []}'})

    call("topic-level", "done", None)
    call("ended problem", "done", "ended")
    call("retry under way", "done", "retrying")
    call("topic still running", "running", "elsewhere")
    call("stage 1", None, None)
    assert store.forget_ended_replies("r") == 2
    assert store.kept_request_keys("r") == {"retry under way", "topic still running", "stage 1"}
