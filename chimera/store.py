"""The dataset store: sqlite-utils tables with named migrations, in the same file as the checkpoints.

Every write is an upsert on a deterministic id, so a graph node re-executed
after a crash rewrites its row instead of adding a second one. Long text lives
here; graph state carries only ids and small fields.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from chimera.errors import ChimeraError

PROBLEM_STATUSES = ("pending", "accepted", "rejected", "failed")


def _create_core_tables(db: sqlite_utils.Database) -> None:
    db.table("runs").create({"name": str, "config": str, "created_at": float}, pk="name")
    db.table("topics").create(
        {
            "id": str, "run": str, "subject": str, "name": str, "position": int,
            "source": str, "status": str, "created_at": float, "updated_at": float,
        },
        pk="id",
    )
    db.table("problems").create(
        {
            "id": str, "run": str, "topic_id": str, "subject": str, "topic": str, "slot": int,
            "status": str, "problem": str, "answer": str, "draft_problem": str, "draft_answer": str,
            "revisions": int, "critic_verdicts": str, "rejection_reason": str,
            "created_at": float, "updated_at": float,
        },
        pk="id",
    )
    db.table("samples").create(
        {
            "id": str, "problem_id": str, "run": str, "subject": str, "topic": str,
            "problem": str, "answer": str, "reasoning": str, "solution": str,
            "predicted_answer": str, "correct": int, "label_method": str, "label_detail": str,
            "truncated": int, "finish_reason": str, "models": str, "usage": str,
            "created_at": float,
        },
        pk="id",
    )
    db.table("llm_calls").create(
        {
            "id": int, "run": str, "role": str, "model": str, "base_url": str,
            "topic_id": str, "problem_id": str, "tokens_in": int, "tokens_out": int,
            "reasoning_tokens": int, "latency_s": float, "finish_reason": str,
            "outcome": str, "error": str, "created_at": float,
        },
        pk="id",
    )
    db.table("topics").create_index(["run", "subject"], if_not_exists=True)
    db.table("problems").create_index(["topic_id", "slot"], if_not_exists=True)
    db.table("problems").create_index(["run", "status"], if_not_exists=True)
    db.table("llm_calls").create_index(["problem_id"], if_not_exists=True)


def _add_verification_columns(db: sqlite_utils.Database) -> None:
    db.table("problems").add_column("disagreement", int)
    db.table("problems").add_column("duplicate_of", str)
    db.table("problems").add_column("similarity", float)
    db.table("problems").add_column("indexed", int)
    db.table("problems").add_column("pass_rate", float)
    db.table("samples").add_column("sample_index", int)
    db.table("samples").add_column("pass_rate", float)
    db.table("samples").add_column("retried", int)


def _add_taxonomy(db: sqlite_utils.Database) -> None:
    db.table("topics").add_column("subfield", str)
    db.table("topics").add_column("slots", int)
    db.table("topics").add_column("weight", float)
    db.table("runs").add_column("taxonomy", str)  # how Stage 1 was settled: "expanded" or "imported"
    db.table("topic_merges").create(
        {"run": str, "dropped_id": str, "dropped": str, "kept_id": str, "kept": str, "similarity": float,
         "method": str},
        pk=("run", "dropped_id"),
    )


def _add_call_scope(db: sqlite_utils.Database) -> None:
    db.table("llm_calls").add_column("scope", str)  # what a call outside any problem was for ("Physics / Optics")


def _add_retries(db: sqlite_utils.Database) -> None:
    db.table("problems").add_column("retries", int)  # how many times `chimera run --retry-failed` took the slot again


def _add_reviews(db: sqlite_utils.Database) -> None:
    db.table("reviews").create(
        {
            "id": str, "run": str, "problem_id": str, "topic_id": str, "subject": str, "topic": str,
            "thread_id": str, "round": int, "proposed": str, "reasons": str, "payload": str,
            "action": str, "note": str, "edited_problem": str, "edited_answer": str, "reviewer": str,
            "decided_at": float, "applied_at": float, "created_at": float,
        },
        pk="id",
    )
    db.table("reviews").create_index(["run", "action"], if_not_exists=True)
    db.table("reviews").create_index(["thread_id"], if_not_exists=True)


def _add_evals(db: sqlite_utils.Database) -> None:
    db.table("bench_results").create(
        {"id": str, "suite": str, "question": int, "sample": int, "predicted": str, "correct": int,
         "method": str, "finish_reason": str, "tokens_out": int, "created_at": float}, pk="id")
    db.table("bench_results").create_index(["suite"], if_not_exists=True)
    db.table("quality_ratings").create(
        {"id": str, "source": str, "item": str, "model": str, "clarity": int, "well_posedness": int,
         "self_containedness": int, "reasoning_depth": int, "rationale": str, "created_at": float}, pk="id")
    db.table("eval_reports").create({"id": str, "run": str, "kind": str, "report": str, "created_at": float}, pk="id")


def _add_sample_round(db: sqlite_utils.Database) -> None:
    db.table("samples").add_column("round", int)  # the problem's revision the trajectory answered


def _add_taxonomy_rounds(db: sqlite_utils.Database) -> None:
    db.table("topics").add_column("round", int)  # the Stage 1 refill round that added the topic (0: first expansion)
    db.table("taxonomy_shortfalls").create(  # why Stage 1 gave fewer topics than asked for; rewritten as it settles
        {"run": str, "subject": str, "subfield": str, "kind": str, "detail": str, "target": int, "got": int},
        pk=("run", "subject", "subfield", "kind"),
    )


def _add_call_replies(db: sqlite_utils.Database) -> None:
    # What a call asked (a hash of role, ids and the exact body) and, until its thread is finished, what
    # came back: a resumed run takes the kept reply instead of asking a sampled model again.
    db.table("llm_calls").add_column("request_key", str)
    db.table("llm_calls").add_column("reply", str)
    db.table("llm_calls").create_index(["request_key"], if_not_exists=True)
    db.table("llm_calls").create_index(["topic_id"], if_not_exists=True)


def _add_sample_prompt(db: sqlite_utils.Database) -> None:
    db.table("samples").add_column("prompt", str)  # the exact messages the solver was sent (JSON), for SFT exports


def _add_displaced(db: sqlite_utils.Database) -> None:
    # 1 while a problem dropped as a later near-duplicate of one that arrived after it awaits the settling
    # pass (only then can a chain of near-duplicates have left the kept set order-dependent)
    db.table("problems").add_column("displaced", int)


def _move_votes_to_a_table(db: sqlite_utils.Database) -> None:
    # One row per (problem, round, critic): a vote is written alone, not by rewriting every vote of the problem.
    db.table("votes").create({"problem_id": str, "round": int, "critic": int, "vote": str},
                             pk=("problem_id", "round", "critic"), if_not_exists=True)
    db.execute("insert or ignore into votes (problem_id, round, critic, vote) "
               "select p.id, cast(r.key as integer), cast(c.key as integer), c.value "
               "from problems p, json_each(p.critic_verdicts) r, json_each(r.value) c "
               "where p.critic_verdicts is not null and p.critic_verdicts != '{}'")
    db.execute("update problems set critic_verdicts = null")  # kept as a column for old readers, no longer written


# Named, append-only: a database records which ones it has, so old files upgrade in order.
MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_core_tables", _create_core_tables),
    ("0002_verification", _add_verification_columns),
    ("0003_taxonomy", _add_taxonomy),
    ("0004_call_scope", _add_call_scope),
    ("0005_retries", _add_retries),
    ("0006_reviews", _add_reviews),
    ("0007_evals", _add_evals),
    ("0008_sample_round", _add_sample_round),
    ("0009_taxonomy_rounds", _add_taxonomy_rounds),
    ("0010_call_replies", _add_call_replies),
    ("0011_sample_prompt", _add_sample_prompt),
    ("0012_displaced", _add_displaced),
    ("0013_votes", _move_votes_to_a_table),
]


def _parse_review(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "reasons": json.loads(row["reasons"] or "[]"), "payload": json.loads(row["payload"] or "{}")}


LOCK_WAIT_S = 30.0  # how long a write waits for another process's lock before the command stops


def _connect(path: str, lock_wait_s: float = LOCK_WAIT_S) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=lock_wait_s)
    # WAL lets the checkpointer's connection and ours share the file; NORMAL drops the per-commit fsync.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(lock_wait_s * 1000)}")
    return conn


def _connect_read_only(path: str) -> sqlite3.Connection:
    """Open without writing anything, not even WAL's shared-memory file where the folder is read-only."""
    uri = Path(path).resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0)
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True)


