"""Solver trajectories and their labels."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from chimera.store.base import StoreBase


class Samples(StoreBase):
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

    def samples_of(self, problem_id: str) -> list[dict[str, Any]]:
        return self._rows("samples", "problem_id = ?", [problem_id], order_by="sample_index")

    def samples(self, run: str | None = None) -> Iterator[dict[str, Any]]:
        query = (
            "select s.* from samples s join problems p on p.id = s.problem_id "
            "where p.status = 'accepted'" + (" and s.run = ?" if run else "") +
            " order by s.subject, s.topic, p.slot, s.sample_index"
        )
        cursor = self.conn.execute(query, [run] if run else [])
        names = [d[0] for d in cursor.description]
        for values in cursor:
            yield dict(zip(names, values))

    def label_rows(self, run: str | None = None) -> list[dict[str, Any]]:
        """subject, label_method, correct and judges of every sample of an accepted problem."""
        cursor = self.conn.execute(
            "select s.subject, s.label_method, s.correct, s.judges from samples s join problems p on p.id = s.problem_id "
            "where p.status = 'accepted'" + (" and s.run = ?" if run else ""), [run] if run else [])
        return [{"subject": a, "label_method": b, "correct": c, "judges": d} for a, b, c, d in cursor]

    def unlabeled_samples(self, run: str) -> int:
        """Samples of accepted problems with no label: not truncated, and neither rules nor judges decided."""
        return self.conn.execute(
            "select count(*) from samples where run = ? and correct is null and coalesce(truncated, 0) = 0 and "
            "problem_id in (select id from problems where status = 'accepted')", [run]).fetchone()[0]
