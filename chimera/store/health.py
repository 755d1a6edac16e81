"""Whole-database views: counts for status and summaries, and the consistency checks."""

from __future__ import annotations

from typing import Any

from chimera.store.reviews import Reviews


class Health(Reviews):  # its counts include the reviews
    def counts(self, run: str | None = None) -> dict[str, Any]:
        clause, args = (" where run = ?", [run]) if run else ("", [])
        q = lambda sql: self.conn.execute(sql, args).fetchall()  # noqa: E731
        by_status = dict(q(f"select status, count(*) from problems{clause} group by status"))
        topics = dict(q(f"select status, count(*) from topics{clause} group by status"))
        samples = q(
            "select count(*), coalesce(sum(case when correct = 1 then 1 else 0 end), 0), coalesce(sum(truncated), 0) "
            "from samples s "
            f"where s.problem_id in (select id from problems where status = 'accepted'{clause.replace(' where', ' and')})"
        )[0]
        reasons = q(
            f"select rejection_reason, count(*) from problems{clause}"
            f"{' and' if clause else ' where'} status in ('rejected', 'failed') group by rejection_reason"
            " order by count(*) desc"
        )
        calls = q(f"select count(*), coalesce(sum(tokens_in),0), coalesce(sum(tokens_out),0) from llm_calls{clause}")[0]
        disagreements = q(f"select coalesce(sum(disagreement), 0) from problems{clause}")[0][0]
        failed_calls = q(f"select outcome, count(*) from llm_calls{clause} group by outcome")
        return {
            "topics": sum(topics.values()), "topics_done": topics.get("done", 0),
            "problems": sum(by_status.values()), "by_status": by_status,
            "samples": samples[0], "correct": samples[1], "truncated": samples[2],
            "rejection_reasons": [{"reason": r or "(none)", "count": c} for r, c in reasons],
            "calls": calls[0], "tokens_in": calls[1], "tokens_out": calls[2],
            "call_outcomes": dict(failed_calls), "disagreements": disagreements,
            "reviews": self.review_counts(run),
        }

    # Each check: rows that cannot all be true of a run whose every write landed in order.
    CONSISTENCY_CHECKS: dict[str, str] = {
        "samples solved for another text of their problem":
            "select s.id from samples s join problems p on p.id = s.problem_id where s.run = ? "
            "and s.round = coalesce(p.revisions, 0) and (s.problem != p.problem or s.answer != p.answer)",
        "accepted problems without a sample":
            "select p.id from problems p where p.run = ? and p.status = 'accepted' "
            "and not exists (select 1 from samples s where s.problem_id = p.id)",
        "decisions recorded as applied whose problem still waits":
            "select r.id from reviews r join problems p on p.id = r.problem_id where r.run = ? "
            "and r.applied_at is not null and p.status = 'pending' and not exists (select 1 from reviews o "
            "where o.problem_id = r.problem_id and o.applied_at is null)",
        "problems still pending in topics marked done":
            "select p.id from problems p join topics t on t.id = p.topic_id where p.run = ? and t.status = 'done' "
            "and p.status = 'pending' and not exists (select 1 from reviews r where r.problem_id = p.id "
            "and r.applied_at is null)",
        "duplicates of a problem that did not pass the check":
            "select p.id from problems p join problems o on o.id = p.duplicate_of where p.run = ? "
            "and coalesce(o.indexed, 0) = 0",
        "problems rejected as duplicates of a twin that left the dataset":
            "select p.id from problems p left join problems o on o.id = p.duplicate_of where p.run = ? "
            "and p.status = 'rejected' and p.rejection_reason = 'duplicate' and (o.id is null or o.status = 'rejected')",
        "votes filed under a round the problem never reached":
            "select distinct p.id from problems p join votes v on v.problem_id = p.id where p.run = ? "
            "and v.round > coalesce(p.revisions, 0)",
        "answered calls asked twice":
            "select min(id) from llm_calls where run = ? and request_key is not null "
            "and outcome in ('ok', 'truncated', 'malformed_reply') group by request_key having count(*) > 1",
    }

    def consistency(self, run: str) -> dict[str, list[str]]:
        """Every check of CONSISTENCY_CHECKS with the rows that fail it (ids); all empty for a sound run."""
        return {name: [str(row[0]) for row in self.conn.execute(sql, [run])]
                for name, sql in self.CONSISTENCY_CHECKS.items()}
