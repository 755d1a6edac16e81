"""How a problem's branch ends: its status in the store and one entry in the host's `outcomes`."""

from __future__ import annotations

import logging

from langgraph.types import Command, Send

from chimera.graphs.deps import Deps
from chimera.graphs.tasks import ProblemTask

log = logging.getLogger("chimera.problems")


async def ended(deps: Deps, task: ProblemTask, status: str, reason: str | None = None, *,
                pass_rate: float | None = None) -> Command:
    if status == "failed":
        log.warning("problem %s (%s / %s) failed: %s", task["problem_id"], task["subject"], task["topic"], reason)
    await deps.store.finish_problem(task["problem_id"], status, reason, pass_rate=pass_rate)
    if status == "rejected" and deps.index is not None:
        deps.index.remove(task["problem_id"])  # as the store does: nothing more is rejected as its twin
    return Command(update={"outcomes": [{"problem_id": task["problem_id"], "status": status}]})


async def to_outcome(deps: Deps, task: ProblemTask, action: str, reason: str | None) -> Command:
    """A rejection goes by the review gate when a policy is set; a failure never does."""
    if action == "fail":
        return await ended(deps, task, "failed", reason)
    if deps.config.review.active:
        return Command(goto=Send("review", {**task, "action": "reject", "reason": reason}))
    return await ended(deps, task, "rejected", reason)
