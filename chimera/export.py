"""Dataset export: one JSON object per accepted sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chimera.errors import ChimeraError
from chimera.store import Store

SAMPLE_FIELDS = ("id", "subject", "topic", "problem", "answer", "reasoning", "solution", "predicted_answer",
                 "correct", "truncated", "label_method", "finish_reason", "models", "usage", "created_at")


def sample_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {key: row.get(key) for key in SAMPLE_FIELDS}
    record["correct"] = None if row["correct"] is None else bool(row["correct"])
    record["truncated"] = bool(row["truncated"])
    record["models"] = json.loads(row["models"] or "{}")
    record["usage"] = json.loads(row["usage"] or "{}")
    return record


def write_jsonl(store: Store, path: Path, run: str | None = None) -> int:
    count = 0
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as handle:
            for row in store.samples(run):
                handle.write(json.dumps(sample_record(row), ensure_ascii=False) + "\n")
                count += 1
        tmp.replace(path)  # a reader never sees half a file
    except OSError as error:
        raise ChimeraError(f"{path}: cannot write the export ({error.strerror or error})") from None
    return count
