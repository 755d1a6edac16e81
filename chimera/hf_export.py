"""`chimera export DB --format hf --out DIR`: a folder `datasets` loads, with a dataset card.

    DIR/README.md                     card: YAML configs (all, sft, rl), statistics, models, config, evals
    DIR/{all,sft,rl}/train-00000-of-00001.parquet
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from chimera.errors import ChimeraError
from chimera.export import SPLITS, write
from chimera.outputs import write_folder
from chimera.store import Store

DESCRIPTIONS = {
    "all": "every sample of every accepted problem: subject, topic, problem, answer, reasoning, solution, correct",
    "sft": "the correct, untruncated trajectories as chats (user: the exact prompt the solver was sent; "
           "assistant: `<think>` reasoning `</think>` solution)",
    "rl": "one row per accepted problem with its reference answer and the solver's pass rate",
}


def export_hf(store: Store, run: str, out: Path, *, force: bool = False) -> dict[str, int]:
    """Write the three configs and the card; the folder is built beside `out` and moved in whole, and a
    folder of someone else's files is refused (see chimera.outputs)."""
    from chimera.evals.stats import dataset_stats, markdown

    def build(staging: Path) -> dict[str, int]:
        counts = {split: write(store, staging / split / "train-00000-of-00001.parquet", split=split,
                               fmt="parquet", run=run) for split in SPLITS}
        stats = dataset_stats(store, run)
        card = dataset_card(run, counts, markdown(stats), stats, store.run_config(run),
                            store.report(run, "contamination"), store.report(run, "quality"))
        (staging / "README.md").write_text(card, encoding="utf-8")
        return counts

    return write_folder(out, build, what=f"Hugging Face export of run {run}", force=force)


def dataset_card(run: str, counts: dict[str, int], stats_table: str, stats: dict[str, Any], config: dict[str, Any],
                 contamination: dict[str, Any] | None, quality: dict[str, Any] | None) -> str:
    header = {
        "configs": [{"config_name": split, "data_files": [{"split": "train", "path": f"{split}/*.parquet"}],
                     **({"default": True} if split == "sft" else {})} for split in SPLITS],
        "task_categories": ["text-generation", "question-answering"],
        "tags": ["reasoning", "synthetic", "chain-of-thought", "chimera"],
        "size_categories": [_size_category(counts["all"])],
    }
    models = config.get("models") or {}
    roles = {role: _model_name(models.get(role), role) for role in ("expander", "drafter", "solver")}
    judges = models.get("labeler")
    for name, spec in zip(("labeler", "labeler2"), judges if isinstance(judges, list) else [judges]):
        roles[name] = _model_name(spec, name)
    roles.update({f"critic{i}": _model_name(spec, f"critic{i}") for i, spec in enumerate(models.get("critics") or [])})
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
        f"# {run}", "",
        "Synthetic reasoning problems with checked reference answers and long solution trajectories, generated "
        "with chimera (stage 1: a topic taxonomy; stage 2: drafted problems cross-validated "
        "by two critics; stage 3: a reasoning model's trajectories, labeled against the reference).", "",
        "## Configs", "",
        "| config | rows | what |", "|---|---|---|",
        *(f"| `{split}` | {counts[split]} | {DESCRIPTIONS[split]} |" for split in SPLITS), "",
        "```python",
        "from datasets import load_dataset",
        'sft = load_dataset("PATH_OR_REPO", "sft", split="train")',
        "```", "",
        "## Statistics", "", stats_table,
        "## Subjects", "",
        "| subject | problems | share |", "|---|---|---|",
        *(f"| {s} | {stats['accepted_by_subject'][s]} | {share:.1%} |" for s, share in stats["share_by_subject"].items()),
        "", "## Generation models", "",
        "| role | model |", "|---|---|", *(f"| {role} | {name} |" for role, name in roles.items()), "",
    ]
    if contamination:
        lines += ["## Contamination", "",
                  f"Word n-gram Jaccard similarity of each problem to its closest item of `{contamination['against']}` "
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
    lines += ["## Generation config", "", "API keys are never stored; only the names of their environment variables.",
              "", "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


def _model_name(spec: dict[str, Any] | None, role: str) -> str:
    if not spec:
        return "-"
    return spec.get("model") or (f"simulator (sim-{role})" if spec.get("provider") == "sim" else "-")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def push(out: Path, repo: str) -> str:
    """Upload the folder as a dataset repo; needs huggingface_hub and a token (HF_TOKEN or a login)."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ChimeraError("--push needs huggingface_hub: pip install 'chimera-engine[hf]'") from None
    api = HfApi(token=os.environ.get("HF_TOKEN"))
    if api.token is None and not os.environ.get("HF_TOKEN"):
        raise ChimeraError("--push needs a Hugging Face token: set HF_TOKEN or run `huggingface-cli login`")
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=str(out), repo_id=repo, repo_type="dataset")
    return f"https://huggingface.co/datasets/{repo}"
