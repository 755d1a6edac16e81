"""Rows of the eval commands (bench, quality) and saved reports."""

from __future__ import annotations

import json
import time
from typing import Any

from chimera.store.base import StoreBase


class EvalRows(StoreBase):
    def save_eval_row(self, table: str, row: dict[str, Any]) -> None:
        self._upsert(table, {**row, "created_at": time.time()})

    def eval_rows(self, table: str, where: str = "1 = 1", args: list[Any] | None = None) -> list[dict[str, Any]]:
        return self._rows(table, where, args)

    def save_report(self, run: str, kind: str, report: dict[str, Any]) -> None:
        self._upsert("eval_reports", {"id": f"{run}:{kind}", "run": run, "kind": kind,
                                      "report": json.dumps(report), "created_at": time.time()}, keep=())

    def report(self, run: str, kind: str) -> dict[str, Any] | None:
        row = self._get("eval_reports", f"{run}:{kind}")
        return json.loads(row["report"]) if row else None
