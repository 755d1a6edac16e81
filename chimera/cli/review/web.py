"""`chimera review DB --web`: a local page to list pending items, read one with its math rendered, and decide.

Everything shown comes from models and is hostile: math becomes sanitized MathML
on the server (no script, no CDN), every other field is escaped, and every
response carries a strict Content-Security-Policy. Who may reach the page (loopback
Host names, same-origin posts, the token beyond loopback) is page_server's rule,
shared with `chimera view`. The reviewer is the server's `--reviewer`, never a
form field; a page decides only its run's items.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import secrets
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from pydantic import ValidationError

from chimera.cli.page_server import check_binding, check_token, content_policy, guard, is_loopback, serve_page, template
from chimera.cli.safe_text import math_html, select_options, visible, yes_no
from chimera.errors import ChimeraError
from chimera.review.decision import ReviewDecision
from chimera.store import Store
from chimera.store.nonblocking import AsyncStore
from chimera.store.rows import ReviewRow


def build_app(db: str, *, run: str, token: str | None, reviewer: str, loopback_only: bool = True) -> web.Application:
    """`loopback_only`: the server is bound to loopback and serves only loopback Host names."""
    check_token(token)
    # Each store call on the store's own thread: on PostgreSQL it is a round trip, which must not hold the loop.
    store = AsyncStore(Store(db, create=False))
    shown_db = store.sync.shown_path  # a URL's password is never on the page
    nonce = secrets.token_urlsafe(16)  # ties form posts to a page this server rendered
    style_nonce = secrets.token_urlsafe(16)
    checked = guard("review server", token=token, loopback_only=loopback_only, csp=content_policy(style_nonce),
                    page="review")
    page, listing, detail = (template("chimera.cli.review", name) for name in ("page.html", "list.html", "item.html"))

    async def render(title: str, body: str) -> web.Response:
        pending = (await store.run(Store.review_counts, run))["pending"]
        return web.Response(content_type="text/html", text=page.substitute(
            title=html.escape(title), run=html.escape(run), db=html.escape(shown_db), pending=pending, body=body,
            style_nonce=style_nonce))

    async def index(request: web.Request) -> web.Response:
        subject, reason = request.query.get("subject") or None, request.query.get("reason") or None
        everything = await store.run(Store.reviews, run)
        items = await store.run(Store.reviews, run, subject=subject, reason=reason)
        text = lambda value: html.escape(visible(str(value)), quote=True)  # noqa: E731
        rows = "\n".join(
            f'<tr data-id="{text(i["id"])}"><td><a href="/item/{quote(i["id"], safe="@")}">'
            f'{text(i["id"])}</a></td><td>{text(i["subject"])} / {text(i["topic"])}</td>'
            f'<td>{"".join(f"<span class=tag>{text(r)}</span>" for r in i["reasons"])}</td>'
            f'<td>{"accepted" if i["proposed"] == "accept" else "rejected"}</td></tr>' for i in items
        ) or '<tr><td colspan="4" class="muted">nothing waits for review</td></tr>'
        done = request.query.get("done")
        flash = f'<p class="flash" id="flash">{html.escape(visible(done))}</p>' if done else ""
        body = listing.substitute(
            flash=flash, rows=rows, db=html.escape(shown_db),
            subject_options=select_options(sorted({i["subject"] for i in everything}), subject, "every subject"),
            reason_options=select_options(sorted({r for i in everything for r in i["reasons"]}), reason, "every reason"))
        return await render("pending", body)

    async def item_page(item: ReviewRow, error: str = "") -> web.Response:
        # Rendering model text is bounded but not free: it runs off the event loop, so one hostile
        # field cannot hold every other reviewer's page.
        body = await asyncio.to_thread(item_body, item, error)
        return await render(item["id"], body)

    def item_body(item: ReviewRow, error: str) -> str:
        p = item["payload"]
        text = lambda value: html.escape(visible(str(value)))  # noqa: E731
        critic_rows = "".join(
            f"<tr><td>{int(v['critic']) + 1} ({text(v.get('model') or '?')})</td>"
            f"<td>{text(v.get('verdict'))}</td><td>{math_html(str(v.get('own_answer') or '-'))}</td>"
            f"<td>{yes_no(v.get('matches_reference'))}</td><td>{math_html(str(v.get('reasons') or ''))}</td></tr>"
            for v in p.get("critics", []))
        solver_table = ""
        if p.get("solver"):
            solver_rows = "".join(
                f"<tr><td>{text(s['sample'])}</td><td>{math_html(str(s.get('answer') or '-'))}</td>"
                f"<td>{'truncated' if s.get('truncated') else yes_no(s.get('correct'))}</td>"
                f"<td>{text(s.get('grade') or '-')}</td></tr>" for s in p["solver"])
            solver_table = ("<h3>Solver</h3><table><thead><tr><th>sample</th><th>answer</th><th>correct</th>"
                            f"<th>graded by</th></tr></thead><tbody>{solver_rows}</tbody></table>")
        proposed = "accepted" if p["proposed"] == "accept" else "rejected"
        if p.get("rejection_reason"):
            proposed += f" ({p['rejection_reason']})"
        return detail.substitute(
            error=f'<p class="error" id="error">{text(error)}</p>' if error else "",
            id=text(item["id"]), subject=text(p["subject"]), topic=text(p["topic"]),
            round=text(p["round"]), proposed_text=text(proposed),
            reason_tags="".join(f"<span class=tag>{text(r)}</span>" for r in item["reasons"]),
            problem_html=math_html(str(p["problem"])), answer_html=math_html(str(p["answer"])),
            problem_text=html.escape(str(p["problem"])), answer_text=html.escape(str(p["answer"]), quote=True),
            critic_rows=critic_rows, solver_table=solver_table, nonce=nonce, reviewer=text(reviewer))

    async def pending_item(request: web.Request) -> ReviewRow:
        item = await store.run(Store.review, request.match_info["id"])
        if item is None or item.get("run") != run:
            raise web.HTTPNotFound(text=f"no review item {visible(request.match_info['id'])} in run {run}\n")
        return item

    async def show(request: web.Request) -> web.Response:
        return await item_page(await pending_item(request))

    async def decide(request: web.Request) -> web.Response:
        item = await pending_item(request)
        form = await request.post()
        if not hmac.compare_digest(str(form.get("nonce", "")).encode(), nonce.encode()):
            return web.Response(status=403, text="forbidden: the form did not come from this review server\n")
        if any(not isinstance(value, str) for value in form.values()):
            return web.Response(status=400, text="bad request: every form field must be text, not a file\n")
        action = str(form.get("action", ""))
        fields: dict[str, Any] = {"action": action, "note": str(form.get("note", "")), "reviewer": reviewer}
        if action == "edit":
            problem, answer = str(form.get("problem", "")).strip(), str(form.get("answer", "")).strip()
            fields["problem"] = problem if problem != item["payload"]["problem"].strip() else None
            fields["answer"] = answer if answer != item["payload"]["answer"].strip() else None
        try:
            decision = ReviewDecision.model_validate(fields)
            await store.run(Store.decide_review, item["id"], decision.model_dump())
        except ValidationError as error:
            return await item_page(item, error.errors()[0]["msg"].removeprefix("Value error, "))
        except ChimeraError as error:
            return await item_page(item, str(error))
        raise web.HTTPSeeOther("/?" + urlencode({"done": f"{item['id']}: {action} by {decision.reviewer}"}))

    app = web.Application(middlewares=[checked], client_max_size=1024 ** 2)
    app.add_routes([web.get("/", index), web.get("/item/{id}", show), web.post("/item/{id}", decide)])
    app.on_cleanup.append(lambda _: _close(store))
    return app


async def _close(store: AsyncStore) -> None:
    await store.aclose()


def serve(db: str, *, run: str, host: str, port: int, token: str | None, reviewer: str) -> None:
    check_binding(host, token, page="review page", risk="anyone who can reach it could decide")
    app = build_app(db, run=run, token=token, reviewer=reviewer, loopback_only=is_loopback(host))
    serve_page(app, host=host, port=port, token=token, says=f"review page for run {run}")
