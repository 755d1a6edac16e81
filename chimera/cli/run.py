"""`chimera run`: the pipeline with its progress display, then the summary and an exit status that says
whether the run did its job (see chimera.engine.health)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable, Coroutine
from typing import IO, Any, TypeVar

from chimera.cli.common import err
from chimera.errors import Stopped

T = TypeVar("T")


def run_command(args: argparse.Namespace) -> int:
    from chimera.config import load_config

    config = load_config(args.config, args.set)
    if args.db:
        config.run.db = args.db
    return run_with_progress(config, quiet=args.quiet, trace_path=args.trace, topics_only=args.topics_only,
                             retry_failed=args.retry_failed, retry_command=f"chimera run {args.config} --retry-failed")


def _progress_hook(display: Any, trace_path: str | None) -> tuple[Callable[[Any], None], IO[str] | None]:
    """What each progress tick does: redraw the display and, with a trace file, append a line to it."""
    trace = open(trace_path, "a", encoding="utf-8") if trace_path else None  # noqa: SIM115 - open for the run

    def hook(monitor: Any) -> None:
        display.update(monitor)
        if trace is not None:
            trace.write(json.dumps({"t": time.time(), "in_flight": monitor.endpoints.in_flight,
                                    "limit": monitor.endpoints.limit, "stage": monitor.stage}) + "\n")
            trace.flush()
    return hook, trace


def worker_command(args: argparse.Namespace) -> int:
    """`chimera worker`: this process's share of a run on PostgreSQL, then what it did."""
    from chimera.cli.progress import ProgressDisplay
    from chimera.config import load_config
    from chimera.engine.runner import run_pipeline

    config = load_config(args.config, args.set)
    if args.db:
        config.run.db = args.db
    display = ProgressDisplay(err, quiet=args.quiet)
    hook, trace = _progress_hook(display, args.trace)
    with display:
        summary = until_stopped(lambda stop: run_pipeline(config, on_progress=hook, worker_only=True, stop=stop,
                                                          progress_every_s=0.1 if trace else 0.5))
    counts = summary.counts
    err.print(f"worker {summary.worker}: finished {summary.topics_run} topics in {summary.seconds:.1f}s; nothing is left "
              f"to take. Run {summary.name} so far: {counts['topics_done']} of {counts['topics']} topics done, "
              f"{counts['samples']} samples", markup=False)
    return 0


def pipeline_with_progress(config: Any, *, quiet: bool = False, trace_path: str | None = None,
                           **options: Any) -> Any:
    """`run_pipeline` under the progress display and SIGTERM's graceful stop; returns its RunSummary."""
    from chimera.cli.progress import ProgressDisplay
    from chimera.engine.runner import run_pipeline

    display = ProgressDisplay(err, quiet=quiet)
    hook, trace = _progress_hook(display, trace_path)
    with display:
        return until_stopped(lambda stop: run_pipeline(config, on_progress=hook, stop=stop,
                                                       progress_every_s=0.1 if trace else 0.5, **options))


def run_with_progress(config: Any, *, quiet: bool = False, trace_path: str | None = None, topics_only: bool = False,
                      retry_failed: bool = False, retry_command: str = "chimera run CONFIG --retry-failed") -> int:
    """Run (or resume) a job with the progress display, then print its summary; the exit status says
    whether it did its job (see chimera.engine.health)."""
    from chimera.engine.health import assess, earlier_failures, failure_groups, role_calls

    summary = pipeline_with_progress(config, quiet=quiet, trace_path=trace_path, topics_only=topics_only,
                                     retry_failed=retry_failed)
    counts = summary.counts
    by_status = counts["by_status"]
    share = summary.checkpoint_bytes / summary.db_bytes if summary.db_bytes else 0
    err.print(
        f"run {summary.name}: {counts['samples']} samples ({counts['correct']} correct, {counts['truncated']} truncated) "
        f"from {counts['problems']} problems: {by_status.get('accepted', 0)} accepted, "
        f"{by_status.get('rejected', 0)} rejected, {by_status.get('failed', 0)} failed; "
        f"{counts['calls']} model calls, {counts['tokens_in'] + counts['tokens_out']:,} tokens; "
        f"{summary.seconds:.1f}s; database {summary.db_bytes / 1e6:.2f} MB ({share:.0%} checkpoints) at {summary.db}"
    )
    if summary.reused_calls:
        err.print(f"{summary.reused_calls} calls finished before the restart were answered from their kept replies, "
                  "not asked again")
    overall = summary.labels.get("all")
    if overall and overall["labels"]:
        err.print(f"labels of {overall['labels']} samples: rules decided {overall['rules_share']:.1%}, "
                  f"the judge {overall['judge_share'] or 0:.1%}"
                  + (f"; on {overall['audited']} audited labels the judge agreed with the rules "
                     f"{overall['judge_agrees_with_rules']:.1%}" if overall["audited"] else "")
                  + " (chimera status shows them by subject)")
    if summary.unlabeled:
        err.print(f"{summary.unlabeled} samples are unlabeled (no rule decided and the judge did not)")
    for line in shortfall_lines(summary.shortfalls)[:8]:
        err.print(f"stage 1 shortfall: {line}")
    groups = failure_groups(summary.call_rows)  # this invocation's: a resumed run's old failures are not news
    if groups:
        err.print("failed calls: " + "; ".join(f"{g['role']} {g['outcome']} x{g['calls']}"
                                               + (f" ({g['message'][:160]})" if g["message"] else "")
                                               for g in groups[:6]))
    earlier = earlier_failures(counts["call_outcomes"], summary.call_rows)
    if earlier:
        err.print(f"earlier runs: {earlier} failed call{'s' if earlier != 1 else ''} (chimera status lists them)")
    pending = counts["reviews"]["pending"]
    if pending:
        err.print(f"{pending} problem{'s wait' if pending != 1 else ' waits'} for review: chimera review {summary.db}")
    health = assess(counts, role_calls(summary.call_rows), retry_command=retry_command,
                    shortfalls=summary.shortfalls)
    for line in health.lines:
        err.print(f"chimera: {line}")
    return health.exit_code


def until_stopped(pipeline: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run `pipeline` on a new event loop; SIGTERM (what Kubernetes, Slurm and systemd send) sets its stop
    event, and the pipeline winds down (see run_pipeline) into `Stopped`. Ctrl-C cancels it at once."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            return await pipeline(stop)
        except asyncio.CancelledError:
            if stop.is_set():
                raise Stopped("stopped by SIGTERM: the calls in flight finished or were left for the resume, "
                              "and this process's topics were released") from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
    return asyncio.run(main())


def shortfall_lines(shortfalls: list[dict]) -> list[str]:
    """Subjects short of their target first, then the expander calls that came back short or failed."""
    ranked = sorted(shortfalls, key=lambda s: (s["subfield"] != "", s["subject"], s["subfield"]))
    return [f"{s['subject']}{' / ' + s['subfield'] if s['subfield'] else ''}: {s['got']} of {s['target']} "
            f"({s['detail']})" for s in ranked]
