"""`chimera eval bench`: any OpenAI-compatible model on a question/answer set, pass@1 and pass@k.

Sampling is the paper's (temperature 0.6, top-p 0.95, top-k 20, a large
max_tokens). Every graded sample is a row of `bench_results` keyed by the suite
(model, sampling, questions), so a re-run asks only what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimera.agents import solver
from chimera.config import ModelSpec
from chimera.errors import CallFailed, ChimeraError
from chimera.evals.passk import curve
from chimera.jsonl import json_lines
from chimera.models.llm import RoleClient
from chimera.store import Store
from chimera.store.postgres import is_postgres_url
from chimera.tools.grading import grade

PAPER_SAMPLING = {"temperature": 0.6, "top_p": 0.95}


@dataclass(frozen=True)
class Question:
    text: str
    answer: str


def is_run_database(data: str) -> bool:
    """A chimera run database (a SQLite file by its suffix, or a postgresql:// URL) rather than a JSONL file."""
    return is_postgres_url(data) or Path(data).suffix in (".db", ".sqlite", ".sqlite3")


def read_questions(data: str, question_field: str, answer_field: str, run: str | None = None) -> list[Question]:
    """Questions from a JSONL file, or the accepted problems of a chimera database (its own difficulty)."""
    if is_run_database(data):
        store = Store(data, read_only=True)
        try:
            return [Question(p["problem"], p["answer"]) for p in store.problems(run) if p["status"] == "accepted"]
        finally:
            store.close()
    path = Path(data)
    questions = []
    for number, item in json_lines(path):
        missing = [f for f in (question_field, answer_field) if not isinstance(item, dict) or f not in item]
        if missing:
            raise ChimeraError(f"{path}:{number}: no field {missing[0]!r} (choose with --question-field / "
                               "--answer-field)")
        questions.append(Question(str(item[question_field]), str(item[answer_field])))
    if not questions:
        raise ChimeraError(f"{path}: no questions")
    return questions


def paper_spec(spec: ModelSpec, *, max_tokens: int, top_k: int | None) -> ModelSpec:
    extra = dict(spec.extra_body)
    if top_k:
        extra["top_k"] = top_k
    return spec.model_copy(update={**PAPER_SAMPLING, "max_tokens": max_tokens, "extra_body": extra})


def suite_key(model: str, spec: ModelSpec, questions: list[Question]) -> str:
    """Results are reused only for the same model, sampling and questions."""
    blob = json.dumps([model, spec.temperature, spec.top_p, spec.max_tokens, spec.extra_body,
                       [(q.text, q.answer) for q in questions]], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


async def run_benchmark(store: Store, client: RoleClient, questions: list[Question], *, samples: int, suite: str,
                        on_result: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Ask every (question, sample) not yet stored; the client's in-flight budget bounds concurrency."""
    done = {(r["question"], r["sample"]) for r in store.bench_results(suite)}
    todo = [(i, j) for i in range(len(questions)) for j in range(samples) if (i, j) not in done]
    tally = {"asked": 0, "failed": 0, "reused": len(done)}

    async def one(i: int, j: int) -> None:
        question = questions[i]
        try:
            # Sample 0 is the plain request; further samples carry a seed so they differ and replay alike.
            reply = await solver.solve(client, problem=question.text, context={"run": f"bench:{suite}"},
                                       **({"seed": j} if j else {}))
        except CallFailed:
            tally["failed"] += 1  # not stored: the next run asks again
            return
        correct: bool | None
        if reply.truncated:
            correct, method, predicted = False, "truncated", None
        else:
            result = grade(question.answer, reply.content)
            correct, method, predicted = result.correct, result.method, result.extracted
        store.save_eval_row("bench_results", {
            "id": f"{suite}:{i}:{j}", "suite": suite, "question": i, "sample": j, "predicted": predicted,
            "correct": None if correct is None else int(correct), "method": method,
            "finish_reason": reply.finish_reason, "tokens_out": reply.tokens_out})
        tally["asked"] += 1
        if on_result is not None:
            on_result(tally["asked"], len(todo))

    await asyncio.gather(*(one(i, j) for i, j in todo))
    return tally


def summarize(store: Store, suite: str, questions: int, samples: int) -> dict[str, Any]:
    """pass@1 (mean over samples) and unbiased pass@k; an undecided grade, or a sample cut at max_tokens,
    counts as not correct (and each is counted)."""
    per_question: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    undecided = truncated = 0
    for row in store.bench_results(suite, below_sample=samples):
        counts = per_question[row["question"]]
        counts[0] += 1
        counts[1] += row["correct"] == 1
        undecided += row["correct"] is None
        truncated += row["method"] == "truncated"
    complete = [(n, c) for n, c in per_question.values() if n == samples]
    scaling = curve(complete)
    return {"suite": suite, "questions": questions, "samples_per_question": samples,
            "questions_complete": len(complete), "pass@1": round(scaling.get(1, 0.0), 6) if complete else None,
            "pass@k": {str(k): round(v, 6) for k, v in scaling.items()},
            "graded_samples": sum(n for n, _ in per_question.values()), "undecided_samples": undecided,
            "truncated_samples": truncated}
