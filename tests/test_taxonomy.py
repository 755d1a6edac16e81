"""Stage 1: hierarchical expansion, audited dedup, quotas, an editable taxonomy, and resume after a kill."""

import asyncio
import json
import sqlite3

import numpy as np
import pytest
from helpers import chimera, write_config
from langgraph.checkpoint.memory import InMemorySaver
from scripted import scripted, scripted_deps, seen
from stop_at import StopAt, counted

from chimera.config import SimSettings, parse_config
from chimera.graphs.taxonomy import build_taxonomy_graph, grow
from chimera.graphs.taxonomy_plan import allocate, subject_tasks
from chimera.ids import normalize_topic
from chimera.sim.oracle import embed
from chimera.store import Store
from chimera.tools.topic_dedup import dedup_topics

PLANTED = [
    ("Symmetry in graph theory", "Symmetry within graph theory"),
    ("Invariants of knots", "invariants of  knots!"),
    ("Entropy in statistical mechanics", "Entropy within statistical mechanic"),
]
DISTINCT = ["Symmetry in group theory", "Spectral graph theory", "Knot polynomials", "Entropy of black holes",
            "Catalysis in enzymes", "Phase transitions in magnets"]


@pytest.mark.parametrize("with_embeddings", [True, False], ids=["embedding", "lexical"])
def test_dedup_merges_planted_near_duplicates_and_keeps_distinct_topics(with_embeddings):
    names = [a for a, _ in PLANTED] + DISTINCT + [b for _, b in PLANTED]
    vectors = np.array([embed(n) for n in names]) if with_embeddings else None
    result = dedup_topics(names, vectors, threshold=0.9, lexical_threshold=0.7)
    kept = [names[i] for i in result.kept]
    assert kept == [a for a, _ in PLANTED] + DISTINCT
    merges = {(names[m.dropped], names[m.kept]) for m in result.merges}
    assert merges == {(b, a) for a, b in PLANTED}
    exact = [m for m in result.merges if m.method == "exact"]
    assert [names[m.dropped] for m in exact] == ["invariants of  knots!"]


def test_no_two_kept_topics_are_as_similar_as_the_threshold():
    names = [f"{angle} {area}" for angle in ("Extremal cases in", "Extremal cases within", "Limits in", "Bounds in")
             for area in ("graph theory", "group theory", "graph theories", "number theory")]
    vectors = np.array([embed(n) for n in names])
    result = dedup_topics(names, vectors, threshold=0.9)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    kept = unit[result.kept]
    similarity = kept @ kept.T
    np.fill_diagonal(similarity, 0)
    assert similarity.max() < 0.9
    assert len(result.kept) + len(result.merges) == len(names)


def test_rounds_stop_when_a_round_adds_nothing_new():
    answers = [["A", "B"], ["b", "C"], ["a", "c "]]
    asked = []

    async def ask(missing, so_far):
        asked.append((missing, list(so_far)))
        return answers[len(asked) - 1]

    names, calls, note = asyncio.run(grow(ask, target=5, max_rounds=10))
    assert names == ["A", "B", "C"] and calls == 3 and note == "exhausted: the expander gave no new names"
    assert asked == [(5, []), (3, ["A", "B"]), (2, ["A", "B", "C"])], "each round asks only for what is missing"


def test_rounds_stop_at_the_target():
    async def ask(missing, so_far):
        return [f"T{len(so_far) + i}" for i in range(missing + 3)]

    names, calls, _ = asyncio.run(grow(ask, target=4, max_rounds=10))
    assert names == ["T0", "T1", "T2", "T3"] and calls == 1


@pytest.mark.parametrize("total", [1, 7, 100, 9225])
def test_quotas_add_up_to_the_total_and_follow_the_weights(total):
    weights = {f"math{i}": 2.0 for i in range(10)} | {f"bio{i}": 1.0 for i in range(13)}
    slots = allocate(weights, total)
    assert sum(slots.values()) == total
    if total >= 100:
        assert min(slots[f"math{i}"] for i in range(10)) >= 2 * min(slots[f"bio{i}"] for i in range(13)) - 1


def test_the_graph_expands_subjects_into_subfields_into_topics(tmp_path):
    expander = scripted("expander", {"subfields": ["Algebra", "Graphs"]}, {"topics": ["Rings", "Fields"]},
                        {"topics": ["Trees", "Cycles"]})
    deps = scripted_deps(tmp_path, {"expander": expander}, problems_total=30,
                         subjects=[{"name": "Math", "topics": 4, "subfields": 2, "weight": 2},
                                   {"name": "Bio", "topics": ["Genetics", "Ecology"], "weight": 1}],
                         taxonomy={"lexical_threshold": 0.95})
    deps.store.sync.save_run("r", {})
    graph = build_taxonomy_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"subjects": subject_tasks(deps.config.subjects)}, {"configurable": {"thread_id": "x"}},
                              context=deps))
    topics = deps.store.sync.topics("r", live=True)
    assert {(t["subject"], t["subfield"], t["name"]) for t in topics} == {
        ("Math", "Algebra", "Rings"), ("Math", "Algebra", "Fields"), ("Math", "Graphs", "Trees"),
        ("Math", "Graphs", "Cycles"), ("Bio", "General", "Genetics"), ("Bio", "General", "Ecology")}
    slots = {t["name"]: t["slots"] for t in topics}
    assert sum(slots.values()) == 30 and slots["Rings"] == 2 * slots["Genetics"]
    assert any("Subfield: Algebra" in prompt for prompt in seen(expander)[1:])


