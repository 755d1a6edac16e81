"""Review policy: interrupts exactly where `review.policy` says, and decisions route the problem (scripted models)."""

import asyncio

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from scripted import scripted, scripted_deps, seen, vote

from chimera.config import parse_config
from chimera.graphs import build_problem_graph
from chimera.review.decision import ReviewDecision
from chimera.review.policy import Facts, review_reasons, sampled

PROBLEM = "Compute 3 + 4."
RIGHT = "<think>3 plus 4</think>The sum is \\boxed{7}."
WRONG = "<think>3 plus 5</think>The sum is \\boxed{8}."


class Problem:
    """One problem run through the per-problem graph with scripted models, stoppable at review."""

    def __init__(self, tmp_path, policy, *, max_revisions=1, rate=0.1, **clients):
        tmp_path.mkdir(exist_ok=True)
        self.clients = {
            "drafter": scripted("drafter", {"problem": "Compute 3 + 4, exactly.", "answer": "7"}),
            "critic0": scripted("critic0", vote("accept")),
            "critic1": scripted("critic1", vote("accept")),
            "solver": scripted("solver", RIGHT),
            "labeler": scripted("labeler", {"correct": False, "extracted_answer": "", "rationale": ""}),
            "expander": scripted("expander", {"topics": []}),
        } | clients
        self.deps = scripted_deps(tmp_path, self.clients, subjects=[{"name": "Math", "topics": ["Addition"]}],
                                  max_revisions=max_revisions, review={"policy": policy, "rate": rate})
        self.store = self.deps.store.sync
        self.graph = build_problem_graph().compile(checkpointer=InMemorySaver())
        self.thread = {"configurable": {"thread_id": "topic-thread"}}
        self.store.save_draft(id="p1", run="r", topic_id="t1", subject="Math", topic="Addition", slot=0,
                              problem=PROBLEM, answer="7")

    def start(self):
        return self._run({"topic_id": "t1", "subject": "Math", "topic": "Addition", "problem_id": "p1", "slot": 0})

    def decide(self, action, **fields):
        (waiting,) = asyncio.run(self.graph.aget_state(self.thread)).interrupts
        decision = ReviewDecision(action=action, reviewer="ann", **fields).model_dump()
        self.store.decide_review(waiting.value["review_id"], decision)
        return self._run(Command(resume={waiting.id: decision}))

    def _run(self, value):
        result = asyncio.run(self.graph.ainvoke(value, self.thread, context=self.deps))
        return [i.value for i in result.get("__interrupt__", [])]

    @property
    def row(self):
        return self.store.problem("p1")


def two_rounds():
    """Critics and solver for a problem a reviewer sends back once: they see the draft, then what comes back."""
    return {"critic0": scripted("critic0", vote("accept"), vote("accept")),
            "critic1": scripted("critic1", vote("accept"), vote("accept")), "solver": scripted("solver", RIGHT, RIGHT)}


def test_without_a_policy_nothing_waits(tmp_path):
    problem = Problem(tmp_path, "none", solver=scripted("solver", WRONG))
    assert problem.start() == []
    assert problem.row["status"] == "accepted"


def test_disagreement_stops_a_problem_whose_trajectory_misses_the_reference(tmp_path):
    problem = Problem(tmp_path, "disagreement", solver=scripted("solver", WRONG))
    (payload,) = problem.start()
    assert payload["reasons"] == ["solver missed the reference"] and payload["proposed"] == "accept"
    assert payload["problem"] == PROBLEM and payload["answer"] == "7"
    assert [(c["verdict"], c["own_answer"], c["matches_reference"]) for c in payload["critics"]] == [
        ("accept", "7", True), ("accept", "7", True)]
    assert payload["solver"] == [{"sample": 0, "answer": "8", "correct": 0, "grade": "number", "truncated": False}]
    assert problem.row["status"] == "pending", "nothing is final while a human has not decided"
    assert problem.store.reviews("r")[0]["thread_id"] == "topic-thread"


def test_disagreement_lets_a_clean_problem_through(tmp_path):
    problem = Problem(tmp_path, "disagreement")
    assert problem.start() == []
    assert problem.row["status"] == "accepted"


def test_disagreement_stops_a_split_that_would_be_rejected(tmp_path):
    problem = Problem(tmp_path, "disagreement", max_revisions=0,
                      critic1=scripted("critic1", vote("revise", own="8", agrees=False)))
    (payload,) = problem.start()
    assert payload["reasons"] == ["critics disagreed"] and payload["proposed"] == "reject"
    assert payload["rejection_reason"] == "critics disagree after 0 revisions"
    assert payload["solver"] == []


def test_rejected_stops_before_a_rejection_only(tmp_path):
    rejected = Problem(tmp_path / "a", "rejected", critic0=scripted("critic0", vote("reject")))
    assert [p["reasons"] for p in rejected.start()] == [["rejection"]]
    accepted = Problem(tmp_path / "b", "rejected", solver=scripted("solver", WRONG))
    assert accepted.start() == [] and accepted.row["status"] == "accepted"


