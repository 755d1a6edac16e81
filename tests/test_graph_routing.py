"""The per-problem graph routes accept / revise / reject as the critics say (scripted models, no network)."""

import asyncio

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from scripted import scripted, scripted_deps, seen, vote

from chimera.graphs import build_problem_graph, build_topic_graph

PROBLEM = "Compute 3 + 4."
SOLVED = "<think>3 plus 4 is 7</think>The sum is \\boxed{7}."


def make_deps(tmp_path, max_revisions=1, **clients):
    defaults = {
        "drafter": scripted("drafter", {"problem": "Compute 3 + 4, exactly.", "answer": "7"}),
        "critic0": scripted("critic0", vote("accept")),
        "critic1": scripted("critic1", vote("accept")),
        "solver": scripted("solver", SOLVED),
        "labeler": scripted("labeler", {"correct": True, "extracted_answer": "7", "rationale": "same"}),
        "expander": scripted("expander", {"topics": []}),
    }
    defaults.update(clients)
    return scripted_deps(tmp_path, defaults, subjects=[{"name": "Math", "topics": ["Addition"]}],
                         max_revisions=max_revisions, parse_retries=1)


def run_problem(deps):
    deps.store.sync.save_draft(id="p1", run="r", topic_id="t1", subject="Math", topic="Addition", slot=0,
                          problem=PROBLEM, answer="7")
    graph = build_problem_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"topic_id": "t1", "subject": "Math", "topic": "Addition", "problem_id": "p1",
                               "slot": 0}, {"configurable": {"thread_id": "p1"}}, context=deps))
    return deps.store.sync.problem("p1"), deps.store.sync.sample("p1-0")


def calls(deps, role):
    return len(seen(deps.clients[role]))


def test_both_critics_accept_then_solve_label_and_commit(tmp_path):
    deps = make_deps(tmp_path)
    problem, sample = run_problem(deps)
    assert problem["status"] == "accepted" and problem["revisions"] == 0
    assert sample["reasoning"] == "3 plus 4 is 7" and sample["solution"] == "The sum is \\boxed{7}."
    assert sample["correct"] == 1 and sample["label_method"] == "exact"
    assert calls(deps, "labeler") == 0, "rules decided, so the judge must not be asked"
    assert calls(deps, "drafter") == 0


def test_a_revise_vote_sends_the_critiques_to_the_drafter_and_critics_see_the_revision(tmp_path):
    deps = make_deps(tmp_path, critic0=scripted("critic0", vote("revise", agrees=False, own="8"), vote("accept")),
                     critic1=scripted("critic1", vote("accept"), vote("accept")))
    problem, sample = run_problem(deps)
    assert problem["status"] == "accepted" and problem["revisions"] == 1
    assert problem["problem"] == "Compute 3 + 4, exactly." and problem["draft_problem"] == PROBLEM
    assert "revise because" in seen(deps.clients["drafter"])[0]
    assert "Compute 3 + 4, exactly." in seen(deps.clients["critic1"])[1]
    assert sample["problem"] == "Compute 3 + 4, exactly."


def test_accept_needs_both_critics_to_agree_with_the_reference(tmp_path):
    deps = make_deps(tmp_path, max_revisions=0, critic1=scripted("critic1", vote("accept", own="8", agrees=False)))
    problem, sample = run_problem(deps)
    assert problem["status"] == "rejected" and "disagree" in problem["rejection_reason"]
    assert sample is None and calls(deps, "solver") == 0


def test_a_reject_vote_is_final(tmp_path):
    deps = make_deps(tmp_path, critic1=scripted("critic1", vote("reject")))
    problem, sample = run_problem(deps)
    assert problem["status"] == "rejected" and problem["rejection_reason"] == "rejected by critic"
    assert sample is None and calls(deps, "drafter") == 0


def test_revisions_stop_at_max_revisions(tmp_path):
    revision = {"problem": "Compute 3 + 4, exactly.", "answer": "7"}
    deps = make_deps(tmp_path, max_revisions=2, drafter=scripted("drafter", revision, revision),
                     critic0=scripted("critic0", *[vote("revise")] * 3),
                     critic1=scripted("critic1", *[vote("revise")] * 3))
    problem, _ = run_problem(deps)
    assert problem["status"] == "rejected"
    assert problem["rejection_reason"] == "critics asked for revision after 2 revisions"
    assert calls(deps, "drafter") == 2 and calls(deps, "critic0") == 3


def test_an_unparseable_critic_reply_is_retried_then_recorded_as_a_rejection(tmp_path):
    deps = make_deps(tmp_path, critic0=scripted("critic0", "not json at all", "not json at all"))
    problem, _ = run_problem(deps)
    assert calls(deps, "critic0") == 2, "one retry after the first unparseable reply"
    assert problem["status"] == "rejected"
    assert problem["rejection_reason"].startswith("critic reply unparseable: not valid JSON")


