"""`chimera review DB --web`: a local page to list pending items, read one with its math rendered, and decide.

Everything shown comes from models and is hostile: math becomes sanitized MathML
on the server (no script, no CDN), every other field is escaped, and every
response carries a strict Content-Security-Policy (no script at all, no framing,
forms post only here). On loopback there is no login, but only loopback `Host`
names are served (DNS rebinding) and a POST must come from this origin. Bound to
any other address the server needs a token of 16 characters or more, checked on
every request (query `?token=` once, then a cookie holding a value derived from
it, named for this server; or an `Authorization: Bearer` header). The reviewer
is the server's `--reviewer`, never a form field; a page decides only its run's items.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress
import secrets
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from pydantic import ValidationError

from chimera.cli.review.render import math_html, visible, yes_no
from chimera.errors import ChimeraError
from chimera.review.decision import ReviewDecision
from chimera.store import Store
from chimera.store.nonblocking import AsyncStore
from chimera.store.rows import ReviewRow

MIN_TOKEN_CHARS = 16
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def cookie_for(token: str) -> tuple[str, str]:
    """(name, value) of this server's login cookie: named for the token, holding a value derived from it."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    value = hmac.new(token.encode(), b"chimera review cookie", hashlib.sha256).hexdigest()
    return f"chimera_review_{digest[:12]}", value


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _loopback_host(host_header: str) -> bool:
    name = _host_name(host_header)
    return name in _LOOPBACK_NAMES or is_loopback(name.strip("[]"))


def _template(name: str) -> Template:
    return Template(resources.files("chimera.cli.review").joinpath("templates", name).read_text(encoding="utf-8"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def build_app(db: str, *, run: str, token: str | None, reviewer: str, loopback_only: bool = True) -> web.Application:
    """`loopback_only`: the server is bound to loopback and serves only loopback Host names."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ChimeraError(f"--token must be at least {MIN_TOKEN_CHARS} characters (a guessable token protects nothing)")
    # Each store call on the store's own thread: on PostgreSQL it is a round trip, which must not hold the loop.
    store = AsyncStore(Store(db, create=False))
    shown_db = store.sync.shown_path  # a URL's password is never on the page
    nonce = secrets.token_urlsafe(16)  # ties form posts to a page this server rendered
    style_nonce = secrets.token_urlsafe(16)
    csp = (f"default-src 'none'; style-src 'nonce-{style_nonce}'; img-src 'self'; form-action 'self'; "
           "frame-ancestors 'none'; base-uri 'none'")
    cookie_name, cookie_value = cookie_for(token) if token else ("", "")
    page, listing, detail = _template("page.html"), _template("list.html"), _template("item.html")

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await _checked(request, handler)
        except web.HTTPException as error:
            response = error
        response.headers.update({"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
                                 "Cache-Control": "no-store"})
        return response

    async def _checked(request: web.Request, handler: Any) -> web.StreamResponse:
        if loopback_only and not _loopback_host(request.headers.get("Host", "")):
            return web.Response(status=421, text="misdirected: this review server answers only to a loopback "
                                                 "host name (127.0.0.1, localhost)\n")
        if request.method == "POST" and not _same_origin(request):
            return web.Response(status=403, text="forbidden: the form did not come from this page's origin\n")
        if token is None:
            return await handler(request)
        offered = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        by_token = bool(offered) and hmac.compare_digest(offered.encode(), token.encode())
        by_cookie = hmac.compare_digest(request.cookies.get(cookie_name, "").encode(), cookie_value.encode())
        if not (by_token or by_cookie):
            return web.Response(status=403, text="forbidden: this review server needs its token "
                                                 "(open the address printed at start, with ?token=...)\n")
        response = await handler(request)
        if request.query.get("token"):
            response.set_cookie(cookie_name, cookie_value, httponly=True, samesite="Strict")
        return response

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
            subject_options=_options(sorted({i["subject"] for i in everything}), subject, "every subject"),
            reason_options=_options(sorted({r for i in everything for r in i["reasons"]}), reason, "every reason"))
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

    app = web.Application(middlewares=[guard], client_max_size=1024 ** 2)
    app.add_routes([web.get("/", index), web.get("/item/{id}", show), web.post("/item/{id}", decide)])
    app.on_cleanup.append(lambda _: _close(store))
    return app


async def _close(store: AsyncStore) -> None:
    await store.aclose()


def _same_origin(request: web.Request) -> bool:
    """A POST's Origin (or, without one, its Referer) names this server as the browser reached it."""
    here = f"{request.scheme}://{request.headers.get('Host', '')}"
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == here
    referer = request.headers.get("Referer")
    return referer is not None and (referer == here or referer.startswith(here + "/"))


def _options(values: list[str], chosen: str | None, everything: str) -> str:
    options = [f'<option value="">{everything}</option>']
    options += [f'<option value="{html.escape(v, quote=True)}"{" selected" if v == chosen else ""}>'
                f"{html.escape(v)}</option>" for v in values]
    return "".join(options)


def serve(db: str, *, run: str, host: str, port: int, token: str | None, reviewer: str) -> None:
    if not is_loopback(host) and not token:
        raise ChimeraError(f"binding the review page to {host} needs --token (anyone who can reach it could decide)")
    app = build_app(db, run=run, token=token, reviewer=reviewer, loopback_only=is_loopback(host))
    address = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"review page for run {run} at {address} (Ctrl-C stops it)", flush=True)
    web.run_app(app, host=host, port=port, print=None)
