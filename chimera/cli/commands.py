"""The `chimera` command. Library errors become one line on stderr and a non-zero exit, here only."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from chimera import __version__
from chimera.cli.calls import add_calls_command
from chimera.cli.common import err, only_run, out
from chimera.cli.export_command import add_export_command
from chimera.cli.plan_command import add_plan_command
from chimera.cli.run import run_command, shortfall_lines, worker_command
from chimera.errors import ChimeraError, Stopped
from chimera.models.secrets import redact
from chimera.store.postgres import connection_lost, first_line, is_postgres_url


def _cmd_yield(store, args: argparse.Namespace) -> int:
    from chimera.products.yield_report import yield_by

    report = yield_by(store, only_run(store, args.run), args.by)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    table = Table(title=f"yield by {args.by}")
    table.add_column(args.by, overflow="fold")
    for column in ("drafted", "accepted", "rejected", "revisions", "correct", "tokens", "$/sample"):
        table.add_column(column, justify="right", no_wrap=True)
    reasons = []
    for item in report:
        rate = "-" if item["correct_rate"] is None else f"{item['correct_rate']:.0%}"
        cost = "-" if item["cost_per_accepted_sample"] is None else f"{item['cost_per_accepted_sample']:.4f}"
        table.add_row(item[args.by], str(item["drafted"]), str(item["accepted"]),
                      str(item["rejected"] + item["failed"]), str(item["revisions"]), rate,
                      f"{item['tokens_in'] + item['tokens_out']:,}", cost)
        reasons += [f"  {item[args.by]}: {reason} ({n})" for reason, n in item["rejected_by_reason"].items()]
    out.print(table)
    if reasons:
        out.print("rejections and failures:\n" + "\n".join(reasons), markup=False)
    if any(item["cost"] is None for item in report):
        out.print("$/sample is '-' where a model used has no price_per_mtok_in/out in the config", markup=False)
    return 0


def _cmd_taxonomy(args: argparse.Namespace) -> int:
    from chimera.products.taxonomy_io import import_tree, read_file, tree
    from chimera.store import Store

    store = Store(args.db, create=bool(args.import_file), read_only=not args.import_file)
    if args.import_file:
        taxonomy = read_file(Path(args.import_file))
        counts = import_tree(store, taxonomy)
        err.print(f"imported {counts['topics']} topics into run {taxonomy.run} ({counts['removed']} removed); "
                  "chimera run will skip Stage 1 for it")
        return 0
    run = only_run(store, args.run)
    if args.merges:
        return _print_merges(store, run, as_json=args.json)
    taxonomy = tree(store, run)
    if args.json:
        print(taxonomy.model_dump_json(indent=2))
        return 0
    from rich.tree import Tree

    total = sum(len(f.topics) for s in taxonomy.subjects for f in s.subfields)
    root = Tree(f"run {taxonomy.run}: {len(taxonomy.subjects)} subjects, {total} topics, "
                f"{len(taxonomy.merges)} merged away")
    for subject in taxonomy.subjects:
        count = sum(len(f.topics) for f in subject.subfields)
        slots = sum(t.slots or 0 for f in subject.subfields for t in f.topics)
        branch = root.add(f"{subject.name} ({count} topics, {slots} problem slots, weight {subject.weight:g})")
        for subfield in subject.subfields:
            leaf = branch.add(f"{subfield.name} ({len(subfield.topics)})")
            for topic in subfield.topics:
                leaf.add(f"{topic.name}" + (f" [{topic.slots}]" if topic.slots is not None else ""))
    out.print(root)
    if taxonomy.shortfalls:
        out.print("shortfalls:\n" + "\n".join(f"  {line}" for line in shortfall_lines(taxonomy.shortfalls)),
                  markup=False)
    return 0


def _print_merges(store, run: str, *, as_json: bool) -> int:
    merges = store.merges_with_subjects(run)
    if as_json:
        print(json.dumps(merges, indent=2))
        return 0
    table = Table(title=f"run {run}: {len(merges)} topics merged away, most similar first")
    for column in ("similarity", "method", "dropped", "kept"):
        table.add_column(column, justify="right" if column == "similarity" else "left",
                         overflow="fold", no_wrap=column == "similarity")
    for m in merges:
        table.add_row(f"{m['similarity']:.3f}", m["method"], Text(f"{m['dropped']} ({m['dropped_subject']})"),
                      Text(f"{m['kept']} ({m['kept_subject']})"))
    out.print(table)
    config = store.config_of(run)
    taxonomy = config.taxonomy if config else None
    out.print(f"thresholds of this run: embedding {taxonomy.similarity_threshold if taxonomy else '?'}, lexical "
              f"{taxonomy.lexical_threshold if taxonomy else '?'}; pairs just above the threshold are the ones to "
              "read (README: choosing the threshold)", markup=False)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from chimera.store import Store

    store = Store(args.db, read_only=True)
    if args.by:
        return _cmd_yield(store, args)
    if args.check:
        return _check(store, [args.run] if args.run else [r["name"] for r in store.runs()], as_json=args.json)
    from chimera.engine.status import status_report
    from chimera.products.label_report import figure_lines

    report = status_report(store)
    runs = list(report)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not runs:
        out.print(f"{store.shown_path}: no runs yet", markup=False)
    for name, counts in report.items():
        table = Table(title=f"run {name}", show_header=False)
        by = counts["by_status"]
        table.add_row("topics", f"{counts['topics_done']} done / {counts['topics']}")
        table.add_row("problems", str(counts["problems"]))
        for status in ("pending", "accepted", "rejected", "failed"):
            table.add_row(f"  {status}", str(by.get(status, 0)))
        table.add_row("critic disagreements", str(counts["disagreements"]))
        reviews = counts["reviews"]
        if any(reviews.values()):
            table.add_row("reviews pending", str(reviews["pending"]))
            table.add_row("  accepted by human", str(reviews["accepted"]))
            table.add_row("  rejected by human", str(reviews["rejected"]))
            table.add_row("  edited by human", str(reviews["edited"]))
            table.add_row("  sent back by human", str(reviews["sent_back"]))
        table.add_row("samples", str(counts["samples"]))
        table.add_row("  correct", str(counts["correct"]))
        table.add_row("  truncated", str(counts["truncated"]))
        table.add_row("  unlabeled", str(counts["unlabeled"]))
        for line in figure_lines(counts["labels"]):
            table.add_row("labels decided", Text(line))
        table.add_row("model calls", str(counts["calls"]))
        for outcome, n in sorted(counts["call_outcomes"].items()):
            table.add_row(f"  {outcome}", str(n))
        for group in counts["failures"]:
            table.add_row(f"failed: {group['role']} {group['outcome']}",
                          f"{group['calls']} calls" + (f": {group['message']}" if group["message"] else ""))
        table.add_row("tokens in / out", f"{counts['tokens_in']:,} / {counts['tokens_out']:,}")
        for role, usage in counts["usage"].items():
            cost = f", ${usage['cost_usd']:.4f}" if usage["cost_usd"] is not None else ""
            batched = f", {usage['batched_calls']} batched" if usage["batched_calls"] else ""
            table.add_row(f"  {role}", f"{usage['calls']} calls{batched}, {usage['cached_share']:.0%} of input from "
                                       f"cache{cost}")
        for batch in counts["batches"]:
            table.add_row(f"batch in flight: {batch['role']}", Text(
                f"{batch['provider_id'] or '(being sent)'}: {batch['items']} requests, {batch['state']}, "
                f"{batch['age_s']:.0f}s old"))
        for reason in counts["rejection_reasons"]:
            table.add_row("rejected or failed because", f"{reason['reason']} ({reason['count']})")
        for line in shortfall_lines(counts["shortfalls"]):
            table.add_row("stage 1 shortfall", Text(line))
        out.print(table)
        if "workers" in counts:
            _print_workers(counts["workers"], counts["expired_leases"])
    return 0


def _print_workers(workers: list[dict], expired: list[dict]) -> None:
    table = Table(title="workers", show_header=True)
    for column in ("worker", "host", "pid", "topics held", "last heartbeat"):
        table.add_column(column)
    for worker in workers:
        seen = "stopped" if worker["stopped"] else f"{worker['heartbeat_age_s']:.0f} s ago"
        table.add_row(Text(worker["id"]), Text(worker["host"] or ""), str(worker["pid"]), str(worker["topics_held"]),
                      seen)
    out.print(table)
    for lease in expired:
        out.print(Text(f"expired lease: topic {lease['topic_id']} ({lease['subject']} / {lease['topic']}) of worker "
                       f"{lease['worker']}, ran out {lease['expired_s']:.0f} s ago; the next worker to look takes it"))


def _check(store, runs: list[str], *, as_json: bool) -> int:
    found = {run: {name: ids for name, ids in store.consistency(run).items() if ids} for run in runs}
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        for run, problems in found.items():
            if not problems:
                out.print(f"run {run}: consistent ({len(store.CONSISTENCY_CHECKS)} checks)", markup=False)
            for name, ids in problems.items():
                out.print(f"run {run}: {len(ids)} {name}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}",
                          markup=False)
    return 1 if any(found.values()) else 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from chimera.config import load_config
    from chimera.products.offline_grading import Pair, grade_json, grade_pairs, judge_report, labelled_report, read_pairs

    if args.jsonl:
        pairs = list(read_pairs(Path(args.jsonl), labelled=args.labelled))
    elif args.labelled:
        raise ChimeraError("--labelled goes with --jsonl FILE (pairs with a \"match\" field)")
    elif args.reference is not None and args.response is not None:
        pairs = [Pair(args.reference, args.response, args.problem)]
    else:
        raise ChimeraError("grade needs --reference and --response, or --jsonl FILE")
    config = load_config(args.config) if args.config else None
    judge = not args.no_judge and not (args.labelled and config is None)
    verdicts: list[dict[str, bool | None]] | None = [] if args.labelled and judge and config is not None else None
    grades = asyncio.run(grade_pairs(pairs, config=config, judge=judge, verdicts=verdicts))
    if not args.labelled:
        sys.stdout.write("".join(grade_json(g) + "\n" for g in grades))
        return 0
    report: dict[str, dict[str, Any]] = dict(labelled_report(pairs, grades))
    if verdicts is not None:
        report["judge"] = judge_report(pairs, grades, verdicts)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    for axis in ("subject", "method", "part", "all"):
        table = Table(title=f"agreement with the labels, by {axis}" if axis != "all" else "all pairs")
        for column in (axis, "pairs", "decided", "right when decided", "false +", "false -"):
            table.add_column(column, justify="left" if column == axis else "right")
        for key, row in report[axis].items():
            share = "-" if row["decided_share"] is None else f"{row['decided']} ({row['decided_share']:.0%})"
            right = "-" if row["right_when_decided"] is None else f"{row['right_when_decided']:.1%}"
            table.add_row(Text(key), str(row["pairs"]), share, right, str(row["false_positives"]),
                          str(row["false_negatives"]))
        out.print(table)
    if "judge" in report:
        from chimera.products.label_report import figure_lines

        for line in figure_lines(report["judge"]):
            out.print(Text(f"labels decided, {line}"))
        for key, row in report["judge"].items():
            if row.get("judge_right") is not None:
                out.print(Text(f"judge against the human labels, {key}: right {row['judge_right']:.1%}, "
                               f"false + {row['judge_false_positives']}, false - {row['judge_false_negatives']}"))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from chimera.evals.throughput_bench import PRESETS, BenchSpec, describe, parse_pairs, run_bench, scaled

    # A preset fills the knobs; a flag given beside it wins.
    spec = scaled(PRESETS[args.scale]() if args.scale else BenchSpec(),
                  problems=args.problems, budget=args.budget, problems_per_topic=args.problems_per_topic,
                  latency=parse_pairs(args.latency) if args.latency else None, jitter=args.jitter,
                  capacity=args.capacity, faults=parse_pairs(args.faults) if args.faults else None,
                  trajectory_words=args.trajectory_words, subjects=args.subjects, topics=args.topics,
                  draft_variety=args.draft_variety, rss_every_s=args.rss_every,
                  finished_db=args.finished_db or None, restart=False if args.no_restart else None,
                  baseline=False if args.no_baseline else None)
    err.print(describe(spec) + " ...", markup=False)
    if args.workers > 1 and not args.db:
        raise ChimeraError("--workers needs --db postgresql://... (several processes share one PostgreSQL database)")
    if args.db and not is_postgres_url(args.db):
        raise ChimeraError(f"--db {args.db}: give a postgresql:// URL (the SQLite figures are measured anyway)")
    result = run_bench(spec, Path(args.out) if args.out else None, postgres=args.db, workers=args.workers)
    table = Table(title="chimera bench", show_header=False)
    pipeline = result["pipeline"]
    rows = [
        ("calls / seconds", f"{pipeline['calls']} in {pipeline['seconds']} s"),
        ("in flight / budget", f"{pipeline['mean_in_flight']} / {spec.budget} = {pipeline['in_flight_ratio']}"),
        ("requests/s / Little's law ideal",
         f"{pipeline['requests_per_s']} / {pipeline['ideal_requests_per_s']} = {pipeline['throughput_ratio']}"),
        ("orchestration CPU per call", f"{pipeline['cpu_ms_per_call']} ms"),
        ("checkpoint bytes per sample", f"{pipeline['checkpoint_bytes_per_sample']:,} "
                                        f"({pipeline['checkpoint_to_sample_ratio']}x the sample's {pipeline['sample_bytes']:,})"),
        ("dataset bytes per sample", f"{pipeline['dataset_bytes_per_sample']:,}"),
        ("peak RSS", f"{pipeline['peak_rss_mb']} MB"),
        ("problems by status", json.dumps(pipeline["problems_by_status"])),
        ("near-duplicates rejected", f"{pipeline['near_duplicates']} ({pipeline['near_duplicate_rate']:.1%} of "
                                     "the problems)"),
        ("call outcomes", json.dumps(pipeline["call_outcomes"])),
    ]
    if "rss" in result:
        rss = result["rss"]
        series = ", ".join(f"{p['t_s']:g}s {p['rss_mb']:g}" for p in rss["series"][:: max(1, len(rss["series"]) // 12)])
        rows += [("RSS peak / final / at a tenth of the run",
                  f"{rss['peak_mb']} / {rss['final_mb']} / {rss['at_tenth_mb']} MB (peak {rss['peak_over_tenth']}x "
                  f"the tenth, at {rss['at_tenth_t_s']} s)"),
                 ("RSS series (s, MB)", series)]
    if "bytes" in result:
        split = result["bytes"]
        rows.append(("database bytes per sample: dataset / checkpoints / kept replies",
                     f"{split['total_per_sample']:,} = {split['dataset_tables_per_sample']:,} + "
                     f"{split['checkpoints_per_sample']:,} + {split['kept_replies_per_sample']:,} (file "
                     f"{split['file_bytes'] / max(1, split['samples']):,.0f}, free pages included)"))
    for name, timed in result.get("commands", {}).items():
        rows.append((f"chimera {name.replace('_', ' --split ')} on the finished database",
                     f"{timed['seconds']} s, peak RSS {timed['peak_rss_mb']} MB"))
    if "baseline" in result:
        base = result["baseline"]
        rows += [("baseline (openai client, no graph)", f"{base['cpu_ms_per_call']} ms/call, in flight "
                                                         f"{base['mean_in_flight']} ({base['in_flight_ratio']})"),
                 ("CPU overhead ratio", f"{result['overhead_ratio']}x")]
    if "restart" in result:
        rows.append(("restart to full budget", f"{result['restart']['seconds_to_full_budget']} s"))
    if "postgres" in result:
        pg = result["postgres"]
        rows += [("PostgreSQL: orchestration CPU per call", f"{pg['cpu_ms_per_call']} ms (SQLite "
                                                           f"{pipeline['cpu_ms_per_call']} ms)"),
                 ("PostgreSQL: in flight / budget, 1 process", f"{pg['in_flight_ratio']} (SQLite "
                                                               f"{pipeline['in_flight_ratio']})"),
                 ("PostgreSQL: dataset / checkpoint bytes per sample",
                  f"{pg['dataset_bytes_per_sample']:,} / {pg['checkpoint_bytes_per_sample']:,}")]
        if "processes" in pg:
            many = pg["processes"]
            rows.append((f"PostgreSQL: in flight / budget, {many['workers']} processes",
                         f"{many['mean_in_flight']} / {many['budget']} = {many['in_flight_ratio']} "
                         f"({many['samples']} samples in {many['seconds']} s)"))
        takeover = pg["takeover"]
        rows.append(("PostgreSQL: a killed worker's topics taken over / calling again",
                     f"{takeover['seconds_until_taken_over']} / {takeover['seconds_until_running_again']} s after "
                     f"SIGKILL (lease {takeover['lease_s']} s, {takeover['topics_held_by_the_killed_worker']} topics)"))
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)
    if args.out:
        err.print(f"results written to {args.out}")
    return 0


def _cmd_serve_solver(args: argparse.Namespace) -> int:
    import shlex

    from chimera.tools.vllm_launcher import ServerProcess, ServeSpec, card_settings, describe, solver_config_block

    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    tensor_parallel, max_model_len = card_settings(args.model, tensor_parallel=args.tensor_parallel_size,
                                                   max_model_len=args.max_model_len)
    spec = ServeSpec(model=args.model, served_name=args.served_model_name, host=args.host, port=args.port,
                     tensor_parallel=tensor_parallel, pipeline_parallel=args.pipeline_parallel_size,
                     data_parallel=args.data_parallel_size, reasoning_parser=args.reasoning_parser or None,
                     max_model_len=max_model_len, extra=extra, vllm=shlex.split(args.vllm))
    print(describe(spec))
    if args.dry_run:
        return 0
    server = ServerProcess(spec, log=Path(args.log) if args.log else None)
    try:
        err.print(f"waiting for {spec.base_url} ...")
        try:
            server.wait_healthy(args.timeout)
        except RuntimeError as error:
            raise ChimeraError(str(error).splitlines()[0]) from None
        err.print("ready; add this to your run config under models (Ctrl-C stops the server):")
        print(solver_config_block(spec), flush=True)
        server.process.wait()
        raise ChimeraError(f"vLLM exited with {server.process.returncode}")
    except KeyboardInterrupt:
        err.print("stopping vLLM ...")
        return 0
    finally:
        server.stop()


def _cmd_init(args: argparse.Namespace) -> int:
    """Write the example configs (and `workers/`, the job files for PostgreSQL workers that postgres.yaml points
    to) into a folder, never over a file that is already there (unless --force)."""
    from importlib import resources

    folder = Path(args.dir)
    shipped = resources.files("chimera.examples")
    examples = sorted((p.name, p) for p in shipped.iterdir() if p.name.endswith(".yaml"))
    workers = shipped / "workers"
    if workers.is_dir():
        examples += sorted((f"workers/{p.name}", p) for p in workers.iterdir() if p.is_file())
    clashes = [name for name, _ in examples if os.path.lexists(folder / name)]  # a dangling link is a clash too
    if clashes and not args.force:
        raise ChimeraError(f"{folder}: already holds {', '.join(clashes)}; choose another folder or pass --force")
    folder.mkdir(parents=True, exist_ok=True)
    for name, example in examples:
        target = folder / name
        if target.parent != folder and not target.parent.is_dir():
            target.parent.mkdir()
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if args.force else os.O_EXCL)
        try:
            descriptor = os.open(target, flags, 0o644)
        except OSError as error:
            raise ChimeraError(f"{target}: cannot write it ({error.strerror}"
                               f"{'; it is a symbolic link' if target.is_symlink() else ''})") from None
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(example.read_text(encoding="utf-8"))
    err.print(f"wrote {', '.join(name for name, _ in examples)} to {folder}; start with: "
              f"chimera run {folder / 'quickstart.yaml'}", markup=False)
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from chimera.config import SimSettings, load_config
    from chimera.engine.session import simulator

    settings, seed = SimSettings(), args.seed
    if args.config:
        config = load_config(args.config)
        settings, seed = config.sim, config.run.seed if args.seed is None else args.seed
    if args.settings:
        from pydantic import ValidationError

        try:
            settings = SimSettings.model_validate_json(args.settings)
        except ValidationError as error:
            first = error.errors()[0]
            raise ChimeraError(f"--settings: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    async def serve() -> None:
        async with simulator(settings, seed=seed or 0, host=args.host, port=args.port) as url:
            err.print(f"simulator serving at {url} (seed {seed or 0}); Ctrl-C stops it")
            await asyncio.Event().wait()

    asyncio.run(serve())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chimera", description="Synthesize verified long chain-of-thought datasets.")
    parser.add_argument("--version", action="version", version=f"chimera {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) a job from a YAML config")
    run.add_argument("config", help="YAML config file")
    run.add_argument("--db", help="use this database instead of run.db")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help=SET_HELP)
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--retry-failed", action="store_true",
                     help="take again the problem slots whose model calls ran out of retries")
    run.add_argument("--trace", metavar="FILE", help="append a JSON line of requests in flight every 0.1 s")
    run.add_argument("-v", "--verbose", action="count", default=0,
                     help="-v: progress notes and warnings as they happen; -vv: also one line per model call")
    run.add_argument("--log-file", metavar="FILE", help="also write the log here (CHIMERA_LOG_LEVEL sets the level)")
    run.add_argument("--topics-only", action="store_true",
                     help="stop after Stage 1, to review or edit the taxonomy (chimera taxonomy) before problems")
    run.set_defaults(func=run_command)

    worker = sub.add_parser("worker", help="join a run under way on a postgresql:// database: take topics under "
                                           "leases until none is left")
    worker.add_argument("config", help="the run's YAML config (its run.db a postgresql:// URL)")
    worker.add_argument("--db", help="use this database instead of run.db")
    worker.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help=SET_HELP)
    worker.add_argument("--quiet", action="store_true", help="no progress display")
    worker.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: progress notes and warnings as they happen; -vv: also one line per model call")
    worker.add_argument("--log-file", metavar="FILE", help="also write the log here (CHIMERA_LOG_LEVEL sets the level)")
    worker.add_argument("--trace", metavar="FILE", help="append a JSON line of requests in flight every 0.1 s")
    worker.set_defaults(func=worker_command)

    status = sub.add_parser("status", help="counts of a run database")
    status.add_argument("db")
    status.add_argument("--json", action="store_true")
    status.add_argument("--by", choices=["topic", "subject"], help="yield per topic or per subject")
    status.add_argument("--run", help="which run (needed when the database holds several)")
    status.add_argument("--check", action="store_true",
                        help="check that the run's rows agree with each other; exit 1 naming what does not")
    status.set_defaults(func=_cmd_status)

    add_calls_command(sub)

    taxonomy = sub.add_parser("taxonomy", help="print, write or import the topic tree of a run")
    taxonomy.add_argument("db")
    taxonomy.add_argument("--json", action="store_true", help="write the tree as JSON to stdout")
    taxonomy.add_argument("--import", dest="import_file", metavar="FILE",
                          help="make the run's topics those of FILE (the --json format); Stage 1 is then skipped")
    taxonomy.add_argument("--run", help="which run (needed when the database holds several)")
    taxonomy.add_argument("--merges", action="store_true",
                          help="list the topics merged away, with their similarity, most similar first")
    taxonomy.set_defaults(func=_cmd_taxonomy)

    add_export_command(sub)
    add_plan_command(sub)

    grade = sub.add_parser("grade", help="grade answers against references (rules first, judge if needed)")
    grade.add_argument("--reference", help="the reference answer")
    grade.add_argument("--response", help="the response to grade (a long solution is fine)")
    grade.add_argument("--jsonl", help="a file of {\"reference\", \"response\"} lines; one grade per line, in order")
    grade.add_argument("--problem", help="the problem text (names multiple-choice options, tells program output)")
    grade.add_argument("--labelled", action="store_true",
                       help="the --jsonl pairs carry a human \"match\": print agreement, decided share, false "
                            "positives and negatives by subject, method and part (rules only unless --config)")
    grade.add_argument("--json", action="store_true", help="with --labelled: the report as JSON")
    grade.add_argument("--no-judge", action="store_true", help="never call a model; report undecided instead")
    grade.add_argument("--config", help="run config whose models.labeler judges what rules cannot decide")
    grade.set_defaults(func=_cmd_grade)

    bench = sub.add_parser("bench", help="measure the pipeline against the simulator in its own process")
    bench.add_argument("--scale", choices=["paper"], help="paper: 8 subjects, 1,180 topics x 8 problems, "
                       "11,000-word trajectories, draft variety, RSS series, bytes split and the finished "
                       "database's status / export / stats timed (flags given beside it win)")
    bench.add_argument("--problems", type=int, help="default 2000 (with --topics: topics x problems per topic)")
    bench.add_argument("--budget", type=int, help="requests in flight to keep (default 256)")
    bench.add_argument("--problems-per-topic", type=int, help="default 4")
    bench.add_argument("--subjects", type=int, help="1 to 8 subjects, one per family of simulated problems")
    bench.add_argument("--topics", type=int, help="this many topics (spread over the subjects), each drafting "
                                                  "--problems-per-topic problems")
    bench.add_argument("--draft-variety", action="store_true", default=None,
                       help="the simulator's drafts vary by topic and slot (sim.draft_variety)")
    bench.add_argument("--rss-every", type=float, metavar="S", help="sample RSS every S seconds during the run")
    bench.add_argument("--finished-db", action="store_true", help="split the database's bytes per sample and time "
                       "chimera status, export --split sft and stats on it")
    bench.add_argument("--latency", help="seconds per task: solve, draft, critic, label, other (default "
                                         "solve=2,other=0.3)")
    bench.add_argument("--jitter", type=float, help="latency varies by +- this share (default 0.5)")
    bench.add_argument("--capacity", type=int, help="the simulator answers 429 past this many requests")
    bench.add_argument("--faults", help="shares of requests, e.g. 429=0.05,5xx=0.05,hang=0.01,malformed=0.03,truncate=0.02")
    bench.add_argument("--trajectory-words", type=int, help="mean words of a trajectory (default 400)")
    bench.add_argument("--no-restart", action="store_true", help="skip the kill-and-restart measurement")
    bench.add_argument("--no-baseline", action="store_true", help="skip the plain openai-client baseline")
    bench.add_argument("--out", help="write the results as JSON here")
    bench.add_argument("--db", metavar="URL", help="also measure the run on this PostgreSQL server (a database per "
                                                   "measurement is created there)")
    bench.add_argument("--workers", type=int, default=1, help="with --db: also measure this many processes on one run")
    bench.set_defaults(func=_cmd_bench)

    serve = sub.add_parser("serve-solver", help="start vLLM for the solver and print its models.solver block")
    serve.add_argument("--model", default="Qwen/Qwen3-235B-A22B-Thinking-2507", help="model name or local path")
    serve.add_argument("--served-model-name")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--tensor-parallel-size", type=int, help="GPUs per model copy within a node (default: the "
                                                                    "model card's for the paper's solver, 8; else 1)")
    serve.add_argument("--pipeline-parallel-size", type=int, default=1, help="nodes per model copy (Ray)")
    serve.add_argument("--data-parallel-size", type=int, default=1, help="model copies behind this server")
    serve.add_argument("--reasoning-parser", default="deepseek_r1", help="'' for none")
    serve.add_argument("--max-model-len", type=int, help="context length (default: the model card's for the paper's "
                                                         "solver, 262144; else vLLM's)")
    serve.add_argument("--vllm", default="vllm serve", help="the command that starts vLLM")
    serve.add_argument("--log", help="write the server's output here")
    serve.add_argument("--timeout", type=float, default=1800, help="seconds to wait for /health")
    serve.add_argument("--dry-run", action="store_true", help="print the command and stop")
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="-- then flags passed to vLLM as they are")
    serve.set_defaults(func=_cmd_serve_solver)

    from chimera.cli.evals import add_eval_parsers
    from chimera.cli.review.command import add_review_parser
    from chimera.cli.view.command import add_view_parser

    add_review_parser(sub)
    add_view_parser(sub)
    add_eval_parsers(sub)

    init = sub.add_parser("init", help="write the example configs (quickstart, review, paper, local vLLM) to a folder")
    init.add_argument("dir", nargs="?", default=".")
    init.add_argument("--force", action="store_true", help="replace example files already there")
    init.set_defaults(func=_cmd_init)

    sim = sub.add_parser("sim", help="serve the OpenAI-compatible simulator")
    sim.add_argument("--port", type=int, default=8400)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--seed", type=int)
    sim.add_argument("--config", help="take the sim section and seed from this run config")
    sim.add_argument("--settings", help="the sim section as JSON, e.g. '{\"latency_s\": 0.5}'")
    sim.set_defaults(func=_cmd_sim)
    return parser


SET_HELP = ("set a config value for this invocation, e.g. --set run.concurrency=64 --set models.solver.max_tokens="
            "65536 (the value is read as YAML; lists by index: models.critics.1.model=o4-mini)")

def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from chimera.logs import configure

        configure(getattr(args, "verbose", 0) or 0, getattr(args, "log_file", None))
        return args.func(args)
    except ChimeraError as error:
        err.print(f"chimera: error: {redact(str(error))}", markup=False, soft_wrap=True)
        return error.exit_code
    except Stopped as stopped:
        err.print(f"chimera: {stopped}; run the same command again to resume", markup=False)
        return stopped.exit_code
    except BrokenPipeError:
        return 0  # the reader (head, less) went away; nothing is wrong
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        err.print(f"chimera: error: {where}{error.strerror or error}", markup=False)
        return 1
    except sqlite3.OperationalError as error:
        err.print(f"chimera: error: {database_trouble(error)}", markup=False)
        return 1
    except EOFError:
        err.print("chimera: error: the input ended before an answer was given", markup=False)
        return 1
    except RecursionError:
        err.print("chimera: error: the input is nested too deeply to read (a config, a database value or a reply)",
                  markup=False)
        return 1
    except Exception as error:
        if connection_lost(error):
            err.print(f"chimera: error: the run's PostgreSQL database went away or refused ({redact(first_line(error))});"
                      " run the same command again to resume", markup=False)
            return 1
        if os.environ.get("CHIMERA_DEBUG"):
            raise
        err.print(f"chimera: internal error: {type(error).__name__}: {redact(first_line(error))[:300]} (set "
                  "CHIMERA_DEBUG=1 for the traceback; whatever was committed stays, so running again resumes)",
                  markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("chimera: interrupted; run the same command again to resume", markup=False)
        return 130


def database_trouble(error: sqlite3.OperationalError) -> str:
    """SQLite's own words, and what to do about them; whatever was committed stays, so a re-run resumes."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return (f"another process held a lock on the database for longer than run.lock_wait_s ({text}); "
                "close whatever holds it and run the same command again to resume")
    if "full" in text:
        return f"no space left for the database ({text}); free some and run the same command again to resume"
    return f"database error: {text}"


if __name__ == "__main__":
    sys.exit(main())
