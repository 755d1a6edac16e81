"""`chimera review` on real runs against the simulator: stop with items pending, decide, resume, survive kills."""

import json
import os
import sqlite3
import sys
from pathlib import Path

import yaml
from helpers import chimera
from hostile import is_solve
from stop_at import StopAt, counted

from chimera.config import SimSettings

EXAMPLE = Path(__file__).parent.parent / "examples" / "review.yaml"


def review_config(folder: Path, name: str = "review", models: dict | None = None, **sim: float) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["run"].update(name=name, db=str(folder / f"{name}.db"))
    config["sim"].update(sim)
    if models is not None:
        config["models"] = models
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def review_endpoint(**sim: float) -> StopAt:
    """An endpoint answering as the example's simulator does, for a run to be stopped at a chosen request."""
    example = yaml.safe_load(EXAMPLE.read_text())
    return StopAt(SimSettings(**{**example["sim"], **sim}), seed=example["run"]["seed"])


def pending(db: Path) -> list[dict]:
    result = chimera("review", str(db), "--list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def statuses(db: Path) -> dict[str, tuple]:
    rows = sqlite3.connect(db).execute("select id, status, rejection_reason, revisions, answer from problems")
    return {row[0]: row[1:] for row in rows}


def test_a_run_with_reviews_pending_ends_with_exit_0_and_says_how_many(tmp_path):
    result = chimera("run", str(review_config(tmp_path)), "--quiet")
    assert result.returncode == 0, result.stderr
    items = pending(tmp_path / "review.db")
    assert len(items) >= 4
    assert f"{len(items)} problems wait for review: chimera review {tmp_path / 'review.db'}" in result.stderr
    assert {reason for item in items for reason in item["reasons"]} == {"critics disagreed",
                                                                        "solver missed the reference"}
    for item in items:
        payload = item["payload"]
        assert payload["problem"] and payload["answer"] and len(payload["critics"]) == 2
        assert statuses(tmp_path / "review.db")[payload["problem_id"]][0] == "pending"
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    assert pending(tmp_path / "review.db") == items, "a run with nothing decided leaves the same items waiting"


def test_decisions_resume_their_threads_and_the_dataset_shows_them(tmp_path):
    config = review_config(tmp_path)
    db = tmp_path / "review.db"
    assert chimera("run", str(config), "--quiet").returncode == 0
    items = {item["id"]: item for item in pending(db)}
    to_accept = next(i for i in items.values() if i["proposed"] == "reject")
    to_reject = next(i for i in items.values() if i["proposed"] == "accept")
    to_edit = next(i for i in items.values() if i["proposed"] == "reject" and i is not to_accept)

    assert chimera("review", str(db), to_accept["id"], "--accept", "--reviewer", "ann").returncode == 0
    assert chimera("review", str(db), to_reject["id"], "--reject", "--note", "trivial", "--reviewer", "ann"
                   ).returncode == 0
    solved = to_edit["payload"]["critics"][0]["own_answer"]
    assert chimera("review", str(db), to_edit["id"], "--edit-answer", solved, "--reviewer", "bob").returncode == 0
    before = statuses(db)
    result = chimera("review", str(db), "--resume", "--quiet")
    assert result.returncode == 0, result.stderr

    after = statuses(db)
    assert after[to_accept["payload"]["problem_id"]][0] == "accepted"
    assert after[to_reject["payload"]["problem_id"]][:2] == ("rejected", "rejected by reviewer ann: trivial")
    edited = after[to_edit["payload"]["problem_id"]]
    assert edited[2] == before[to_edit["payload"]["problem_id"]][2] + 1 and edited[3] == solved
    undecided = set(items) - {to_accept["id"], to_reject["id"], to_edit["id"]}
    assert undecided <= {item["id"] for item in pending(db)}, "undecided items still wait"
    assert all(after[items[i]["payload"]["problem_id"]][0] == "pending" for i in undecided)
    exported = tmp_path / "out.jsonl"
    assert chimera("export", str(db), "-o", str(exported)).returncode == 0
    ids = {json.loads(line)["problem_id"] for line in exported.read_text().splitlines()}
    assert to_accept["payload"]["problem_id"] in ids and to_reject["payload"]["problem_id"] not in ids

    reviews = json.loads(chimera("status", str(db), "--json").stdout)["review"]["reviews"]
    assert reviews == {"pending": len(pending(db)), "accepted": 1, "rejected": 1, "edited": 1, "sent_back": 0}
    assert "accepted by human" in chimera("status", str(db)).stdout


def test_killed_while_reviews_are_pending_the_same_items_wait_and_decisions_still_apply(tmp_path):
    db = tmp_path / "killed.db"
    # Topics move in step, so their reviews open together: a latency that varies spreads them out.
    with review_endpoint(latency_s=0.3, latency_jitter=0.5) as endpoint:
        config = review_config(tmp_path, models=endpoint.models())
        assert chimera("run", str(config), "--quiet").returncode == 0
        expected = pending(tmp_path / "review.db")

        endpoint.run(["run", str(config), "--quiet", "--db", str(db)],
                     when=counted(db, "select count(*) from reviews", 1))
        opened = sqlite3.connect(db).execute("select count(*) from reviews").fetchone()[0]
        assert 1 <= opened < len(expected), "the kill must land while the run is still opening reviews"
        assert chimera("run", str(config), "--quiet", "--db", str(db)).returncode == 0
        by_id = lambda items: sorted((i["payload"] for i in items), key=lambda p: p["review_id"])  # noqa: E731
        assert by_id(pending(db)) == by_id(expected)

        first = next(i for i in pending(db) if i["proposed"] == "reject")
        assert chimera("review", str(db), first["id"], "--accept").returncode == 0
        # Accepting a would-be rejection solves it before committing: killed as its trajectory is asked for,
        # while the decision is being applied.
        resume = ["review", str(db), "--resume", "--quiet", "--config", str(config)]
        endpoint.run(resume, when=lambda body: is_solve(body) and asks_about(body, first["payload"]["problem"]))
        assert chimera(*resume).returncode == 0
    problem = statuses(db)[first["payload"]["problem_id"]]
    assert problem[0] == "accepted"
    assert first["id"] not in {i["id"] for i in pending(db)}
    assert sqlite3.connect(db).execute("select count(*) - count(distinct id) from reviews").fetchone()[0] == 0


def asks_about(body: dict, problem: str) -> bool:
    return any(problem in message["content"] for message in body["messages"])


def test_the_terminal_walk_takes_keys_and_notes_and_edits_in_the_editor(tmp_path):
    db = tmp_path / "review.db"
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    items = pending(db)
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\npath = sys.argv[1]\nlines = open(path).read().splitlines()\n"
                      "at = lines.index('=== REFERENCE ANSWER ===')\nlines[at + 1] = '12345'\n"
                      "open(path, 'w').write('\\n'.join(lines))\n")
    env = {**os.environ, "EDITOR": f"{sys.executable} {editor}", "CHIMERA_REVIEWER": "cat"}
    # accept; reject with a note; an unknown key, then revise with no note (refused), revise with one; edit; quit
    keys = "a\nr\nduplicate of a textbook item\nx\nv\n\nv\nname the units\ne\nq\n"
    result = chimera("review", str(db), env=env, input=keys)
    assert result.returncode == 0, result.stderr
    assert "unknown key" in result.stdout and "sending back for revision needs a note" in result.stdout
    assert "1 accept, 1 edit, 1 reject, 1 revise" in result.stderr
    decided = {i["id"]: i for i in json.loads(chimera("review", str(db), "--list", "--json", "--all").stdout)}
    assert [decided[i["id"]]["action"] for i in items[:5]] == ["accept", "reject", "revise", "edit", None]
    assert decided[items[1]["id"]]["note"] == "duplicate of a textbook item"
    assert decided[items[0]["id"]]["reviewer"] == "cat"
    row = sqlite3.connect(db).execute("select edited_answer, edited_problem from reviews where id = ?",
                                      [items[3]["id"]]).fetchone()
    assert row == ("12345", None)


