"""Reward judge: an OpenAI-compatible model that decides, for a reward function, the answers no rule decides.

It is shown the problem, the reference and the committed final answer only, never the reasoning or any
text that was not extracted as the answer, so what a policy writes around its answer cannot reach it.
Calls run on the trainer's own threads (verl's executor, TRL's loop), so they are synchronous, bounded in
time and in concurrency, cached by (problem, reference, answer), and a failure is counted, never raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chimera.agents.base import render
from chimera.models.reply_schemas import LabelVerdict, response_format_for

ENV_PREFIX = "CHIMERA_REWARD_JUDGE_"
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


@dataclass(frozen=True)
class JudgeSettings:
    base_url: str
    model: str
    api_key_env: str | None = None  # the name of the variable holding the key, never the key
    timeout_s: float = 30.0
    max_concurrency: int = 8
    cache_size: int = 100_000
    structured_output: bool = True  # send the reply schema as response_format (json_schema)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> JudgeSettings | None:
        """From verl's `reward_kwargs` style keys (`judge_url`, `judge_model`, ...); None without a URL."""
        url, model = values.get("judge_url"), values.get("judge_model")
        if not url:
            return None
        if not model:
            raise ValueError("a reward judge needs judge_model beside judge_url")
        return cls(str(url), str(model), values.get("judge_api_key_env") or None,
                   float(values.get("judge_timeout_s", 30.0)), int(values.get("judge_max_concurrency", 8)),
                   structured_output=str(values.get("judge_structured_output", "true")).lower() not in ("0", "false"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JudgeSettings | None:
        """CHIMERA_REWARD_JUDGE_URL, _MODEL, _API_KEY_ENV, _TIMEOUT_S, _MAX_CONCURRENCY, _STRUCTURED_OUTPUT."""
        env = os.environ if environ is None else environ
        keys = ("url", "model", "api_key_env", "timeout_s", "max_concurrency", "structured_output")
        return cls.from_mapping({f"judge_{key}": env[ENV_PREFIX + key.upper()] for key in keys
                                 if env.get(ENV_PREFIX + key.upper())})


class RewardJudge:
    """Thread-safe. `decide` returns True / False, or None when the judge could not be asked or did not
    answer in time (counted in `counts`)."""

    def __init__(self, settings: JudgeSettings):
        from openai import OpenAI

        self.settings = settings
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        self._client = OpenAI(base_url=settings.base_url, api_key=key or "unused", timeout=settings.timeout_s,
                              max_retries=1)
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # asked, cached, failed, busy, unparsed

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def decide(self, problem: str, reference: str, answer: str) -> bool | None:
        key = hashlib.sha256(json.dumps([problem, reference, answer], ensure_ascii=False).encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.counts["cached"] += 1
                return self._cache[key]
        if not self._slots.acquire(timeout=self.settings.timeout_s):
            self._count("busy")
            return None
        try:
            self._count("asked")
            verdict = self._ask(problem, reference, answer)
        except Exception:  # noqa: BLE001 - a judge that fails leaves the answer undecided; a trainer must not stop
            self._count("failed")
            return None
        finally:
            self._slots.release()
        if verdict is None:
            self._count("unparsed")
            return None
        with self._lock:
            self._cache[key] = verdict
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)
        return verdict

    def _ask(self, problem: str, reference: str, answer: str) -> bool | None:
        extra: dict[str, Any] = {"response_format": response_format_for(LabelVerdict)} \
            if self.settings.structured_output else {}
        reply = self._client.chat.completions.create(model=self.settings.model,
                                                     messages=messages(problem, reference, answer),  # type: ignore[arg-type]
                                                     **extra)
        content = (reply.choices[0].message.content or "").strip() if reply.choices else ""
        return parse_verdict(content)


def messages(problem: str, reference: str, answer: str) -> list[dict[str, str]]:
    return render("judge", problem=problem or "(not given)", reference=reference, answer=answer)


def parse_verdict(content: str) -> bool | None:
    fenced = _FENCE.match(content)
    try:
        verdict = LabelVerdict.model_validate_json(fenced.group(1) if fenced else content)
    except ValueError:
        return None
    return verdict.correct
