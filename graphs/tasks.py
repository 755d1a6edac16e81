"""The payloads that travel in a problem's `Send` branch: ids and small routing facts, never texts
(the store keeps those)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from typing_extensions import TypedDict  # pydantic reads these as schemas; on 3.11 only this kind works


class ProblemInput(TypedDict):
    topic_id: str
    subject: str
    topic: str
    problem_id: str
    slot: int


class Outcome(TypedDict):
    problem_id: str
    status: str


class ProblemOutput(TypedDict):
    outcomes: Annotated[list[Outcome], operator.add]


class Vote(TypedDict, total=False):
    """One critic's routing vote in one round (what `decide` reads)."""

    verdict: Literal["accept", "revise", "reject", "failed"]
    agrees: bool  # the critic's own answer matches the reference
    unparseable: str  # why the reply could not be read
    reason: str  # why the call failed


class Trajectory(TypedDict, total=False):
    """One labeled solver sample of this round."""

    sample: int
    correct: bool | None
    truncated: bool
    failed: str | None
    judges_split: bool


class ProblemTask(ProblemInput, total=False):
    revisions: int
    action: str
    reason: str | None
    votes: dict[str, Vote]  # critic index (as a string: the payload is JSON-shaped) -> vote
    solved: list[Trajectory]
    human_accepted: int  # the round a reviewer accepted in: no second review of it after solving
    review_note: str | None  # a reviewer's note for the drafter's next revision


def task_of(state: Any) -> ProblemTask:
    return {"topic_id": state["topic_id"], "subject": state["subject"], "topic": state["topic"],
            "problem_id": state["problem_id"], "slot": state["slot"]}


def next_round(task: ProblemTask) -> ProblemTask:
    return {**task, "revisions": task.get("revisions", 0) + 1, "votes": {}, "solved": [], "review_note": None}