def test_all_stops_before_every_accept_and_never_before_a_rejection(tmp_path):
    accepted = Problem(tmp_path / "a", "all")
    assert [p["reasons"] for p in accepted.start()] == [["accept"]]
    rejected = Problem(tmp_path / "b", "all", critic0=scripted("critic0", vote("reject")))
    assert rejected.start() == [] and rejected.row["status"] == "rejected"


def test_policies_combine_and_each_names_its_reason(tmp_path):
    problem = Problem(tmp_path, ["disagreement", "all"], solver=scripted("solver", WRONG))
    assert problem.start()[0]["reasons"] == ["solver missed the reference", "accept"]


def test_the_sample_policy_picks_a_stable_seeded_share():
    ids = [f"p{i}" for i in range(4000)]
    picked = [i for i in ids if sampled(i, seed=7, rate=0.25)]
    assert 0.22 < len(picked) / len(ids) < 0.28
    assert picked == [i for i in ids if sampled(i, seed=7, rate=0.25)]
    assert picked != [i for i in ids if sampled(i, seed=8, rate=0.25)]
    assert not any(sampled(i, seed=7, rate=0) for i in ids)


def test_reasons_follow_the_facts():
    facts = Facts(proposed="reject", critics_disagreed=True, solver_missed=False, sampled=True)
    assert review_reasons(frozenset(), facts) == []
    assert review_reasons(frozenset({"disagreement", "rejected", "all", "sample"}), facts) == [
        "critics disagreed", "rejection", "sampled"]


def test_accept_makes_the_problem_final(tmp_path):
    problem = Problem(tmp_path, "disagreement", solver=scripted("solver", WRONG))
    problem.start()
    assert problem.decide("accept") == []
    assert problem.row["status"] == "accepted"
    assert problem.store.review_counts("r") == {"pending": 0, "accepted": 1, "rejected": 0, "edited": 0,
                                               "sent_back": 0}


def test_accepting_a_would_be_rejection_solves_it_then_commits_without_a_second_stop(tmp_path):
    problem = Problem(tmp_path, ["rejected", "disagreement"], critic0=scripted("critic0", vote("reject")),
                      solver=scripted("solver", WRONG))
    problem.start()
    assert seen(problem.clients["solver"]) == []
    assert problem.decide("accept") == []
    assert len(seen(problem.clients["solver"])) == 1
    assert problem.row["status"] == "accepted" and problem.store.sample("p1-0") is not None


def test_reject_keeps_the_reviewer_and_note_as_the_reason(tmp_path):
    problem = Problem(tmp_path, "all")
    problem.start()
    problem.decide("reject", note="too easy")
    assert problem.row["status"] == "rejected"
    assert problem.row["rejection_reason"] == "rejected by reviewer ann: too easy"


def test_an_edit_goes_back_through_both_critics(tmp_path):
    problem = Problem(tmp_path, "all", **two_rounds())
    problem.start()
    assert problem.decide("edit", answer="7.0", problem="Compute 3 + 4 in base ten.") != [], \
        "after the critics pass the edit, policy `all` stops it again"
    assert problem.row["problem"] == "Compute 3 + 4 in base ten." and problem.row["answer"] == "7.0"
    assert problem.row["revisions"] == 1
    for critic in ("critic0", "critic1"):
        assert "Compute 3 + 4 in base ten." in seen(problem.clients[critic])[-1]
    assert problem.decide("accept") == [] and problem.row["status"] == "accepted"


def test_revise_sends_the_note_to_the_drafter(tmp_path):
    problem = Problem(tmp_path, "all", **two_rounds())
    problem.start()
    problem.decide("revise", note="say the numbers are integers")
    assert "say the numbers are integers" in seen(problem.clients["drafter"])[-1]
    assert problem.row["problem"] == "Compute 3 + 4, exactly." and problem.row["revisions"] == 1


def test_disagreement_stops_a_problem_whose_two_judges_split_and_keeps_the_sample_unlabeled(tmp_path):
    vague = "<think>it is a sort of seven</think>The answer is \\boxed{\\text{a heptad}}."
    problem = Problem(tmp_path, "disagreement", solver=scripted("solver", vague),
                      labeler=scripted("labeler", {"correct": True, "extracted_answer": "a heptad", "rationale": "7"}),
                      labeler2=scripted("labeler2", {"correct": False, "extracted_answer": "a heptad",
                                                     "rationale": "not a number"}))
    (payload,) = problem.start()
    assert "judges disagreed" in payload["reasons"]
    sample = problem.store.sample("p1-0")
    assert sample["correct"] is None and sample["label_method"] == "judges-disagree"
    assert "not a number" in sample["label_detail"]


def test_a_config_may_name_two_judges_and_they_become_two_roles():
    config = parse_config({"run": {"name": "r", "db": "r.db"}, "subjects": [{"name": "Math", "topics": 1}],
                           "models": {"default": {"provider": "sim"}, "labeler": [{}, {"model": "other"}]}})
    roles = config.models.all_roles()
    assert roles["labeler"].provider == "sim" and roles["labeler2"].model == "other"
    assert config.models.role("labeler2").model == "other"