def test_taxonomy_json_round_trips_through_import(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 6},
                                              {"name": "Physics", "topics": ["Optics", "Acoustics"]}])
    assert chimera("run", str(config), "--topics-only", "--quiet").returncode == 0
    exported = chimera("taxonomy", str(tmp_path / "t.db"), "--json")
    tree = json.loads(exported.stdout)
    assert [s["name"] for s in tree["subjects"]] == ["Mathematics", "Physics"]
    listed = {t["name"]: t["id"] for s in tree["subjects"] for f in s["subfields"] for t in f["topics"]}
    with sqlite3.connect(tmp_path / "t.db") as db:  # each topic's id, as a topic graph run on a server takes it
        assert listed == dict(db.execute("select name, id from topics where status = 'pending'").fetchall())
    path = tmp_path / "tree.json"
    path.write_text(exported.stdout)
    imported = chimera("taxonomy", str(tmp_path / "other.db"), "--import", str(path))
    assert imported.returncode == 0, imported.stderr
    again = json.loads(chimera("taxonomy", str(tmp_path / "other.db"), "--json").stdout)
    assert again["subjects"] == tree["subjects"]


def test_an_edited_taxonomy_replaces_stage_1(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 4}], problems_per_topic=1)
    assert chimera("run", str(config), "--topics-only", "--quiet").returncode == 0
    tree = json.loads(chimera("taxonomy", str(tmp_path / "t.db"), "--json").stdout)
    tree["subjects"][0]["subfields"] = [{"name": "Curated", "topics": [{"name": "Graph colouring", "slots": 2}]}]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(tree))
    assert chimera("taxonomy", str(tmp_path / "t.db"), "--import", str(path)).returncode == 0
    assert chimera("run", str(config), "--quiet").returncode == 0
    db = sqlite3.connect(tmp_path / "t.db")
    assert db.execute("select distinct topic from problems").fetchall() == [("Graph colouring",)]
    assert db.execute("select count(*) from problems").fetchone()[0] == 2


