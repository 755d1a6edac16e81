"""Drafting one problem slot: shared by the topic graph and the retry of a failed slot."""

from __future__ import annotations

from typing import Any

from chimera.agents import drafter
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.deps import Deps


async def draft_slot(deps: Deps, *, problem_id: str, topic_id: str, subject: str, topic: str, slot: int) -> bool:
    """Draft slot `slot` of a topic, seeing the first drafts of the slots before it; store the draft, or
    the slot as rejected (unparseable reply) or failed (the call ran out of retries). True when drafted."""
    store = deps.store
    ids: dict[str, Any] = dict(id=problem_id, run=deps.run, topic_id=topic_id, subject=subject, topic=topic, slot=slot)
    try:
        drafted = await drafter.draft(deps.clients["drafter"], subject=subject, topic=topic,
                                      earlier=await store.drafts_before(topic_id, slot), retries=deps.parse_retries,
                                      context=deps.context(topic_id=topic_id, problem_id=problem_id))
    except ReplyError as error:
        await store.record_failed_draft(**ids, status="rejected", reason=f"drafter reply unparseable: {error.reason}")
        return False
    except CallFailed as error:
        await store.record_failed_draft(**ids, status="failed", reason=str(error))
        return False
    await store.save_draft(**ids, problem=drafted.problem, answer=drafted.answer)
    return True
