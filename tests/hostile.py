"""A hostile OpenAI-compatible endpoint for tests: the real simulator behind a proxy that can rewrite,
inflate, drip or poison the replies of chosen calls. It runs in its own thread, on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from chimera.config import SimSettings
from chimera.sim import server as sim_server

# (request body, the simulator's reply) -> a response to send instead, or None to pass the reply on
Mischief = Callable[[dict[str, Any], dict[str, Any], web.Request], Awaitable[web.StreamResponse | None]]
# (request body) -> a response to send before the simulator is asked, or None to ask it
Arrival = Callable[[dict[str, Any]], Awaitable[web.StreamResponse | None]]


async def passthrough(body: dict[str, Any], reply: dict[str, Any], request: web.Request) -> None:
    """No mischief: every reply passes on as the simulator gave it (the proxy still records each request)."""
    return None


class HostileEndpoint:
    def __init__(self, mischief: Mischief = passthrough, sim: SimSettings | None = None, *, seed: int = 0,
                 arrival: Arrival | None = None):
        self.mischief = mischief
        self.sim = sim
        self.seed = seed
        self.arrival = arrival
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> HostileEndpoint:
        self._thread.start()
        assert self._ready.wait(10), "the hostile endpoint did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sim_runner, sim_url, _ = await sim_server.start(self.sim, seed=self.seed)
        session = aiohttp.ClientSession()

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.json() if request.can_read_body else {}
            self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers),
                                  "query": dict(request.query)})
            early = await self.arrival(body) if self.arrival is not None and request.method == "POST" else None
            if early is not None:
                return early
            async with session.request(request.method, sim_url + request.path.removeprefix("/v1"),
                                       json=body if request.method == "POST" else None) as upstream:
                reply = await upstream.json()
            instead = await self.mischief(body, reply, request) if request.method == "POST" else None
            return instead if isinstance(instead, web.StreamResponse) else web.json_response(reply)

        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        self._ready.set()
        await self._stop.wait()
        await session.close()
        await runner.cleanup()
        await sim_runner.cleanup()


def is_solve(body: dict[str, Any]) -> bool:
    return "response_format" not in body and "input" not in body


def echo_error(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": {"message": text}}), content_type="application/json")
