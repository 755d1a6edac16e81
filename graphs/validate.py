"""Stage 2 for one problem: both critics vote, the decision, the near-duplicate check, and revisions.

A node re-executed after a crash reuses a critic's stored vote for the round, so no finished model call
is made twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from chimera.agents import critic, drafter
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.decisions import Decision, decide, disagreed
from chimera.graphs.deps import Deps, deps_of
from chimera.graphs.outcomes import to_outcome
from chimera.graphs.tasks import ProblemTask, Vote, next_round
from chimera.store.rows import ProblemRow
from chimera.tools.grading.references import unusable_reference

CRITICS = (0, 1)


async def critic_vote(deps: Deps, index: int, task: ProblemTask, row: ProblemRow, round_: int,
                      stored: dict[str, Any] | None) -> Vote:
    store = deps.store
    if stored is not None and "route" in stored:
        return stored["route"]  # voted before a restart: reuse, do not ask again
    client = deps.clients[f"critic{index}"]
    kept: dict[str, Any] = {"model": client.model}
    vote: Vote
    try:
        verdict = await critic.critique(
            client, subject=task["subject"], topic=task["topic"], problem=row["problem"], answer=row["answer"],
            retries=deps.parse_retries, context=deps.context(topic_id=task["topic_id"], problem_id=task["problem_id"]))
        matches, how = critic.answer_matches(row["answer"], verdict.own_answer, verdict.agrees_with_reference,
                                             row["problem"])
        vote = {"verdict": verdict.verdict, "agrees": matches}
        kept |= {**verdict.model_dump(), "own_answer_matches": matches, "match_method": how}
    except ReplyError as error:
        vote = {"verdict": "reject", "agrees": False, "unparseable": error.reason}
        kept |= {"verdict": "reject", "reasons": f"unparseable reply: {error.reason}"}
    except CallFailed as error:
        vote = {"verdict": "failed", "agrees": False, "reason": str(error)}
        kept |= {"verdict": "failed", "reasons": str(error)}
    # A failed call is not kept for reuse: a re-run asks again.
    await store.record_vote(task["problem_id"], round_=round_, critic=index,
                            vote=kept | ({} if vote["verdict"] == "failed" else {"route": vote}))
    return vote


async def validate(state: ProblemTask, *, runtime: Runtime[Deps]) -> Command:
    deps = deps_of(runtime)
    round_ = state.get("revisions", 0)
    row, stored = await deps.store.problem_with_votes(state["problem_id"], round_)
    unusable = unusable_reference(row["answer"])
    if unusable:
        return await to_outcome(deps, state, "reject", unusable)
    votes = dict(zip(CRITICS, await asyncio.gather(*(critic_vote(deps, i, state, row, round_, stored.get(i))
                                                     for i in CRITICS))))
    if disagreed(votes):
        await deps.store.mark_disagreement(state["problem_id"])
    decision = decide(votes, round_, deps.config.max_revisions)
    if decision.action == "solve" and await is_duplicate(deps, state, row):
        decision = Decision("reject", "duplicate")
    state = {**state, "votes": {str(i): v for i, v in votes.items()}}
    if decision.action in ("solve", "revise"):
        return Command(goto=Send(decision.action, state))
    return await to_outcome(deps, state, decision.action, decision.reason)


async def is_duplicate(deps: Deps, task: ProblemTask, row: ProblemRow) -> bool:
    store, index = deps.store, await deps.problem_index()
    if index is None or row["indexed"]:
        return False  # no dedup, or this problem already passed it before a restart
    # Check and insert in the index with no await between: concurrent topics cannot both pass as originals.
    placed = index.place(task["problem_id"], row["problem"])
    if placed.duplicate_of is not None:
        await store.mark_duplicate(task["problem_id"], placed.duplicate_of.key, placed.duplicate_of.similarity)
        return True
    # Shared by several workers, a displaced problem may be another worker's topic: the settling pass after the
    # topics (which always runs there) marks it, in key order over everything every worker kept.
    displaced = [] if deps.shared else [(later.key, later.similarity) for later in placed.displaced]
    await store.keep_original(task["problem_id"], displaced)
    return False


async def revise(state: ProblemTask, *, runtime: Runtime[Deps]) -> Command:
    deps = deps_of(runtime)
    round_ = state.get("revisions", 0)
    row = await deps.store.problem(state["problem_id"])
    votes = await deps.store.votes(state["problem_id"], round_)
    critiques = [f"Reviewer {i + 1} ({v['verdict']}): {v['reasons']}" for i, v in sorted(votes.items())]
    if state.get("review_note"):
        critiques.append(f"Human reviewer (takes precedence): {state['review_note']}")
    try:
        revised = await drafter.revise(
            deps.clients["drafter"], subject=state["subject"], topic=state["topic"], problem=row["problem"],
            answer=row["answer"], critiques=critiques, retries=deps.parse_retries,
            context=deps.context(topic_id=state["topic_id"], problem_id=state["problem_id"]))
    except ReplyError as error:
        return await to_outcome(deps, state, "reject", f"drafter revision unparseable: {error.reason}")
    except CallFailed as error:
        return await to_outcome(deps, state, "fail", str(error))
    await deps.store.save_revision(state["problem_id"], revision=round_ + 1, problem=revised.problem, answer=revised.answer)
    return Command(goto=Send("validate", next_round(state)))
