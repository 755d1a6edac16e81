"""The per-problem flow: nodes that a host graph (a topic, a retried slot) runs once per problem.

    validate ─┬─ revise ─> validate             (both critics in one step, then the decision)
              ├─ solve ─┬─ commit               (k trajectories in one step, labeled)
              │         └─ review ─> ...        (only with a review policy)
              └─ reject | fail (or review first)

Each problem is its own `Send` branch of the host graph: its small routing
state travels in the branch's payload, and each node names the next with
`Command(goto=Send(...))`. One host step (and one checkpoint) then carries the
work of every problem of a topic that is at that stage, instead of a subgraph
with its own checkpoints per problem.

A node that is re-executed after a crash reuses what the store already holds
for the current round (a critic's vote, a labeled trajectory), so no finished
model call is made twice. `review` is where a human may stop the problem
(LangGraph `interrupt`) before its outcome is final, as `review.policy` says;
with the default policy `none` no problem goes there.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from typing import Annotated, Any, TypedDict

from langgraph.config import get_config
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt

from chimera.agents import critic, drafter, labeler, solver
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.decisions import Decision, decide, disagreed, pass_rate
from chimera.graphs.deps import Deps
from chimera.review.decision import ReviewDecision
from chimera.review.policy import Facts, review_reasons, sampled
from chimera.config import JUDGE_ROLES
from chimera.tools.grading import Grade, grade, is_placeholder

log = logging.getLogger("chimera.problems")

CRITICS = (0, 1)


class ProblemInput(TypedDict):
    topic_id: str
    subject: str
    topic: str
    problem_id: str
    slot: int


class ProblemOutput(TypedDict):
    outcomes: Annotated[list[dict[str, Any]], operator.add]


class ProblemTask(ProblemInput, total=False):
    """One problem's branch payload: ids and small routing fields; texts live in the store."""

    revisions: int
    action: str
    reason: str | None
    votes: dict[str, dict[str, Any]]  # critic index -> {"verdict", "agrees", ...} for this round
    solved: list[dict[str, Any]]  # this round's trajectories: {"sample", "correct", "truncated", "failed"}
    human_accepted: int  # the round a reviewer accepted in: no second review of it after solving
    review_note: str | None  # a reviewer's note for the drafter's next revision


def answer_matches(reference: str, own_answer: str | None, claimed: bool, problem: str | None = None) -> tuple[bool, str]:
    """Does a critic's own answer match the reference? The grader decides (the same one that labels
    trajectories, so another unit or notation agrees and right digits in a wrong unit do not); the critic's
    word only when no rule is certain."""
    if not own_answer:
        return False, "no answer"
    result = grade(reference, own_answer, problem)
    if result.correct is None:
        return claimed, "critic's claim"
    if result.method in ("placeholder", "empty"):
        return False, result.method
    return result.correct, result.method


def task_of(state: dict[str, Any]) -> ProblemTask:
    return {key: state[key] for key in ProblemInput.__annotations__}


