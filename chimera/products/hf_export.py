"""`chimera export DB --format hf --out DIR`: a folder `datasets` loads, with a dataset card.

    DIR/README.md                     card: YAML configs, statistics, models, config, evals
    DIR/{all,sft,rl,rl_verl,rl_trl,dpo}/train-00000-of-00001.parquet

Each config is one training form, written by the same row builders as `chimera export --split ...`, so a config's
columns are those of the matching JSONL export. A config with no rows is left out (and so named in the card).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path, PureWindowsPath
from typing import Any

import yaml

from chimera.config import Config, DatasetSettings, ModelsConfig, ModelSpec, scrub_credentials
from chimera.errors import ChimeraError
from chimera.products.export import ExportOptions, write
from chimera.products.label_report import pct
from chimera.products.outputs import MARKER, write_folder
from chimera.store import Store

# config name: (split, the RL schema it is written in)
CONFIGS = {"all": ("all", "chimera"), "sft": ("sft", "chimera"), "rl": ("rl", "chimera"),
           "rl_verl": ("rl", "verl"), "rl_trl": ("rl", "trl"), "dpo": ("dpo", "chimera")}

REASONING_FORMS = {
    "inline": "`<think>` reasoning `</think>` then the solution, in `content`",
    "field": "the reasoning in `reasoning_content`, the solution in `content`",
    "thinking": "the reasoning in `thinking`, the solution in `content`",
    "none": "the solution alone",
}


def descriptions(options: ExportOptions) -> dict[str, str]:
    """What each config holds, in the reasoning form and SFT layout this export was written in."""
    reply = f"assistant: {REASONING_FORMS[options.reasoning]}"
    chat = ("`prompt` (the exact messages the solver was sent) and `completion` (one assistant message)"
            if options.sft_format == "prompt-completion" else
            "`messages`: the exact messages the solver was sent, then the answer")
    return {
        "all": "every sample of every accepted problem: subject, topic, problem, answer, reasoning, solution, correct",
        "sft": f"the correct, untruncated trajectories as chats: {chat} ({reply})",
        "rl": "one row per accepted problem with its reference answer and the solver's pass rate",
        "rl_verl": "the `rl` rows in verl's columns: `data_source`, `prompt` (messages), `ability`, "
                   "`reward_model` {style: rule, ground_truth}, `extra_info` (ids, pass rate, problem)",
        "rl_trl": "the `rl` rows for TRL's GRPOTrainer: `prompt` (messages), `solution`, `problem`, ids, pass rate",
        "dpo": "preference pairs for TRL's DPOTrainer: `prompt` (the exact messages the solver was sent), `chosen` "
               "(a correct trajectory) and `rejected` (an incorrect one, same prompt), each one assistant message "
               f"({reply}); up to {options.pairs_per_problem} per problem, first correct with first incorrect by "
               "sample index, then second with second",
    }


def export_hf(store: Store, run: str, out: Path, *, force: bool = False,
              options: ExportOptions | None = None) -> dict[str, int]:
    """Write every config with rows, and the card; the folder is built beside `out` and moved in whole, and a
    folder of someone else's files is refused (see chimera.products.outputs). Returns rows per config and, for sft and
    dpo, how many trajectories were left out for empty reasoning."""
    from chimera.evals.stats import dataset_stats, markdown

    shape = options or ExportOptions()
    skipped = {"sft": [0], "dpo": [0]}

    def build(staging: Path) -> dict[str, int]:
        counts = {}
        for name, (split, schema) in CONFIGS.items():
            rows = write(store, staging / name / "train-00000-of-00001.parquet", split=split, fmt="parquet",
                         run=run, options=replace(shape, schema=schema), skipped=skipped.get(name))
            counts[name] = rows
            if not rows:  # an empty Parquet file has no columns to load
                (staging / name / "train-00000-of-00001.parquet").unlink()
                (staging / name).rmdir()
        stats = public_stats(dataset_stats(store, run))
        card = dataset_card(run, counts, markdown(stats), stats, store.config_of(run),
                            store.report(run, "contamination"), store.report(run, "quality"), shape)
        (staging / "README.md").write_text(card, encoding="utf-8")
        return counts

    counts = write_folder(out, build, what=f"Hugging Face export of run {run}", force=force)
    return {**counts, "sft_without_reasoning": skipped["sft"][0], "dpo_without_reasoning": skipped["dpo"][0]}


def benchmark_name(against: str) -> str:
    """The benchmark file as a card may name it: its base name, never the folder it was read from (either
    separator: the report may come from another machine)."""
    return PureWindowsPath(against).name


def dataset_card(run: str, counts: dict[str, int], stats_table: str, stats: dict[str, Any], config: Config | None,
                 contamination: dict[str, Any] | None, quality: dict[str, Any] | None,
                 options: ExportOptions) -> str:
    """The card; `config` is the run's stored one (None for a run that stored none: its defaults, no models)."""
    dataset = config.dataset if config else DatasetSettings()
    written = [name for name in CONFIGS if counts.get(name)]
    empty = [name for name in CONFIGS if not counts.get(name)]
    what = descriptions(options)
    default = "sft" if "sft" in written else None
    example = default or (written[0] if written else "all")
    header = {
        **({"license": dataset.license} if dataset.license else {}),
        "language": dataset.language or ["en"],
        "pretty_name": dataset.pretty_name or run,
        "configs": [{"config_name": name, "data_files": [{"split": "train", "path": f"{name}/*.parquet"}],
                     **({"default": True} if name == default else {})} for name in written],
        "task_categories": ["text-generation", "question-answering"],
        "tags": ["reasoning", "synthetic", "chain-of-thought", "chimera"],
        "size_categories": [_size_category(counts["all"])],
    }
    roles = {role: _model_name(spec, role) for role, spec in config.models.all_roles().items()} if config else {}
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
        f"# {run}", "",
        "Synthetic reasoning problems with checked reference answers and long solution trajectories, generated "
        "with chimera (stage 1: a topic taxonomy; stage 2: drafted problems cross-validated "
        "by two critics; stage 3: a reasoning model's trajectories, labeled against the reference).", "",
        "## Configs", "",
        "| config | rows | what |", "|---|---|---|",
        *(f"| `{name}` | {counts[name]} | {what[name]} |" for name in written), "",
        *([f"Left out for having no rows: {', '.join(f'`{name}`' for name in empty)}.", ""] if empty else []),
        "```python",
        "from datasets import load_dataset",
        f'rows = load_dataset("PATH_OR_REPO", "{example}", split="train")',
        "```", "",
        "## Statistics", "", stats_table,
        "## Subjects", "",
        "| subject | problems | share |", "|---|---|---|",
        *(f"| {s} | {stats['accepted_by_subject'][s]} | {share:.1%} |" for s, share in stats["share_by_subject"].items()),
        "", "## Labels", "",
        "Who decided the `correct` labels, by subject: the grading rules, or the judge (the labeler model) where no "
        "rule decides. A seeded share of rule-decided labels was also sent to the judge; its agreement with the "
        "rules there measures how far the judge's own labels can be trusted.", "",
        "| subject | labels | by rules | by judge | audited | judge agrees with rules | judges agree |",
        "|---|---|---|---|---|---|---|",
        *(f"| {s} | {f['labels']} | {pct(f['rules_share'])} | {pct(f['judge_share'])} | {f['audited']} | "
          f"{pct(f['judge_agrees_with_rules'])} | {pct(f['judges_agree'])} |"
          for s, f in (stats.get("labels") or {}).items()),
        "", "## Generation models", "",
        "| role | model |", "|---|---|", *(f"| {role} | {name} |" for role, name in roles.items()), "",
    ]
    if contamination:
        lines += ["## Contamination", "",
                  f"Word n-gram Jaccard similarity of each problem to its closest item of "
                  f"`{benchmark_name(str(contamination['against']))}` "
                  f"({contamination['benchmark_items']} items); threshold {contamination['threshold']}.", "",
                  "| n | mean of per-problem maxima | share at or above threshold |", "|---|---|---|",
                  *(f"| {n} | {r['mean_max_similarity']:.4f} | {r['share_above_threshold']:.2%} |"
                    for n, r in contamination["by_n"].items()), ""]
    if quality:
        sources = list(quality["by_source"])
        lines += ["## Problem quality", "", "Rated 1-5 by an evaluator model.", "",
                  "| criterion | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources),
                  *(f"| {c} | " + " | ".join(_fmt(quality["by_source"][s][c]) for s in sources) + " |"
                    for c in [*quality["criteria"], "overall"]), ""]
        if "difference" in quality:
            d = quality["difference"]
            lines += [f"Overall {d['of']}: {d['mean']:+.3f} (95% bootstrap interval {d['ci95'][0]:+.3f} to "
                      f"{d['ci95'][1]:+.3f}).", ""]
    shown = publishable(config) if config else {}
    lines += ["## Generation config", "", "Models are named by model name only: endpoints, headers, keys and local "
              "paths are left out.", "", "```yaml", yaml.safe_dump(shown, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


_CALL_FAILURE = re.compile(r"^(\w+) (?:call to \S+ failed|endpoint \S+|reply unusable)\b")


def public_reason(reason: str) -> str:
    """A rejection or failure reason as a card may show it: a failed call by role alone, never its endpoint
    or the server's own words."""
    failed = _CALL_FAILURE.match(reason)
    if failed:
        return f"{failed.group(1)} call failed"
    return re.sub(r"\b\w+://\S+", "[endpoint]", reason)


def public_stats(stats: dict[str, Any]) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    for reason, n in stats["rejection_reasons"].items():
        reasons[public_reason(reason)] += n
    return {**stats, "rejection_reasons": dict(reasons)}


PUBLIC_MODEL_FIELDS = ("provider", "model", "temperature", "top_p", "max_tokens", "reasoning_effort",
                       "structured_output")


def publishable(config: Config) -> dict[str, Any]:
    """The run's config as a card may show it: models by name and sampling only; no endpoint URL or host,
    header, key name, query, request body extras, class keyword arguments or local path."""
    def public(spec: ModelSpec) -> dict[str, Any]:
        return spec.model_dump(mode="json", include=set(PUBLIC_MODEL_FIELDS))

    models = {}
    for name in ModelsConfig.model_fields:
        spec = getattr(config.models, name)
        models[name] = [public(s) for s in spec] if isinstance(spec, list) else public(spec) if spec else None
    return {**scrub_credentials(config.model_dump(mode="json", exclude={"run": {"db"}})), "models": models}


def _model_name(spec: ModelSpec, role: str) -> str:
    return spec.model or (f"simulator (sim-{role})" if spec.provider == "sim" else "-")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def push(out: Path, repo: str, *, public: bool = False) -> str:
    """Upload the folder as a dataset repo, private unless `public`, with the login huggingface_hub has
    (HF_TOKEN, or `huggingface-cli login`). Any failure is one line."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ChimeraError("--push needs huggingface_hub: pip install 'chimera-engine[hf]'") from None
    try:
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=not public)
        # The marker stays local: a clone of the repository must not look like a folder chimera may rewrite.
        api.upload_folder(folder_path=str(out), repo_id=repo, repo_type="dataset", ignore_patterns=[MARKER])
    except Exception as error:  # noqa: BLE001 - the hub's errors are many; each becomes one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ChimeraError(f"--push {repo}: {first}") from None
    return f"https://huggingface.co/datasets/{repo}"


def require_license(config: Config | None) -> None:
    if not (config and config.dataset.license):
        raise ChimeraError("--push: the run's config names no dataset.license; add `dataset: {license: ...}` to it "
                           "and run chimera run once to store it (the export itself works without one)")
