"""Dataset export: every sample, or the SFT, RL and DPO splits, as JSONL or Parquet."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from chimera.agents import solver
from chimera.errors import ChimeraError
from chimera.store import Store

SAMPLE_FIELDS = ("id", "problem_id", "sample_index", "subject", "topic", "problem", "answer", "reasoning",
                 "solution", "predicted_answer", "correct", "truncated", "label_method", "pass_rate",
                 "finish_reason", "models", "usage", "created_at")
SPLITS = ("all", "sft", "rl", "dpo")
FORMATS = ("jsonl", "parquet")


def sample_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {key: row.get(key) for key in SAMPLE_FIELDS}
    record["correct"] = None if row["correct"] is None else bool(row["correct"])
    record["truncated"] = bool(row["truncated"])
    record["models"] = json.loads(row["models"] or "{}")
    record["usage"] = json.loads(row["usage"] or "{}")
    return record


REASONING_MODES = ("inline", "field", "thinking", "none")
SFT_FORMATS = ("messages", "prompt-completion")
RL_SCHEMAS = ("chimera", "verl", "trl")
DATA_SOURCE = "chimera"  # verl picks the reward function by data_source; chimera.products.reward.compute_score takes it


@dataclass(frozen=True)
class ExportOptions:
    reasoning: str = "inline"  # inline: <think>R</think> then S; field: reasoning_content; thinking: a thinking
    # field (gpt-oss templates); none: S alone
    sft_format: str = "messages"  # or prompt-completion (TRL)
    schema: str = "chimera"  # the RL split's columns: chimera, verl or trl
    pairs_per_problem: int = 1  # the DPO split: at most this many preference pairs per problem


def solver_prompt(row: dict[str, Any]) -> list[dict[str, str]]:
    """The exact messages the solver was sent (stored with the sample; rebuilt for samples from before)."""
    stored = json.loads(row["prompt"]) if row.get("prompt") else None
    return stored if isinstance(stored, list) and stored else solver.messages(row["problem"])


def assistant_turn(row: dict[str, Any], reasoning: str) -> dict[str, str]:
    if reasoning == "inline":
        return {"role": "assistant", "content": f"<think>\n{row['reasoning']}\n</think>\n\n{row['solution']}"}
    if reasoning == "field":
        return {"role": "assistant", "reasoning_content": row["reasoning"], "content": row["solution"]}
    if reasoning == "thinking":
        return {"role": "assistant", "thinking": row["reasoning"], "content": row["solution"]}
    return {"role": "assistant", "content": row["solution"]}


def sft_record(row: dict[str, Any], options: ExportOptions = ExportOptions()) -> dict[str, Any]:
    """One correct trajectory for supervised fine-tuning: the solver's exact prompt and its answer."""
    meta = {"id": row["id"], "problem_id": row["problem_id"], "subject": row["subject"], "topic": row["topic"],
            "answer": row["answer"], "pass_rate": row["pass_rate"]}
    prompt, reply = solver_prompt(row), assistant_turn(row, options.reasoning)
    if options.sft_format == "prompt-completion":
        return {"prompt": prompt, "completion": [reply], **meta}
    return {"messages": [*prompt, reply], **meta}


def rl_record(item: dict[str, Any], prompt: list[dict[str, str]], schema: str) -> dict[str, Any]:
    if schema == "verl":
        return {"data_source": DATA_SOURCE, "prompt": prompt, "ability": item["subject"],
                "reward_model": {"style": "rule", "ground_truth": item["answer"]},
                "extra_info": {"id": item["id"], "topic": item["topic"], "pass_rate": item["pass_rate"],
                               "problem": item["problem"]}}
    if schema == "trl":
        return {"prompt": prompt, "solution": item["answer"], "problem": item["problem"], "id": item["id"],
                "subject": item["subject"], "pass_rate": item["pass_rate"]}
    return item


