"""A role's calls sent through the provider's batch API (OpenAI's `/v1/files` and `/v1/batches`, and the
servers that copy it), at half the price of online calls.

A batched call awaits its item's result as an online call awaits its HTTP reply: the graph, its routing and
its checkpoints are the same, and a topic only waits longer at that step. Requests from every topic and
problem slot gather in one queue; a batch is sent once `batch_max_requests` wait (within `batch_max_mb`), or
once the oldest has waited `batch_max_wait_s`.

Each item's `custom_id` is the call's request key, the key kept replies already use. A batch is recorded in
the run's database before its file is uploaded, with its items' keys, and again once the provider named it;
the local id travels in the batch's metadata. A resumed run asks its calls again with the same keys: a key
inside a batch still open is answered from that batch (polled, not sent again), and a batch whose record
lacks the provider's id is looked up by its metadata before anything is sent twice. Ctrl-C leaves sent
batches running; the same command picks them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from chimera.config import ModelSpec
from chimera.models.capped_read import read_capped
from chimera.store.rows import BatchRow

log = logging.getLogger("chimera.batches")
BATCH_ID_FIELD = "_chimera_batch_id"  # set on a completion that came in a batch; read by the call's log row
ENDED = ("completed", "failed", "expired", "cancelled")
METADATA_KEY = "chimera_batch"
LOOKBACK_S = 3600.0  # how far before a batch's record its provider's copy may be found


class BatchItemFailed(Exception):
    """A batch item the provider did not answer with a reply: retried in the next batch like a failed call."""

    def __init__(self, batch_id: str, status: int | None, message: str, *, retryable: bool):
        super().__init__(f"batch {batch_id}: {f'HTTP {status}: ' if status else ''}{message}")
        self.status = status
        self.retryable = retryable


class BatchLedger(Protocol):
    """Where batches are recorded (the run's store)."""

    async def begin_batch(self, *, id: str, run: str, role: str, base_url: str, keys: list[str]) -> None: ...
    async def batch_uploaded(self, id: str, input_file_id: str) -> None: ...
    async def batch_sent(self, id: str, provider_id: str, provider_status: str) -> None: ...
    async def batch_polled(self, id: str, provider_status: str, *, ended: bool) -> None: ...
    async def batch_closed(self, id: str, state: str, error: str | None = None) -> None: ...
    async def open_batches(self, run: str, role: str) -> list[BatchRow]: ...


Outcome = dict[str, Any] | BatchItemFailed


@dataclass
class ProviderBatch:
    """A batch as the provider reports it."""

    id: str
    status: str
    ended: bool
    created_at: float = 0.0
    # What an ended batch left, as the poll that saw it end read it: results need not ask for the batch again.
    result_files: tuple[str, ...] | None = None
    failure: str = ""


class BatchBackend(Protocol):
    """One provider's batch API, spoken in chat-completion requests and replies."""

    def line(self, key: str, body: dict[str, Any]) -> bytes:
        """One request as a line of the batch (its size counts against batch_max_mb)."""
        ...

    async def send(self, local_id: str, lines: list[bytes], on_uploaded: Callable[[str], Awaitable[None]]
                   ) -> ProviderBatch:
        """Make a batch of these lines, tagged with `local_id` where the provider keeps tags; `on_uploaded` is told
        of an input file before the batch is made from it."""
        ...

    async def find(self, local_id: str, recorded_at: float) -> ProviderBatch | None:
        """The provider's batch made from this local one, if the provider took it and can tell."""
        ...

    async def poll(self, provider_id: str) -> ProviderBatch: ...

    async def results(self, batch: ProviderBatch, max_bytes: int) -> dict[str, Outcome]:
        """Every answered or failed item of an ended batch, by custom_id, replies as chat completions."""
        ...


class OpenAIBatches:
    """OpenAI's batch API (and Azure OpenAI's, Together's and the servers that copy it): a JSONL file uploaded to
    /v1/files, a batch made of it at /v1/batches with our local id in its metadata, output and error files."""

    def __init__(self, client: openai.AsyncOpenAI, *, run: str, role: str, window: str):
        self.client, self.run, self.role, self.window = client, run, role, window

    def line(self, key: str, body: dict[str, Any]) -> bytes:
        return json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                          ensure_ascii=False).encode() + b"\n"

    async def send(self, local_id: str, lines: list[bytes], on_uploaded: Callable[[str], Awaitable[None]]
                   ) -> ProviderBatch:
        uploaded = await self.client.files.create(
            file=(f"chimera-{local_id}.jsonl", b"".join(lines), "application/jsonl"), purpose="batch")
        await on_uploaded(uploaded.id)
        try:
            batch = await self.client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                completion_window=self.window,  # type: ignore[arg-type]  # "24h" is the usual
                metadata={METADATA_KEY: local_id, "chimera_run": self.run[:500], "chimera_role": self.role})
        except openai.APIError:
            found = await self.find(local_id, time.time())  # made after all, its answer lost on the way back?
            if found is None:
                raise
            return found
        return _provider_batch(batch)

    async def find(self, local_id: str, recorded_at: float) -> ProviderBatch | None:
        async for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get(METADATA_KEY) == local_id:
                return _provider_batch(batch)
            if batch.created_at < recorded_at - LOOKBACK_S:
                return None
        return None

    async def poll(self, provider_id: str) -> ProviderBatch:
        return _provider_batch(await self.client.batches.retrieve(provider_id))

    async def results(self, batch: ProviderBatch, max_bytes: int) -> dict[str, Outcome]:
        if batch.result_files is None:
            batch = _provider_batch(await self.client.batches.retrieve(batch.id))
        outcomes: dict[str, Outcome] = {}
        for file_id in batch.result_files or ():
            for line in (await self._download(file_id, max_bytes)).splitlines():
                if line.strip():
                    key, outcome = _item_outcome(json.loads(line), batch.id)
                    outcomes[key] = outcome
        if batch.failure:  # a batch that failed as a whole: every item says why
            outcomes.setdefault("", BatchItemFailed(batch.id, None, batch.failure[:300], retryable=True))
        return outcomes

    async def _download(self, file_id: str, max_bytes: int) -> bytes:
        async with self.client.files.with_streaming_response.content(file_id) as response:
            return await read_capped(response.iter_bytes(), max_bytes, lambda: ValueError(
                f"batch result file {file_id} is larger than {max_bytes} bytes"))


