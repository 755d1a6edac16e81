"""The human review gate: where `review.policy` says, a problem stops (LangGraph `interrupt`) before its
outcome is final, and the reviewer's decision routes it on. With the default policy `none` no problem
comes here."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command, Send, interrupt

from chimera.graphs.decisions import disagreed
from chimera.graphs.deps import Deps, deps_of
from chimera.graphs.outcomes import ended
from chimera.graphs.solve import commit
from chimera.graphs.tasks import ProblemTask, next_round
from chimera.review.decision import ReviewDecision
from chimera.review.policy import Facts, review_reasons, sampled

SERVED_REVIEWER = "langgraph-api"  # who decided, for a decision given through the server's API without a name


async def review(state: ProblemTask, *, runtime: Runtime[Deps]) -> Command:
    deps = deps_of(runtime)
    store, config, policy = deps.store, deps.config, deps.config.review.active
    round_ = state.get("revisions", 0)
    proposed: Literal["accept", "reject"] = "accept" if state["action"] == "solve" else "reject"
    votes = {int(i): v for i, v in state.get("votes", {}).items()}
    solved = state.get("solved", [])
    facts = Facts(proposed=proposed, critics_disagreed=disagreed(votes) if votes else False,
                  solver_missed=any(s["correct"] is False for s in solved),
                  judges_split=any(s.get("judges_split") for s in solved),
                  sampled="sample" in policy and sampled(state["problem_id"], config.run.seed, config.review.rate))
    reasons = review_reasons(policy, facts)
    if not reasons:
        return await commit(deps, state) if proposed == "accept" else await ended(deps, state, "rejected",
                                                                                  state.get("reason"))
    review_id = f"{state['problem_id']}@{round_}"
    payload = await review_payload(deps, state, review_id, proposed, reasons)
    thread_id = get_config()["configurable"]["thread_id"]
    await store.open_review({"id": review_id, "run": deps.run, "problem_id": state["problem_id"],
                       "topic_id": state["topic_id"], "subject": state["subject"], "topic": state["topic"],
                       "thread_id": thread_id, "round": round_, "proposed": proposed, "reasons": reasons,
                       "payload": payload})
    # Decided already (while a kill kept this step from reaching its interrupt): apply it, do not wait.
    decided = (await store.decisions_to_apply(thread_id)).get(review_id)
    if decided is None:
        given = interrupt(payload)
        # From the table (a run resuming with stored decisions) it is recorded already; from a LangGraph
        # server's resume API it is not, and is recorded here as decided and applied.
        decision = ReviewDecision.model_validate({"reviewer": SERVED_REVIEWER, **given} if isinstance(given, dict)
                                                 else given)
        await store.record_served_decision(review_id, decision.model_dump())
    else:
        decision = ReviewDecision.model_validate(decided)
    return await apply_decision(deps, state, decision, proposed)


async def apply_decision(deps: Deps, task: ProblemTask, decision: ReviewDecision, proposed: str) -> Command:
    round_ = task.get("revisions", 0)
    if decision.action == "accept":
        if proposed == "accept":
            return await commit(deps, task)
        # Accepting a would-be rejection still needs its trajectories: solve, then commit unreviewed.
        return Command(goto=Send("solve", {**task, "human_accepted": round_}))
    if decision.action == "reject":
        note = f": {decision.note}" if decision.note else ""
        return await ended(deps, task, "rejected", f"rejected by reviewer {decision.reviewer}{note}")
    if decision.action == "revise":
        return Command(goto=Send("revise", {**task, "review_note": decision.note}))
    row = await deps.store.problem(task["problem_id"])
    await deps.store.save_revision(task["problem_id"], revision=round_ + 1, problem=decision.problem or row["problem"],
                             answer=decision.answer or row["answer"])
    return Command(goto=Send("validate", next_round(task)))


async def review_payload(deps: Deps, task: ProblemTask, review_id: str, proposed: str,
                   reasons: list[str]) -> dict[str, Any]:
    """Everything a reviewer needs to decide, without opening the database."""
    store = deps.store
    round_ = task.get("revisions", 0)
    row = await store.problem(task["problem_id"])
    critics = [{"critic": i, "model": v.get("model"), "verdict": v.get("verdict"), "reasons": v.get("reasons"),
                "own_answer": v.get("own_answer"), "matches_reference": v.get("own_answer_matches")}
               for i, v in sorted((await store.votes(task["problem_id"], round_)).items())]
    samples = [{"sample": s["sample_index"], "answer": s["predicted_answer"], "correct": s["correct"],
                "grade": s["label_method"], "truncated": bool(s["truncated"])}
               for s in await store.samples_of(task["problem_id"])] if proposed == "accept" else []
    return {"review_id": review_id, "problem_id": task["problem_id"], "subject": task["subject"],
            "topic": task["topic"], "round": round_, "problem": row["problem"], "answer": row["answer"],
            "proposed": proposed, "reasons": reasons, "rejection_reason": task.get("reason"),
            "critics": critics, "solver": samples}