def test_bad_decisions_are_one_line_errors(tmp_path):
    db = tmp_path / "review.db"
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    item = pending(db)[0]["id"]
    cases = {
        ("nope@0", "--accept"): "chimera: error: no review item 'nope@0' (list them with: chimera review DB --list)",
        (item, "--revise"): "chimera: error: sending back for revision needs a note for the drafter",
        ("--accept",): "chimera: error: name the item to decide (ids: chimera review DB --list)",
    }
    for args, message in cases.items():
        result = chimera("review", str(db), *args)
        assert (result.returncode, result.stderr.strip()) == (1, message)
    assert chimera("review", str(db), item, "--accept", "--reviewer", "ann").returncode == 0
    again = chimera("review", str(db), item, "--reject")
    assert again.stderr.strip() == f"chimera: error: review item {item} was already decided: accept by ann"


def test_a_decision_on_a_review_opened_just_before_a_kill_is_delivered_on_resume(tmp_path):
    db = tmp_path / "review.db"
    with review_endpoint(latency_s=0.3, latency_jitter=0.5) as endpoint:
        config = review_config(tmp_path, models=endpoint.models())
        endpoint.run(["run", str(config), "--quiet"], when=counted(db, "select count(*) from reviews", 1))
        decided = pending(db)
        assert decided
        for item in decided:
            assert chimera("review", str(db), item["id"], "--reject", "--note", "decided during the kill").returncode == 0
        assert chimera("run", str(config), "--quiet").returncode == 0
    for item in decided:
        status, reason = statuses(db)[item["payload"]["problem_id"]][:2]
        assert (status, reason) == ("rejected", "rejected by reviewer " + item_reviewer(db, item["id"])
                                    + ": decided during the kill")
    assert not {i["id"] for i in pending(db)} & {i["id"] for i in decided}


def item_reviewer(db: Path, review_id: str) -> str:
    return sqlite3.connect(db).execute("select reviewer from reviews where id = ?", [review_id]).fetchone()[0]
