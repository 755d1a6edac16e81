"""`chimera export`: a split as JSONL or Parquet, or every training form as a Hugging Face folder. A flag the
chosen export does not use is named in a one-line warning, never dropped in silence."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chimera.cli.common import err, only_run
from chimera.errors import ChimeraError

if TYPE_CHECKING:
    from chimera.products.export import ExportOptions
    from chimera.store import Store

# The flags that shape rows (--split all and ExportOptions' defaults when not given).
SHAPING = ("split", "schema", "reasoning", "sft_format", "pairs_per_problem")
# Which of them each export reads: a file export by its split; the hf folder writes every split and schema.
USED_BY = {"all": set(), "sft": {"reasoning", "sft_format"}, "rl": {"schema"},
           "dpo": {"reasoning", "pairs_per_problem"}, "hf": {"reasoning", "sft_format", "pairs_per_problem"}}
WHY_NOT = {"hf": "it writes every split, and rl as rl, rl_verl and rl_trl"}


def add_export_command(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write the dataset")
    export.add_argument("db")
    export.add_argument("--format", choices=["jsonl", "parquet", "hf"],
                        help="default: from the file's suffix (.parquet, else JSONL); hf: a folder for `datasets` "
                             "(configs all, sft, rl, rl_verl, rl_trl, dpo as Parquet) with a dataset card")
    export.add_argument("--reasoning", choices=["inline", "field", "thinking", "none"],
                        help="sft, dpo: the thinking inline as <think>...</think> (default; Qwen3 templates keep it), "
                             "as a reasoning_content field beside content, as a thinking field (gpt-oss), or left out")
    export.add_argument("--sft-format", choices=["messages", "prompt-completion"],
                        help="sft: one messages list (default), or TRL's prompt / completion pair")
    export.add_argument("--schema", choices=["chimera", "verl", "trl"],
                        help="rl: chimera's columns (default), verl's (data_source, prompt, ability, reward_model, "
                             "extra_info) or TRL GRPO's (prompt, solution)")
    export.add_argument("--split", choices=["all", "sft", "rl", "dpo"],
                        help="all (default): every sample; sft: correct, untruncated chats; rl: problems with pass "
                             "rates; dpo: preference pairs (a correct and an incorrect trajectory of one problem)")
    export.add_argument("--pairs-per-problem", type=int, metavar="N",
                        help="dpo: at most N pairs per problem (default 1): the k-th correct trajectory with the "
                             "k-th incorrect one, by sample index")
    export.add_argument("-o", "--output", "--out", required=True, help="file, or folder with --format hf")
    export.add_argument("--force", action="store_true",
                        help="with --format hf: write into a folder that holds other files (they are kept)")
    export.add_argument("--push", metavar="REPO", help="with --format hf: upload to this Hugging Face dataset repo "
                                                        "(private unless --public; needs dataset.license)")
    export.add_argument("--public", action="store_true", help="with --push: make the dataset repo public")
    export.add_argument("--run", help="only this run (default: every run in the database)")
    export.set_defaults(func=export_command)


def unused_flags(export: str, given: dict[str, Any]) -> list[str]:
    """One warning per row-shaping flag given that `export` (a split, or hf) does not read."""
    used = USED_BY[export] | (set() if export == "hf" else {"split"})
    lines = []
    for name, value in given.items():
        if value is None or name in used:
            continue
        flag = "--" + name.replace("_", "-")
        where = "--format hf" if export == "hf" else f"--split {export}"
        reason = f" ({WHY_NOT[export]})" if export in WHY_NOT else ""
        lines.append(f"chimera: warning: {flag} {value} is not used with {where}{reason}; ignored")
    return lines


def export_command(args: argparse.Namespace) -> int:
    from chimera.products.export import ExportOptions, write
    from chimera.store import Store

    given: dict[str, Any] = {name: getattr(args, name) for name in SHAPING}
    split: str = given["split"] or "all"
    options = ExportOptions(**{name: value for name, value in given.items() if value is not None and name != "split"})
    store = Store(args.db, read_only=True)
    if args.format is None:
        args.format = "parquet" if Path(args.output).suffix.lower() in (".parquet", ".pq") else "jsonl"
    if args.format != "hf" and args.push:
        raise ChimeraError("--push goes with --format hf")
    for line in unused_flags("hf" if args.format == "hf" else split, given):
        err.print(line, markup=False)
    if args.format == "hf":
        return _export_hf(store, args, options)
    skipped = [0]
    count = write(store, Path(args.output), split=split, fmt=args.format, run=args.run, options=options,
                  skipped=skipped)
    noun = {"rl": "problems", "dpo": "pairs"}.get(split, "samples")
    err.print(f"wrote {count} {noun} ({split}) to {args.output}", markup=False)
    if skipped[0]:
        what = "correct samples" if split == "sft" else "labelled trajectories"
        err.print(f"left out {skipped[0]} {what} whose reasoning is empty (the server hid it or sent none); "
                  "--reasoning none keeps them without it", markup=False)
    return 0


def _export_hf(store: Store, args: argparse.Namespace, options: ExportOptions) -> int:
    from chimera.products.hf_export import CONFIGS, export_hf, push, require_license

    run = only_run(store, args.run)
    if args.push:
        require_license(store.config_of(run))
    counts = export_hf(store, run, Path(args.output), force=args.force, options=options)
    err.print(f"wrote {counts['all']} samples (all), {counts['sft']} (sft), {counts['rl']} problems (rl, rl_verl, "
              f"rl_trl), {counts['dpo']} pairs (dpo) and a dataset card to {args.output}", markup=False)
    empty = [name for name in CONFIGS if not counts[name]]
    if empty:
        err.print(f"left out configs with no rows: {', '.join(empty)}", markup=False)
    for split in ("sft", "dpo"):
        if counts[f"{split}_without_reasoning"]:
            what = "correct samples" if split == "sft" else "labelled trajectories"
            err.print(f"left out of {split} {counts[f'{split}_without_reasoning']} {what} whose reasoning is empty "
                      "(the server hid it or sent none)", markup=False)
    if args.push:
        err.print(f"pushed to {push(Path(args.output), args.push, public=args.public)}"
                  f"{'' if args.public else ' (private)'}", markup=False)
    return 0
