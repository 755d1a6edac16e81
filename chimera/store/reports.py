"""The queries behind reports (yield by topic or subject, cost) and the benchmarks' figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from chimera.store.base import StoreBase
from chimera.store.rows import RoleUsage

_GROUP = {"topic": "p.topic_id", "subject": "p.subject"}


class Reports(StoreBase):
    def problem_outcomes(self, run: str, by: Literal["topic", "subject"]) -> list[tuple[str, str, str, str | None, int]]:
        """(group, subject, status, rejection reason, revisions) per problem."""
        return self.conn.execute(f"select {_GROUP[by]}, p.subject, p.status, p.rejection_reason, p.revisions "
                                 "from problems p where p.run = ?", [run]).fetchall()

    def sample_labels(self, run: str, by: Literal["topic", "subject"]) -> list[tuple[str, str, int | None]]:
        """(group, subject, correct) per sample of an accepted problem."""
        return self.conn.execute(f"select {_GROUP[by]}, p.subject, s.correct from samples s join problems p "
                                 "on p.id = s.problem_id where p.run = ? and p.status = 'accepted'", [run]).fetchall()

    def latency_by_role(self, run: str) -> dict[str, float]:
        """Mean seconds of a call that got a reply, per role."""
        return dict(self.conn.execute("select role, avg(latency_s) from llm_calls where run = ? "
                                      "and outcome in ('ok', 'truncated') group by role", [run]).fetchall())

    def usage_by_group(self, run: str, by: Literal["topic", "subject"]) -> list[tuple[str, str, RoleUsage]]:
        """(group, subject, a role's usage) over the calls made for the run's problems."""
        key = _GROUP[by]
        rows = self.conn.execute(
            f"select {key}, p.subject, c.role, c.batch_id is not null, count(*), coalesce(sum(c.tokens_in), 0), "
            f"coalesce(sum(c.tokens_out), 0), coalesce(sum(c.cached_tokens), 0) from llm_calls c "
            f"join problems p on p.id = c.problem_id where p.run = ? group by {key}, p.subject, c.role, "
            f"c.batch_id is not null", [run]).fetchall()
        return [(r[0], r[1], RoleUsage(role=r[2], batched=bool(r[3]), calls=r[4], tokens_in=r[5], tokens_out=r[6],
                                       cached_tokens=r[7])) for r in rows]

    def usage_by_role(self, run: str) -> list[RoleUsage]:
        """Calls and tokens per role (batched calls apart) over every invocation of the run."""
        rows = self.conn.execute(
            "select role, batch_id is not null, count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
            "coalesce(sum(cached_tokens), 0) from llm_calls where run = ? group by role, batch_id is not null "
            "order by role", [run]).fetchall()
        return [RoleUsage(role=r[0], batched=bool(r[1]), calls=r[2], tokens_in=r[3], tokens_out=r[4],
                          cached_tokens=r[5]) for r in rows]

    def sample_count(self) -> int:
        return self.conn.execute("select count(*) from samples").fetchone()[0]

    def near_duplicate_count(self) -> tuple[int, int]:
        """(problems drafted, problems rejected as near-duplicates of a kept one), over the whole database."""
        drafted, duplicates = self.conn.execute(
            "select count(*), coalesce(sum(case when duplicate_of is not null then 1 else 0 end), 0) "
            "from problems").fetchone()
        return int(drafted), int(duplicates)

    def storage_figures(self) -> dict[str, int]:
        """Accepted samples, the bytes of the replies kept for exact resume, and the free pages' bytes."""
        samples = self.conn.execute("select count(*) from samples s join problems p on p.id = s.problem_id "
                                    "where p.status = 'accepted'").fetchone()[0]
        replies = self.conn.execute(
            "select coalesce(sum(length(cast(reply as blob))), 0) from llm_calls").fetchone()[0]
        free = self.conn.execute("pragma freelist_count").fetchone()[0] * \
            self.conn.execute("pragma page_size").fetchone()[0]
        return {"accepted_samples": int(samples), "kept_reply_bytes": int(replies), "free_bytes": int(free)}

    def bench_figures(self) -> dict[str, Any]:
        """Sizes, outcomes and latency of a whole benchmark database."""
        sizes = self.table_bytes()
        count, mean_chars = self.conn.execute(
            "select count(*), coalesce(avg(length(problem) + length(answer) + length(reasoning) + length(solution)), 0) "
            "from samples").fetchone()
        latency = self.conn.execute(
            "select avg(latency_s) from llm_calls where outcome in ('ok', 'truncated')").fetchone()[0]
        return {"table_bytes": sizes, "samples": count, "mean_sample_chars": mean_chars,
                "problems_by_status": dict(self.conn.execute(
                    "select status, count(*) from problems group by status").fetchall()),
                "call_outcomes": dict(self.conn.execute(
                    "select outcome, count(*) from llm_calls group by outcome").fetchall()),
                "mean_latency_s": latency or 0.0}

    def calls_by_role(self, roles: Sequence[str]) -> dict[str, int]:
        marks = ",".join("?" * len(roles))
        return dict(self.conn.execute(f"select role, count(*) from llm_calls where role in ({marks}) group by role",
                                      list(roles)).fetchall())

    def structured_call_figures(self, roles: Sequence[str]) -> dict[str, int]:
        """Calls of `roles`, how many were cut at max_tokens, and their output tokens."""
        marks = ",".join("?" * len(roles))
        total, cut, tokens = self.conn.execute(
            f"select count(*), coalesce(sum(case when finish_reason = 'length' then 1 else 0 end), 0), "
            "coalesce(sum(tokens_out), 0) "
            f"from llm_calls where role in ({marks})", list(roles)).fetchone()
        return {"calls": total, "cut": cut, "tokens_out": tokens}

    def live_topic_count(self) -> int:
        return self.conn.execute("select count(*) from topics where status not in ('merged', 'surplus')").fetchone()[0]

    def calls_asked_again(self, run: str) -> int:
        """Answered calls repeated after a restart: each request key beyond its first answer."""
        return self.conn.execute(
            "select coalesce(sum(n - 1), 0) from (select count(*) as n from llm_calls where run = ? and "
            "request_key is not null and outcome in ('ok', 'truncated', 'malformed_reply') group by request_key "
            "having count(*) > 1) as repeated", [run]).fetchone()[0]

    def dataset_rows(self) -> list[tuple[Any, ...]]:
        """Every problem with its samples, in id order: what two runs must agree on to be the same dataset."""
        return self.conn.execute("select p.id, p.status, p.problem, p.answer, s.id, s.solution, s.correct "
                                 "from problems p left join samples s on s.problem_id = p.id "
                                 "order by p.id, s.id").fetchall()
