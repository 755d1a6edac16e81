"""`chimera review`: list, decide, walk, serve the page, and resume the run with the decisions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from chimera.errors import ChimeraError
from chimera.store.rows import ReviewRow


def add_review_parser(sub: Any) -> None:
    review = sub.add_parser(
        "review", help="decide on problems waiting for a human (review.policy), then resume the run",
        description="With no ITEM and no flag: walk the pending items in the terminal. Decisions are stored at "
                    "once; `--resume` (or `chimera run CONFIG`) continues the run from them.")
    review.add_argument("db")
    review.add_argument("item", nargs="?", help="a review item id (see --list)")
    review.add_argument("--run", help="which run (needed when the database holds several)")
    review.add_argument("--list", action="store_true", help="list pending items")
    review.add_argument("--json", action="store_true", help="with --list: full items as JSON")
    review.add_argument("--all", action="store_true", help="with --list: decided items too")
    review.add_argument("--subject", help="only items of this subject")
    review.add_argument("--reason", help="only items waiting for this reason (e.g. 'critics disagreed')")
    decide = review.add_mutually_exclusive_group()
    decide.add_argument("--accept", action="store_true")
    decide.add_argument("--reject", action="store_true")
    decide.add_argument("--revise", action="store_true", help="send back to the drafter with --note")
    decide.add_argument("--edit-answer", metavar="ANSWER", help="correct the reference answer (back to the critics)")
    decide.add_argument("--edit-problem", metavar="PROBLEM", help="correct the problem text (back to the critics)")
    review.add_argument("--note", default="", help="why: stored with the decision")
    review.add_argument("--reviewer", help="who decides (default: $CHIMERA_REVIEWER or the login name)")
    review.add_argument("--resume", action="store_true", help="continue the run, applying every stored decision")
    review.add_argument("--quiet", action="store_true", help="with --resume: no progress display")
    review.add_argument("--config", help="with --resume: the config whose endpoints and key variables to use "
                                         "(without it, the database's stored config, after you confirm it)")
    review.add_argument("--yes", action="store_true",
                        help="with --resume: use the database's stored endpoints and key variables without asking")
    review.add_argument("--web", action="store_true", help="serve the review page")
    review.add_argument("--host", default="127.0.0.1", help="with --web: address to bind")
    review.add_argument("--port", type=int, default=8765, help="with --web: port")
    review.add_argument("--token", help="with --web: required on every request; needed to bind beyond loopback. "
                                        "Prefer CHIMERA_REVIEW_TOKEN: an argument is visible to every user in the "
                                        "process list")
    review.set_defaults(func=cmd_review)


def cmd_review(args: argparse.Namespace) -> int:
    from chimera.cli.common import err, only_run, out
    from chimera.review.decision import default_reviewer
    from chimera.store import Store

    store = Store(args.db, create=False, read_only=bool(args.list) and not args.resume and not args.web)
    run = only_run(store, args.run)
    reviewer = args.reviewer or default_reviewer()
    if args.resume:
        return _resume(store, run, args)
    if args.web:
        from chimera.cli.page_server import chosen_token
        from chimera.cli.review.web import serve

        token = chosen_token(args.token, "CHIMERA_REVIEW_TOKEN")
        serve(args.db, run=run, host=args.host, port=args.port, token=token, reviewer=reviewer)
        return 0
    decision = _decision_from_flags(args, reviewer)
    if decision is not None:
        if not args.item:
            raise ChimeraError("name the item to decide (ids: chimera review DB --list)")
        store.decide_review(args.item, decision)
        err.print(f"{args.item}: {decision['action']} by {reviewer}; continue the run with: "
                  f"chimera review {args.db} --resume", markup=False)
        return 0
    items = store.reviews(run, state="all" if args.all else "pending", subject=args.subject, reason=args.reason)
    if args.item:
        items = [i for i in items if i["id"] == args.item]
        if not items:
            raise ChimeraError(f"no pending review item {args.item!r} (list them with: chimera review {args.db} --list)")
    if args.list:
        _print_list(items, as_json=args.json, out=out)
        return 0
    if not items:
        err.print("nothing waits for review", markup=False)
        return 0
    from chimera.cli.review.terminal import Prompter, walk

    taken = walk(store, items, out, Prompter(out), reviewer)
    left = len(store.reviews(run))
    done = ", ".join(f"{n} {action}" for action, n in sorted(taken.items())) or "no decisions"
    err.print(f"{done}; {left} still pending" + (f"; continue the run with: chimera review {args.db} --resume"
                                                if taken else ""), markup=False)
    return 0


def _decision_from_flags(args: argparse.Namespace, reviewer: str) -> dict[str, Any] | None:
    from chimera.review.decision import ReviewDecision

    if args.accept:
        fields: dict[str, Any] = {"action": "accept"}
    elif args.reject:
        fields = {"action": "reject"}
    elif args.revise:
        fields = {"action": "revise"}
    elif args.edit_answer is not None or args.edit_problem is not None:
        fields = {"action": "edit", "answer": args.edit_answer, "problem": args.edit_problem}
    else:
        return None
    try:
        return ReviewDecision(reviewer=reviewer, note=args.note, **fields).model_dump()
    except ValidationError as error:
        raise ChimeraError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _print_list(items: list[ReviewRow], *, as_json: bool, out: Any) -> None:
    if as_json:
        print(json.dumps([{key: item[key] for key in ("id", "subject", "topic", "reasons", "proposed", "action",
                                                      "reviewer", "note", "payload")} for item in items], indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{len(items)} review item{'s' if len(items) != 1 else ''}")
    for column in ("id", "subject / topic", "why", "would be", "decision"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(item["id"], f"{item['subject']} / {item['topic']}", ", ".join(item["reasons"]),
                      {"accept": "accepted", "reject": "rejected"}[item["proposed"]],
                      f"{item['action']} by {item['reviewer']}" if item["action"] else "pending")
    out.print(table)


def _resume(store: Any, run: str, args: argparse.Namespace) -> int:
    """Continue the run. Endpoints and key variables come from a config file the user names; a database's own
    stored config is used only once the user has seen where it sends requests and which variables it reads
    (`--yes` for scripts), since a database handed over by someone else could name any URL and any variable."""
    from chimera.cli.consent import consented_config
    from chimera.cli.run import run_with_progress
    from chimera.config import load_config

    try:
        stored = None if args.config else store.config_of(run)  # your own config needs none read from the database
    finally:
        store.close()
    if args.config:
        config = load_config(args.config)
        if config.run.name != run:
            raise ChimeraError(f"{args.config}: run.name is {config.run.name!r}, but the database holds run {run!r}")
    else:
        config = consented_config(stored, source=f"{args.db} (run {run})", yes=args.yes, doing="resume the run")
    config.run.db = args.db
    return run_with_progress(config, quiet=args.quiet)