def test_a_bad_taxonomy_file_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"run": "t", "subjects": [{"name": "M", "subfields": [{"name": "A", "topics": [{}]}]}]}))
    result = chimera("taxonomy", str(tmp_path / "x.db"), "--import", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"chimera: error: {path}: subjects.0.subfields.0.topics.0.name: Field required"


def test_killing_stage_1_resumes_without_redoing_finished_subfields(tmp_path):
    subjects = [{"name": name, "topics": 6, "subfields": 3} for name in ("Mathematics", "Physics", "Chemistry", "Biology")]
    db_path = tmp_path / "killed.db"
    subfields = "select count(distinct subject || subfield) from topics"
    with StopAt(SimSettings(latency_s=0.15)) as endpoint:
        config = write_config(tmp_path, subjects=subjects, models=endpoint.models())
        config.write_text(config.read_text().replace("concurrency: 8", "concurrency: 2"))
        straight = chimera("run", str(config), "--topics-only", "--quiet", "--db", str(tmp_path / "straight.db"))
        assert straight.returncode == 0
        full_calls = sqlite3.connect(tmp_path / "straight.db").execute(
            "select count(*) from llm_calls where role = 'expander'").fetchone()[0]

        endpoint.run(["run", str(config), "--topics-only", "--quiet", "--db", str(db_path)],
                     when=counted(db_path, subfields, 3))
        db = sqlite3.connect(db_path)
        assert 3 <= db.execute(subfields).fetchone()[0] < 12, "the kill must land mid-way"
        before = db.execute("select max(id) from llm_calls").fetchone()[0]
        assert chimera("run", str(config), "--topics-only", "--quiet", "--db", str(db_path)).returncode == 0
    redone = db.execute("select count(*) from llm_calls where role = 'expander' and id > ?", [before]).fetchone()[0]
    assert redone < full_calls, "finished subfields must not be expanded again"
    finished_before = {row[0] for row in db.execute(
        "select distinct subject || ' / ' || subfield from topics where created_at < "
        "(select created_at from llm_calls where id = ?)", [before])}
    asked_again = {row[0] for row in db.execute("select distinct scope from llm_calls where id > ?", [before])}
    assert finished_before - asked_again, "at least the subfields finished before the kill are not asked again"
    names = lambda path: sorted(normalize_topic(r[0]) for r in sqlite3.connect(path).execute(  # noqa: E731
        "select name from topics where status != 'merged'"))
    assert names(db_path) == names(tmp_path / "straight.db")


def test_every_subject_reaches_its_target_when_topics_merge_across_subjects(tmp_path):
    from chimera.engine.runner import run_pipeline

    # Biology and Medicine draw on the same areas in the simulator, so many of their topics merge across them.
    targets = {"Biology": 30, "Medicine": 30, "Mathematics": 12}
    config = parse_config({"run": {"name": "r", "db": str(tmp_path / "r.db"), "seed": 2},
                           "subjects": [{"name": n, "topics": t} for n, t in targets.items()]})
    asyncio.run(run_pipeline(config, topics_only=True))
    store = Store(tmp_path / "r.db", read_only=True)
    live = store.topics("r", live=True)
    assert {s: sum(t["subject"] == s for t in live) for s in targets} == targets
    across = [m for m in store.merges_with_subjects("r") if m["dropped_subject"] != m["kept_subject"]]
    assert len(across) >= 5, "the case this test is for: merges across subjects that refills make up for"
    assert any(t["round"] for t in live), "some topics came from refill rounds"
    assert store.shortfalls("r") == []
    names = [normalize_topic(t["name"]) for t in live]
    assert len(names) == len(set(names))


def test_explicit_topics_are_never_merged_and_a_refill_lists_what_was_merged_away(tmp_path):
    expander = scripted("expander", {"topics": ["Number theory", "Optics"]}, {"topics": ["Acoustics", "Optics"]})
    deps = scripted_deps(tmp_path, {"expander": expander},
                         subjects=[{"name": "Math", "topics": ["Number theory", "Group theory"]},
                                   {"name": "CS", "topics": ["Number theory"]},
                                   {"name": "Physics", "topics": 2, "subfields": ["Mechanics"]}],
                         # low enough that "Number theory" and "Group theory" (trigram Jaccard 0.29) would merge
                         # if they could
                         taxonomy={"lexical_threshold": 0.25})
    deps.store.sync.save_run("r", {})
    graph = build_taxonomy_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"subjects": subject_tasks(deps.config.subjects)}, {"configurable": {"thread_id": "x"}},
                              context=deps))
    live = {(t["subject"], t["name"]) for t in deps.store.sync.topics("r", live=True)}
    assert live == {("Math", "Number theory"), ("Math", "Group theory"), ("CS", "Number theory"),
                    ("Physics", "Optics"), ("Physics", "Acoustics")}
    (merge,) = deps.store.sync.merges_with_subjects("r")
    assert (merge["dropped"], merge["dropped_subject"], merge["kept_subject"]) == ("Number theory", "Physics", "Math")
    refill_prompt = seen(expander)[-1]
    assert "Optics" in refill_prompt and "Number theory" in refill_prompt.split("already listed")[1]


def test_a_cut_expander_reply_is_asked_again_larger_and_a_shortfall_is_shown(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 4}, {"name": "Physics", "topics": ["Optics"]}],
                          models={"default": {"provider": "sim"},
                                  "expander": {"provider": "sim", "max_tokens": 8, "max_tokens_cap": 16}},
                          problems_per_topic=1)
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 1, "a subject with no topics is a run that did not do its job"
    assert "expander reply cut at 8 tokens; asking again with max_tokens 16" in result.stderr
    assert "chimera: subject Mathematics has no topics" in result.stderr
    db = sqlite3.connect(tmp_path / "t.db")
    asked = db.execute("select tokens_out from llm_calls where role = 'expander' order by id").fetchall()
    assert max(t for (t,) in asked) == 16, "the second ask had twice the room"
    shown = chimera("taxonomy", str(tmp_path / "t.db")).stdout
    assert "shortfalls:" in shown and "Mathematics: 0 of 4" in shown and "reply cut at max_tokens" in shown
    status = json.loads(chimera("status", str(tmp_path / "t.db"), "--json").stdout)["t"]
    assert {(s["subject"], s["kind"]) for s in status["shortfalls"]} >= {("Mathematics", "short"),
                                                                         ("Mathematics", "reply")}


def test_taxonomy_merges_lists_each_merge_with_its_similarity_most_similar_first(tmp_path, capsys):
    from chimera.cli import main

    config = write_config(tmp_path, subjects=[{"name": "Biology", "topics": 12}, {"name": "Medicine", "topics": 12}],
                          sim={"topic_near_duplicate_rate": 0.3})
    assert chimera("run", str(config), "--topics-only", "--quiet").returncode == 0
    assert main(["taxonomy", str(tmp_path / "t.db"), "--merges", "--json"]) == 0
    merges = json.loads(capsys.readouterr().out)
    assert merges and all({"dropped", "kept", "similarity", "method", "dropped_subject", "kept_subject"} <= set(m)
                          for m in merges)
    assert [m["similarity"] for m in merges] == sorted((m["similarity"] for m in merges), reverse=True)
    assert main(["taxonomy", str(tmp_path / "t.db"), "--merges"]) == 0
    table = capsys.readouterr().out
    assert f"{merges[-1]['similarity']:.3f}" in table and "thresholds of this run" in table
