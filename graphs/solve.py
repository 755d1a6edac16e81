"""Stage 3 for one accepted problem: k trajectories side by side, each labeled against the reference,
then the commit (pass rate and status).

A node re-executed after a crash reuses a trajectory already labeled in this round.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from chimera.agents import labeler, solver
from chimera.config import JUDGE_ROLES
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.decisions import audit_chosen, pass_rate
from chimera.graphs.deps import Deps, deps_of
from chimera.graphs.outcomes import ended
from chimera.graphs.tasks import ProblemTask, Trajectory
from chimera.models.llm import Reply
from chimera.store.rows import ProblemRow, SampleRow, sample_id
from chimera.tools.grading import Grade


def _reused(stored: dict[str, Any]) -> Trajectory:
    return {"sample": stored["sample_index"], "correct": None if stored["correct"] is None else bool(stored["correct"]),
            "truncated": bool(stored["truncated"]), "failed": None,
            "judges_split": stored["label_method"] == "judges-disagree"}


def new_sample(deps: Deps, task: ProblemTask, row: ProblemRow, j: int, round_: int, reply: Reply,
               retried: int) -> SampleRow:
    return {
        "id": sample_id(task["problem_id"], j), "problem_id": task["problem_id"], "sample_index": j,
        "round": round_, "run": deps.run, "subject": task["subject"], "topic": task["topic"],
        "problem": row["problem"], "answer": row["answer"], "reasoning": reply.reasoning, "solution": reply.content,
        "predicted_answer": None, "correct": None, "label_method": None, "label_detail": None,
        "truncated": int(reply.truncated), "retried": retried, "finish_reason": reply.finish_reason,
        "pass_rate": None, "prompt": solver.messages(row["problem"]),
        "models": {role: client.model for role, client in deps.clients.items() if role != "expander"},
        "usage": {"solver_tokens_in": reply.tokens_in, "solver_tokens_out": reply.tokens_out,
                  "solver_reasoning_tokens": reply.reasoning_tokens},
    }


async def solve_sample(deps: Deps, task: ProblemTask, row: ProblemRow, j: int, round_: int) -> Trajectory:
    store, settings = deps.store, deps.config.solver
    sid = sample_id(task["problem_id"], j)
    stored = await store.sample(sid)
    if stored is not None and stored["round"] == round_ and stored["label_method"] is not None:
        return _reused(stored)  # finished before a restart
    context = deps.context(topic_id=task["topic_id"], problem_id=task["problem_id"])
    # Sample 0 is the paper's plain request; further samples carry a seed so they differ and replay alike.
    extra = {"seed": j} if j else {}
    try:
        reply = await solver.solve(deps.clients["solver"], problem=row["problem"], context=context, **extra)
        retried = 0
        if reply.truncated and settings.max_tokens_retry:
            reply = await solver.solve(deps.clients["solver"], problem=row["problem"], context=context,
                                       max_tokens=settings.max_tokens_retry, **extra)
            retried = 1
    except CallFailed as error:
        return {"sample": j, "correct": None, "truncated": False, "failed": str(error)}
    oversized = len(reply.reasoning) + len(reply.content) > settings.max_trajectory_chars
    if oversized:  # stored, but cut to the cap: one reply must not grow the database without bound
        keep = settings.max_trajectory_chars
        reply.reasoning, reply.content = reply.reasoning[:keep], reply.content[:max(0, keep - len(reply.reasoning))]
    await store.save_sample(new_sample(deps, task, row, j, round_, reply, retried))
    if reply.truncated or oversized:
        # A trajectory cut at max_tokens is not a wrong answer: it is kept, flagged, and left unlabeled.
        detail = "cut at max_tokens" if reply.truncated else "longer than solver.max_trajectory_chars"
        await store.update_sample(sid, {"label_method": "truncated", "label_detail": detail, "truncated": 1})
        return {"sample": j, "correct": None, "truncated": True, "failed": None}
    audited = audit_chosen(deps.config.run.seed, sid, deps.config.labels.audit_rate)
    judges: dict[str, bool | None] = {}
    try:
        labeled = await labeler.label_answer(
            [deps.clients[role] for role in JUDGE_ROLES if role in deps.clients], problem=row["problem"],
            reference=row["answer"], response=reply.content, retries=deps.parse_retries, context=context, audit=audited)
        result, judges = labeled.grade, labeled.judges
    except ReplyError as error:
        result = Grade(None, "unlabeled", None, f"judge reply unparseable: {error.reason}")
    except CallFailed as error:
        return {"sample": j, "correct": None, "truncated": False, "failed": str(error)}
    await store.update_sample(sid, {
        "predicted_answer": result.extracted, "correct": None if result.correct is None else int(result.correct),
        "label_method": result.method, "label_detail": result.detail,
        "judges": json.dumps(judges, sort_keys=True) if judges else None})
    return {"sample": j, "correct": result.correct, "truncated": False, "failed": None,
            "judges_split": result.method == "judges-disagree"}


async def solve(state: ProblemTask, *, runtime: Runtime[Deps]) -> Command:
    deps = deps_of(runtime)
    round_ = state.get("revisions", 0)
    row = await deps.store.problem(state["problem_id"])
    solved = list(await asyncio.gather(*(solve_sample(deps, state, row, j, round_)
                                         for j in range(deps.config.solver.samples))))
    state = {**state, "action": "solve", "solved": solved}
    if deps.config.review.active and state.get("human_accepted") != round_ and not all(s["failed"] for s in solved):
        return Command(goto=Send("review", state))
    return await commit(deps, state)


async def commit(deps: Deps, task: ProblemTask) -> Command:
    solved = task["solved"]
    failures = [s["failed"] for s in solved if s["failed"]]
    if failures and len(failures) == len(solved):
        return await ended(deps, task, "failed", failures[0])
    return await ended(deps, task, "accepted", pass_rate=pass_rate(solved))
