"""Batches sent to a provider's batch API, and the request keys each holds.

A batch's life: `sending` (recorded before its file is uploaded), `sent` (the provider named it), `ended`
(the provider finished, expired, failed or cancelled it), `read` (every item was handed to its call), or
`abandoned` (a process died before the provider took it, and the provider has no batch of it). A resumed
run polls the batches still `sending`, `sent` or `ended` instead of sending their items again.
"""

from __future__ import annotations

import time
from typing import Any

from chimera.store.base import StoreBase
from chimera.store.rows import BatchRow

OPEN_STATES = ("sending", "sent", "ended")


class Batches(StoreBase):
    def begin_batch(self, *, id: str, run: str, role: str, base_url: str, keys: list[str]) -> None:
        with self.conn:
            self.conn.execute("insert into batches (id, run, role, base_url, state, items, created_at) "
                              "values (?, ?, ?, ?, 'sending', ?, ?) on conflict (id) do nothing",
                              [id, run, role, base_url, len(keys), time.time()])
            self.conn.executemany("insert into batch_items (batch_id, request_key) values (?, ?) "
                                  "on conflict (batch_id, request_key) do nothing", [(id, key) for key in keys])

    def batch_uploaded(self, id: str, input_file_id: str) -> None:
        with self.conn:
            self.conn.execute("update batches set input_file_id = ? where id = ?", [input_file_id, id])

    def batch_sent(self, id: str, provider_id: str, provider_status: str) -> None:
        with self.conn:
            self.conn.execute("update batches set state = 'sent', provider_id = ?, provider_status = ?, sent_at = ? "
                              "where id = ?", [provider_id, provider_status, time.time(), id])

    def batch_polled(self, id: str, provider_status: str, *, ended: bool) -> None:
        with self.conn:
            if ended:
                self.conn.execute("update batches set provider_status = ?, state = 'ended', ended_at = ? "
                                  "where id = ? and state = 'sent'", [provider_status, time.time(), id])
            else:
                self.conn.execute("update batches set provider_status = ? where id = ?", [provider_status, id])

    def batch_closed(self, id: str, state: str, error: str | None = None) -> None:
        """`read` once every item reached its call, `abandoned` when the provider never took it."""
        with self.conn:
            self.conn.execute("update batches set state = ?, error = coalesce(?, error) where id = ?",
                              [state, error, id])

    def open_batches(self, run: str, role: str) -> list[BatchRow]:
        """The role's batches a resumed run must poll rather than send again, oldest first, with their keys."""
        rows = self.conn.execute(
            f"select id, role, base_url, state, provider_id, input_file_id, provider_status, items, created_at "
            f"from batches where run = ? and role = ? and state in {OPEN_STATES} order by created_at, id",
            [run, role]).fetchall()
        return [self._batch_row(row) for row in rows]

    def batches(self, run: str, *, open_only: bool = True) -> list[BatchRow]:
        """The run's batches (those in flight unless `open_only` is false), newest first, without their keys."""
        where = f" and state in {OPEN_STATES}" if open_only else ""
        rows = self.conn.execute(
            "select id, role, base_url, state, provider_id, input_file_id, provider_status, items, created_at "
            f"from batches where run = ?{where} order by created_at desc, id desc", [run]).fetchall()
        return [self._batch_row(row, with_keys=False) for row in rows]

    def _batch_row(self, row: Any, *, with_keys: bool = True) -> BatchRow:
        keys = [r[0] for r in self.conn.execute("select request_key from batch_items where batch_id = ? "
                                                "order by request_key", [row[0]]).fetchall()] if with_keys else []
        return BatchRow(id=row[0], role=row[1], base_url=row[2], state=row[3], provider_id=row[4],
                        input_file_id=row[5], provider_status=row[6], items=row[7], created_at=row[8], keys=keys)
