"""The replies a resumed run may be asked for again, and where its model calls are recorded.

A resumed run never asks a finished call again: `lookup` gives the reply kept for the request's key. Only keys
that have one are looked up in the database (their set is read once when the run starts, and grows as
calls with a reply are logged), so a call with nothing kept costs no round trip to find that out. On a database that
several workers share, a topic taken over from another worker brings the keys that worker kept (`learn`).
"""

from __future__ import annotations

from typing import Any

from chimera.store.graph_store import GraphStore


class KeptReplies:
    def __init__(self, store: GraphStore, keys: set[str]):
        self._store = store
        self._keys = keys

    @classmethod
    async def of_run(cls, store: GraphStore, run: str) -> KeptReplies:
        return cls(store, await store.kept_request_keys(run))

    async def learn(self, run: str, topic_id: str) -> None:
        """Add the keys kept for one topic's calls since the run's were read (by another worker, say)."""
        self._keys |= await self._store.kept_request_keys(run, topic_id=topic_id)

    async def log_call(self, call: dict[str, Any]) -> int:
        """Log one model call, whatever its outcome; a call that kept its reply makes its key one to look up."""
        call_id = await self._store.log_call(call)
        if call.get("reply") is not None and call.get("request_key"):
            self._keys.add(call["request_key"])
        return call_id

    async def lookup(self, request_key: str) -> tuple[int, dict[str, Any]] | None:
        if request_key not in self._keys:
            return None
        return await self._store.kept_reply(request_key)
