"""Workers and their topic leases (PostgreSQL only): who holds which topic, until when, by the database's clock.

A lease row per topic: `released` 0 while held, 1 once its worker is done with it, 2 when the topic's thread
waits for a human (claimable again once a decision for it is on record). The lease check on every write
(schema_postgres) reads these rows.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from chimera.store.base import StoreBase
from chimera.store.rows import ExpiredLease, TopicRow, WorkerRow

HELD, RELEASED, WAITING_FOR_REVIEW = 0, 1, 2
LOCK_NOT_AVAILABLE = "55P03"
_LIVE = "l.released = 0 and l.expires_at > clock_timestamp()"


def worker_session_name(worker: str) -> str:
    """The application_name of a worker's database sessions, by which a stalled one is found."""
    return f"chimera-worker {worker}"


def worker_session_settings(worker: str | None, lease_s: float | None) -> dict[str, str]:
    """A worker's session settings (every connection of it: the store's and the checkpointer's).

    Its writes are checked against its leases (`chimera.worker`); the server ends its session if it stalls
    inside a transaction for half a lease, so that its row locks cannot hold back the worker that takes its
    topics over; and a write never waits longer than a lease for a lock (a stalled worker's, not yet ended).
    No worker: none of it."""
    if not worker:
        return {"chimera.worker": "", "application_name": "chimera", "lock_timeout": "0",
                "idle_in_transaction_session_timeout": "0"}
    lease_ms = int((lease_s or 60) * 1000)
    return {"chimera.worker": worker, "application_name": worker_session_name(worker),
            "lock_timeout": str(lease_ms), "idle_in_transaction_session_timeout": str(max(1000, lease_ms // 2))}


class Leases(StoreBase):
    def register_worker(self, worker: str, run: str, *, host: str, pid: int) -> None:
        with self.conn:
            self.conn.execute("insert into workers (id, run, host, pid, started_at, heartbeat_at) "
                              "values (?, ?, ?, ?, clock_timestamp(), clock_timestamp()) on conflict (id) do update "
                              "set heartbeat_at = excluded.heartbeat_at, stopped_at = null", [worker, run, host, pid])

    def worker_stopped(self, worker: str) -> None:
        with self.conn:
            self.conn.execute("update workers set stopped_at = clock_timestamp() where id = ?", [worker])

    def claim_topics(self, run: str, worker: str, *, lease_s: float, limit: int, orphans_only: bool = False,
                     running: Collection[str] = ()) -> list[TopicRow]:
        """Up to `limit` topics of `run` that are not done, not held under a live lease, and not waiting for a
        review nobody has decided; leased to `worker` in the same statement. Two workers never get one topic:
        the rows are locked as they are picked, and a lease is only taken over once it has run out.
        `orphans_only`: only topics left unfinished by a worker (its lease ran out, or it stopped). `running`:
        topics this worker still has a task for, never taken again while it runs (a worker late on its own
        lease would otherwise run one thread twice); once that task has ended, the topic can be taken."""
        only = "and exists (select 1 from topic_leases o where o.topic_id = t.id and o.released in (0, 1)) " \
            if orphans_only else ""
        if running:
            only += "and t.id not in (" + ", ".join("?" * len(running)) + ") "
        try:
            with self.transaction():
                # A lease row can be locked by a stalled worker's open transaction (its lease check): wait a
                # moment, not forever; end_stalled_sessions ends its session once its heartbeat is a lease old.
                self.conn.execute("set local lock_timeout = '1s'")
                rows = self._claim(run, worker, lease_s, limit, only, list(running))
        except Exception as error:
            if getattr(error, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            return []
        claimed = [row[0] for row in rows]
        if not claimed:
            return []
        marks = ", ".join("?" * len(claimed))
        return [cast(TopicRow, row) for row in self._rows("topics", f"id in ({marks})", claimed,
                                                          order_by="subject, position, id")]

    def end_stalled_sessions(self, run: str, lease_s: float, *, caller: str) -> None:
        """End the database sessions of the other workers of this run that stopped heartbeating over a lease ago
        (stopped, paused, cut off): their leases are gone, and the row locks an open transaction of theirs holds
        would keep the worker that takes over their topics waiting. (The server's idle-in-transaction timeout
        misses a session that stopped inside a pipeline, as LangGraph's saver sends a checkpoint.) Never the
        `caller`'s own: a worker that asks is running, however late its own heartbeat (a starved machine), and
        ending its checkpointer's session would fail it."""
        self.conn.execute(
            "select pg_terminate_backend(a.pid) from pg_stat_activity a join workers w "
            "on a.application_name = 'chimera-worker ' || w.id where w.run = ? and a.datname = current_database() "
            "and w.id <> ? and w.stopped_at is null "
            "and w.heartbeat_at < clock_timestamp() - make_interval(secs => ?)", [run, caller, lease_s])

    def _claim(self, run: str, worker: str, lease_s: float, limit: int, only: str,
               running: list[str]) -> list[Any]:
        """`only`: more conditions on the topics picked, with `running` as their parameters."""
        return self.conn.execute(
            "with picked as (select t.id from topics t where t.run = ? "
            "and t.status not in ('done', 'merged', 'removed', 'surplus') " + only +
            f"and not exists (select 1 from topic_leases l where l.topic_id = t.id and (({_LIVE}) "
            "or (l.released = 2 and not exists (select 1 from reviews r where r.topic_id = t.id "
            "and r.action is not null and r.applied_at is null)))) "
            "order by t.subject, t.position, t.id for update of t skip locked limit ?) "
            "insert into topic_leases (topic_id, run, worker, expires_at) "
            "select id, ?, ?, clock_timestamp() + make_interval(secs => ?) from picked "
            "on conflict (topic_id) do update set worker = excluded.worker, expires_at = excluded.expires_at, "
            "released = 0, taken = topic_leases.taken + 1 "
            "where topic_leases.released <> 0 or topic_leases.expires_at <= clock_timestamp() "
            "returning topic_id", [run, *running, limit, run, worker, lease_s]).fetchall()

    def renew_leases(self, worker: str, *, lease_s: float) -> set[str]:
        """Extend every live lease of `worker`; the topics it still holds (one missing from them is lost)."""
        with self.transaction():
            self.conn.execute("update workers set heartbeat_at = clock_timestamp() where id = ?", [worker])
            rows = self.conn.execute(
                "update topic_leases l set expires_at = clock_timestamp() + make_interval(secs => ?) "
                f"where l.worker = ? and {_LIVE} returning l.topic_id", [lease_s, worker]).fetchall()
        return {row[0] for row in rows}

    def release_topic(self, topic_id: str, worker: str, *, waiting: bool = False) -> None:
        with self.conn:
            self.conn.execute("update topic_leases set released = ?, expires_at = clock_timestamp() "
                              "where topic_id = ? and worker = ? and released = 0",
                              [WAITING_FOR_REVIEW if waiting else RELEASED, topic_id, worker])

    def live_workers(self, run: str, *, lease_s: float) -> int:
        """Workers of the run that have not stopped and whose last heartbeat is under a lease old."""
        return int(self.conn.execute(
            "select count(*) from workers where run = ? and stopped_at is null "
            "and heartbeat_at > clock_timestamp() - make_interval(secs => ?)", [run, lease_s]).fetchone()[0])

    def live_leases(self, run: str) -> int:
        return int(self.conn.execute(f"select count(*) from topic_leases l where l.run = ? and {_LIVE}",
                                     [run]).fetchone()[0])

    def workers(self, run: str) -> list[WorkerRow]:
        """Each worker of the run with the topics it holds and how long since its last heartbeat."""
        cursor = self.conn.execute(
            "select w.id, w.host, w.pid, extract(epoch from clock_timestamp() - w.heartbeat_at), "
            f"(select count(*) from topic_leases l where l.worker = w.id and {_LIVE}), w.stopped_at is not null "
            "from workers w where w.run = ? order by w.started_at, w.id", [run])
        return [WorkerRow(id=r[0], host=r[1], pid=r[2], heartbeat_age_s=float(r[3]), topics_held=int(r[4]),
                          stopped=bool(r[5])) for r in cursor.fetchall()]

    def expired_leases(self, run: str) -> list[ExpiredLease]:
        """Leases that ran out with their topic unfinished: a dead or stalled worker's, waiting to be taken over."""
        cursor = self.conn.execute(
            "select l.topic_id, t.subject, t.name, l.worker, extract(epoch from clock_timestamp() - l.expires_at) "
            "from topic_leases l join topics t on t.id = l.topic_id where l.run = ? and l.released = 0 "
            "and l.expires_at <= clock_timestamp() and t.status <> 'done' order by l.expires_at", [run])
        return [ExpiredLease(topic_id=r[0], subject=r[1], topic=r[2], worker=r[3], expired_s=float(r[4]))
                for r in cursor.fetchall()]

    def topics_held_by_pid(self, pid: int) -> list[str]:
        """Topics held under a live lease by the worker process `pid`, that have made a model call."""
        return [row[0] for row in self.conn.execute(
            f"select l.topic_id from topic_leases l join workers w on w.id = l.worker where w.pid = ? and {_LIVE} "
            "and exists (select 1 from llm_calls c where c.topic_id = l.topic_id)", [pid]).fetchall()]

    def topics_taken_over(self, topic_ids: list[str]) -> int:
        """How many of `topic_ids` another claim has taken since (their lease taken a second time, or done)."""
        marks = ", ".join("?" * len(topic_ids))
        return int(self.conn.execute(
            f"select count(*) from topics t where t.id in ({marks}) and (t.status = 'done' or exists (select 1 "
            "from topic_leases l where l.topic_id = t.id and l.taken >= 2))", topic_ids).fetchone()[0])

    def topics_called_since(self, topic_ids: list[str], since: float) -> int:
        """How many of `topic_ids` made a model call after `since` (time.time())."""
        marks = ", ".join("?" * len(topic_ids))
        return int(self.conn.execute(f"select count(distinct topic_id) from llm_calls where topic_id in ({marks}) "
                                     "and created_at > ?", [*topic_ids, since]).fetchone()[0])

    def act_as(self, worker: str | None, *, lease_s: float | None = None) -> None:
        """Which worker this connection's writes are checked for (None: none, as for Stage 1 and settling);
        see worker_session_settings."""
        for name, value in worker_session_settings(worker, lease_s).items():
            self.conn.set(name, value)  # type: ignore[attr-defined]

    def lock_run(self, run: str) -> None:
        """Wait for, then hold, the run's own lock (Stage 1 and the settling pass run under it, once at a time);
        the database drops it if this process dies."""
        self.conn.execute("select pg_advisory_lock(hashtext(?))", ["chimera-run:" + run])

    def unlock_run(self, run: str) -> None:
        self.conn.execute("select pg_advisory_unlock(hashtext(?))", ["chimera-run:" + run])
