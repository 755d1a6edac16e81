"""Pydantic schemas of every structured model reply, and the JSON schema sent for each.

These are separate from graph state: state carries ids, the store keeps text.
The schema *name* sent with a request is the class name, which is also how an
OpenAI-compatible peer (the simulator included) can tell the tasks apart.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    # Forbidding extras makes the JSON schema strict-mode ready (additionalProperties: false).
    model_config = ConfigDict(extra="forbid")


def _short(chars: int) -> Any:
    """A length limit sent in the schema only: guided decoding keeps the field short, and a reply from a
    server that ignores the limit is still read in full rather than refused."""
    return {"maxLength": chars}


NAME_CHARS = 120  # a topic or subfield name
ANSWER_CHARS = 400  # a final answer: short by design, so that rules can check it
REASON_CHARS = 1200  # a critic's reasons or a judge's rationale


class SubfieldList(_Reply):
    """Expander, first level: the main subfields of one subject."""

    subfields: list[str] = Field(description="distinct subfield names",
                                 json_schema_extra={"items": {"type": "string", **_short(NAME_CHARS)}})


class TopicList(_Reply):
    """Expander: fine-grained topics of one subject."""

    topics: list[str] = Field(description="distinct fine-grained topic names",
                              json_schema_extra={"items": {"type": "string", **_short(NAME_CHARS)}})


class DraftedProblem(_Reply):
    """Drafter: one self-contained problem with a short checkable reference answer."""

    problem: str = Field(description="the full, self-contained problem statement")
    answer: str = Field(description="the short final reference answer", json_schema_extra=_short(ANSWER_CHARS))


class CriticVerdict(_Reply):
    """Critic: an independent judgement of one problem and its reference answer."""

    verdict: Literal["accept", "revise", "reject"]
    reasons: str = Field(description="why; for revise, what must change", json_schema_extra=_short(REASON_CHARS))
    own_answer: str = Field(description="the critic's own final answer to the problem",
                            json_schema_extra=_short(ANSWER_CHARS))
    agrees_with_reference: bool


class LabelVerdict(_Reply):
    """Labeler: does the solution's final answer match the reference?"""

    correct: bool
    extracted_answer: str = Field(description="the final answer the solution gives",
                                  json_schema_extra=_short(ANSWER_CHARS))
    rationale: str = Field(json_schema_extra=_short(REASON_CHARS))


class QualityRating(_Reply):
    """Evaluator: how good a problem is as a reasoning problem, 1 (poor) to 5 (excellent) on each criterion."""

    clarity: int = Field(ge=1, le=5, description="the statement is unambiguous and easy to follow")
    well_posedness: int = Field(ge=1, le=5, description="the givens determine exactly one answer")
    self_containedness: int = Field(ge=1, le=5, description="everything needed is in the statement")
    reasoning_depth: int = Field(ge=1, le=5, description="how many non-trivial steps a solution needs")
    rationale: str = Field(json_schema_extra=_short(REASON_CHARS))


SchemaLimits = Literal["all", "items", "none"]


@cache
def _base_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return schema


def _without_lengths(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_lengths(v) for k, v in node.items() if k not in ("maxLength", "minLength")}
    if isinstance(node, list):
        return [_without_lengths(v) for v in node]
    return node


@cache
def response_format_for(model: type[BaseModel], max_items: int | None = None,
                        limits: SchemaLimits = "all") -> dict[str, Any]:
    """The `response_format` body for a strict JSON-schema structured call (cached; do not mutate).

    `max_items` caps the model's one list field (as many names as were asked for). `limits` says which
    length limits the endpoint takes: "all", "items" (maxItems only: strict modes that refuse string
    lengths) or "none".
    """
    schema = copy.deepcopy(_base_schema(model)) if limits == "all" else _without_lengths(_base_schema(model))
    if max_items is not None and limits != "none":
        for field in schema["properties"].values():
            if field.get("type") == "array":
                field["maxItems"] = max_items
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": schema, "strict": True},
    }


def request_shape(model: type[BaseModel], max_items: int | None, limits: SchemaLimits,
                  mode: str) -> tuple[dict[str, Any] | None, str | None]:
    """(response_format, schema text for the prompt) for a structured call in an endpoint's `mode`.

    json_schema: OpenAI's strict form, nothing in the prompt. tgi: TGI's grammar form, and the schema in
    the prompt too, as TGI's own examples do. json_object (JSON mode) and none: the schema goes in the
    prompt only, and the reply is checked against it here.
    """
    strict = response_format_for(model, max_items, limits)
    if mode == "json_schema":
        return strict, None
    schema = {"title": model.__name__, **strict["json_schema"]["schema"]}
    text = json.dumps(schema, ensure_ascii=False)
    if mode == "tgi":
        return {"type": "json_object", "value": schema}, text
    if mode == "json_object":
        return {"type": "json_object"}, text
    return None, text
