"""Every model call (one row per attempt) and the replies kept for an exact resume."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from chimera.store.base import StoreBase
from chimera.store.rows import CALL_FILTERS, CallCount, CallRow
from chimera.store.storable import storable


class Calls(StoreBase):
    def log_call(self, call: dict[str, Any]) -> int:
        row = {**{k: storable(v) for k, v in call.items()}, "created_at": time.time()}
        with self.conn:
            cursor = self.conn.execute(f"insert into llm_calls ({', '.join(row)}) values "
                                       f"({', '.join('?' * len(row))}) returning id", list(row.values()))
            return int(cursor.fetchone()[0])

    def kept_reply(self, request_key: str) -> tuple[int, dict[str, Any]] | None:
        """The reply a call with this key got before (its row id and the reply), if its thread still runs."""
        row = self.conn.execute("select id, reply from llm_calls where request_key = ? and reply is not null "
                                "order by id desc limit 1", [request_key]).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def kept_request_keys(self, run: str, *, topic_id: str | None = None) -> set[str]:
        """Keys of the calls of `run` (or of one of its topics) whose replies are kept (those of threads not yet
        finished)."""
        where, args = ("run = ? and topic_id = ?", [run, topic_id]) if topic_id else ("run = ?", [run])
        return {row[0] for row in self.conn.execute(
            f"select request_key from llm_calls where {where} and reply is not null", args)}

    def kept_request_keys_by_topic(self, run: str) -> dict[str | None, set[str]]:
        """`kept_request_keys` of the whole run, by topic (None: calls of no topic, Stage 1's)."""
        keys: dict[str | None, set[str]] = {}
        for topic_id, key in self.conn.execute(
                "select topic_id, request_key from llm_calls where run = ? and reply is not null", [run]):
            keys.setdefault(topic_id, set()).add(key)
        return keys

    def forget_replies(self, run: str, *, topic_id: str | None = None, problem_id: str | None = None) -> None:
        """Drop the kept replies of a finished thread (a topic, a retried slot, or Stage 1 when neither is
        given): nothing can ask those calls again, and trajectories are not kept twice."""
        if problem_id is not None:
            where, args = "problem_id = ?", [problem_id]
        elif topic_id is not None:
            where, args = "topic_id = ?", [topic_id]
        else:
            where, args = "run = ? and topic_id is null and problem_id is null", [run]
        with self.conn:
            self.conn.execute(f"update llm_calls set reply = null where {where} and reply is not null", args)

    def forget_ended_replies(self, run: str) -> int:
        """Drop the kept replies of every thread that has ended: a kill can land after a thread's last write and
        before its `forget_replies`, and nothing asks an ended thread's calls again. A problem still pending in a
        finished topic (a retry cut short, or one waiting for review) keeps its replies. Returns how many."""
        with self.conn:
            cursor = self.conn.execute(
                "update llm_calls set reply = null where run = ? and reply is not null "
                "and topic_id in (select id from topics where run = ? and status = 'done') "
                "and (problem_id is null or problem_id not in "
                "(select id from problems where run = ? and status = 'pending'))", [run, run, run])
            return int(cursor.rowcount)

    def relabel_call(self, call_id: int, outcome: str, error: str) -> None:
        with self.conn:
            self.conn.execute("update llm_calls set outcome = ?, error = ? where id = ?", [outcome, error, call_id])

    def calls(self, run: str, *, filters: dict[str, str] | None = None, failed_only: bool = False,
              limit: int = 50) -> list[CallRow]:
        """The run's model calls, newest first: `filters` by CALL_FILTERS column (exact values), `failed_only`
        for those that got no usable reply."""
        where, args = ["run = ?"], [run]
        for column, value in (filters or {}).items():
            if column not in CALL_FILTERS:
                raise ValueError(f"no call filter {column!r}")
            where.append(f"{column} = ?")
            args.append(value)
        if failed_only:
            where.append("outcome not in ('ok', 'truncated')")
        columns = ", ".join(CallRow.__annotations__)
        rows = self.conn.execute(f"select {columns} from llm_calls where {' and '.join(where)} "
                                 "order by id desc limit ?", [*args, limit]).fetchall()
        return [cast(CallRow, dict(zip(CallRow.__annotations__, row))) for row in rows]

    def call_rows(self, run: str, *, after_id: int = 0, since: float | None = None,
                  prefix: bool = False) -> list[CallCount]:
        """Calls of a run counted by role, endpoint, outcome and message; `after_id`: only calls logged after
        that row, `since`: only calls logged at that time (time.time()) or later (either: this invocation's);
        `prefix`: every run whose name starts with `run`."""
        where = "run like ? escape '\\'" if prefix else "run = ?"
        key = run.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if prefix else run
        if since is not None:
            where, args = where + " and created_at >= ?", [key, since]
        else:
            args = [key]
        rows = self.conn.execute(f"select role, base_url, outcome, error, count(*) from llm_calls where {where} "
                                 "and id > ? group by role, base_url, outcome, error", [*args, after_id]).fetchall()
        return [CallCount(role=r[0], base_url=r[1], outcome=r[2], error=r[3], count=r[4]) for r in rows]

    def last_call_id(self) -> int:
        return int(self.conn.execute("select coalesce(max(id), 0) from llm_calls").fetchone()[0])
