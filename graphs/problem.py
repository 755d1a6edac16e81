"""The per-problem subgraph.

    critic0 ─┐           ┌─ revise ─> critics again
             ├─ judge ───┼──────────────────────────── review ─ reject
    critic1 ─┘           └─ solve_one × k (Send) ───── review ─ commit

`review` is where a human may stop the problem (LangGraph `interrupt`) before
its outcome is final, as `review.policy` says; a decision can also send it back
to the critics (edit), to the drafter (revise) or to the solver (accepting a
would-be rejection). With the default policy `none` the graph has no review
step at all.

State carries ids and small routing fields only; problem text, votes and
trajectories are written to the store by the nodes, keyed by deterministic
ids, so re-running a node after a crash overwrites rather than duplicates.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send, interrupt

from chimera.agents import critic, drafter, labeler, solver
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.decisions import decide, disagreed, pass_rate
from chimera.graphs.deps import Deps
from chimera.review.decision import ReviewDecision
from chimera.review.policy import Facts, review_reasons, sampled
from chimera.tools.grading import Grade, grade

CRITICS = (0, 1)


def _merge(left: dict, right: dict) -> dict:
    return {**left, **right}


class ProblemInput(TypedDict):
    topic_id: str
    subject: str
    topic: str
    problem_id: str
    slot: int


class ProblemOutput(TypedDict):
    outcomes: Annotated[list[dict[str, Any]], operator.add]


class ProblemState(ProblemInput, ProblemOutput, total=False):
    revisions: int
    # "round:critic" -> {"verdict", "agrees", ...}: just enough to route; full votes live in the store.
    votes: Annotated[dict[str, dict[str, Any]], _merge]
    action: str
    reason: str | None
    # one entry per drawn trajectory: {"round", "sample", "correct", "truncated", "failed"}
    solved: Annotated[list[dict[str, Any]], operator.add]
    human_accepted: int  # the round a reviewer accepted in: no second review of it after solving
    review_note: str | None  # a reviewer's note for the drafter's next revision


class SolveTask(ProblemInput):
    sample: int
    round: int


def answer_matches(reference: str, own_answer: str | None, claimed: bool) -> tuple[bool, str]:
    """Does a critic's own answer match the reference? The grader decides; the critic's word only when it cannot."""
    if not own_answer:
        return False, "no answer"
    result = grade(reference, own_answer)
    if result.correct is None:
        return claimed, "critic's claim"
    return result.correct, result.method


def build_problem_graph(deps: Deps) -> StateGraph:
    store, clients, config = deps.store, deps.clients, deps.config
    policy = config.review.active

    def gate_or(final: str) -> str:
        """Through the review gate when a policy may stop problems; straight on otherwise (one step fewer)."""
        return "review" if policy else final

    def context(state: ProblemInput) -> dict[str, Any]:
        return deps.context(topic_id=state["topic_id"], problem_id=state["problem_id"])

    def make_critic(index: int):
        role = f"critic{index}"

        async def critic_node(state: ProblemState) -> dict[str, Any]:
            round_ = state.get("revisions", 0)
            row = store.problem(state["problem_id"])
            stored: dict[str, Any] = {"model": clients[role].model}
            try:
                verdict = await critic.critique(
                    clients[role], subject=state["subject"], topic=state["topic"],
                    problem=row["problem"], answer=row["answer"], retries=deps.retries, context=context(state))
                matches, how = answer_matches(row["answer"], verdict.own_answer, verdict.agrees_with_reference)
                vote = {"verdict": verdict.verdict, "agrees": matches}
                stored |= {**verdict.model_dump(), "own_answer_matches": matches, "match_method": how}
            except ReplyError as error:
                vote = {"verdict": "reject", "agrees": False, "unparseable": error.reason}
                stored |= {"verdict": "reject", "reasons": f"unparseable reply: {error.reason}"}
            except CallFailed as error:
                vote = {"verdict": "failed", "agrees": False, "reason": str(error)}
                stored |= {"verdict": "failed", "reasons": str(error)}
            store.record_vote(state["problem_id"], round_=round_, critic=index, vote=stored)
            return {"votes": {f"{round_}:{index}": vote}}

        critic_node.__name__ = role
        return critic_node

    async def judge(state: ProblemState) -> dict[str, Any]:
        round_ = state.get("revisions", 0)
        votes = {i: state["votes"][f"{round_}:{i}"] for i in CRITICS}
        if disagreed(votes):
            store.mark_disagreement(state["problem_id"])
        decision = decide(votes, round_, config.max_revisions)
        if decision.action == "solve":
            # The duplicate check rides in the same step: one checkpoint fewer per problem.
            return check_duplicate(state)
        return {"action": decision.action, "reason": decision.reason}

    async def revise(state: ProblemState) -> dict[str, Any]:
        round_ = state.get("revisions", 0)
        row = store.problem(state["problem_id"])
        votes = store.votes(state["problem_id"], round_)
        critiques = [f"Reviewer {i + 1} ({v['verdict']}): {v['reasons']}" for i, v in sorted(votes.items())]
        if state.get("review_note"):
            critiques.append(f"Human reviewer (takes precedence): {state['review_note']}")
        try:
            revised = await drafter.revise(
                clients["drafter"], subject=state["subject"], topic=state["topic"], problem=row["problem"],
                answer=row["answer"], critiques=critiques, retries=deps.retries, context=context(state))
        except ReplyError as error:
            return {"action": "reject", "reason": f"drafter revision unparseable: {error.reason}"}
        except CallFailed as error:
            return {"action": "fail", "reason": str(error)}
        store.save_revision(state["problem_id"], revision=round_ + 1, problem=revised.problem, answer=revised.answer)
        return {"revisions": round_ + 1, "action": "critique", "review_note": None}

    def check_duplicate(state: ProblemState) -> dict[str, Any]:
        row = store.problem(state["problem_id"])
        index = deps.problem_index()
        if index is None or row["indexed"]:
            return {"action": "solve"}  # no dedup, or this problem already passed it before a restart
        match = index.find(row["problem"])
        if match is not None and match.key != state["problem_id"]:
            store.mark_duplicate(state["problem_id"], match.key, match.similarity)
            return {"action": "reject", "reason": "duplicate"}
        # Check and insert with no await between: concurrent topics cannot both pass as originals.
        index.add(state["problem_id"], row["problem"])
        store.mark_indexed(state["problem_id"])
        return {"action": "solve"}

    def fan_out_solves(state: ProblemState) -> Any:
        if state["action"] == "reject":
            return gate_or("reject")
        if state["action"] != "solve":
            return state["action"]
        task = {key: state[key] for key in ProblemInput.__annotations__}
        round_ = state.get("revisions", 0)
        return [Send("solve_one", {**task, "sample": j, "round": round_}) for j in range(config.solver.samples)]

    def this_round(state: ProblemState) -> list[dict[str, Any]]:
        round_ = state.get("revisions", 0)
        return [s for s in state.get("solved", []) if s["round"] == round_]

    async def review(state: ProblemState) -> dict[str, Any]:
        round_ = state.get("revisions", 0)
        proposed = "accept" if state["action"] == "solve" else "reject"
        final = {"action": "commit" if proposed == "accept" else "reject"}
        solved = this_round(state)
        if state.get("human_accepted") == round_ or (proposed == "accept" and all(s["failed"] for s in solved)):
            return final
        votes = {i: state["votes"][f"{round_}:{i}"] for i in CRITICS if f"{round_}:{i}" in state.get("votes", {})}
        facts = Facts(proposed=proposed, critics_disagreed=disagreed(votes) if votes else False,
                      solver_missed=any(s["correct"] is False for s in solved),
                      sampled="sample" in policy and sampled(state["problem_id"], config.run.seed, config.review.rate))
        reasons = review_reasons(policy, facts)
        if not reasons:
            return final
        review_id = f"{state['problem_id']}@{round_}"
        payload = review_payload(state, review_id, proposed, reasons, with_samples=proposed == "accept")
        store.open_review({"id": review_id, "run": deps.run, "problem_id": state["problem_id"],
                           "topic_id": state["topic_id"], "subject": state["subject"], "topic": state["topic"],
                           "thread_id": get_config()["configurable"]["thread_id"], "round": round_,
                           "proposed": proposed, "reasons": reasons, "payload": payload})
        decision = ReviewDecision.model_validate(interrupt(payload))
        return apply_decision(state, decision, proposed, final)

    def apply_decision(state: ProblemState, decision: ReviewDecision, proposed: str,
                       final: dict[str, Any]) -> dict[str, Any]:
        round_ = state.get("revisions", 0)
        if decision.action == "accept":
            # Accepting a would-be rejection still needs its trajectories: solve, then commit unreviewed.
            return final if proposed == "accept" else {"action": "solve", "human_accepted": round_}
        if decision.action == "reject":
            note = f": {decision.note}" if decision.note else ""
            return {"action": "reject", "reason": f"rejected by reviewer {decision.reviewer}{note}"}
        if decision.action == "revise":
            return {"action": "revise", "review_note": decision.note}
        row = store.problem(state["problem_id"])
        store.save_revision(state["problem_id"], revision=round_ + 1, problem=decision.problem or row["problem"],
                            answer=decision.answer or row["answer"])
        return {"action": "critique", "revisions": round_ + 1}

    def review_payload(state: ProblemState, review_id: str, proposed: str, reasons: list[str],
                       with_samples: bool) -> dict[str, Any]:
        """Everything a reviewer needs to decide, without opening the database."""
        round_ = state.get("revisions", 0)
        row = store.problem(state["problem_id"])
        critics = [{"critic": i, "model": v.get("model"), "verdict": v.get("verdict"), "reasons": v.get("reasons"),
                    "own_answer": v.get("own_answer"), "matches_reference": v.get("own_answer_matches")}
                   for i, v in sorted(store.votes(state["problem_id"], round_).items())]
        samples = [{"sample": s["sample_index"], "answer": s["predicted_answer"], "correct": s["correct"],
                    "grade": s["label_method"], "truncated": bool(s["truncated"])}
                   for s in store.samples_of(state["problem_id"])] if with_samples else []
        return {"review_id": review_id, "problem_id": state["problem_id"], "subject": state["subject"],
                "topic": state["topic"], "round": round_, "problem": row["problem"], "answer": row["answer"],
                "proposed": proposed, "reasons": reasons, "rejection_reason": state.get("reason"),
                "critics": critics, "solver": samples}

    def after_review(state: ProblemState) -> Any:
        if state["action"] == "solve":
            return fan_out_solves(state)
        if state["action"] == "critique":
            return [f"critic{i}" for i in CRITICS]
        return state["action"]

    async def solve_one(task: SolveTask) -> dict[str, Any]:
        row = store.problem(task["problem_id"])
        j, round_ = task["sample"], task["round"]
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
            return {"solved": [{"round": round_, "sample": j, "correct": None, "truncated": False,
                                "failed": str(error)}]}
        sample_id = f"{task['problem_id']}-{j}"
        store.save_sample({
            "id": sample_id, "problem_id": task["problem_id"], "sample_index": j, "run": deps.run,
            "subject": task["subject"], "topic": task["topic"], "problem": row["problem"], "answer": row["answer"],
            "reasoning": reply.reasoning, "solution": reply.content, "predicted_answer": None, "correct": None,
            "label_method": None, "label_detail": None, "truncated": int(reply.truncated), "retried": retried,
            "finish_reason": reply.finish_reason, "pass_rate": None,
            "models": {role: client.model for role, client in clients.items() if role != "expander"},
            "usage": {"solver_tokens_in": reply.tokens_in, "solver_tokens_out": reply.tokens_out,
                      "solver_reasoning_tokens": reply.reasoning_tokens},
        })
        if reply.truncated:
            # A trajectory cut at max_tokens is not a wrong answer: it is kept, flagged, and left unlabeled.
            store.update_sample(sample_id, {"label_method": "truncated", "label_detail": "cut at max_tokens"})
            return {"solved": [{"round": round_, "sample": j, "correct": None, "truncated": True, "failed": None}]}
        try:
            result = await labeler.label_answer(
                clients["labeler"], problem=row["problem"], reference=row["answer"], response=reply.content,
                retries=deps.retries, context=context(task))
        except ReplyError as error:
            result = Grade(None, "unlabeled", None, f"judge reply unparseable: {error.reason}")
        except CallFailed as error:
            return {"solved": [{"round": round_, "sample": j, "correct": None, "truncated": False,
                                "failed": str(error)}]}
        store.update_sample(sample_id, {
            "predicted_answer": result.extracted, "correct": None if result.correct is None else int(result.correct),
            "label_method": result.method, "label_detail": result.detail})
        return {"solved": [{"round": round_, "sample": j, "correct": result.correct, "truncated": False,
                            "failed": None}]}

    async def commit(state: ProblemState) -> dict[str, Any]:
        solved = this_round(state)
        failures = [s["failed"] for s in solved if s["failed"]]
        if failures and len(failures) == len(solved):
            store.finish_problem(state["problem_id"], "failed", failures[0])
            return {"outcomes": [{"problem_id": state["problem_id"], "status": "failed"}]}
        store.set_pass_rate(state["problem_id"], pass_rate(solved))
        store.finish_problem(state["problem_id"], "accepted")
        return {"outcomes": [{"problem_id": state["problem_id"], "status": "accepted"}]}

    def finish(status: str):
        async def finish_node(state: ProblemState) -> dict[str, Any]:
            store.finish_problem(state["problem_id"], status, state.get("reason"))
            return {"outcomes": [{"problem_id": state["problem_id"], "status": status}]}

        return finish_node

    def after_revise(state: ProblemState) -> str | list[str]:
        if state["action"] == "critique":
            return [f"critic{i}" for i in CRITICS]
        return gate_or("reject") if state["action"] == "reject" else state["action"]

    graph = StateGraph(ProblemState, input_schema=ProblemInput, output_schema=ProblemOutput)
    for index in CRITICS:
        graph.add_node(f"critic{index}", make_critic(index))
        graph.add_edge(START, f"critic{index}")
    graph.add_node("judge", judge)
    graph.add_node("revise", revise)
    graph.add_node("solve_one", solve_one)
    graph.add_node("review", review)
    graph.add_node("commit", commit)
    graph.add_node("reject", finish("rejected"))
    graph.add_node("fail", finish("failed"))
    graph.add_edge([f"critic{i}" for i in CRITICS], "judge")
    critics = [f"critic{i}" for i in CRITICS]
    graph.add_conditional_edges("judge", fan_out_solves, ["solve_one", "revise", "review", "reject", "fail"])
    graph.add_conditional_edges("revise", after_revise, [*critics, "review", "reject", "fail"])
    graph.add_edge("solve_one", gate_or("commit"))
    graph.add_conditional_edges("review", after_review, ["solve_one", *critics, "revise", "commit", "reject"])
    for end in ("commit", "reject", "fail"):
        graph.add_edge(end, END)
    return graph
