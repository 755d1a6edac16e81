"""Problems and their critics' votes (one row per problem, round and critic)."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from chimera.errors import ChimeraError
from chimera.store.base import StoreBase
from chimera.store.rows import ProblemRow
from chimera.store.schema import PROBLEM_STATUSES


class Problems(StoreBase):
    def problem(self, problem_id: str) -> ProblemRow:
        """A problem the graph already holds the id of; a missing one is a broken run, said by name."""
        row = self._get("problems", problem_id)
        if row is None:
            raise ChimeraError(f"problem {problem_id}: not in the run's database")
        return cast(ProblemRow, row)

    def save_draft(self, *, id: str, run: str, topic_id: str, subject: str, topic: str, slot: int,
                   problem: str, answer: str) -> None:
        now = time.time()
        self._upsert("problems", {
            "id": id, "run": run, "topic_id": topic_id, "subject": subject, "topic": topic, "slot": slot,
            "status": "pending", "problem": problem, "answer": answer,
            "draft_problem": problem, "draft_answer": answer, "revisions": 0,
            "critic_verdicts": None, "rejection_reason": None, "created_at": now, "updated_at": now,
        })

    def record_failed_draft(self, *, id: str, run: str, topic_id: str, subject: str, topic: str,
                            slot: int, status: str, reason: str) -> None:
        """A slot with no usable draft: empty text, ended `rejected` or `failed` with its reason."""
        self.save_draft(id=id, run=run, topic_id=topic_id, subject=subject, topic=topic, slot=slot,
                        problem="", answer="")
        self.finish_problem(id, status, reason)

    def drafts_before(self, topic_id: str, slot: int) -> list[str]:
        """First drafts of a topic's earlier slots, in slot order (the drafter of `slot` sees these)."""
        return [row[0] for row in self.conn.execute(
            "select draft_problem from problems where topic_id = ? and slot < ? and draft_problem != '' "
            "order by slot", [topic_id, slot])]

    def save_revision(self, problem_id: str, *, revision: int, problem: str, answer: str) -> None:
        self._update("problems", problem_id,
                     {"problem": problem, "answer": answer, "revisions": revision, "updated_at": time.time()})

    def record_vote(self, problem_id: str, *, round_: int, critic: int, vote: dict[str, Any]) -> None:
        # Keyed by round and critic, so a re-executed critic overwrites its own vote.
        upsert = ("insert into votes (problem_id, round, critic, vote) values (?, ?, ?, ?) "
                  "on conflict (problem_id, round, critic) do update set vote = excluded.vote")
        args = [problem_id, round_, critic, json.dumps(vote)]
        if self.backend == "postgres":  # one statement, one round trip (SQLite has no writing CTE)
            self.conn.execute(f"with voted as ({upsert} returning problem_id) update problems set updated_at = ? "
                              "where id = (select problem_id from voted)", [*args, time.time()])
            return
        with self.transaction():
            self.conn.execute(upsert, args)
            self.conn.execute("update problems set updated_at = ? where id = ?", [time.time(), problem_id])

    def problem_with_votes(self, problem_id: str, round_: int) -> tuple[ProblemRow, dict[int, dict[str, Any]]]:
        """The problem and its critics' votes of one round, in one call (what a validation round starts from)."""
        return self.problem(problem_id), self.votes(problem_id, round_)

    def votes(self, problem_id: str, round_: int | None = None) -> dict[int, dict[str, Any]]:
        """Critic index -> vote, for one round."""
        rows = self.conn.execute("select critic, vote from votes where problem_id = ? and round = ?",
                                 [problem_id, round_ or 0])
        return {critic: json.loads(vote) for critic, vote in rows}

    def all_votes(self, problem_id: str) -> dict[int, dict[int, dict[str, Any]]]:
        """Round -> critic index -> vote, every round the problem went through."""
        votes: dict[int, dict[int, dict[str, Any]]] = {}
        for round_, critic, vote in self.conn.execute(
                "select round, critic, vote from votes where problem_id = ? order by round, critic", [problem_id]):
            votes.setdefault(round_, {})[critic] = json.loads(vote)
        return votes

    def finish_problem(self, problem_id: str, status: str, reason: str | None = None, *,
                       pass_rate: float | None = None) -> None:
        """A problem's outcome (and, for a solved one, its pass rate, in the same transaction); one marked a
        near-duplicate stays rejected, whatever its thread ends with. A rejected problem leaves the duplicate
        index: no problem may be rejected as its twin (the settling pass revives those that were)."""
        assert status in PROBLEM_STATUSES
        with self.transaction():
            if pass_rate is not None:
                self.conn.execute("update samples set pass_rate = ? where problem_id = ?", [pass_rate, problem_id])
            self.conn.execute(
                "update problems set status = case when duplicate_of is null then ? else 'rejected' end, "
                "rejection_reason = case when duplicate_of is null then ? else 'duplicate' end, updated_at = ?, "
                "indexed = case when duplicate_of is null and ? <> 'rejected' then indexed else 0 end"
                + (", pass_rate = ?" if pass_rate is not None else "") + " where id = ?",
                [status, reason, time.time(), status, *([pass_rate] if pass_rate is not None else []), problem_id])

    def reopen_failed(self, run: str) -> list[dict[str, Any]]:
        """Failed slots of a run, set back to pending with their retry count raised; returns them."""
        failed = self._rows("problems", "run = ? and status = 'failed'", [run], order_by="topic_id, slot")
        with self.conn:
            self.conn.execute("update problems set status = 'pending', rejection_reason = null, "
                            "retries = coalesce(retries, 0) + 1 where run = ? and status = 'failed'", [run])
        return [{**row, "retries": (row["retries"] or 0) + 1} for row in failed]

    def pending_retries(self, run: str) -> list[dict[str, Any]]:
        """Slots reopened by an earlier --retry-failed that have not finished (a retry cut short)."""
        return self._rows("problems", "run = ? and status = 'pending' and retries > 0", [run], order_by="topic_id, slot")

    def topics_with_problems(self, run: str) -> set[str]:
        return {row[0] for row in self.conn.execute("select distinct topic_id from problems where run = ?", [run])}

    def mark_disagreement(self, problem_id: str) -> None:
        self._update("problems", problem_id, {"disagreement": 1})

    def mark_indexed(self, problem_id: str) -> None:
        self._update("problems", problem_id, {"indexed": 1})

    def mark_duplicate(self, problem_id: str, duplicate_of: str, similarity: float, *, displaced: bool = False) -> None:
        """Near-duplicate of a kept problem: rejected now if it had already ended, and whenever it ends.
        `displaced`: it had been kept, and a problem with a smaller id that arrived later took its place."""
        with self.conn:
            self.conn.execute(
                "update problems set duplicate_of = ?, similarity = ?, indexed = 0, displaced = ?, "
                "status = case when status = 'pending' then status else 'rejected' end, "
                "rejection_reason = case when status = 'pending' then rejection_reason else 'duplicate' end "
                "where id = ?", [duplicate_of, round(similarity, 4), int(displaced), problem_id])

    def keep_original(self, problem_id: str, displaced: list[tuple[str, float]]) -> None:
        """`problem_id` passed the duplicate check; each (id, similarity) in `displaced`, kept before it arrived,
        now duplicates it (the smaller id wins either way). One transaction: a restart sees all or none."""
        with self.transaction():
            self.mark_indexed(problem_id)
            for later, similarity in displaced:
                self.mark_duplicate(later, problem_id, similarity, displaced=True)

    def any_displaced(self, run: str) -> bool:
        """Whether a duplicate decision may no longer be what key order gives: a kept problem was displaced by a
        later arrival, or a duplicate's twin left the index (it was rejected afterwards, or displaced itself)."""
        return self.conn.execute(
            "select 1 from problems where run = ? and displaced = 1 union all select 1 from problems p "
            "left join problems o on o.id = p.duplicate_of where p.run = ? and p.duplicate_of is not null "
            "and coalesce(o.indexed, 0) = 0 limit 1", [run, run]).fetchone() is not None

    def settled_duplicates(self, run: str) -> None:
        with self.conn:
            self.conn.execute("update problems set displaced = 0 where run = ? and displaced = 1", [run])

    def duplicate_candidates(self, run: str) -> list[dict[str, Any]]:
        """Problems that reached the duplicate check (kept, or marked a duplicate), with what decides them."""
        rows = self.conn.execute(
            "select p.id, p.problem, p.indexed, p.duplicate_of, p.status, exists (select 1 from reviews r "
            "where r.problem_id = p.id and r.applied_at is null) from problems p where p.run = ? "
            "and (p.indexed = 1 or p.duplicate_of is not null)", [run]).fetchall()
        return [dict(zip(("id", "problem", "indexed", "duplicate_of", "status", "in_review"), row)) for row in rows]

    def revive_duplicate(self, problem_id: str) -> None:
        """A problem marked a duplicate of one that did not stay kept: back to pending, for a retry thread that
        reuses its votes and samples."""
        with self.conn:
            self.conn.execute("update problems set duplicate_of = null, similarity = null, status = 'pending', "
                              "rejection_reason = null, retries = coalesce(retries, 0) + 1 where id = ?", [problem_id])

    def indexed_problems(self, run: str) -> list[tuple[str, str]]:
        """Problems that passed the duplicate check, in the order the index first saw them."""
        return [(row[0], row[1]) for row in self.conn.execute(
            "select id, problem from problems where run = ? and indexed = 1 order by updated_at, id", [run])]

    def set_pass_rate(self, problem_id: str, pass_rate: float | None) -> None:
        with self.transaction():
            self._update("problems", problem_id, {"pass_rate": pass_rate})
            self.conn.execute("update samples set pass_rate = ? where problem_id = ?", [pass_rate, problem_id])

    def problems(self, run: str | None = None) -> list[ProblemRow]:
        where, args = ("run = ?", [run]) if run else (None, [])
        return [cast(ProblemRow, row) for row in self._rows("problems", where, args, order_by="subject, topic, slot")]
