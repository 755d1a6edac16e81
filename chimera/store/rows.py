"""The layout of rows the graph writes, as types: what a reader of the store can count on."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict  # pydantic reads these as schemas; on 3.11 only this kind works


class SampleRow(TypedDict):
    """One solver trajectory (table `samples`), as first saved; the labeler fills in the label later."""

    id: str
    problem_id: str
    sample_index: int
    round: int  # the problem's revision the trajectory answered
    run: str
    subject: str
    topic: str
    problem: str
    answer: str
    reasoning: str
    solution: str
    predicted_answer: str | None
    correct: int | None
    label_method: str | None
    label_detail: str | None
    truncated: int
    retried: int
    finish_reason: str | None
    pass_rate: float | None
    prompt: list[dict[str, Any]]  # the exact messages the solver was sent, for SFT exports
    models: dict[str, str]  # role -> model name
    usage: dict[str, int | None]


def sample_id(problem_id: str, index: int) -> str:
    return f"{problem_id}-{index}"


class ProblemRow(TypedDict):
    """One problem slot of a topic (table `problems`), as read back."""

    id: str
    run: str
    topic_id: str
    subject: str
    topic: str
    slot: int
    status: str  # pending, accepted, rejected, failed
    problem: str  # the current text (after revisions)
    answer: str  # the current reference answer
    draft_problem: str
    draft_answer: str
    revisions: int | None
    critic_verdicts: str | None  # no longer written: votes are rows of `votes`
    rejection_reason: str | None
    disagreement: int | None
    duplicate_of: str | None
    similarity: float | None
    indexed: int | None
    pass_rate: float | None
    retries: int | None
    displaced: int | None
    created_at: float
    updated_at: float


class TopicRow(TypedDict):
    """One fine-grained topic of Stage 1 (table `topics`), as read back."""

    id: str
    run: str
    subject: str
    subfield: str | None
    name: str
    position: int
    source: str  # explicit, expanded, imported
    status: str  # pending, done, merged, surplus, removed
    slots: int | None
    weight: float | None
    round: int | None  # the refill round that added it (0 or None: the first expansion)
    created_at: float
    updated_at: float
