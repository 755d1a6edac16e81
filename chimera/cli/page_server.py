"""What the local web pages (`chimera review --web`, `chimera view`) share: who may reach them, the headers on
every response, their templates, and starting one.

Everything a page shows comes from models and is hostile, so every response carries a strict
Content-Security-Policy (no script at all, styles only by the page's nonce, no framing, forms only to this
server). On loopback there is no login, but only loopback `Host` names are served (DNS rebinding) and a POST
must come from this origin. Bound to any other address a server needs a token of 16 characters or more,
checked on every request: `?token=` once, then a cookie holding a value derived from it and named for this
server, or an `Authorization: Bearer` header.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable
from importlib import resources
from string import Template

from aiohttp import web
from aiohttp.typedefs import Middleware

from chimera.errors import ChimeraError

MIN_TOKEN_CHARS = 16
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
                    "Cache-Control": "no-store"}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def loopback_host(host_header: str) -> bool:
    """A `Host` header naming this machine's loopback (with or without a port)."""
    name = _host_name(host_header)
    return name in _LOOPBACK_NAMES or is_loopback(name.strip("[]"))


def cookie_for(token: str, page: str) -> tuple[str, str]:
    """(name, value) of a page server's login cookie: named for the page and the token, holding a value derived
    from the token (never the token itself)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    value = hmac.new(token.encode(), f"chimera {page} cookie".encode(), hashlib.sha256).hexdigest()
    return f"chimera_{page}_{digest[:12]}", value


def same_origin(request: web.Request) -> bool:
    """A POST's Origin (or, without one, its Referer) names this server as the browser reached it."""
    here = f"{request.scheme}://{request.headers.get('Host', '')}"
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == here
    referer = request.headers.get("Referer")
    return referer is not None and (referer == here or referer.startswith(here + "/"))


def content_policy(style_nonce: str) -> str:
    """No script from anywhere, the page's own style block only, no framing, forms only to this server."""
    return (f"default-src 'none'; style-src 'nonce-{style_nonce}'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


def check_token(token: str | None) -> None:
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ChimeraError(f"--token must be at least {MIN_TOKEN_CHARS} characters (a guessable token protects nothing)")


def check_binding(host: str, token: str | None, *, page: str, risk: str) -> None:
    """Beyond loopback a page needs a token: `risk` says what anyone reaching it could do."""
    if not is_loopback(host) and not token:
        raise ChimeraError(f"binding the {page} to {host} needs --token ({risk})")


def chosen_token(given: str | None, variable: str) -> str | None:
    """The token from --token or, better, from the environment variable (an argument is in the process list)."""
    if given:
        from chimera.cli.common import err

        err.print(f"note: --token is visible to other users in the process list; {variable} is not", markup=False)
    return given or os.environ.get(variable) or None


def guard(server: str, *, token: str | None, loopback_only: bool, csp: str, page: str) -> Middleware:
    """The middleware every page server runs first: host, origin and token checks, then the headers.
    `server` names it in refusals ("review server"); `page` names its cookie."""
    check_token(token)
    cookie_name, cookie_value = cookie_for(token, page) if token else ("", "")

    async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback_only and not loopback_host(request.headers.get("Host", "")):
            return web.Response(status=421, text=f"misdirected: this {server} answers only to a loopback "
                                                 "host name (127.0.0.1, localhost)\n")
        if request.method == "POST" and not same_origin(request):
            return web.Response(status=403, text="forbidden: the form did not come from this page's origin\n")
        if token is None:
            return await handler(request)
        offered = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        by_token = bool(offered) and hmac.compare_digest(offered.encode(), token.encode())
        by_cookie = hmac.compare_digest(request.cookies.get(cookie_name, "").encode(), cookie_value.encode())
        if not (by_token or by_cookie):
            return web.Response(status=403, text=f"forbidden: this {server} needs its token "
                                                 "(open the address printed at start, with ?token=...)\n")
        response = await handler(request)
        if request.query.get("token"):
            response.set_cookie(cookie_name, cookie_value, httponly=True, samesite="Strict")
        return response

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await checked(request, handler)
        except web.HTTPException as error:
            response = error
        response.headers.update({"Content-Security-Policy": csp, **SECURITY_HEADERS})
        return response

    return middleware


def template(package: str, name: str) -> Template:
    return Template(resources.files(package).joinpath("templates", name).read_text(encoding="utf-8"))


def serve_page(app: web.Application, *, host: str, port: int, token: str | None, says: str) -> None:
    """Print where the page is (`says`, then its address), then serve it until Ctrl-C."""
    address = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"{says} at {address} (Ctrl-C stops it)", flush=True)
    web.run_app(app, host=host, port=port, print=None)
