"""The layout of rows the graph writes, as types: what a reader of the store can count on."""

from __future__ import annotations

from typing import Any, TypedDict


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
