"""`chimera calls`: a run's model calls, newest first, filtered by role, outcome, topic, problem or model, so
what went wrong with an endpoint is seen without writing SQL."""

from __future__ import annotations

import argparse
import datetime
import json

from rich.table import Table

from chimera.cli.common import only_run, out


def add_calls_command(sub: argparse._SubParsersAction) -> None:
    calls = sub.add_parser("calls", help="list a run's model calls (role, outcome, latency, tokens), newest first")
    calls.add_argument("db")
    calls.add_argument("--run", help="which run (needed when the database holds several)")
    calls.add_argument("--role", help="only this role (drafter, critic0, critic1, solver, labeler, expander, ...)")
    calls.add_argument("--outcome", help="only this outcome (ok, truncated, timeout, connection_error, http_503, ...)")
    calls.add_argument("--failed", action="store_true", help="only calls that got no usable reply")
    calls.add_argument("--topic", dest="topic_id", help="only calls for this topic id")
    calls.add_argument("--problem", dest="problem_id", help="only calls for this problem id")
    calls.add_argument("--model", help="only calls to this model")
    calls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    calls.add_argument("--json", action="store_true", help="one JSON object per line")
    calls.set_defaults(func=calls_command)


def calls_command(args: argparse.Namespace) -> int:
    from chimera.store import Store
    from chimera.store.rows import CALL_FILTERS

    store = Store(args.db, read_only=True)
    run = only_run(store, args.run)
    filters = {name: getattr(args, name) for name in CALL_FILTERS if getattr(args, name)}
    rows = store.calls(run, filters=filters, failed_only=args.failed, limit=max(1, args.limit))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    table = Table(title=f"run {run}: {len(rows)} call{'s' if len(rows) != 1 else ''}, newest first",
                  title_justify="left")
    for heading in ("id", "time", "role", "outcome", "latency", "tokens in/out", "problem", "endpoint", "error"):
        table.add_column(heading, overflow="fold")
    for row in rows:
        when = datetime.datetime.fromtimestamp(row["created_at"]).strftime("%H:%M:%S")
        table.add_row(str(row["id"]), when, row["role"], row["outcome"],
                      f"{row['latency_s']:.2f}s" if row["latency_s"] is not None else "",
                      f"{row['tokens_in']}/{row['tokens_out']}", row["problem_id"] or row["topic_id"] or "",
                      row["base_url"] or "", (row["error"] or "")[:200])
    out.print(table)
    return 0
