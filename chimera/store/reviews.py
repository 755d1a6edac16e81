"""Human reviews: opened by the graph, decided by a person, applied by the next resume."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from chimera.errors import ChimeraError
from chimera.store.base import StoreBase
from chimera.store.rows import ReviewRow


def _parse_review(row: dict[str, Any]) -> ReviewRow:
    return cast(ReviewRow, {**row, "reasons": json.loads(row["reasons"] or "[]"),
                            "payload": json.loads(row["payload"] or "{}")})


class Reviews(StoreBase):
    def open_review(self, review: dict[str, Any]) -> None:
        """Record a problem waiting for a human. Re-opening (the node runs again after a restart)
        refreshes the payload but never drops a decision."""
        row = {**review, "reasons": json.dumps(review["reasons"]), "payload": json.dumps(review["payload"]),
               "created_at": time.time()}
        names = list(row)
        with self.conn:
            self.conn.execute(
                f"insert into reviews ({', '.join(names)}) values ({', '.join('?' * len(names))}) "
                "on conflict(id) do update set payload = excluded.payload, reasons = excluded.reasons, "
                "thread_id = excluded.thread_id", list(row.values()))

    def reviews(self, run: str | None = None, *, state: str = "pending", subject: str | None = None,
                reason: str | None = None) -> list[ReviewRow]:
        """Reviews in `state` (pending: no decision yet; decided; all), oldest first, JSON fields parsed."""
        where, args = ["1 = 1"], []
        if run:
            where.append("run = ?")
            args.append(run)
        if state == "pending":
            where.append("action is null")
        elif state == "decided":
            where.append("action is not null")
        if subject:
            where.append("subject = ?")
            args.append(subject)
        reviews = [_parse_review(row) for row in self._rows("reviews", " and ".join(where), args, order_by="created_at, id")]
        return [r for r in reviews if reason in r["reasons"]] if reason else reviews

    def review(self, review_id: str) -> ReviewRow | None:
        row = self._get("reviews", review_id)
        return _parse_review(row) if row else None

    def decide_review(self, review_id: str, decision: dict[str, Any]) -> None:
        """Store a decision; the next run resumes the waiting thread with it."""
        row = self._get("reviews", review_id)
        if row is None:
            raise ChimeraError(f"no review item {review_id!r} (list them with: chimera review DB --list)")
        if row["action"] is not None:
            raise ChimeraError(f"review item {review_id} was already decided: {row['action']} by {row['reviewer']}")
        note = decision.get("note")
        fields = {"action": decision["action"], "note": str(note) if note else None,
                  "edited_problem": decision.get("problem"), "edited_answer": decision.get("answer"),
                  "reviewer": decision["reviewer"], "decided_at": decision["decided_at"]}
        # One statement decides: of two reviewers at once, exactly one is stored.
        if self._update("reviews", review_id, fields, only_if="action is null") != 1:
            won = self._get("reviews", review_id) or {}
            raise ChimeraError(f"review item {review_id} was already decided: {won.get('action')} by "
                               f"{won.get('reviewer')}")

    def decisions_to_apply(self, thread_id: str) -> dict[str, dict[str, Any]]:
        """Decided but not yet applied reviews of one graph thread: review id -> decision."""
        cursor = self.conn.execute(
            "select id, action, note, edited_problem, edited_answer, reviewer, decided_at from reviews "
            "where thread_id = ? and action is not null and applied_at is null", [thread_id])
        return {rid: {"action": action, "note": note or "", "problem": problem, "answer": answer,
                      "reviewer": reviewer, "decided_at": decided_at}
                for rid, action, note, problem, answer, reviewer, decided_at in cursor}

    def threads_with_decisions(self, run: str) -> set[str]:
        return {row[0] for row in self.conn.execute(
            "select distinct thread_id from reviews where run = ? and action is not null and applied_at is null",
            [run])}

    def mark_reviews_applied(self, review_ids: list[str]) -> None:
        with self.conn:
            self.conn.executemany("update reviews set applied_at = ? where id = ?",
                                  [(time.time(), rid) for rid in review_ids])

    def record_served_decision(self, review_id: str, decision: dict[str, Any]) -> None:
        """A decision that reached the graph without passing through this table (a LangGraph server's resume
        API): recorded as decided and applied. One already recorded (the usual path) is left as it is."""
        with self.transaction():
            row = self._get("reviews", review_id)
            if row is None or row["action"] is not None:
                return
            self.decide_review(review_id, decision)
            self.mark_reviews_applied([review_id])

    def review_counts(self, run: str | None = None) -> dict[str, int]:
        clause, args = (" where run = ?", [run]) if run else ("", [])
        rows = dict(self.conn.execute(
            f"select coalesce(action, 'pending'), count(*) from reviews{clause} group by 1", args).fetchall())
        return {"pending": rows.get("pending", 0), "accepted": rows.get("accept", 0),
                "rejected": rows.get("reject", 0), "edited": rows.get("edit", 0), "sent_back": rows.get("revise", 0)}
