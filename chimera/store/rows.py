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


class ReviewRow(TypedDict):
    """A problem that waited for a human (table `reviews`), its JSON fields parsed."""

    id: str
    run: str
    problem_id: str
    topic_id: str
    subject: str
    topic: str
    thread_id: str
    round: int
    proposed: str  # what the pipeline would have done: accept or reject
    reasons: list[str]  # why it waits (the review policy's names)
    payload: dict[str, Any]  # what the reviewer is shown
    action: str | None  # the decision: accept, reject, revise, edit; None while pending
    note: str | None
    edited_problem: str | None
    edited_answer: str | None
    reviewer: str | None
    decided_at: float | None
    applied_at: float | None  # when a resumed thread took the decision
    created_at: float


class CallCount(TypedDict):
    """Model calls of a run with the same role, endpoint, outcome and message."""

    role: str
    base_url: str | None
    outcome: str
    error: str | None
    count: int


class CallRow(TypedDict):
    """One model call as `chimera calls` lists it (a row of `llm_calls`, without the kept reply)."""

    id: int
    created_at: float
    role: str
    model: str | None
    base_url: str | None
    topic_id: str | None
    problem_id: str | None
    outcome: str
    latency_s: float | None
    tokens_in: int
    tokens_out: int
    reasoning_tokens: int
    finish_reason: str | None
    error: str | None


class BatchRow(TypedDict):
    """One batch sent to a provider's batch API (its request keys where they were asked for)."""

    id: str
    role: str
    base_url: str
    state: str
    provider_id: str | None
    input_file_id: str | None
    provider_status: str | None
    items: int
    created_at: float
    keys: list[str]


class RoleUsage(TypedDict):
    """Tokens one role spent over a run, batched calls apart (they are priced apart)."""

    role: str
    batched: bool
    calls: int
    tokens_in: int
    tokens_out: int
    cached_tokens: int


CALL_FILTERS = ("role", "outcome", "topic_id", "problem_id", "model")


class BenchResultRow(TypedDict):
    """One graded sample of `chimera eval bench` (table `bench_results`)."""

    id: str
    suite: str
    question: int
    sample: int
    predicted: str | None
    correct: int | None
    method: str | None
    finish_reason: str | None
    tokens_out: int | None
    created_at: float


class QualityRatingRow(TypedDict):
    """One problem rated by `chimera eval quality` (table `quality_ratings`), scores 1-5."""

    id: str
    source: str
    item: str
    model: str
    clarity: int
    well_posedness: int
    self_containedness: int
    reasoning_depth: int
    rationale: str
    created_at: float


class WorkerRow(TypedDict):
    """A worker of a run on PostgreSQL, as `chimera status` shows it."""

    id: str
    host: str | None
    pid: int | None
    heartbeat_age_s: float
    topics_held: int
    stopped: bool


class ExpiredLease(TypedDict):
    """A lease that ran out with its topic unfinished."""

    topic_id: str
    subject: str
    topic: str
    worker: str
    expired_s: float