def _provider_batch(batch: Any) -> ProviderBatch:
    """An OpenAI batch object as the queue sees it."""
    failure = "; ".join(str(e.message) for e in (batch.errors.data or [])) if batch.errors else ""
    files = tuple(f for f in (batch.output_file_id, batch.error_file_id) if f)
    return ProviderBatch(batch.id, batch.status, batch.status in ENDED, float(batch.created_at),
                         result_files=files if batch.status in ENDED else None, failure=failure)


@dataclass
class OpenBatch:
    id: str
    provider_id: str
    keys: set[str]
    handed: set[str] = field(default_factory=set)


@dataclass
class Waiting:
    body: dict[str, Any]
    since: float
    line: bytes


class BatchQueue:
    """One role's batched calls: gathers them, sends batches, polls them and hands each result to its call."""

    def __init__(self, *, role: str, run: str, base_url: str, spec: ModelSpec, backend: BatchBackend,
                 ledger: BatchLedger, online: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
                 max_result_bytes: int):
        self.role, self.run, self.base_url, self.spec = role, run, base_url, spec
        self.backend, self.ledger, self.online = backend, ledger, online
        self.max_result_bytes = max_result_bytes
        self._waiting: dict[str, Waiting] = {}
        self._futures: dict[str, asyncio.Future[Outcome]] = {}
        self._in_batch: dict[str, str] = {}  # request key -> the open batch holding it
        self._open: dict[str, OpenBatch] = {}
        self._parked: dict[str, Outcome] = {}  # results no call has asked for yet (this run's resume will)
        self._failed: set[str] = set()
        self._wake = asyncio.Event()
        self._resumed: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- what a call awaits ------------------------------------------------
    async def chat(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """The completion for this request, from a batch (one already sent for it, or the next one)."""
        if self._resumed is None:
            self._resumed = asyncio.ensure_future(self._resume())
        try:
            await asyncio.shield(self._resumed)
        except Exception:  # the database or the provider was away: the next call takes the batches up again
            if self._resumed.done():
                self._resumed = None
            raise
        if key in self._failed and self.spec.batch_retry_online:
            self._failed.discard(key)
            return await self.online(body)
        if key in self._parked:
            return self._hand(key, self._parked.pop(key))
        future = self._futures.get(key)
        if future is None:
            future = self._futures[key] = asyncio.get_running_loop().create_future()
            if key not in self._in_batch:
                self._waiting[key] = Waiting(body, time.monotonic(), self.backend.line(key, body))
                self._wake.set()
        self._start()
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            if key in self._waiting:  # not sent yet: nobody needs it now, and a resume asks it again
                del self._waiting[key]
                self._futures.pop(key, None)
            raise
        except Exception:  # the batch could not be sent: the call retries, and a new future is made then
            self._futures.pop(key, None)
            raise
        return self._hand(key, outcome)

    def _hand(self, key: str, outcome: Outcome) -> dict[str, Any]:
        self._futures.pop(key, None)
        batch_id = self._in_batch.pop(key, None)
        batch = self._open.get(batch_id) if batch_id else None
        if batch is not None:
            batch.handed.add(key)
            if batch.handed >= batch.keys:
                del self._open[batch.id]
                self._spawn(self.ledger.batch_closed(batch.id, "read"))
        if isinstance(outcome, BatchItemFailed):
            self._failed.add(key)
            raise outcome
        return outcome

    def _deliver(self, key: str, outcome: Outcome) -> None:
        future = self._futures.get(key)
        if future is not None and not future.done():
            future.set_result(outcome)
        else:
            self._parked[key] = outcome

    # -- sending -------------------------------------------------------------
    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.ensure_future(self._dispatch()), asyncio.ensure_future(self._poll())]

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        task.add_done_callback(_log_failure)

    async def _dispatch(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            oldest = next(iter(self._waiting.values())).since
            due_in = oldest + self.spec.batch_max_wait_s - time.monotonic()
            if len(self._waiting) < self.spec.batch_max_requests and due_in > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due_in):
                        await self._wake.wait()
                continue
            await self._send(self._take())

    def _take(self) -> dict[str, Waiting]:
        """The oldest waiting requests that fit in one batch's file."""
        taken: dict[str, Waiting] = {}
        size, limit = 0, int(self.spec.batch_max_mb * 2**20)
        for key, item in list(self._waiting.items()):
            if len(taken) >= self.spec.batch_max_requests or (taken and size + len(item.line) > limit):
                break
            taken[key] = self._waiting.pop(key)
            size += len(item.line)
        return taken

    async def _send(self, items: dict[str, Waiting]) -> None:
        local_id = uuid.uuid4().hex
        keys = list(items)
        for key in keys:
            self._in_batch[key] = local_id
        try:
            await self.ledger.begin_batch(id=local_id, run=self.run, role=self.role, base_url=self.base_url,
                                          keys=keys)
            batch = await self.backend.send(local_id, [item.line for item in items.values()],
                                            lambda file_id: self.ledger.batch_uploaded(local_id, file_id))
        except Exception as error:  # noqa: BLE001 - each item's call sees it, and retries as after a failed call
            await _quietly(self.ledger.batch_closed(local_id, "abandoned", str(error)[:300]))
            for key in keys:
                self._in_batch.pop(key, None)
                future = self._futures.get(key)
                if future is not None and not future.done():
                    future.set_exception(error)
            return
        await self.ledger.batch_sent(local_id, batch.id, batch.status)
        self._open[local_id] = OpenBatch(local_id, batch.id, set(keys))
        log.info("%s: sent batch %s (%d requests)", self.role, batch.id, len(keys))

    # -- polling and reading -------------------------------------------------
    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.spec.batch_poll_s)
            for batch in list(self._open.values()):
                try:
                    status = await self.backend.poll(batch.provider_id)
                    await self.ledger.batch_polled(batch.id, status.status, ended=status.ended)
                    if status.ended:
                        await self._read(batch, status)
                except Exception as error:  # noqa: BLE001 - the provider or the network: the next poll tries again
                    log.info("%s: polling batch %s failed (%s); polling again", self.role, batch.provider_id, error)

    async def _read(self, batch: OpenBatch, status: ProviderBatch) -> None:
        """Every item of an ended batch handed to its call: its reply, or why it has none."""
        outcomes = await self.backend.results(status, self.max_result_bytes)
        whole = outcomes.pop("", None)  # why the batch failed as a whole, if it did
        for key in batch.keys:
            outcome = outcomes.get(key) or BatchItemFailed(
                batch.provider_id, None, f"the batch {status.status} without this request"
                + (f" ({whole})" if whole else ""), retryable=True)
            self._deliver(key, outcome)
        log.info("%s: batch %s %s, %d of %d answered", self.role, batch.provider_id, status.status,
                 sum(not isinstance(o, BatchItemFailed) for o in outcomes.values()), len(batch.keys))

    # -- resume --------------------------------------------------------------
    async def _resume(self) -> None:
        """Take up the batches an earlier process sent (or was sending) for this role."""
        for row in await self.ledger.open_batches(self.run, self.role):
            provider_id = row["provider_id"]
            if provider_id is None:
                found = await self.backend.find(row["id"], row["created_at"])
                if found is None:
                    await self.ledger.batch_closed(row["id"], "abandoned", "the process stopped before sending it")
                    continue
                provider_id = found.id
                await self.ledger.batch_sent(row["id"], provider_id, found.status)
            self._open[row["id"]] = OpenBatch(row["id"], provider_id, set(row["keys"]))
            for key in row["keys"]:
                self._in_batch[key] = row["id"]
            log.info("%s: polling batch %s sent before (%d requests)", self.role, provider_id, len(row["keys"]))
        if self._open:
            self._start()

    async def close(self) -> None:
        """Stop gathering and polling; batches already sent go on at the provider."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def in_flight(self) -> int:
        return len(self._in_batch)


def _item_outcome(line: dict[str, Any], batch_id: str) -> tuple[str, Outcome]:
    """One line of a batch's output or error file, as the item's completion or its failure."""
    key = str(line.get("custom_id"))
    response, error = line.get("response") or {}, line.get("error")
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and isinstance(body, dict):
        return key, {**body, BATCH_ID_FIELD: batch_id}
    if isinstance(error, dict):
        return key, BatchItemFailed(batch_id, None, f"{error.get('code')}: {error.get('message')}", retryable=True)
    message = ((body or {}).get("error") or {}).get("message") if isinstance(body, dict) else None
    retryable = status is None or status in (408, 409, 429) or status >= 500
    return key, BatchItemFailed(batch_id, status, str(message or "no reply"), retryable=retryable)


async def _quietly(work: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await work


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("batch bookkeeping failed: %s", task.exception())