def add_problem_nodes(graph: StateGraph, deps: Deps) -> None:
    """Add the per-problem nodes to `graph`, whose state must have an `outcomes` list channel.
    Start a problem with `Send("validate", task)`."""
    store, clients, config = deps.store, deps.clients, deps.config
    policy = config.review.active

    def context(task: ProblemTask) -> dict[str, Any]:
        return deps.context(topic_id=task["topic_id"], problem_id=task["problem_id"])

    def ended(task: ProblemTask, status: str, reason: str | None = None) -> Command:
        if status == "failed":
            log.warning("problem %s (%s / %s) failed: %s", task["problem_id"], task["subject"], task["topic"], reason)
        store.finish_problem(task["problem_id"], status, reason)
        return Command(update={"outcomes": [{"problem_id": task["problem_id"], "status": status}]})

    def to_outcome(task: ProblemTask, action: str, reason: str | None) -> Command:
        """A rejection goes by the review gate when a policy is set; a failure never does."""
        if action == "fail":
            return ended(task, "failed", reason)
        if policy:
            return Command(goto=Send("review", {**task, "action": "reject", "reason": reason}))
        return ended(task, "rejected", reason)

    # -- validate: both critics, the decision, and the duplicate check --------------------------
    async def critic_vote(index: int, task: ProblemTask, row: dict[str, Any], round_: int) -> dict[str, Any]:
        stored = store.votes(task["problem_id"], round_).get(index)
        if stored is not None and "route" in stored:
            return stored["route"]  # voted before a restart: reuse, do not ask again
        role = f"critic{index}"
        kept: dict[str, Any] = {"model": clients[role].model}
        try:
            verdict = await critic.critique(
                clients[role], subject=task["subject"], topic=task["topic"], problem=row["problem"],
                answer=row["answer"], retries=deps.retries, context=context(task))
            matches, how = answer_matches(row["answer"], verdict.own_answer, verdict.agrees_with_reference,
                                          row["problem"])
            vote = {"verdict": verdict.verdict, "agrees": matches}
            kept |= {**verdict.model_dump(), "own_answer_matches": matches, "match_method": how}
        except ReplyError as error:
            vote = {"verdict": "reject", "agrees": False, "unparseable": error.reason}
            kept |= {"verdict": "reject", "reasons": f"unparseable reply: {error.reason}"}
        except CallFailed as error:
            vote = {"verdict": "failed", "agrees": False, "reason": str(error)}
            kept |= {"verdict": "failed", "reasons": str(error)}
        # A failed call is not kept for reuse: a re-run asks again.
        store.record_vote(task["problem_id"], round_=round_, critic=index,
                          vote=kept | ({} if vote["verdict"] == "failed" else {"route": vote}))
        return vote

    async def validate(task: ProblemTask) -> Command:
        round_ = task.get("revisions", 0)
        row = store.problem(task["problem_id"])
        if is_placeholder(row["answer"]):
            return to_outcome(task, "reject", "the reference answer is empty or a placeholder")
        votes = dict(zip(CRITICS, await asyncio.gather(*(critic_vote(i, task, row, round_) for i in CRITICS))))
        if disagreed(votes):
            store.mark_disagreement(task["problem_id"])
        decision = decide(votes, round_, config.max_revisions)
        if decision.action == "solve" and is_duplicate(task, row):
            decision = Decision("reject", "duplicate")
        task = {**task, "votes": {str(i): v for i, v in votes.items()}}
        if decision.action == "solve":
            return Command(goto=Send("solve", task))
        if decision.action == "revise":
            return Command(goto=Send("revise", task))
        return to_outcome(task, decision.action, decision.reason)

    def is_duplicate(task: ProblemTask, row: dict[str, Any]) -> bool:
        index = deps.problem_index()
        if index is None or row["indexed"]:
            return False  # no dedup, or this problem already passed it before a restart
        # Check and insert with no await between: concurrent topics cannot both pass as originals.
        placed = index.place(task["problem_id"], row["problem"])
        if placed.duplicate_of is not None:
            store.mark_duplicate(task["problem_id"], placed.duplicate_of.key, placed.duplicate_of.similarity)
            return True
        with store.transaction():
            store.mark_indexed(task["problem_id"])
            for later in placed.displaced:  # kept before this one arrived; the smaller id wins either way
                store.mark_duplicate(later.key, task["problem_id"], later.similarity, displaced=True)
        return False

    # -- revise -----------------------------------------------------------------------------------
    async def revise(task: ProblemTask) -> Command:
        round_ = task.get("revisions", 0)
        row = store.problem(task["problem_id"])
        votes = store.votes(task["problem_id"], round_)
        critiques = [f"Reviewer {i + 1} ({v['verdict']}): {v['reasons']}" for i, v in sorted(votes.items())]
        if task.get("review_note"):
            critiques.append(f"Human reviewer (takes precedence): {task['review_note']}")
        try:
            revised = await drafter.revise(
                clients["drafter"], subject=task["subject"], topic=task["topic"], problem=row["problem"],
                answer=row["answer"], critiques=critiques, retries=deps.retries, context=context(task))
        except ReplyError as error:
            return to_outcome(task, "reject", f"drafter revision unparseable: {error.reason}")
        except CallFailed as error:
            return to_outcome(task, "fail", str(error))
        store.save_revision(task["problem_id"], revision=round_ + 1, problem=revised.problem, answer=revised.answer)
        return Command(goto=Send("validate", next_round(task)))

    def next_round(task: ProblemTask) -> ProblemTask:
        return {**task, "revisions": task.get("revisions", 0) + 1, "votes": {}, "solved": [], "review_note": None}

    # -- solve: k trajectories side by side, labeled, then commit ----------------------------------
    async def solve_sample(task: ProblemTask, row: dict[str, Any], j: int, round_: int) -> dict[str, Any]:
        sample_id = f"{task['problem_id']}-{j}"
        stored = store.sample(sample_id)
        if stored is not None and stored["round"] == round_ and stored["label_method"] is not None:
            return {"sample": j, "correct": None if stored["correct"] is None else bool(stored["correct"]),
                    "truncated": bool(stored["truncated"]), "failed": None,
                    "judges_split": stored["label_method"] == "judges-disagree"}  # finished before a restart
        # Sample 0 is the paper's plain request; further samples carry a seed so they differ and replay alike.
        extra = {"seed": j} if j else {}
        try:
            reply = await solver.solve(clients["solver"], problem=row["problem"], context=context(task), **extra)
            retried = 0
            if reply.truncated and config.solver.max_tokens_retry:
                reply = await solver.solve(clients["solver"], problem=row["problem"], context=context(task),
                                           max_tokens=config.solver.max_tokens_retry, **extra)
                retried = 1
        except CallFailed as error:
            return {"sample": j, "correct": None, "truncated": False, "failed": str(error)}
        oversized = len(reply.reasoning) + len(reply.content) > config.solver.max_trajectory_chars
        if oversized:  # stored, but cut to the cap: one reply must not grow the database without bound
            keep = config.solver.max_trajectory_chars
            reply.reasoning, reply.content = reply.reasoning[:keep], reply.content[:max(0, keep - len(reply.reasoning))]
        store.save_sample({
            "id": sample_id, "problem_id": task["problem_id"], "sample_index": j, "round": round_, "run": deps.run,
            "subject": task["subject"], "topic": task["topic"], "problem": row["problem"], "answer": row["answer"],
            "reasoning": reply.reasoning, "solution": reply.content, "predicted_answer": None, "correct": None,
            "label_method": None, "label_detail": None, "truncated": int(reply.truncated), "retried": retried,
            "finish_reason": reply.finish_reason, "pass_rate": None, "prompt": solver.messages(row["problem"]),
            "models": {role: client.model for role, client in clients.items() if role != "expander"},
            "usage": {"solver_tokens_in": reply.tokens_in, "solver_tokens_out": reply.tokens_out,
                      "solver_reasoning_tokens": reply.reasoning_tokens},
        })
        if reply.truncated or oversized:
            # A trajectory cut at max_tokens is not a wrong answer: it is kept, flagged, and left unlabeled.
            detail = "cut at max_tokens" if reply.truncated else "longer than solver.max_trajectory_chars"
            store.update_sample(sample_id, {"label_method": "truncated", "label_detail": detail, "truncated": 1})
            return {"sample": j, "correct": None, "truncated": True, "failed": None}
        try:
            result = await labeler.label_answer(
                [clients[role] for role in JUDGE_ROLES if role in clients], problem=row["problem"], reference=row["answer"], response=reply.content,
                retries=deps.retries, context=context(task))
        except ReplyError as error:
            result = Grade(None, "unlabeled", None, f"judge reply unparseable: {error.reason}")
        except CallFailed as error:
            return {"sample": j, "correct": None, "truncated": False, "failed": str(error)}
        store.update_sample(sample_id, {
            "predicted_answer": result.extracted, "correct": None if result.correct is None else int(result.correct),
            "label_method": result.method, "label_detail": result.detail})
        return {"sample": j, "correct": result.correct, "truncated": False, "failed": None,
                "judges_split": result.method == "judges-disagree"}

    async def solve(task: ProblemTask) -> Command:
        round_ = task.get("revisions", 0)
        row = store.problem(task["problem_id"])
        solved = list(await asyncio.gather(*(solve_sample(task, row, j, round_)
                                             for j in range(config.solver.samples))))
        task = {**task, "action": "solve", "solved": solved}
        if policy and task.get("human_accepted") != round_ and not all(s["failed"] for s in solved):
            return Command(goto=Send("review", task))
        return commit(task)

    def commit(task: ProblemTask) -> Command:
        solved = task["solved"]
        failures = [s["failed"] for s in solved if s["failed"]]
        if failures and len(failures) == len(solved):
            return ended(task, "failed", failures[0])
        store.set_pass_rate(task["problem_id"], pass_rate(solved))
        return ended(task, "accepted")

    # -- review: a human decides before the outcome is final ---------------------------------------
    async def review(task: ProblemTask) -> Command:
        round_ = task.get("revisions", 0)
        proposed = "accept" if task["action"] == "solve" else "reject"
        votes = {int(i): v for i, v in task.get("votes", {}).items()}
        facts = Facts(proposed=proposed, critics_disagreed=disagreed(votes) if votes else False,
                      solver_missed=any(s["correct"] is False for s in task.get("solved", [])),
                      judges_split=any(s.get("judges_split") for s in task.get("solved", [])),
                      sampled="sample" in policy and sampled(task["problem_id"], config.run.seed, config.review.rate))
        reasons = review_reasons(policy, facts)
        if not reasons:
            return commit(task) if proposed == "accept" else ended(task, "rejected", task.get("reason"))
        review_id = f"{task['problem_id']}@{round_}"
        payload = review_payload(task, review_id, proposed, reasons)
        store.open_review({"id": review_id, "run": deps.run, "problem_id": task["problem_id"],
                           "topic_id": task["topic_id"], "subject": task["subject"], "topic": task["topic"],
                           "thread_id": get_config()["configurable"]["thread_id"], "round": round_,
                           "proposed": proposed, "reasons": reasons, "payload": payload})
        # Decided already (while a kill kept this step from reaching its interrupt): apply it, do not wait.
        decided = store.decisions_to_apply(get_config()["configurable"]["thread_id"]).get(review_id)
        decision = ReviewDecision.model_validate(decided if decided is not None else interrupt(payload))
        return apply_decision(task, decision, proposed)

    def apply_decision(task: ProblemTask, decision: ReviewDecision, proposed: str) -> Command:
        round_ = task.get("revisions", 0)
        if decision.action == "accept":
            if proposed == "accept":
                return commit(task)
            # Accepting a would-be rejection still needs its trajectories: solve, then commit unreviewed.
            return Command(goto=Send("solve", {**task, "human_accepted": round_}))
        if decision.action == "reject":
            note = f": {decision.note}" if decision.note else ""
            return ended(task, "rejected", f"rejected by reviewer {decision.reviewer}{note}")
        if decision.action == "revise":
            return Command(goto=Send("revise", {**task, "review_note": decision.note}))
        row = store.problem(task["problem_id"])
        store.save_revision(task["problem_id"], revision=round_ + 1, problem=decision.problem or row["problem"],
                            answer=decision.answer or row["answer"])
        return Command(goto=Send("validate", next_round(task)))

    def review_payload(task: ProblemTask, review_id: str, proposed: str, reasons: list[str]) -> dict[str, Any]:
        """Everything a reviewer needs to decide, without opening the database."""
        round_ = task.get("revisions", 0)
        row = store.problem(task["problem_id"])
        critics = [{"critic": i, "model": v.get("model"), "verdict": v.get("verdict"), "reasons": v.get("reasons"),
                    "own_answer": v.get("own_answer"), "matches_reference": v.get("own_answer_matches")}
                   for i, v in sorted(store.votes(task["problem_id"], round_).items())]
        samples = [{"sample": s["sample_index"], "answer": s["predicted_answer"], "correct": s["correct"],
                    "grade": s["label_method"], "truncated": bool(s["truncated"])}
                   for s in store.samples_of(task["problem_id"])] if proposed == "accept" else []
        return {"review_id": review_id, "problem_id": task["problem_id"], "subject": task["subject"],
                "topic": task["topic"], "round": round_, "problem": row["problem"], "answer": row["answer"],
                "proposed": proposed, "reasons": reasons, "rejection_reason": task.get("reason"),
                "critics": critics, "solver": samples}

    graph.add_node("validate", validate, destinations=("solve", "revise", "review"))
    graph.add_node("revise", revise, destinations=("validate", "review"))
    graph.add_node("solve", solve, destinations=("review",))
    graph.add_node("review", review, destinations=("solve", "revise", "validate"))


class ProblemGraphState(ProblemInput, ProblemOutput):
    pass


def add_problem_flow(graph: StateGraph, deps: Deps) -> str:
    """Add the problem flow to a host graph; returns the node to `Send` each problem's task to.

    Without a review policy the nodes are the host's own: one host step and one checkpoint
    carry every problem at that stage. With one, each problem runs as a subgraph inside a
    single host step: an interrupt stops the host after the step it happens in, and a
    problem inlined beside it would wait there too, although no human needs to see it.
    """
    if deps.config.review.active:
        graph.add_node("problem", build_problem_graph(deps).compile())
        return "problem"
    add_problem_nodes(graph, deps)
    return "validate"


def build_problem_graph(deps: Deps) -> StateGraph:
    """One problem on its own: the input names a drafted problem in the store."""
    graph = StateGraph(ProblemGraphState, input_schema=ProblemInput, output_schema=ProblemOutput)
    add_problem_nodes(graph, deps)
    graph.add_conditional_edges(START, lambda state: [Send("validate", task_of(state))], ["validate"])
    return graph


__all__ = ["ProblemInput", "ProblemOutput", "ProblemTask", "add_problem_flow", "add_problem_nodes",
           "answer_matches", "build_problem_graph", "task_of"]
