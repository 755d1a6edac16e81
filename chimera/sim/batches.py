"""The simulator's batch API, in the shape of OpenAI's (and of the servers that copy it): upload a JSONL file
of requests (`/v1/files`), create a batch of it (`/v1/batches`), poll the batch, read its output and error
files. Each line is answered by the same oracle as `/v1/chat/completions`, so a batched run makes the same
dataset as an online one.

What a test or benchmark needs to see a client's behaviour: a completion delay, per-item errors, batches
that expire with part of their items done, and how many times each `custom_id` was received (`GET
/sim/batch-items`), which is what proves a resumed client did not submit an item twice."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chimera.config import SimSettings
from chimera.sim.oracle import Oracle, seeded

BATCH_ENDPOINTS = ("/v1/chat/completions",)
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class SimBatch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str]
    created_at: float
    lines: list[dict[str, Any]]
    status: str = "in_progress"
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended_at: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "errors": None,
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "created_at": int(self.created_at), "in_progress_at": int(self.created_at),
            "expires_at": int(self.created_at) + 86400,
            "completed_at": int(self.ended_at) if self.ended_at and self.status == "completed" else None,
            "expired_at": int(self.ended_at) if self.ended_at and self.status == "expired" else None,
            "cancelled_at": int(self.ended_at) if self.ended_at and self.status == "cancelled" else None,
            "failed_at": None, "finalizing_at": None, "cancelling_at": None,
            "request_counts": dict(self.counts), "metadata": self.metadata or None,
        }


class BatchDesk:
    """Files and batches, held in memory for the simulator's life."""

    def __init__(self, oracle: Oracle, settings: SimSettings, seed: int,
                 cached_tokens: Callable[[str, list[Any]], int] = lambda model, messages: 0):
        self.oracle = oracle
        self.cached_tokens = cached_tokens  # the simulator's prefix cache serves batches too
        self.settings = settings
        self.seed = seed
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self.batches: dict[str, SimBatch] = {}
        self.items_received: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{file_id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.listing)
        app.router.add_get("/v1/batches/{batch_id}", self.retrieve)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self.cancel)
        app.router.add_get("/sim/batch-items", self.item_counts)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-sim{next(self._ids):06d}"

    async def upload(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except ValueError as error:
            return error_reply(400, f"the upload is not a multipart form: {error}")
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField) or purpose != "batch":
            return error_reply(400, "send a multipart form with a `file` and purpose=batch")
        content = upload.file.read()
        file_id = self._new_id("file")
        self.files[file_id] = ("batch", content)
        return web.json_response({"id": file_id, "object": "file", "bytes": len(content),
                                  "created_at": int(time.time()), "filename": upload.filename or "batch.jsonl",
                                  "purpose": "batch", "status": "processed"})

    async def content(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return error_reply(404, "no such file")
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return error_reply(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return error_reply(400, "request body must be a JSON object")
        found = self.files.get(str(body.get("input_file_id")))
        if found is None:
            return error_reply(400, "input_file_id names no uploaded file")
        if body.get("endpoint") not in BATCH_ENDPOINTS:
            return error_reply(400, f"endpoint must be one of {', '.join(BATCH_ENDPOINTS)}")
        try:
            lines = [json.loads(line) for line in found[1].decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError):
            return error_reply(400, "the input file is not JSON lines")
        ids = [line.get("custom_id") for line in lines if isinstance(line, dict)]
        if len(ids) != len(lines) or len(set(ids)) != len(ids) or None in ids:
            return error_reply(400, "every line needs a custom_id, unique within the batch")
        for custom_id in ids:
            self.items_received[str(custom_id)] += 1
        batch = SimBatch(id=self._new_id("batch"), input_file_id=str(body["input_file_id"]),
                         endpoint=str(body["endpoint"]), completion_window=str(body.get("completion_window", "24h")),
                         metadata=dict(body.get("metadata") or {}), created_at=time.time(), lines=lines)
        batch.counts["total"] = len(lines)
        self.batches[batch.id] = batch
        return web.json_response(batch.public())

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return error_reply(404, "no such batch")
        self._advance(batch)
        return web.json_response(batch.public())

    async def listing(self, request: web.Request) -> web.Response:
        newest_first = sorted(self.batches.values(), key=lambda b: b.id, reverse=True)
        after = request.query.get("after")
        if after:
            newest_first = [b for b in newest_first if b.id < after]
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
        page = newest_first[:limit]
        for batch in page:
            self._advance(batch)
        return web.json_response({"object": "list", "data": [b.public() for b in page],
                                  "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None,
                                  "has_more": len(newest_first) > limit})

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return error_reply(404, "no such batch")
        self._advance(batch)
        if batch.status not in TERMINAL:
            self._finish(batch, "cancelled", answered=0)
        return web.json_response(batch.public())

    async def item_counts(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.items_received))

    def _advance(self, batch: SimBatch) -> None:
        """A batch is done once its delay has passed; some expire with half their items answered."""
        if batch.status in TERMINAL or time.time() - batch.created_at < self.settings.batch_delay_s:
            return
        if seeded(self.seed, "batch-expiry", batch.id).random() < self.settings.batch_expire_rate:
            self._finish(batch, "expired", answered=len(batch.lines) // 2)
        else:
            self._finish(batch, "completed", answered=len(batch.lines))

    def _finish(self, batch: SimBatch, status: str, *, answered: int) -> None:
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, line in enumerate(batch.lines):
            custom_id = str(line["custom_id"])
            item = {"id": f"{batch.id}-req{index}", "custom_id": custom_id}
            if index >= answered:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                errors.append({**item, "response": None, "error": {"code": code, "message": f"the batch {status} "
                                                                   "before this request ran"}})
            elif seeded(self.seed, "batch-item", custom_id, self.items_received[custom_id]).random() \
                    < self.settings.batch_item_error_rate:
                errors.append({**item, "error": None, "response": {"status_code": 500, "request_id": item["id"], "body": {
                    "error": {"message": "internal error (injected)", "type": "server_error"}}}})
            elif not isinstance(line.get("body"), dict) or not line["body"].get("messages"):
                errors.append({**item, "error": None, "response": {"status_code": 400, "request_id": item["id"], "body": {
                    "error": {"message": "body.messages must be a non-empty list", "type": "invalid_request_error"}}}})
            else:
                reply = self.oracle.respond(line["body"])
                cached = self.cached_tokens(str(line["body"].get("model")), line["body"]["messages"])
                if cached:
                    reply["usage"]["prompt_tokens_details"] = {"cached_tokens": min(cached, reply["usage"]["prompt_tokens"])}
                outputs.append({**item, "error": None, "response": {
                    "status_code": 200, "request_id": item["id"], "body": reply}})
        batch.output_file_id = self._store_lines(outputs)
        batch.error_file_id = self._store_lines(errors)
        batch.counts.update(completed=len(outputs), failed=len(errors))
        batch.status, batch.ended_at = status, time.time()

    def _store_lines(self, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        file_id = self._new_id("file")
        self.files[file_id] = ("batch_output", "".join(json.dumps(line) + "\n" for line in lines).encode())
        return file_id


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error in OpenAI's shape, as the SDK reads it."""
    kind = {400: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
    return web.json_response({"error": {"message": message, "type": kind, "code": status}},
                             status=status, headers=headers)
