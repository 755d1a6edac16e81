"""Dataset export: every sample, or the SFT and RL splits, as JSONL or Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chimera.errors import ChimeraError
from chimera.store import Store

SAMPLE_FIELDS = ("id", "problem_id", "sample_index", "subject", "topic", "problem", "answer", "reasoning",
                 "solution", "predicted_answer", "correct", "truncated", "label_method", "pass_rate",
                 "finish_reason", "models", "usage", "created_at")
SPLITS = ("all", "sft", "rl")
FORMATS = ("jsonl", "parquet")


def sample_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {key: row.get(key) for key in SAMPLE_FIELDS}
    record["correct"] = None if row["correct"] is None else bool(row["correct"])
    record["truncated"] = bool(row["truncated"])
    record["models"] = json.loads(row["models"] or "{}")
    record["usage"] = json.loads(row["usage"] or "{}")
    return record


def sft_record(row: dict[str, Any]) -> dict[str, Any]:
    """Chat format for supervised fine-tuning: the thinking inside <think> tags, then the solution."""
    assistant = f"<think>\n{row['reasoning']}\n</think>\n\n{row['solution']}"
    return {"id": row["id"], "subject": row["subject"], "topic": row["topic"],
            "messages": [{"role": "user", "content": row["problem"]}, {"role": "assistant", "content": assistant}]}


def records(store: Store, split: str, run: str | None = None) -> Iterator[dict[str, Any]]:
    """`all`: every sample of accepted problems; `sft`: the correct, untruncated ones as chats;
    `rl`: one row per accepted problem with its reference answer and pass rate, unsolved ones included."""
    if split == "all":
        yield from (sample_record(row) for row in store.samples(run))
    elif split == "sft":
        yield from (sft_record(row) for row in store.samples(run) if row["correct"] == 1 and not row["truncated"])
    elif split == "rl":
        seen: dict[str, dict[str, Any]] = {}
        for row in store.samples(run):
            item = seen.setdefault(row["problem_id"], {
                "id": row["problem_id"], "subject": row["subject"], "topic": row["topic"],
                "problem": row["problem"], "answer": row["answer"], "pass_rate": row["pass_rate"], "samples": 0})
            item["samples"] += 1
        yield from seen.values()
    else:
        raise ChimeraError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")


def write(store: Store, path: Path, *, split: str = "all", fmt: str = "jsonl", run: str | None = None) -> int:
    """Write a split as JSONL or Parquet; the file appears whole or not at all."""
    rows = list(records(store, split, run))
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            with tmp.open("w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist([{**row, **_as_json(row)} for row in rows])
            pq.write_table(table, tmp)
        else:
            raise ChimeraError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
        tmp.replace(path)
    except OSError as error:
        raise ChimeraError(f"{path}: cannot write the export ({error.strerror or error})") from None
    return len(rows)


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """Free-form maps (models, usage) go to Parquet as JSON text: their keys differ by role and server."""
    return {key: json.dumps(row[key], sort_keys=True) for key in ("models", "usage") if key in row}

