"""Auditable verification: graded critic agreement, duplicate rejection, k samples, truncation, SFT / RL splits."""

import asyncio

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from scripted import cut, scripted, scripted_deps, seen, vote

from chimera.graphs import build_problem_graph
from chimera.products.export import records
from chimera.tools.dedup import ProblemIndex, shingles

PROBLEM = "A committee of 3 members is to be chosen from 10 distinct candidates. In how many ways?"


def make_deps(tmp_path, *, index=None, **overrides):
    clients = {
        "drafter": scripted("drafter", {"problem": PROBLEM + " Exactly.", "answer": "120"}),
        "critic0": scripted("critic0", vote("accept", own="120")),
        "critic1": scripted("critic1", vote("accept", own="120")),
        "solver": scripted("solver", "<think>C(10,3)</think>\\boxed{120}"),
        "labeler": scripted("labeler", {"correct": True, "extracted_answer": "", "rationale": ""}),
        "expander": scripted("expander", {"topics": []}),
    }
    settings = {k: overrides.pop(k) for k in list(overrides) if k == "max_revisions"}
    clients.update(overrides)
    return scripted_deps(tmp_path, clients, index=index, subjects=[{"name": "Math", "topics": ["Counting"]}], **settings)


def run(deps, pid="p1", problem=PROBLEM, answer="120"):
    deps.store.sync.save_draft(id=pid, run="r", topic_id="t1", subject="Math", topic="Counting", slot=int(pid[1:]) - 1,
                          problem=problem, answer=answer)
    graph = build_problem_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"topic_id": "t1", "subject": "Math", "topic": "Counting", "problem_id": pid,
                               "slot": 0}, {"configurable": {"thread_id": pid}}, context=deps))
    return deps.store.sync.problem(pid)


def test_accept_needs_the_critics_own_answers_to_grade_equal_to_the_reference(tmp_path):
    # The critic claims agreement, but its own answer is 119: the grader, not the claim, decides.
    deps = make_deps(tmp_path, max_revisions=0, critic1=scripted("critic1", vote("accept", own="119", agrees=True)))
    problem = run(deps)
    assert problem["status"] == "rejected" and problem["disagreement"] == 1
    stored = deps.store.sync.votes("p1", 0)[1]
    assert stored["own_answer_matches"] is False and stored["match_method"] == "number"


def test_an_equivalent_own_answer_counts_as_agreement(tmp_path):
    deps = make_deps(tmp_path, critic0=scripted("critic0", vote("accept", own="\\binom{10}{3} = 120")),
                     critic1=scripted("critic1", vote("accept", own="1.2 \\times 10^{2}")))
    problem = run(deps)
    assert problem["status"] == "accepted" and not problem["disagreement"]


def test_every_vote_of_every_round_is_kept(tmp_path):
    deps = make_deps(tmp_path, critic0=scripted("critic0", vote("revise", own="120"), vote("accept", own="120")),
                     critic1=scripted("critic1", vote("accept", own="120"), vote("accept", own="120")))
    problem = run(deps)
    votes = deps.store.sync.all_votes("p1")
    assert problem["revisions"] == 1
    assert sorted(votes) == [0, 1] and sorted(votes[0]) == [0, 1]
    assert votes[0][0]["verdict"] == "revise" and votes[1][0]["verdict"] == "accept"


def test_a_reworded_duplicate_is_rejected_with_a_pointer(tmp_path):
    index = ProblemIndex(threshold=0.5)
    votes = [vote("accept", own="120"), vote("accept", own="120"), vote("accept", own="66")]
    deps = make_deps(tmp_path, index=index, critic0=scripted("critic0", *votes), critic1=scripted("critic1", *votes),
                     solver=scripted("solver", "\\boxed{120}", "\\boxed{66}"))
    assert run(deps, "p1")["status"] == "accepted"
    reworded = "A committee of 3 members is to be chosen from 10 distinct candidates. In how many different ways?"
    duplicate = run(deps, "p2", problem=reworded)
    assert duplicate["status"] == "rejected" and duplicate["rejection_reason"] == "duplicate"
    assert duplicate["duplicate_of"] == "p1" and 0.5 <= duplicate["similarity"] < 1
    distinct = run(deps, "p3", problem="How many edges does the complete graph on 12 vertices have?", answer="66")
    assert distinct["status"] == "accepted"
    assert len(seen(deps.clients["solver"])) == 2, "a duplicate is never sent to the solver"


