"""`chimera view DB`: the server of the read-only dataset page.

`/` lists a run's problems a page at a time under the filters of its GET query; `/problem/{id}` shows one
problem with its critics' votes, reviews and samples. The database is opened read-only, and each store call
runs on the store's own thread (on PostgreSQL it is a round trip, which must not hold the loop); rendering
model text runs off the loop too. Who may reach the page is page_server's rule, the review page's too.
"""

from __future__ import annotations

import asyncio
import html
import secrets

from aiohttp import web

from chimera.cli.page_server import check_binding, check_token, content_policy, guard, is_loopback, serve_page, template
from chimera.cli.safe_text import visible
from chimera.cli.view.pages import list_body, problem_body
from chimera.cli.view.query import BadQuery, read_query
from chimera.store import Store
from chimera.store.nonblocking import AsyncStore

DEFAULT_PORT = 8766  # beside the review page's 8765 and the simulator's 8400


def build_app(db: str, *, run: str, token: str | None, loopback_only: bool = True) -> web.Application:
    """`loopback_only`: the server is bound to loopback and serves only loopback Host names."""
    check_token(token)
    store = AsyncStore(Store(db, read_only=True))
    shown_db = store.sync.shown_path  # a URL's password is never on the page
    style_nonce = secrets.token_urlsafe(16)
    checked = guard("view server", token=token, loopback_only=loopback_only, csp=content_policy(style_nonce),
                    page="view")
    layout = template("chimera.cli.view", "page.html")

    def render(title: str, body: str) -> web.Response:
        return web.Response(content_type="text/html", text=layout.substitute(
            title=html.escape(visible(title)), run=html.escape(visible(run)), db=html.escape(visible(shown_db)),
            body=body, style_nonce=style_nonce))

    async def index(request: web.Request) -> web.Response:
        try:
            query = read_query(request.query)
        except BadQuery as error:
            return web.Response(status=400, text=f"bad request: {error}\n")
        total, rows = await store.run(Store.problem_page, run, query.wanted, limit=query.per, offset=query.offset)
        choices = await store.run(Store.filter_choices, run, query.wanted.subject)
        return render("problems", list_body(query, total, rows, choices))

    async def problem(request: web.Request) -> web.Response:
        problem_id = request.match_info["id"]
        record = await store.run(Store.problem_record, run, problem_id)
        if record is None:
            raise web.HTTPNotFound(text=f"no problem {visible(problem_id)[:200]} in run {visible(run)}\n")
        # Model text is rendered off the loop: one long, hostile field cannot hold every other request.
        return render(problem_id, await asyncio.to_thread(problem_body, record))

    async def close(_: web.Application) -> None:
        await store.aclose()

    app = web.Application(middlewares=[checked], client_max_size=64 * 1024)
    app.add_routes([web.get("/", index), web.get("/problem/{id}", problem)])
    app.on_cleanup.append(close)
    return app


def serve(db: str, *, run: str, host: str, port: int, token: str | None) -> None:
    check_binding(host, token, page="dataset page", risk="anyone who can reach it could read the dataset")
    app = build_app(db, run=run, token=token, loopback_only=is_loopback(host))
    serve_page(app, host=host, port=port, token=token, says=f"dataset page for run {run}")
