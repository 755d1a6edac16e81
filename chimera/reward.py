"""Reward functions for RL on the exported problems, with the pipeline's own grader (rules only).

    verl:  custom_reward_function.path=chimera/reward.py  custom_reward_function.name=compute_score
    TRL:   GRPOTrainer(..., reward_funcs=[chimera.reward.accuracy_reward])

An answer is 1.0 when a rule finds it equal to the reference and 0.0 otherwise. An answer no rule can
decide scores 0.0 too, and is counted in `UNDECIDED`, so a trainer can report how often that happened:
a reward must be final, and only a rule's verdict is.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from chimera.tools.grading import grade

UNDECIDED: Counter[str] = Counter()  # "undecided" -> answers no rule could decide; "graded" -> all answers


def score(reference: str, response: str, problem: str | None = None) -> float:
    result = grade(reference, response, problem)
    UNDECIDED["graded"] += 1
    if result.correct is None:
        UNDECIDED["undecided"] += 1
    return 1.0 if result.correct else 0.0


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict[str, Any] | None = None) -> float:
    """verl's custom reward signature; `extra_info["problem"]` (written by `--schema verl`) names
    multiple-choice options and tells program output from prose."""
    problem = (extra_info or {}).get("problem") if isinstance(extra_info, dict) else None
    return score(str(ground_truth), solution_str, problem)


def _text(completion: Any) -> str:
    """A completion as TRL passes it: a string, or a conversation (a list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict)
                       and m.get("role", "assistant") == "assistant")
    if isinstance(completion, dict):
        return completion.get("content") or ""
    return str(completion)


def accuracy_reward(completions: list[Any], solution: list[str], **kwargs: Any) -> list[float]:
    """TRL GRPO's reward signature: one float per completion, against the `solution` column."""
    return [score(str(reference), _text(completion)) for completion, reference in zip(completions, solution)]