def test_index_finds_near_duplicates_and_passes_distinct_text():
    index = ProblemIndex(threshold=0.7)
    index.add("a", "Compute the remainder when 7 to the power 222 is divided by 13 and justify each step")
    assert index.find("Compute the remainder when 7 to the power 222 is divided by 13, and justify each step.").key == "a"
    assert index.find("Find the number of spanning trees of the complete graph on nine labelled vertices") is None
    assert shingles("One two three four", 3) == {"one two three", "two three four"}


def test_k_samples_give_a_pass_rate(tmp_path):
    solver = scripted("solver", "\\boxed{120}", "\\boxed{121}", "\\boxed{120}", "\\boxed{120}")
    deps = make_deps(tmp_path, solver=solver)
    deps.config.solver.samples = 4
    problem = run(deps)
    samples = deps.store.sync.samples_of("p1")
    assert [s["sample_index"] for s in samples] == [0, 1, 2, 3]
    assert problem["pass_rate"] == 0.75 and {s["pass_rate"] for s in samples} == {0.75}
    assert sorted(s["correct"] for s in samples) == [0, 1, 1, 1]


def test_a_cut_trajectory_is_retried_once_with_the_larger_budget(tmp_path):
    solver = scripted("solver", cut("<think>long..."), "<think>long enough</think>\\boxed{120}")
    deps = make_deps(tmp_path, solver=solver)
    deps.config.solver.max_tokens_retry = 65536
    run(deps)
    sample = deps.store.sync.samples_of("p1")[0]
    assert sample["retried"] == 1 and sample["truncated"] == 0 and sample["correct"] == 1


def test_without_a_retry_budget_a_cut_trajectory_is_truncated_and_kept_out_of_sft(tmp_path):
    deps = make_deps(tmp_path, solver=scripted("solver", cut("<think>long..."), cut("<think>long...")))
    deps.config.solver.samples = 2
    problem = run(deps)
    samples = deps.store.sync.samples_of("p1")
    assert all(s["truncated"] == 1 and s["label_method"] == "truncated" and s["correct"] is None for s in samples)
    assert problem["status"] == "accepted" and problem["pass_rate"] is None
    assert list(records(deps.store.sync, "sft")) == []
    rl = list(records(deps.store.sync, "rl"))
    assert [(r["id"], r["pass_rate"], r["samples"]) for r in rl] == [("p1", None, 2)]


def test_sft_holds_only_correct_untruncated_trajectories_as_chats(tmp_path):
    solver = scripted("solver", "<think>a</think>\\boxed{120}", "<think>b</think>\\boxed{7}", cut("<think>c"))
    deps = make_deps(tmp_path, solver=solver)
    deps.config.solver.samples = 3
    run(deps)
    sft = list(records(deps.store.sync, "sft"))
    assert len(sft) == 1
    prompt = PROBLEM + "\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert sft[0]["messages"] == [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": "<think>\na\n</think>\n\n\\boxed{120}"}]


def test_index_rebuilds_from_the_store_after_a_restart(tmp_path):
    from chimera.engine.runner import _rebuild_index

    deps = make_deps(tmp_path, index=ProblemIndex(threshold=0.5))
    run(deps, "p1")
    rebuilt = asyncio.run(_rebuild_index(deps.config, deps.store))
    assert len(rebuilt) == 1 and rebuilt.find(PROBLEM).key == "p1"


NEAR_DUPLICATES = {  # key -> text: b and c reword a; d is distinct
    "pa": "Compute the remainder when 7 to the power 222 is divided by 13 and justify each step",
    "pb": "Compute the remainder when 7 to the power 222 is divided by 13, and justify every step.",
    "pc": "Compute the remainder when 7 to the power 222 is divided by 13 and justify each step carefully",
    "pd": "Find the number of spanning trees of the complete graph on nine labelled vertices",
}


@pytest.mark.parametrize("order", [["pa", "pb", "pc", "pd"], ["pd", "pc", "pb", "pa"], ["pb", "pd", "pa", "pc"]])
def test_which_near_duplicate_is_kept_does_not_depend_on_the_order_they_arrive_in(order):
    index = ProblemIndex(threshold=0.6)
    duplicates, displaced = set(), set()
    for key in order:
        placed = index.place(key, NEAR_DUPLICATES[key])
        if placed.duplicate_of is not None:
            duplicates.add(key)
        displaced |= {m.key for m in placed.displaced}
    assert duplicates | displaced == {"pb", "pc"}, "the smallest key of the family is kept, whatever came first"
    assert len(index) == 2 and index.find(NEAR_DUPLICATES["pb"]).key == "pa"


