"""The replies a resumed run may be asked for again, and where its model calls are recorded.

A resumed run never asks a finished call again: `lookup` gives the reply kept for the request's key. Only keys
that have one are looked up in the database (their set is read once when the run starts, and grows as
calls with a reply are logged), so a call with nothing kept costs no round trip to find that out. On a database that
several workers share, a topic taken over from another worker brings the keys that worker kept (`learn`).

The keys are held as 16-byte digests, grouped by topic, and a topic's are dropped with its replies once it is
done (`forget_topic`), so what is held stays in proportion to the topics in flight, not to the calls of the run.
A digest is only a filter: the reply is read by the full key, so a collision would cost one round trip, never a
wrong reply.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chimera.store.graph_store import GraphStore


class KeptReplies:
    def __init__(self, store: GraphStore, keys: dict[str | None, set[str]]):
        self._store = store
        self._digests: set[bytes] = set()
        self._by_topic: dict[str | None, list[bytes]] = {}
        for topic_id, topic_keys in keys.items():
            for key in topic_keys:
                self._hold(topic_id, key)

    @classmethod
    async def of_run(cls, store: GraphStore, run: str) -> KeptReplies:
        return cls(store, await store.kept_request_keys_by_topic(run))

    def __len__(self) -> int:
        return len(self._digests)

    def _hold(self, topic_id: str | None, key: str) -> None:
        digest = _digest(key)
        if digest not in self._digests:
            self._digests.add(digest)
            self._by_topic.setdefault(topic_id, []).append(digest)

    async def learn(self, run: str, topic_id: str) -> None:
        """Add the keys kept for one topic's calls since the run's were read (by another worker, say)."""
        for key in await self._store.kept_request_keys(run, topic_id=topic_id):
            self._hold(topic_id, key)

    def forget_topic(self, topic_id: str | None) -> None:
        """Drop the keys of a topic whose kept replies were dropped (None: Stage 1's calls)."""
        for digest in self._by_topic.pop(topic_id, []):
            self._digests.discard(digest)

    async def log_call(self, call: dict[str, Any]) -> int:
        """Log one model call, whatever its outcome; a call that kept its reply makes its key one to look up."""
        call_id = await self._store.log_call(call)
        if call.get("reply") is not None and call.get("request_key"):
            self._hold(call.get("topic_id"), call["request_key"])
        return call_id

    async def lookup(self, request_key: str) -> tuple[int, dict[str, Any]] | None:
        if _digest(request_key) not in self._digests:
            return None
        return await self._store.kept_reply(request_key)


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()
