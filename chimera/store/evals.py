"""Rows of the eval commands (bench, quality) and saved reports."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from chimera.store.base import StoreBase
from chimera.store.rows import BenchResultRow, QualityRatingRow


class EvalRows(StoreBase):
    def save_eval_row(self, table: str, row: dict[str, Any]) -> None:
        self._upsert(table, {**row, "created_at": time.time()})

    def bench_results(self, suite: str, *, below_sample: int | None = None) -> list[BenchResultRow]:
        """The graded samples of one benchmark suite (those numbered below `below_sample`, if given)."""
        where, args = ("suite = ? and sample < ?", [suite, below_sample]) if below_sample is not None \
            else ("suite = ?", [suite])
        return [cast(BenchResultRow, row) for row in self._rows("bench_results", where, args)]

    def quality_ratings(self, source: str | None = None) -> list[QualityRatingRow]:
        where, args = ("source = ?", [source]) if source is not None else (None, [])
        return [cast(QualityRatingRow, row) for row in self._rows("quality_ratings", where, args)]

    def save_report(self, run: str, kind: str, report: dict[str, Any]) -> None:
        self._upsert("eval_reports", {"id": f"{run}:{kind}", "run": run, "kind": kind,
                                      "report": json.dumps(report), "created_at": time.time()}, keep=())

    def report(self, run: str, kind: str) -> dict[str, Any] | None:
        row = self._get("eval_reports", f"{run}:{kind}")
        return json.loads(row["report"]) if row else None