def test_a_kept_problem_displaced_later_ends_rejected_even_after_it_was_accepted(tmp_path):
    index = ProblemIndex(threshold=0.5)
    votes = [vote("accept", own="120")] * 2
    deps = make_deps(tmp_path, index=index, critic0=scripted("critic0", *votes), critic1=scripted("critic1", *votes),
                     solver=scripted("solver", "\\boxed{120}", "\\boxed{120}"))
    assert run(deps, "p2")["status"] == "accepted"
    reworded = "A committee of 3 members is to be chosen from 10 distinct candidates. In how many different ways?"
    first = run(deps, "p1", problem=reworded)
    assert first["status"] == "accepted", "the smaller id is kept although it came second"
    later = deps.store.sync.problem("p2")
    assert (later["status"], later["rejection_reason"], later["duplicate_of"]) == ("rejected", "duplicate", "p1")
    deps.store.sync.finish_problem("p2", "accepted")
    assert deps.store.sync.problem("p2")["status"] == "rejected", "its thread cannot accept it again"


WORDS = [f"w{i}" for i in range(42)]  # 40 word 3-shingles
CHAIN = {  # Jaccard p1 ~ p2 0.70, p2 ~ p3 0.70, p1 ~ p3 0.43: at 0.5, p1 and p3 are kept in key order
    "p1": " ".join(WORDS[:32] + ["xa", "xb", "xc"]),
    "p2": " ".join(WORDS),
    "p3": " ".join(["ya", "yb", "yc"] + WORDS[10:]),
}


def test_after_the_topics_a_chain_of_near_duplicates_settles_as_in_key_order(tmp_path):
    from chimera.engine.runner import settle_duplicates
    from chimera.tools.dedup import settle

    assert settle(list(CHAIN.items()), threshold=0.5, shingle_words=3, num_perm=128).keys() == {"p2"}
    votes = [vote("accept", own="120")] * 3  # one round each; the retry reuses p3's votes and trajectory
    deps = make_deps(tmp_path, index=ProblemIndex(threshold=0.5), critic0=scripted("critic0", *votes),
                     critic1=scripted("critic1", *votes), solver=scripted("solver", *["\\boxed{120}"] * 3))
    deps.config.dedup.threshold = 0.5
    for pid in ("p3", "p2", "p1"):  # the worst order: each one displaces the one before
        run(deps, pid, problem=CHAIN[pid])
    assert deps.store.sync.problem("p3")["status"] == "rejected", "displaced by p2, which p1 then displaced"
    solver_calls = len(seen(deps.clients["solver"]))

    asyncio.run(settle_duplicates(deps.config, deps.store, deps))
    revived = deps.store.sync.problem("p3")
    assert (revived["status"], revived["duplicate_of"], revived["retries"]) == ("pending", None, 1)
    assert deps.store.sync.problem("p2")["duplicate_of"] == "p1"
    graph = build_problem_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"topic_id": "t1", "subject": "Math", "topic": "Counting", "problem_id": "p3",
                               "slot": 2}, {"configurable": {"thread_id": "p3:retry1"}}, context=deps))
    assert {pid: deps.store.sync.problem(pid)["status"] for pid in CHAIN} == {"p1": "accepted", "p2": "rejected",
                                                                          "p3": "accepted"}
    assert len(seen(deps.clients["solver"])) == solver_calls, "its trajectory from before is reused"


def test_the_index_holds_about_a_kilobyte_per_kept_problem_and_still_finds_rewordings():
    import tracemalloc

    from chimera.evals.dedup_bench import corpus

    texts, _ = corpus(2000, 0.0, seed=0)
    index = ProblemIndex(threshold=0.8)
    index.find("warm up")  # datasketch's imports are not the index's memory
    tracemalloc.start()
    try:
        for i, text in enumerate(texts):
            index.add(str(i), text)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held / len(index) < 2000, "Python sets of shingle strings and datasketch's tables held about 7 KB"
    long_enough = [i for i in range(0, 2000, 10) if len(texts[i].split()) >= 25]  # two words more stay above 0.8
    reworded = {str(i): texts[i] + " Answer exactly." for i in long_enough}
    assert len(reworded) > 50
    found = {key: index.find(text) for key, text in reworded.items()}
    assert all(match is not None and match.key == key and match.similarity >= 0.8 for key, match in found.items())
