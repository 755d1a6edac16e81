"""`chimera stats` and `chimera eval contamination|quality|bench`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from chimera.errors import ChimeraError


def add_eval_parsers(sub: Any) -> None:
    stats = sub.add_parser("stats", help="the dataset's statistics table, as a table, JSON, Markdown and plots")
    stats.add_argument("db")
    stats.add_argument("--run", help="which run (needed when the database holds several)")
    stats.add_argument("--out", help="write stats.json, stats.md and PNG plots here")
    stats.add_argument("--force", action="store_true", help="with --out: write into a folder that holds other files")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(func=cmd_stats)

    evals = sub.add_parser("eval", help="contamination, problem quality, or a benchmark run")
    kinds = evals.add_subparsers(dest="eval_kind", required=True)

    cont = kinds.add_parser("contamination", help="max n-gram Jaccard of each problem against a benchmark")
    cont.add_argument("db")
    cont.add_argument("--against", required=True, metavar="FILE.jsonl", help="benchmark items, one JSON per line")
    cont.add_argument("--field", default="question", help="the text field of each benchmark item")
    cont.add_argument("--n", type=int, nargs="+", default=[8, 13], help="n-gram sizes (words)")
    cont.add_argument("--threshold", type=float, default=0.5, help="similarity counted as contaminated")
    cont.add_argument("--top", type=int, default=10, help="offending pairs to show")
    cont.add_argument("--run")
    cont.add_argument("--json", action="store_true")
    cont.set_defaults(func=cmd_contamination)

    quality = kinds.add_parser("quality", help="an evaluator model rates problems (1-5 on four criteria)")
    quality.add_argument("db")
    quality.add_argument("--against", metavar="FILE.jsonl", help="human-written problems to rate side by side")
    quality.add_argument("--field", default="question", help="the text field in --against")
    quality.add_argument("--config", help="config whose models.evaluator rates (default: the run's stored config)")
    quality.add_argument("--limit", type=int, help="rate at most this many problems of each set")
    quality.add_argument("--yes", action="store_true", help="use the database's stored config without asking, once "
                                                              "its endpoints, variables and classes are listed")
    quality.add_argument("--run")
    quality.add_argument("--json", action="store_true")
    quality.set_defaults(func=cmd_quality)

    bench = kinds.add_parser("bench", help="pass@1 and pass@k of a model on a question/answer set")
    bench.add_argument("--data", required=True, help="JSONL of questions and answers, or a chimera database")
    bench.add_argument("--model", default="solver", help="a role of the config, or an OpenAI-compatible base URL")
    bench.add_argument("--model-name", help="the served model's name, when --model is a URL")
    bench.add_argument("--config", help="config the role comes from (default: --data's stored config, else the "
                                        "simulator)")
    bench.add_argument("--yes", action="store_true", help="with --data DB: use its stored config without asking, once "
                                                            "its endpoints, variables and classes are listed")
    bench.add_argument("--samples", type=int, default=4, help="samples per question (k up to this)")
    bench.add_argument("--max-tokens", type=int, default=32768)
    bench.add_argument("--top-k", type=int, default=20, help="0 leaves top_k out (APIs that reject it)")
    bench.add_argument("--temperature", type=float, help="instead of the paper's 0.6")
    bench.add_argument("--top-p", type=float, help="instead of the paper's 0.95")
    bench.add_argument("--no-sampling", action="store_true",
                       help="send no temperature, top_p or top_k (OpenAI reasoning models reject them)")
    bench.add_argument("--api-key-env", help="with --model URL: the environment variable holding the key")
    bench.add_argument("--concurrency", type=int, help="requests in flight (default: the config's run.concurrency)")
    bench.add_argument("--question-field", default="question")
    bench.add_argument("--answer-field", default="answer")
    bench.add_argument("--results", help="database for per-sample results (default: --data if it is a database, "
                                         "else bench-results.db)")
    bench.add_argument("--out", help="write bench.json and the scaling curve (PNG) here")
    bench.add_argument("--force", action="store_true", help="with --out: write into a folder that holds other files")
    bench.add_argument("--run", help="with a database as --data: which run")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=cmd_bench_eval)


def _open(db: str, run: str | None, *, or_read_only: bool = False):
    """The database and its run; `or_read_only`: opened read-only where this process cannot write it."""
    from chimera.cli.common import only_run
    from chimera.store import Store
    from chimera.store.base import UnwritableDatabase

    try:
        store = Store(db, create=False)
    except UnwritableDatabase:
        if not or_read_only:
            raise
        store = Store(db, read_only=True)
    return store, only_run(store, run)


def cmd_stats(args: argparse.Namespace) -> int:
    from rich.table import Table

    from chimera.cli.common import err, out
    from chimera.evals.stats import dataset_stats, public, table_rows, write_outputs

    store, run = _open(args.db, args.run, or_read_only=True)
    stats = dataset_stats(store, run)
    if not store.read_only:  # kept with the run where it can be; a read-only copy still gives its statistics
        store.save_report(run, "stats", public(stats))
    if args.json:
        print(json.dumps(public(stats), indent=2))
    else:
        table = Table(title=f"run {run}")
        table.add_column("statistic")
        table.add_column("value", overflow="fold")
        for label, value in table_rows(stats):
            table.add_row(label, value)
        out.print(table)
    if args.out:
        written = write_outputs(stats, Path(args.out), force=args.force)
        err.print("wrote " + ", ".join(str(p) for p in written), markup=False)
    return 0


def cmd_contamination(args: argparse.Namespace) -> int:
    import time

    from chimera.cli.common import err, out
    from chimera.evals.contamination import contamination, read_benchmark

    store, run = _open(args.db, args.run)
    benchmark = read_benchmark(Path(args.against), args.field)
    problems = [(p["id"], p["problem"]) for p in store.problems(run) if p["status"] == "accepted"]
    if not problems:
        raise ChimeraError(f"{args.db}: run {run} has no accepted problems to check")
    started = time.perf_counter()
    report = contamination(problems, benchmark, args.n, args.threshold, args.top)
    report["against"] = str(args.against)
    report["seconds"] = round(time.perf_counter() - started, 3)
    store.save_report(run, "contamination", report)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for n, result in report["by_n"].items():
        out.print(f"{n}-grams: mean of per-problem maxima {result['mean_max_similarity']:.4f}; "
                  f"{result['above_threshold']} of {len(problems)} problems ({result['share_above_threshold']:.2%}) "
                  f"at or above {args.threshold}", markup=False)
        for pair in result["top_pairs"][:args.top]:
            out.print(f"  {pair['similarity']:.3f}  {pair['problem_id']}: {pair['problem'][:80]!r}\n"
                      f"         benchmark #{pair['benchmark_index']}: {pair['benchmark_item'][:80]!r}", markup=False)
    err.print(f"{len(problems)} problems against {len(benchmark)} items in {report['seconds']:.2f}s", markup=False)
    return 0


def _eval_config(config_path: str | None, store: Any = None, run: str | None = None, *, yes: bool = False,
                 doing: str = "", roles: list[str] | None = None):
    """The config an eval takes its models from: --config, else the run's stored config (once the user has seen
    it and agreed: see chimera.cli.consent), else the simulator."""
    from chimera.cli.consent import consented_config
    from chimera.config import load_config, parse_config

    if config_path:
        return load_config(config_path)
    if store is not None and run is not None:
        return consented_config(store.config_of(run), source=f"{store.shown_path} (run {run})", yes=yes,
                                doing=doing, roles=roles)
    return parse_config({"run": {"name": "eval", "db": "eval.db"}, "subjects": [{"name": "eval", "topics": 1}]})


def cmd_quality(args: argparse.Namespace) -> int:
    from chimera.cli.common import err, out
    from chimera.errors import ConfigError
    from chimera.evals.clients import one_client
    from chimera.evals.contamination import read_benchmark
    from chimera.evals.quality import CRITERIA, rate_all, summarize

    store, run = _open(args.db, args.run)
    config = _eval_config(args.config, store, run, yes=args.yes, doing="rate problems", roles=["evaluator"])
    spec = config.models.evaluator
    if spec is None:
        raise ConfigError("models.evaluator: not set (add it to the config, or give one with --config)")
    items = [("dataset", p["id"], p["problem"]) for p in store.problems(run) if p["status"] == "accepted"]
    items = items[:args.limit] if args.limit else items
    sources = ["dataset"]
    if args.against:
        human = read_benchmark(Path(args.against), args.field)
        human = human[:args.limit] if args.limit else human
        items += [("human", str(i), text) for i, text in enumerate(human)]
        sources.append("human")

    async def go() -> dict[str, int]:
        async with one_client("evaluator", spec, config, log=store.log_call) as client:
            return await rate_all(store, client, items, retries=config.parse_retries)

    first_call = store.last_call_id()
    tally = asyncio.run(go())
    report = summarize(store, sources)
    store.save_report(run, "quality", report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from rich.table import Table

        table = Table(title="problem quality (1-5)")
        table.add_column("criterion")
        for source in sources:
            table.add_column(source, justify="right")
        for criterion in (*CRITERIA, "overall"):
            table.add_row(criterion, *(f"{report['by_source'][s][criterion]:.2f}"
                                       if report["by_source"][s][criterion] is not None else "-" for s in sources))
        out.print(table)
        if "difference" in report:
            d = report["difference"]
            out.print(f"overall {d['of']}: {d['mean']:+.3f} (95% bootstrap interval {d['ci95'][0]:+.3f} to "
                      f"{d['ci95'][1]:+.3f})", markup=False)
    err.print(f"rated {tally['rated']}, reused {tally['reused']}, failed {tally['failed']}", markup=False)
    return _verdict(store, "quality:", first_call, done=tally["rated"] + tally["reused"], failed=tally["failed"],
                    retry_command="the same chimera eval quality command")


def _verdict(store: Any, runs: str, first_call: int, *, done: int, failed: int, retry_command: str) -> int:
    """Print why an eval command did not fully succeed, and return its exit status (see chimera.engine.health)."""
    from chimera.cli.common import err
    from chimera.engine.health import assess_eval, role_calls

    rows = store.call_rows(runs, after_id=first_call, prefix=True)
    health = assess_eval(done=done, failed=failed, roles=role_calls(rows), retry_command=retry_command)
    for line in health.lines:
        err.print(f"chimera: {line}", markup=False)
    return health.exit_code


def cmd_bench_eval(args: argparse.Namespace) -> int:
    from chimera.cli.common import err, out
    from chimera.evals.benchmark import is_run_database, paper_spec, read_questions, run_benchmark, suite_key, summarize
    from chimera.evals.clients import one_client, spec_for
    from chimera.store import Store
    from chimera.store.postgres import shown_url

    data = str(args.data)
    questions = read_questions(data, args.question_field, args.answer_field, args.run)
    if not questions:
        raise ChimeraError(f"{shown_url(data)}: no accepted problems to ask")
    is_db = is_run_database(data)
    if is_db and not args.config and "://" not in args.model:  # a URL needs no config: the user named it
        source, run = _open(data, args.run)
        config = _eval_config(None, source, run, yes=args.yes, doing=f"ask {args.model}", roles=[args.model])
        source.close()
    else:
        config = _eval_config(args.config)
    role, spec = spec_for(config, args.model, args.model_name, api_key_env=args.api_key_env)
    spec = paper_spec(spec, max_tokens=args.max_tokens, top_k=None if args.no_sampling else args.top_k)
    sampling = {"temperature": None, "top_p": None} if args.no_sampling else {
        name: value for name, value in (("temperature", args.temperature), ("top_p", args.top_p)) if value is not None}
    spec = spec.model_copy(update=sampling)
    store = Store(args.results or (data if is_db else "bench-results.db"))
    suite = suite_key(f"{args.model}|{args.model_name or ''}", spec, questions)

    async def go() -> dict[str, int]:
        async with one_client(role, spec, config, concurrency=args.concurrency, log=store.log_call) as client:
            return await run_benchmark(store, client, questions, samples=args.samples, suite=suite)

    first_call = store.last_call_id()
    tally = asyncio.run(go())
    report = {**summarize(store, suite, len(questions), args.samples), "model": args.model,
              "model_name": args.model_name or spec.model or f"sim-{role}", "data": str(data), **tally}
    if args.out:
        from chimera.evals.plots import scaling_plot
        from chimera.products.outputs import write_folder

        def build(folder: Path) -> None:
            (folder / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            if report["pass@k"]:
                scaling_plot({int(k): v for k, v in report["pass@k"].items()}, folder / "pass_at_k.png",
                             f"{data.rsplit('/', 1)[-1]}: {report['model_name']}")

        write_folder(Path(args.out), build, what="chimera eval bench", force=args.force)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        curve = "  ".join(f"pass@{k} {v:.3f}" for k, v in report["pass@k"].items())
        cut = report["truncated_samples"]
        out.print(f"{report['questions_complete']}/{len(questions)} questions x {args.samples} samples: {curve}; "
                  + (f"{cut} of {report['graded_samples']} samples cut at max_tokens (counted wrong; raise "
                     f"--max-tokens, now {args.max_tokens})" if cut else "no sample cut at max_tokens"), markup=False)
    err.print(f"asked {tally['asked']}, reused {tally['reused']}, failed {tally['failed']} (asked again next time); "
              f"{report['undecided_samples']} undecided grades count as wrong", markup=False)
    return _verdict(store, f"bench:{suite}", first_call, done=tally["asked"] + tally["reused"],
                    failed=tally["failed"], retry_command="the same chimera eval bench command")
