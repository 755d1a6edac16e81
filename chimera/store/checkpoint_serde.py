"""Checkpoints are data: read with an allowlist of the types chimera's graphs store, nothing else.

LangGraph's default deserializer calls any module and function a msgpack
object names. A run database travels between people, so a planted object in a
checkpoint must be refused, not run: strict mode admits only LangGraph's safe
types (Send, Command, Interrupt, containers, dates...), and a blocked type ends
the load with a one-line error instead of handing back its raw payload.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from langgraph.checkpoint.serde.event_hooks import register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from chimera.errors import ChimeraError


class CheckpointRefused(ChimeraError):
    """A checkpoint names an object type chimera never stores (a planted object, or another program's database)."""


_blocked = threading.local()


def _on_serde_event(event: Any) -> None:
    if isinstance(event, dict) and str(event.get("kind", "")).endswith("blocked"):
        found = getattr(_blocked, "items", None)
        if found is not None:
            found.append(f"{event.get('module')}.{event.get('name')}")


register_serde_event_listener(_on_serde_event)
# LangGraph also logs each blocked type; the refusal below is the one line a user should see.
logging.getLogger("langgraph.checkpoint.serde.jsonplus").setLevel(logging.ERROR)


WRITTEN_TYPES = ("msgpack", "null", "empty", "bytes", "bytearray")  # what LangGraph's serializer writes for chimera


class StrictSerializer(JsonPlusSerializer):
    def __init__(self) -> None:
        super().__init__(allowed_msgpack_modules=None, allowed_json_modules=None, pickle_fallback=False)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind = data[0] if isinstance(data, tuple) and data else None
        if kind not in WRITTEN_TYPES:
            raise CheckpointRefused(f"checkpoint refused: a value of type {str(kind)[:40]!r}, which chimera never writes "
                                    "(it writes msgpack only: a planted value, or a database from another program)")
        _blocked.items = []
        try:
            value = super().loads_typed(data)
        except NotImplementedError as error:
            raise CheckpointRefused(f"checkpoint refused: {error} (chimera writes msgpack only)") from None
        except Exception as error:  # noqa: BLE001 - a value that does not decode is refused, in one line
            raise CheckpointRefused(f"checkpoint refused: it does not decode ({type(error).__name__})") from None
        finally:
            found, _blocked.items = _blocked.items, None
        if found:
            raise CheckpointRefused(f"checkpoint refused: it holds a {found[0]} object, which chimera never stores "
                                    "(a planted object, or a database from another program)")
        return value
