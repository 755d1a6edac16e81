"""`chimera view DB`: the command line of the dataset page."""

from __future__ import annotations

import argparse
from typing import Any


def add_view_parser(sub: Any) -> None:
    from chimera.cli.view.web import DEFAULT_PORT

    view = sub.add_parser(
        "view", help="serve a local, read-only page to browse a run's problems, votes and samples",
        description="List every problem (filter by subject, topic, status, sample label, label method, or text) "
                    "and open one to read it with its math rendered, its critics' votes and each sample.")
    view.add_argument("db", help="the run's database (a file, or a postgresql:// URL)")
    view.add_argument("--run", help="which run (needed when the database holds several)")
    view.add_argument("--host", default="127.0.0.1", help="address to bind (beyond loopback, --token is needed)")
    view.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    view.add_argument("--token", help="required on every request; needed to bind beyond loopback. Prefer "
                                      "CHIMERA_VIEW_TOKEN: an argument is visible to every user in the process list")
    view.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from chimera.cli.common import only_run
    from chimera.cli.page_server import chosen_token
    from chimera.cli.view.web import serve
    from chimera.store import Store

    store = Store(args.db, read_only=True)
    try:
        run = only_run(store, args.run)
    finally:
        store.close()
    serve(args.db, run=run, host=args.host, port=args.port, token=chosen_token(args.token, "CHIMERA_VIEW_TOKEN"))
    return 0
