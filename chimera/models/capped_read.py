"""A body read with a cap: a reply or a batch's result file past its limit stops being read at once, so a hostile
or broken peer cannot fill the process's memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable


async def read_capped(chunks: AsyncIterator[bytes], limit: int, too_large: Callable[[], Exception]) -> bytes:
    """The whole body, or `too_large()` raised as soon as it passes `limit` bytes (nothing more is read)."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large()
        parts.append(chunk)
    return b"".join(parts)