def dpo_pairs(rows: list[dict[str, Any]], limit: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One problem's preference pairs: its correct and its incorrect untruncated trajectories, each list in
    sample order, paired first with first, second with second, and so on, up to `limit` pairs, so no trajectory
    is used twice. Only trajectories sent the same prompt are paired (the prompt is the pair's one context)."""
    sides: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for row in sorted(rows, key=lambda r: r["sample_index"]):
        if row["truncated"] or row["correct"] is None:
            continue
        chosen, rejected = sides.setdefault(json.dumps(solver_prompt(row)), ([], []))
        (chosen if row["correct"] == 1 else rejected).append(row)
    return [pair for chosen, rejected in sides.values() for pair in zip(chosen, rejected)][:limit]


def dpo_record(chosen: dict[str, Any], rejected: dict[str, Any], options: ExportOptions = ExportOptions()
               ) -> dict[str, Any]:
    """A preference row in TRL's conversational form: the solver's exact prompt, then one assistant turn each."""
    return {"prompt": solver_prompt(chosen), "chosen": [assistant_turn(chosen, options.reasoning)],
            "rejected": [assistant_turn(rejected, options.reasoning)],
            "id": f"{chosen['id']}>{rejected['id']}", "problem_id": chosen["problem_id"], "chosen_id": chosen["id"],
            "rejected_id": rejected["id"], "subject": chosen["subject"], "topic": chosen["topic"],
            "answer": chosen["answer"], "pass_rate": chosen["pass_rate"]}


def records(store: Store, split: str, run: str | None = None,
            options: ExportOptions = ExportOptions(), skipped: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """`all`: every sample of accepted problems; `sft`: the correct, untruncated ones as chats;
    `rl`: one row per accepted problem with its reference answer and pass rate, unsolved ones included;
    `dpo`: preference pairs (see `dpo_pairs`) of problems with both a correct and an incorrect trajectory.
    SFT and DPO leave out trajectories with empty reasoning unless `reasoning` is none; `skipped` counts them."""
    _check(options)

    def has_reasoning(row: dict[str, Any]) -> bool:
        if options.reasoning == "none" or (row["reasoning"] or "").strip():
            return True
        if skipped is not None:
            skipped[0] += 1
        return False

    if split == "all":
        yield from (sample_record(row) for row in store.samples(run))
    elif split == "sft":
        for row in store.samples(run):
            if row["correct"] == 1 and not row["truncated"] and has_reasoning(row):
                yield sft_record(row, options)
    elif split == "dpo":
        # Samples come ordered by subject and topic, so a problem's rows are within one such block (with the
        # rows of the topic's other problems, and of a same-named topic in another run): one block is held.
        by_problem: dict[str, list[dict[str, Any]]] = {}
        block = None
        for row in store.samples(run):
            if (row["subject"], row["topic"]) != block:
                yield from _dpo_rows(by_problem, options)
                by_problem, block = {}, (row["subject"], row["topic"])
            if row["correct"] is not None and not row["truncated"] and has_reasoning(row):
                by_problem.setdefault(row["problem_id"], []).append(row)
        yield from _dpo_rows(by_problem, options)
    elif split == "rl":
        seen: dict[str, dict[str, Any]] = {}
        prompts: dict[str, list[dict[str, str]]] = {}
        for row in store.samples(run):
            item = seen.setdefault(row["problem_id"], {
                "id": row["problem_id"], "subject": row["subject"], "topic": row["topic"],
                "problem": row["problem"], "answer": row["answer"], "pass_rate": row["pass_rate"], "samples": 0})
            prompts.setdefault(row["problem_id"], solver_prompt(row))
            item["samples"] += 1
        yield from (rl_record(item, prompts[key], options.schema) for key, item in seen.items())
    else:
        raise ChimeraError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")


def _dpo_rows(by_problem: dict[str, list[dict[str, Any]]], options: ExportOptions) -> Iterator[dict[str, Any]]:
    for rows in by_problem.values():
        yield from (dpo_record(chosen, rejected, options)
                    for chosen, rejected in dpo_pairs(rows, options.pairs_per_problem))


def _check(options: ExportOptions) -> None:
    for name, value, allowed in (("--reasoning", options.reasoning, REASONING_MODES),
                                 ("--sft-format", options.sft_format, SFT_FORMATS),
                                 ("--schema", options.schema, RL_SCHEMAS)):
        if value not in allowed:
            raise ChimeraError(f"{name} {value!r}: choose from {', '.join(allowed)}")
    if options.pairs_per_problem < 1:
        raise ChimeraError(f"--pairs-per-problem {options.pairs_per_problem}: give 1 or more")


def write(store: Store, path: Path, *, split: str = "all", fmt: str = "jsonl", run: str | None = None,
          options: ExportOptions = ExportOptions(), skipped: list[int] | None = None) -> int:
    """Write a split as JSONL or Parquet; a file appears whole or not at all. `-` is standard output, and a
    path that is not a regular file (a device such as /dev/stdout, a pipe) is written in place.

    Rows stream from the database to the file (see `write_rows`): a split of any size is held a row (JSONL) or
    a row group (Parquet) at a time; DPO gathers one topic's samples, RL one short row per problem."""
    _check(options)
    if split not in SPLITS:
        raise ChimeraError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if fmt not in FORMATS:
        raise ChimeraError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    rows = records(store, split, run, options, skipped)
    if str(path) == "-":
        count = write_rows(rows, fmt, sys.stdout.buffer)
        sys.stdout.flush()
        return count
    if path.is_symlink():
        # Never replace the link itself: a link to a file is written (whole) at its target; one to a
        # descriptor (/dev/stdout -> /proc/self/fd/1, whatever fd 1 is) is written through.
        target = Path(os.path.realpath(path))
        if target.is_file() and not target.is_relative_to("/proc"):
            path = target
        else:
            return _write_in_place(path, rows, fmt)
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise ChimeraError(f"{path}: is a folder; name a file, or - for standard output")
        return _write_in_place(path, rows, fmt)
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created exclusively under an unpredictable name: a link planted where a side file will be is never followed.
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(descriptor, "wb") as handle:
            count = write_rows(rows, fmt, handle)
        tmp.replace(path)
    except BaseException as error:  # the side file goes whatever stopped the export (a bad row, Ctrl-C)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise ChimeraError(f"{path}: cannot write the export ({error.strerror or error})") from None
        raise
    return count


def _write_in_place(path: Path, rows: Iterable[dict[str, Any]], fmt: str) -> int:
    try:
        with path.open("wb") as handle:
            return write_rows(rows, fmt, handle)
    except OSError as error:
        raise ChimeraError(f"{path}: cannot write the export ({error.strerror or error})") from None


ROW_GROUP_ROWS = 1000  # Parquet rows held at once (and per row group)


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, handle: BinaryIO) -> int:
    """Write rows as they come and return how many: JSONL one line per row, each written before the next row is
    read; Parquet a row group of ROW_GROUP_ROWS at a time."""
    if fmt != "jsonl":
        return _write_parquet(rows, handle)
    count = 0
    for row in rows:
        handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        count += 1
    return count


def _write_parquet(rows: Iterable[dict[str, Any]], handle: BinaryIO) -> int:
    """Row groups in the first group's schema. The first group grows until every column has held a value (an
    all-empty column has no type yet), so a later group's empty column is cast to the type a value gave."""
    import pyarrow.parquet as pq

    writer, schema, count, batch = None, None, 0, []
    untyped: set[str] | None = None
    for row in rows:
        batch.append(row)
        count += 1
        untyped = ({key for key, value in row.items() if value is None} if untyped is None else
                   {key for key in untyped if row.get(key) is None})
        if len(batch) >= ROW_GROUP_ROWS and (schema is not None or not untyped):
            table = arrow_table(batch)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(handle, schema)
            writer.write_table(_in_schema(table, schema))
            batch = []
    if writer is None:  # everything fit in the first group: written as one table, as before row groups
        pq.write_table(arrow_table(batch), handle)
        return count
    if batch:
        writer.write_table(_in_schema(arrow_table(batch), schema))
    writer.close()
    return count


def _in_schema(table: Any, schema: Any) -> Any:
    if table.schema == schema:
        return table
    try:
        return table.select(schema.names).cast(schema)
    except (KeyError, ValueError, TypeError, NotImplementedError) as error:  # pyarrow's errors subclass these
        raise ChimeraError(f"the export's rows changed shape part way through ({error}); "
                           "write it as JSONL instead") from None


def arrow_table(rows: list[dict[str, Any]]) -> Any:
    """Rows of a split as the Arrow table a Parquet export holds (what `datasets` loads from one)."""
    import pyarrow as pa

    return pa.Table.from_pylist([{**row, **_as_json(row)} for row in rows])


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """Free-form maps (models, usage) go to Parquet as JSON text: their keys differ by role and server."""
    return {key: json.dumps(row[key], sort_keys=True) for key in ("models", "usage") if key in row}

