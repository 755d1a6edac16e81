"""Runs, their topics (Stage 1's taxonomy), merges and shortfalls."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, cast

from chimera.errors import StoredConfigError
from chimera.store.base import StoreBase
from chimera.store.rows import TopicRow

if TYPE_CHECKING:
    from chimera.config import Config


class RunsAndTopics(StoreBase):
    def save_run(self, name: str, config: dict[str, Any]) -> None:
        self._upsert("runs", {"name": name, "config": json.dumps(config), "created_at": time.time()}, key=("name",))

    def runs(self) -> list[dict[str, Any]]:
        return self._rows("runs", order_by="created_at")

    def config_of(self, run: str) -> Config | None:
        """The config stored with a run (redacted: env var names, never keys), parsed; None for a run with none
        (a taxonomy import makes the run before `chimera run` stores its config) and for an unknown run. A
        stored config that cannot be read is a StoredConfigError naming the run."""
        from chimera.config import stored_config  # config.py reads database URLs with chimera.store.postgres

        row = self.conn.execute("select config from runs where name = ?", [run]).fetchone()
        try:
            raw = json.loads(row[0] or "{}") if row else {}
        except ValueError:
            raise StoredConfigError(f"run {run!r}: the config stored with it is not JSON") from None
        return stored_config(raw, run=run) if raw else None

    def upsert_topic(self, *, id: str, run: str, subject: str, name: str, position: int, source: str,
                     subfield: str | None = None, weight: float = 1.0, status: str | None = None,
                     round_: int = 0) -> None:
        now = time.time()
        row = self._get("topics", id)
        self._upsert("topics",
            {
                "id": id, "run": run, "subject": subject, "subfield": subfield, "name": name, "position": position,
                "round": round_,
                "source": source, "weight": weight, "slots": row["slots"] if row else None,
                "status": status or (row["status"] if row else "pending"),
                "created_at": row["created_at"] if row else now, "updated_at": now,
            },
        )

    def set_slots(self, slots: dict[str, int]) -> None:
        with self.conn:
            self.conn.executemany("update topics set slots = ? where id = ?", [(n, t) for t, n in slots.items()])

    def set_topic_status(self, topic_id: str, status: str) -> None:
        self._update("topics", topic_id, {"status": status, "updated_at": time.time()})

    def topic_status(self, topic_id: str) -> str | None:
        row = self.conn.execute("select status from topics where id = ?", [topic_id]).fetchone()
        return row[0] if row else None

    def topics(self, run: str, *, live: bool = False) -> list[TopicRow]:
        """Topics of a run; `live` leaves out those merged into another, refilled past the target (surplus)
        or removed by an import."""
        where = "run = ? and status not in ('merged', 'removed', 'surplus')" if live else "run = ?"
        return [cast(TopicRow, row) for row in self._rows("topics", where, [run], order_by="subject, position")]

    def record_merge(self, run: str, *, dropped_id: str, dropped: str, kept_id: str, kept: str,
                     similarity: float, method: str) -> None:
        with self.transaction():
            self._upsert("topic_merges",
                         {"run": run, "dropped_id": dropped_id, "dropped": dropped, "kept_id": kept_id, "kept": kept,
                          "similarity": round(similarity, 4), "method": method}, keep=(), key=("run", "dropped_id"))
            self.set_topic_status(dropped_id, "merged")

    def merges(self, run: str) -> list[dict[str, Any]]:
        return self._rows("topic_merges", "run = ?", [run], order_by="kept, dropped")

    def merges_with_subjects(self, run: str) -> list[dict[str, Any]]:
        """Every merge with both topics' subjects, most similar first: what a threshold choice reads."""
        rows = self.conn.execute(
            "select m.dropped, d.subject, m.kept, k.subject, m.similarity, m.method from topic_merges m "
            "left join topics d on d.id = m.dropped_id left join topics k on k.id = m.kept_id "
            "where m.run = ? order by m.similarity desc, m.kept, m.dropped", [run]).fetchall()
        return [dict(zip(("dropped", "dropped_subject", "kept", "kept_subject", "similarity", "method"), row))
                for row in rows]

    def replace_shortfalls(self, run: str, rows: list[dict[str, Any]]) -> None:
        with self.transaction():
            self.conn.execute("delete from taxonomy_shortfalls where run = ?", [run])
            # one row per (subject, subfield, kind): the last of any repeated key stands
            unique = {(row["subject"], row["subfield"], row["kind"]): {"run": run, **row} for row in rows}
            self._insert_all("taxonomy_shortfalls", list(unique.values()))

    def shortfalls(self, run: str) -> list[dict[str, Any]]:
        return self._rows("taxonomy_shortfalls", "run = ?", [run], order_by="subject, subfield, kind")

    def set_taxonomy_source(self, run: str, source: str) -> None:
        self._update("runs", run, {"taxonomy": source}, key="name")

    def taxonomy_source(self, run: str) -> str | None:
        row = self._get("runs", run, key="name")
        return row["taxonomy"] if row else None