def test_the_judge_decides_only_what_rules_cannot(tmp_path):
    deps = make_deps(
        tmp_path,
        solver=scripted("solver", "It is \\boxed{a lovely sonnet}."),
        labeler=scripted("labeler", {"correct": False, "extracted_answer": "a lovely sonnet", "rationale": "no"}))
    deps.store.sync.save_draft(id="p1", run="r", topic_id="t1", subject="Lit", topic="Forms", slot=0,
                          problem="Name the form.", answer="villanelle")
    graph = build_problem_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"topic_id": "t1", "subject": "Lit", "topic": "Forms", "problem_id": "p1", "slot": 0},
                              {"configurable": {"thread_id": "p1"}}, context=deps))
    sample = deps.store.sync.sample("p1-0")
    assert calls(deps, "labeler") == 1
    assert sample["correct"] == 0 and sample["label_method"] == "judge" and sample["label_detail"] == "no"


def test_slot_k_drafter_sees_the_problems_of_earlier_slots(tmp_path):
    drafts = [{"problem": f"Problem number {i}.", "answer": "7"} for i in range(3)]
    deps = make_deps(tmp_path, drafter=scripted("drafter", *drafts), critic0=scripted("critic0", *[vote("accept")] * 3),
                     critic1=scripted("critic1", *[vote("accept")] * 3),
                     solver=scripted("solver", *[SOLVED] * 3))
    deps.store.sync.upsert_topic(id="t1", run="r", subject="Math", name="Addition", position=0, source="explicit")
    graph = build_topic_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"topic_id": "t1", "subject": "Math", "topic": "Addition", "slots": 3},
                              {"configurable": {"thread_id": "t1"}}, context=deps))
    prompts = seen(deps.clients["drafter"])
    assert "(none)" in prompts[0]
    assert "Problem number 0." in prompts[1] and "Problem number 1." not in prompts[1]
    assert "Problem number 0." in prompts[2] and "Problem number 1." in prompts[2]
    statuses = [p["status"] for p in deps.store.sync.problems("r")]
    assert statuses == ["accepted"] * 3


@pytest.mark.parametrize("votes, expected", [
    ({0: {"verdict": "accept", "agrees": True}, 1: {"verdict": "accept", "agrees": True}}, "solve"),
    ({0: {"verdict": "accept", "agrees": True}, 1: {"verdict": "revise", "agrees": True}}, "revise"),
    ({0: {"verdict": "reject", "agrees": True}, 1: {"verdict": "accept", "agrees": True}}, "reject"),
    ({0: {"verdict": "failed", "agrees": False, "reason": "x"}, 1: {"verdict": "accept", "agrees": True}}, "fail"),
])
def test_decide(votes, expected):
    from chimera.graphs.decisions import decide

    assert decide(votes, 0, 1).action == expected


def test_a_placeholder_reference_is_rejected_before_any_critic_is_asked(tmp_path):
    deps = make_deps(tmp_path)
    deps.store.sync.save_draft(id="p1", run="r", topic_id="t1", subject="Math", topic="Addition", slot=0,
                          problem=PROBLEM, answer="...")
    graph = build_problem_graph().compile(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"topic_id": "t1", "subject": "Math", "topic": "Addition", "problem_id": "p1",
                               "slot": 0}, {"configurable": {"thread_id": "p1"}}, context=deps))
    problem = deps.store.sync.problem("p1")
    assert problem["status"] == "rejected" and "placeholder" in problem["rejection_reason"]
    assert calls(deps, "critic0") == calls(deps, "critic1") == calls(deps, "solver") == 0


def test_a_critic_answer_in_another_unit_agrees_and_right_digits_in_a_wrong_unit_do_not(tmp_path):
    from chimera.graphs.problem import answer_matches

    assert answer_matches("20 m/s", "72 km/h", claimed=False) == (True, "quantity")
    assert answer_matches("20 m/s", "20 km/h", claimed=True) == (False, "quantity")
    assert answer_matches("20 m/s", "...", claimed=True) == (False, "placeholder")


def test_a_problem_subgraph_ranks_after_every_step_of_its_host_in_the_budget_queue():
    """Under a review policy a problem's flow is a subgraph whose LangGraph steps count from 1 again; its calls
    must still go before other topics' drafts (the budget serves the furthest-along step first)."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from chimera.graphs.deps import graph_step

    class Count(TypedDict):
        n: int

    steps: dict[str, list[int]] = {"host": [], "subgraph": []}

    def step_in(where: str):
        def node(state: Count) -> dict:
            steps[where].append(graph_step())
            return {"n": state["n"] + 1}
        return node

    problem = StateGraph(Count)
    problem.add_node("validate", step_in("subgraph"))
    problem.add_node("solve", step_in("subgraph"))
    problem.add_edge(START, "validate")
    problem.add_edge("validate", "solve")
    problem.add_edge("solve", END)
    topic = StateGraph(Count)
    topic.add_node("draft", step_in("host"))
    topic.add_node("problem", problem.compile())
    topic.add_edge(START, "draft")
    topic.add_conditional_edges("draft", lambda s: "draft" if s["n"] < 8 else "problem", ["draft", "problem"])
    topic.add_edge("problem", END)
    topic.compile(checkpointer=InMemorySaver()).invoke({"n": 0}, {"configurable": {"thread_id": "t"}})
    assert steps["host"] == list(range(1, 9))
    assert min(steps["subgraph"]) > max(steps["host"]) and steps["subgraph"] == sorted(steps["subgraph"])