class _DeferredCommits:
    """A connection whose `with conn:` blocks do not commit: the enclosing transaction does, once."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __enter__(self) -> _DeferredCommits:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Store:
    """One run database. Use from a single thread (the run's event loop).

    `create=False`: the file must exist and be chimera's. `read_only=True` (implies create=False): opened
    read-only and never migrated; a database of a newer chimera, or not chimera's, is refused in one line.
    """

    def __init__(self, path: str | Path, *, create: bool = True, read_only: bool = False,
                 lock_wait_s: float = LOCK_WAIT_S):
        path = str(path)
        if (read_only or not create) and not Path(path).exists():
            raise ChimeraError(f"{path}: no such database")
        if not Path(path).parent.is_dir():
            raise ChimeraError(f"{path}: the folder {Path(path).parent} does not exist")
        try:
            conn = _connect_read_only(path) if read_only else _connect(path, lock_wait_s)
            self.db = sqlite_utils.Database(conn)
            applied = self._applied_migrations()
        except sqlite3.DatabaseError as error:
            raise ChimeraError(f"{path}: not a chimera database ({error})") from None
        self.path = path
        self.conn = self.db.conn
        self.read_only = read_only
        known = {name for name, _ in MIGRATIONS}
        newer = sorted(applied - known)
        if newer:
            raise ChimeraError(f"{path}: written by a newer chimera (schema step {newer[-1]}); upgrade chimera "
                               "to open it")
        if not applied and self.db.table_names():
            raise ChimeraError(f"{path}: not a chimera database (it has tables, but no chimera schema)")
        if read_only:
            missing = [name for name, _ in MIGRATIONS if name not in applied]
            if missing:
                raise ChimeraError(f"{path}: written by an older chimera (schema lacks {missing[0]}); run a writing "
                                   "command on it once (chimera run) to upgrade")
            return
        self.migrate()

    def _applied_migrations(self) -> set[str]:
        if "_migrations" not in self.db.table_names():
            return set()
        return {row[0] for row in self.db.execute("select name from _migrations").fetchall()}

    # -- schema -----------------------------------------------------------
    def migrate(self) -> list[str]:
        applied_table = self.db.table("_migrations")
        if not applied_table.exists():
            applied_table.create({"name": str, "applied_at": float}, pk="name")
        applied = {row["name"] for row in applied_table.rows}
        done = []
        for name, step in MIGRATIONS:
            if name in applied:
                continue
            with self.db.conn:
                step(self.db)
                applied_table.insert({"name": name, "applied_at": time.time()})
            done.append(name)
        return done

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write inside lands together or not at all (sqlite-utils commits per call otherwise)."""
        real = self.db.conn
        deferred = _DeferredCommits(real)
        self.db.conn = self.conn = deferred  # type: ignore[assignment]
        try:
            yield
            real.commit()
        except BaseException:
            real.rollback()
            raise
        finally:
            self.db.conn = self.conn = real

    # -- runs -------------------------------------------------------------
    def save_run(self, name: str, config: dict[str, Any]) -> None:
        existing = list(self.db.table("runs").rows_where("name = ?", [name]))
        created = existing[0]["created_at"] if existing else time.time()
        self.db.table("runs").upsert({"name": name, "config": json.dumps(config), "created_at": created}, pk="name")

    def runs(self) -> list[dict[str, Any]]:
        return list(self.db.table("runs").rows_where(order_by="created_at"))

    # -- topics -----------------------------------------------------------
    def upsert_topic(self, *, id: str, run: str, subject: str, name: str, position: int, source: str,
                     subfield: str | None = None, weight: float = 1.0, status: str | None = None,
                     round_: int = 0) -> None:
        now = time.time()
        row = self._get("topics", id)
        self.db.table("topics").upsert(
            {
                "id": id, "run": run, "subject": subject, "subfield": subfield, "name": name, "position": position,
                "round": round_,
                "source": source, "weight": weight, "slots": row["slots"] if row else None,
                "status": status or (row["status"] if row else "pending"),
                "created_at": row["created_at"] if row else now, "updated_at": now,
            },
            pk="id",
        )

    def set_slots(self, slots: dict[str, int]) -> None:
        with self.db.conn:
            self.db.conn.executemany("update topics set slots = ? where id = ?", [(n, t) for t, n in slots.items()])

    def record_merge(self, run: str, *, dropped_id: str, dropped: str, kept_id: str, kept: str,
                     similarity: float, method: str) -> None:
        self.db.table("topic_merges").upsert(
            {"run": run, "dropped_id": dropped_id, "dropped": dropped, "kept_id": kept_id, "kept": kept,
             "similarity": round(similarity, 4), "method": method}, pk=("run", "dropped_id"))
        self.set_topic_status(dropped_id, "merged")

    def merges(self, run: str) -> list[dict[str, Any]]:
        return list(self.db.table("topic_merges").rows_where("run = ?", [run], order_by="kept, dropped"))

    def merges_with_subjects(self, run: str) -> list[dict[str, Any]]:
        """Every merge with both topics' subjects, most similar first: what a threshold choice reads."""
        rows = self.conn.execute(
            "select m.dropped, d.subject, m.kept, k.subject, m.similarity, m.method from topic_merges m "
            "left join topics d on d.id = m.dropped_id left join topics k on k.id = m.kept_id "
            "where m.run = ? order by m.similarity desc, m.kept, m.dropped", [run]).fetchall()
        return [dict(zip(("dropped", "dropped_subject", "kept", "kept_subject", "similarity", "method"), row))
                for row in rows]

    def replace_shortfalls(self, run: str, rows: list[dict[str, Any]]) -> None:
        with self.db.conn:
            self.conn.execute("delete from taxonomy_shortfalls where run = ?", [run])
            self.db.table("taxonomy_shortfalls").insert_all([{"run": run, **row} for row in rows],
                                                      pk=("run", "subject", "subfield", "kind"), replace=True)

    def shortfalls(self, run: str) -> list[dict[str, Any]]:
        return list(self.db.table("taxonomy_shortfalls").rows_where("run = ?", [run], order_by="subject, subfield, kind"))

    def run_config(self, run: str) -> dict[str, Any]:
        """The config stored with a run (redacted: env var names, never keys); {} for an unknown run."""
        row = self.conn.execute("select config from runs where name = ?", [run]).fetchone()
        return json.loads(row[0] or "{}") if row else {}

    def set_taxonomy_source(self, run: str, source: str) -> None:
        self.db.table("runs").update(run, {"taxonomy": source})

    def taxonomy_source(self, run: str) -> str | None:
        rows = list(self.db.table("runs").rows_where("name = ?", [run]))
        return rows[0]["taxonomy"] if rows else None

    def set_topic_status(self, topic_id: str, status: str) -> None:
        self._update("topics", topic_id, {"status": status, "updated_at": time.time()})

    def topics(self, run: str, *, live: bool = False) -> list[dict[str, Any]]:
        """Topics of a run; `live` leaves out those merged into another, refilled past the target (surplus)
        or removed by an import."""
        where = "run = ? and status not in ('merged', 'removed', 'surplus')" if live else "run = ?"
        return list(self.db.table("topics").rows_where(where, [run], order_by="subject, position"))

    # -- row helpers: plain SQL on the hot path (sqlite-utils re-reads the schema on every call) ----
    def _get(self, table: str, pk: str) -> dict[str, Any] | None:
        cursor = self.conn.execute(f"select * from [{table}] where id = ?", [pk])
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None

    def _update(self, table: str, pk: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"[{name}] = ?" for name in fields)
        with self.conn:
            self.conn.execute(f"update [{table}] set {sets} where id = ?", [*fields.values(), pk])

    def _upsert(self, table: str, row: dict[str, Any], keep: tuple[str, ...] = ("created_at",)) -> None:
        """Insert, or overwrite every column but `keep` (kept from the first write)."""
        names = list(row)
        columns = ", ".join(f"[{n}]" for n in names)
        updates = ", ".join(f"[{n}] = excluded.[{n}]" for n in names if n != "id" and n not in keep)
        with self.conn:
            self.conn.execute(
                f"insert into [{table}] ({columns}) values ({', '.join('?' * len(names))}) "
                f"on conflict(id) do update set {updates}", list(row.values()))

    # -- problems ---------------------------------------------------------

    def topic_status(self, topic_id: str) -> str | None:
        row = self.conn.execute("select status from topics where id = ?", [topic_id]).fetchone()
        return row[0] if row else None

    def problem(self, problem_id: str) -> dict[str, Any]:
        """A problem the graph already holds the id of; a missing one is a broken run, said by name."""
        row = self._get("problems", problem_id)
        if row is None:
            raise ChimeraError(f"problem {problem_id}: not in the run's database")
        return row

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
        with self.conn:
            self.conn.execute("insert into votes (problem_id, round, critic, vote) values (?, ?, ?, ?) "
                              "on conflict do update set vote = excluded.vote",
                              [problem_id, round_, critic, json.dumps(vote)])
            self.conn.execute("update problems set updated_at = ? where id = ?", [time.time(), problem_id])

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

    def finish_problem(self, problem_id: str, status: str, reason: str | None = None) -> None:
        """A problem's outcome; one marked a near-duplicate stays rejected, whatever its thread ends with."""
        assert status in PROBLEM_STATUSES
        with self.conn:
            self.conn.execute(
                "update problems set status = case when duplicate_of is null then ? else 'rejected' end, "
                "rejection_reason = case when duplicate_of is null then ? else 'duplicate' end, updated_at = ? "
                "where id = ?", [status, reason, time.time(), problem_id])

    def reopen_failed(self, run: str) -> list[dict[str, Any]]:
        """Failed slots of a run, set back to pending with their retry count raised; returns them."""
        failed = list(self.db.table("problems").rows_where("run = ? and status = 'failed'", [run], order_by="topic_id, slot"))
        with self.db.conn:
            self.db.execute("update problems set status = 'pending', rejection_reason = null, "
                            "retries = coalesce(retries, 0) + 1 where run = ? and status = 'failed'", [run])
        return [{**row, "retries": (row["retries"] or 0) + 1} for row in failed]

    def pending_retries(self, run: str) -> list[dict[str, Any]]:
        """Slots reopened by an earlier --retry-failed that have not finished (a retry cut short)."""
        return list(self.db.table("problems").rows_where("run = ? and status = 'pending' and retries > 0", [run],
                                                   order_by="topic_id, slot"))

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

    def any_displaced(self, run: str) -> bool:
        return self.conn.execute("select 1 from problems where run = ? and displaced = 1 limit 1",
                                 [run]).fetchone() is not None

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
        return self.db.execute(
            "select id, problem from problems where run = ? and indexed = 1 order by updated_at, id", [run]
        ).fetchall()

    def set_pass_rate(self, problem_id: str, pass_rate: float | None) -> None:
        self._update("problems", problem_id, {"pass_rate": pass_rate})
        with self.db.conn:
            self.db.execute("update samples set pass_rate = ? where problem_id = ?", [pass_rate, problem_id])

    def samples_of(self, problem_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("samples").rows_where("problem_id = ?", [problem_id], order_by="sample_index"))

    def problems(self, run: str | None = None) -> list[dict[str, Any]]:
        where, args = ("run = ?", [run]) if run else (None, [])
        return list(self.db.table("problems").rows_where(where, args, order_by="subject, topic, slot"))

    # -- samples ----------------------------------------------------------
    def save_sample(self, sample: Mapping[str, Any]) -> None:
        record = {**sample, "created_at": time.time()}
        for key in ("models", "usage", "prompt"):
            if not isinstance(record.get(key), str):
                record[key] = json.dumps(record.get(key) or {}, sort_keys=True)
        self._upsert("samples", record)

    def sample(self, sample_id: str) -> dict[str, Any] | None:
        return self._get("samples", sample_id)

    def update_sample(self, sample_id: str, fields: dict[str, Any]) -> None:
        self._update("samples", sample_id, fields)

    def samples(self, run: str | None = None) -> Iterator[dict[str, Any]]:
        query = (
            "select s.* from samples s join problems p on p.id = s.problem_id "
            "where p.status = 'accepted'" + (" and s.run = ?" if run else "") +
            " order by s.subject, s.topic, p.slot, s.sample_index"
        )
        cursor = self.db.execute(query, [run] if run else [])
        names = [d[0] for d in cursor.description]
        for values in cursor:
            yield dict(zip(names, values))

    # -- llm calls --------------------------------------------------------
    def log_call(self, call: dict[str, Any]) -> int:
        row = {**call, "created_at": time.time()}
        with self.conn:
            cursor = self.conn.execute(f"insert into llm_calls ({', '.join(row)}) values "
                                       f"({', '.join('?' * len(row))})", list(row.values()))
        assert cursor.lastrowid is not None  # an insert always has one
        return cursor.lastrowid

    def kept_reply(self, request_key: str) -> tuple[int, dict[str, Any]] | None:
        """The reply a call with this key got before (its row id and the reply), if its thread still runs."""
        row = self.conn.execute("select id, reply from llm_calls where request_key = ? and reply is not null "
                                "order by id desc limit 1", [request_key]).fetchone()
        return (row[0], json.loads(row[1])) if row else None

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

    def relabel_call(self, call_id: int, outcome: str, error: str) -> None:
        with self.conn:
            self.conn.execute("update llm_calls set outcome = ?, error = ? where id = ?", [outcome, error, call_id])

    # -- human review -----------------------------------------------------
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
                reason: str | None = None) -> list[dict[str, Any]]:
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
        if reason:
            where.append("exists (select 1 from json_each(reasons) where value = ?)")
            args.append(reason)
        cursor = self.conn.execute(f"select * from reviews where {' and '.join(where)} order by created_at, id", args)
        names = [d[0] for d in cursor.description]
        return [_parse_review(dict(zip(names, values))) for values in cursor]

    def review(self, review_id: str) -> dict[str, Any] | None:
        row = self._get("reviews", review_id)
        return _parse_review(row) if row else None

    def decide_review(self, review_id: str, decision: dict[str, Any]) -> None:
        """Store a decision; the next run resumes the waiting thread with it."""
        row = self._get("reviews", review_id)
        if row is None:
            raise ChimeraError(f"no review item {review_id!r} (list them with: chimera review DB --list)")
        if row["action"] is not None:
            raise ChimeraError(f"review item {review_id} was already decided: {row['action']} by {row['reviewer']}")
        self._update("reviews", review_id, {
            "action": decision["action"], "note": decision.get("note") or None,
            "edited_problem": decision.get("problem"), "edited_answer": decision.get("answer"),
            "reviewer": decision["reviewer"], "decided_at": decision["decided_at"]})

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

    def review_counts(self, run: str | None = None) -> dict[str, int]:
        clause, args = (" where run = ?", [run]) if run else ("", [])
        rows = dict(self.conn.execute(
            f"select coalesce(action, 'pending'), count(*) from reviews{clause} group by 1", args).fetchall())
        return {"pending": rows.get("pending", 0), "accepted": rows.get("accept", 0),
                "rejected": rows.get("reject", 0), "edited": rows.get("edit", 0), "sent_back": rows.get("revise", 0)}

    # -- evals ------------------------------------------------------------
    def save_eval_row(self, table: str, row: dict[str, Any]) -> None:
        self._upsert(table, {**row, "created_at": time.time()})

    def eval_rows(self, table: str, where: str = "1 = 1", args: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.conn.execute(f"select * from [{table}] where {where}", args or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor]

    def save_report(self, run: str, kind: str, report: dict[str, Any]) -> None:
        self._upsert("eval_reports", {"id": f"{run}:{kind}", "run": run, "kind": kind,
                                      "report": json.dumps(report), "created_at": time.time()}, keep=())

    def report(self, run: str, kind: str) -> dict[str, Any] | None:
        row = self._get("eval_reports", f"{run}:{kind}")
        return json.loads(row["report"]) if row else None

    # -- whole-database views --------------------------------------------
    def counts(self, run: str | None = None) -> dict[str, Any]:
        clause, args = (" where run = ?", [run]) if run else ("", [])
        q = lambda sql: self.db.execute(sql, args).fetchall()  # noqa: E731
        by_status = dict(q(f"select status, count(*) from problems{clause} group by status"))
        topics = dict(q(f"select status, count(*) from topics{clause} group by status"))
        samples = q(
            "select count(*), coalesce(sum(correct = 1),0), coalesce(sum(truncated),0) from samples s "
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

    def call_rows(self, run: str, *, after_id: int = 0, prefix: bool = False) -> list[dict[str, Any]]:
        """Calls of a run counted by role, endpoint, outcome and message; `after_id`: only calls logged after
        that row (this invocation's); `prefix`: every run whose name starts with `run`."""
        where = "run like ? escape '\\'" if prefix else "run = ?"
        key = run.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if prefix else run
        rows = self.db.execute(f"select role, base_url, outcome, error, count(*) from llm_calls where {where} "
                               "and id > ? group by role, base_url, outcome, error", [key, after_id]).fetchall()
        return [{"role": r[0], "base_url": r[1], "outcome": r[2], "error": r[3], "count": r[4]} for r in rows]

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

    def last_call_id(self) -> int:
        return self.db.execute("select coalesce(max(id), 0) from llm_calls").fetchone()[0]

    def unlabeled_samples(self, run: str) -> int:
        """Samples of accepted problems with no label: not truncated, and neither rules nor judges decided."""
        return self.db.execute(
            "select count(*) from samples where run = ? and correct is null and coalesce(truncated, 0) = 0 and "
            "problem_id in (select id from problems where status = 'accepted')", [run]).fetchone()[0]

    def table_bytes(self) -> dict[str, int]:
        """Bytes per table, from SQLite's dbstat view when compiled in, else the payload sizes."""
        try:
            rows = self.db.execute("select name, sum(pgsize) from dbstat group by name").fetchall()
            return {name: size for name, size in rows}
        except sqlite3.OperationalError:
            return {}
