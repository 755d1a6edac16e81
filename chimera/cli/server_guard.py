"""The LangGraph server (`langgraph dev` on this project's `langgraph.json`) answers only its own user.

LangGraph's server sends `Access-Control-Allow-Origin: *` unless told otherwise, so any web page the user
opens could drive the graphs with the user's keys and write into the run's database. `langgraph.json` limits
CORS to loopback origins, and this middleware (in the server's `http.app`, chimera.cli.studio) refuses, before
any route: a request whose Host is not a loopback name (DNS rebinding), a state-changing request from any
origin but the server's own (another local web app included) or marked cross-site by the browser (a form or a
no-cors fetch needs no preflight), and a body over 1 MB or without a declared length.
To open the server deliberately, name the origins in CHIMERA_SERVER_ORIGINS and the hosts in
CHIMERA_SERVER_HOSTS (comma-separated), and add the origins to `http.cors.allow_origins` in langgraph.json.
"""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.responses import PlainTextResponse

LOOPBACK_HOST = re.compile(r"^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$", re.I)
LOOPBACK_ORIGIN = re.compile(r"^https?://(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$", re.I)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_BODY_BYTES = 1 << 20


def _listed(name: str) -> set[str]:
    return {item.strip().lower() for item in os.environ.get(name, "").split(",") if item.strip()}


def refusal(method: str, headers: dict[str, str]) -> str | None:
    """Why a request is refused, or None. Pure: headers by lower-case name."""
    host = headers.get("host", "")
    if not (LOOPBACK_HOST.match(host) or host.lower() in _listed("CHIMERA_SERVER_HOSTS")):
        return f"host {host!r} is not this machine's loopback name"
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return "request body over 1 MB"
    if "transfer-encoding" in headers:
        return "a body without a declared length (chunked); send a Content-Length"
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    own = {f"http://{host}".lower(), f"https://{host}".lower()}
    if origin is not None and origin.lower() not in own | _listed("CHIMERA_SERVER_ORIGINS"):
        return f"a state-changing request from another origin ({origin})"
    if headers.get("sec-fetch-site") in ("cross-site", "same-site") and origin is None or \
            headers.get("sec-fetch-site") == "cross-site" and origin is not None and origin.lower() not in \
            _listed("CHIMERA_SERVER_ORIGINS"):
        return "a state-changing request marked cross-site by the browser"
    return None


class OwnUserOnly:
    """ASGI middleware applying `refusal` to every HTTP request."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            why = refusal(scope.get("method", "GET"), headers)
            if why is not None:
                await PlainTextResponse(f"forbidden: {why}\n", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

