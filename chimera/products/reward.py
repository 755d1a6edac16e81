"""Reward functions for RL on the exported problems: one scoring path for verl and TRL.

    verl (0.7 and later):  reward.custom_reward_function.path=<this file>  reward.custom_reward_function.name=compute_score
    verl (older):          custom_reward_function.path=<this file>  custom_reward_function.name=compute_score
    TRL:                   GRPOTrainer(..., reward_funcs=[chimera.products.reward.accuracy_reward])

An answer scores 1.0 when a rule of the pipeline's grader finds it equal to the reference, 0.0 when a rule
finds it wrong or the response does not commit to one answer (a hedge is never rewarded). An answer no rule
decides scores 0.0, unless a judge is configured (an OpenAI-compatible endpoint, see `chimera.agents.judge`),
which then decides it from the problem, the reference and the committed final answer alone.

Both functions report how each answer was decided through the trainer's own logging: verl logs the keys of
the dict `compute_score` returns (`undecided`, `judged`, `judge_failed`); TRL's `log_metric` receives
`chimera/undecided_share`, `chimera/judged_share` and `chimera/judge_failed_share` for each batch.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from chimera.agents.judge import JudgeSettings, RewardJudge
from chimera.tools.grading import Grade, grade

DecidedBy = Literal["rule", "judge", "undecided", "judge-failed"]
TOTALS: Counter[str] = Counter()  # process-wide tally of how answers were decided (graded, rule, judge, ...)
_TAG = re.compile(r"(?i)</?\s*(?:answer|problem|solution)\s*>")
_judges: dict[JudgeSettings, RewardJudge] = {}
_judges_lock = threading.Lock()


@dataclass(frozen=True)
class Reward:
    score: float
    decided_by: DecidedBy
    grade: Grade


def judge_for(settings: JudgeSettings | None) -> RewardJudge | None:
    """One judge (its cache and its concurrency bound) per endpoint setting, shared by every thread."""
    if settings is None:
        return None
    with _judges_lock:
        if settings not in _judges:
            _judges[settings] = RewardJudge(settings)
        return _judges[settings]


def reward(reference: str, response: str, problem: str | None = None, judge: RewardJudge | None = None) -> Reward:
    """The one scoring path: the rules, then (only for a committed answer no rule decides) the judge."""
    result = grade(reference, response, problem)
    TOTALS["graded"] += 1
    if result.correct is not None:
        TOTALS["rule"] += 1
        return Reward(1.0 if result.correct else 0.0, "rule", result)
    if judge is None or not result.extracted or result.method != "undecided":
        TOTALS["undecided"] += 1
        return Reward(0.0, "undecided", result)
    verdict = judge.decide(problem or "", str(reference), _TAG.sub("", result.extracted))
    if verdict is None:
        TOTALS["judge_failed"] += 1
        return Reward(0.0, "judge-failed", result)
    TOTALS["judge"] += 1
    return Reward(1.0 if verdict else 0.0, "judge", result)


def _judge_from(kwargs: dict[str, Any]) -> RewardJudge | None:
    try:
        return judge_for(JudgeSettings.from_mapping(kwargs) or JudgeSettings.from_env())
    except (ValueError, TypeError):
        TOTALS["judge_misconfigured"] += 1
        return None


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None,
                  **kwargs: Any) -> dict[str, float]:
    """verl's custom reward signature. `extra_info["problem"]` (written by `--schema verl`) names multiple-choice
    options and tells program output from prose; `reward_kwargs` may name a judge (`judge_url`, `judge_model`,
    `judge_api_key_env`). verl logs every key of the returned dict."""
    problem = extra_info.get("problem") if isinstance(extra_info, dict) else None
    result = reward(str(ground_truth), solution_str, problem if isinstance(problem, str) else None,
                    _judge_from(kwargs))
    return {"score": result.score, "undecided": float(result.decided_by == "undecided"),
            "judged": float(result.decided_by == "judge"), "judge_failed": float(result.decided_by == "judge-failed")}


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


def problem_of(prompt: Any) -> str | None:
    """The problem inside a prompt as TRL hands it: the last user message of a conversation, or the text."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else None
    return None


def accuracy_reward(completions: list[Any], solution: list[str], prompts: list[Any] | None = None,
                    problem: list[str] | None = None, log_metric: Callable[[str, float], None] | None = None,
                    **kwargs: Any) -> list[float]:
    """TRL GRPO's reward signature: one float per completion, against the `solution` column. The problem comes
    from the `problem` column (`--schema trl` writes it) or from the prompts TRL passes."""
    judge = _judge_from(kwargs)
    results = []
    for i, (completion, reference) in enumerate(zip(completions, solution)):
        text = problem[i] if problem is not None and i < len(problem) else \
            problem_of(prompts[i]) if prompts is not None and i < len(prompts) else None
        results.append(reward(str(reference), _text(completion), text, judge))
    if log_metric is not None and results:
        for name, kind in (("undecided", "undecided"), ("judged", "judge"), ("judge_failed", "judge-failed")):
            log_metric(f"chimera/{name}_share", sum(r.decided_by == kind for r in results) / len(results))
    return [r.score for r in results]
