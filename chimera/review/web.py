"""`chimera review DB --web`: a local page to list pending items, read one with its math rendered, and decide.

Math is converted to MathML on the server (latex2mathml), which browsers render
natively: no script and no CDN. On loopback there is no login; bound to any
other address the server needs a token, checked on every request (query
`?token=` once, then a cookie; or an `Authorization: Bearer` header).
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import secrets
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from chimera.errors import ChimeraError
from chimera.review.decision import ReviewDecision
from chimera.review.render import math_html, yes_no
from chimera.store import Store

COOKIE = "chimera_review_token"


def _template(name: str) -> Template:
    return Template(resources.files("chimera.review").joinpath("templates", name).read_text(encoding="utf-8"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def build_app(db: str, *, run: str, token: str | None, reviewer: str) -> web.Application:
    store = Store(db, create=False)
    nonce = secrets.token_urlsafe(16)  # ties form posts to a page this server rendered
    page, listing, detail = _template("page.html"), _template("list.html"), _template("item.html")

    @web.middleware
    async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
        if token is None:
            return await handler(request)
        offered = (request.query.get("token") or request.cookies.get(COOKIE)
                   or request.headers.get("Authorization", "").removeprefix("Bearer ").strip())
        if not offered or not hmac.compare_digest(offered.encode(), token.encode()):
            return web.Response(status=403, text="forbidden: this review server needs its token "
                                                 "(open the address printed at start, with ?token=...)\n")
        response = await handler(request)
        if request.query.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    def render(title: str, body: str) -> web.Response:
        pending = store.review_counts(run)["pending"]
        return web.Response(content_type="text/html", text=page.substitute(
            title=html.escape(title), run=html.escape(run), db=html.escape(db), pending=pending, body=body))

    async def index(request: web.Request) -> web.Response:
        subject, reason = request.query.get("subject") or None, request.query.get("reason") or None
        everything = store.reviews(run)
        items = store.reviews(run, subject=subject, reason=reason)
        rows = "\n".join(
            f'<tr data-id="{html.escape(i["id"])}"><td><a href="/item/{html.escape(i["id"])}">'
            f'{html.escape(i["id"])}</a></td><td>{html.escape(i["subject"])} / {html.escape(i["topic"])}</td>'
            f'<td>{"".join(f"<span class=tag>{html.escape(r)}</span>" for r in i["reasons"])}</td>'
            f'<td>{"accepted" if i["proposed"] == "accept" else "rejected"}</td></tr>' for i in items
        ) or '<tr><td colspan="4" class="muted">nothing waits for review</td></tr>'
        done = request.query.get("done")
        flash = f'<p class="flash" id="flash">{html.escape(done)}</p>' if done else ""
        body = listing.substitute(
            flash=flash, rows=rows, db=html.escape(db),
            subject_options=_options(sorted({i["subject"] for i in everything}), subject, "every subject"),
            reason_options=_options(sorted({r for i in everything for r in i["reasons"]}), reason, "every reason"))
        return render("pending", body)

    def item_page(item: dict[str, Any], error: str = "") -> web.Response:
        p = item["payload"]
        critic_rows = "".join(
            f"<tr><td>{v['critic'] + 1} ({html.escape(str(v.get('model') or '?'))})</td>"
            f"<td>{html.escape(str(v.get('verdict')))}</td><td>{math_html(str(v.get('own_answer') or '-'))}</td>"
            f"<td>{yes_no(v.get('matches_reference'))}</td><td>{math_html(str(v.get('reasons') or ''))}</td></tr>"
            for v in p.get("critics", []))
        solver_table = ""
        if p.get("solver"):
            solver_rows = "".join(
                f"<tr><td>{s['sample']}</td><td>{math_html(str(s.get('answer') or '-'))}</td>"
                f"<td>{'truncated' if s.get('truncated') else yes_no(s.get('correct'))}</td>"
                f"<td>{html.escape(str(s.get('grade') or '-'))}</td></tr>" for s in p["solver"])
            solver_table = ("<h3>Solver</h3><table><thead><tr><th>sample</th><th>answer</th><th>correct</th>"
                            f"<th>graded by</th></tr></thead><tbody>{solver_rows}</tbody></table>")
        proposed = "accepted" if p["proposed"] == "accept" else "rejected"
        if p.get("rejection_reason"):
            proposed += f" ({p['rejection_reason']})"
        body = detail.substitute(
            error=f'<p class="error" id="error">{html.escape(error)}</p>' if error else "",
            id=html.escape(item["id"]), subject=html.escape(p["subject"]), topic=html.escape(p["topic"]),
            round=p["round"], proposed_text=html.escape(proposed),
            reason_tags="".join(f"<span class=tag>{html.escape(r)}</span>" for r in item["reasons"]),
            problem_html=math_html(p["problem"]), answer_html=math_html(p["answer"]),
            problem_text=html.escape(p["problem"]), answer_text=html.escape(p["answer"], quote=True),
            critic_rows=critic_rows, solver_table=solver_table, nonce=nonce, reviewer=html.escape(reviewer))
        return render(item["id"], body)

    def pending_item(request: web.Request) -> dict[str, Any]:
        item = store.review(request.match_info["id"])
        if item is None:
            raise web.HTTPNotFound(text=f"no review item {request.match_info['id']}\n")
        return item

    async def show(request: web.Request) -> web.Response:
        return item_page(pending_item(request))

    async def decide(request: web.Request) -> web.Response:
        item = pending_item(request)
        form = await request.post()
        if not hmac.compare_digest(str(form.get("nonce", "")).encode(), nonce.encode()):
            return web.Response(status=403, text="forbidden: the form did not come from this review server\n")
        action = str(form.get("action", ""))
        fields: dict[str, Any] = {"action": action, "note": str(form.get("note", "")),
                                  "reviewer": str(form.get("reviewer", "")).strip()}
        if action == "edit":
            problem, answer = str(form.get("problem", "")).strip(), str(form.get("answer", "")).strip()
            fields["problem"] = problem if problem != item["payload"]["problem"].strip() else None
            fields["answer"] = answer if answer != item["payload"]["answer"].strip() else None
        try:
            decision = ReviewDecision.model_validate(fields)
            store.decide_review(item["id"], decision.model_dump())
        except ValidationError as error:
            return item_page(item, error.errors()[0]["msg"].removeprefix("Value error, "))
        except ChimeraError as error:
            return item_page(item, str(error))
        raise web.HTTPSeeOther("/?" + urlencode({"done": f"{item['id']}: {action} by {decision.reviewer}"}))

    app = web.Application(middlewares=[require_token])
    app.add_routes([web.get("/", index), web.get("/item/{id}", show), web.post("/item/{id}", decide)])
    app.on_cleanup.append(lambda _: _close(store))
    return app


async def _close(store: Store) -> None:
    store.close()


def _options(values: list[str], chosen: str | None, everything: str) -> str:
    options = [f'<option value="">{everything}</option>']
    options += [f'<option value="{html.escape(v, quote=True)}"{" selected" if v == chosen else ""}>'
                f"{html.escape(v)}</option>" for v in values]
    return "".join(options)


def serve(db: str, *, run: str, host: str, port: int, token: str | None, reviewer: str) -> None:
    if not is_loopback(host) and not token:
        raise ChimeraError(f"binding the review page to {host} needs --token (anyone who can reach it could decide)")
    app = build_app(db, run=run, token=token, reviewer=reviewer)
    address = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"review page for run {run} at {address} (Ctrl-C stops it)", flush=True)
    web.run_app(app, host=host, port=port, print=None)
