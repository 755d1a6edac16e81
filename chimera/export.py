"""Dataset export: every sample, or the SFT and RL splits, as JSONL or Parquet."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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
    """Write a split as JSONL or Parquet; a file appears whole or not at all. `-` is standard output, and a
    path that is not a regular file (a device such as /dev/stdout, a pipe) is written in place."""
    rows = list(records(store, split, run))
    if fmt not in FORMATS:
        raise ChimeraError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if str(path) == "-":
        _write_rows(rows, fmt, sys.stdout.buffer)
        sys.stdout.flush()
        return len(rows)
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise ChimeraError(f"{path}: is a folder; name a file, or - for standard output")
        try:
            with path.open("wb") as handle:
                _write_rows(rows, fmt, handle)
        except OSError as error:
            raise ChimeraError(f"{path}: cannot write the export ({error.strerror or error})") from None
        return len(rows)
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            _write_rows(rows, fmt, handle)
        tmp.replace(path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ChimeraError(f"{path}: cannot write the export ({error.strerror or error})") from None
    return len(rows)


def _write_rows(rows: list[dict[str, Any]], fmt: str, handle: BinaryIO) -> None:
    if fmt == "jsonl":
        for row in rows:
            handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{**row, **_as_json(row)} for row in rows]), handle)


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """Free-form maps (models, usage) go to Parquet as JSON text: their keys differ by role and server."""
    return {key: json.dumps(row[key], sort_keys=True) for key in ("models", "usage") if key in row}

