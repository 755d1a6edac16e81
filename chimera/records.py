"""Pydantic schemas of every structured model reply, and the JSON schema sent for each.

These are separate from graph state: state carries ids, the store keeps text.
The schema *name* sent with a request is the class name, which is also how an
OpenAI-compatible peer (the simulator included) can tell the tasks apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    # Forbidding extras makes the JSON schema strict-mode ready (additionalProperties: false).
    model_config = ConfigDict(extra="forbid")


class SubfieldList(_Reply):
    """Expander, first level: the main subfields of one subject."""

    subfields: list[str] = Field(description="distinct subfield names")


class TopicList(_Reply):
    """Expander: fine-grained topics of one subject."""

    topics: list[str] = Field(description="distinct fine-grained topic names")


class DraftedProblem(_Reply):
    """Drafter: one self-contained problem with a short checkable reference answer."""

    problem: str = Field(description="the full, self-contained problem statement")
    answer: str = Field(description="the short final reference answer")


class CriticVerdict(_Reply):
    """Critic: an independent judgement of one problem and its reference answer."""

    verdict: Literal["accept", "revise", "reject"]
    reasons: str = Field(description="why; for revise, what must change")
    own_answer: str = Field(description="the critic's own final answer to the problem")
    agrees_with_reference: bool


class LabelVerdict(_Reply):
    """Labeler: does the solution's final answer match the reference?"""

    correct: bool
    extracted_answer: str = Field(description="the final answer the solution gives")
    rationale: str


class QualityRating(_Reply):
    """Evaluator: how good a problem is as a reasoning problem, 1 (poor) to 5 (excellent) on each criterion."""

    clarity: int = Field(ge=1, le=5, description="the statement is unambiguous and easy to follow")
    well_posedness: int = Field(ge=1, le=5, description="the givens determine exactly one answer")
    self_containedness: int = Field(ge=1, le=5, description="everything needed is in the statement")
    reasoning_depth: int = Field(ge=1, le=5, description="how many non-trivial steps a solution needs")
    rationale: str


@cache
def response_format_for(model: type[BaseModel]) -> dict[str, Any]:
    """The `response_format` body for a strict JSON-schema structured call (built once per model; do not mutate)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": schema, "strict": True},
    }
