"""The store as code on an event loop uses it: every call is awaited, and runs on the store's own thread.

A database call never blocks the loop (model calls, the progress display and a LangGraph server's requests
go on meanwhile). One thread per store keeps the connection's statements in the order they were awaited,
and a call that writes several rows (`keep_original`, say) holds its transaction inside that one call, so
no other coroutine's statement can fall between them.

`offload=False` runs each call on the loop instead. `chimera run` does, on its SQLite file: the loop is its
own, each statement takes microseconds on a local file, and the hand-over to a thread and back costs about
1 ms of CPU per model call on a 2-core machine (25% more than the run's whole orchestration), which caps
how many requests one process keeps in flight. A LangGraph server, whose loop serves other requests,
keeps the thread. The synchronous `Store` stays what commands with no loop use.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import queue
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from chimera.store import Store
from chimera.store.graph_store import GraphStore

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    """The one thread a store's statements run on, fed from any event loop.

    Lighter than an executor where it counts: a call is a queue entry, and the thread wakes the loop once
    for every batch it finished rather than once per call (under load, calls queue up while one runs).
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]
                                       | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="chimera-store", daemon=True)
        self._thread.start()

    def submit(self, function: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, function))
        return future

    def stop(self) -> None:
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            finished: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
            while call is not None:
                loop, future, function = call
                try:
                    outcome = (future, True, function())
                except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                    outcome = (future, False, error)
                finished.setdefault(loop, []).append(outcome)
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
            for loop, outcomes in finished.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, outcomes)
            if call is None:
                return


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# Store methods with their own counterpart here, which a plain forward would get wrong.
_NOT_FORWARDED = {"close": "await aclose(), which also stops the store's thread"}


class AsyncStore:
    """A `Store` behind its own thread. Open with `await AsyncStore.open(path)`; close with `await aclose()`.

    Every public method of `Store` is here awaited under the same name (`await store.problem(pid)`), made on
    first use by `__getattr__`. mypy does not see those: typed code either awaits `run(Store.method, ...)`,
    or holds the store as the protocol it needs (`for_graphs`, a `BatchLedger`), whose every method
    tests/test_nonblocking_store.py holds to the `Store` method of the same name and parameters.
    """

    def __init__(self, store: Store, *, offload: bool = True):
        self.sync = store  # for code with no loop, and for reads once the loop is done with the store
        self._thread = StoreThread() if offload else None

    @classmethod
    async def open(cls, path: str | Path, *, offload: bool = True, **options: Any) -> AsyncStore:
        """Open (and migrate) where its calls will run: with `offload`, not on the loop either."""
        opened = cls.__new__(cls)
        opened._thread = StoreThread() if offload else None
        try:
            opened.sync = await opened._execute(functools.partial(Store, path, **options))
        except BaseException:
            if opened._thread is not None:
                opened._thread.stop()
            raise
        return opened

    @property
    def path(self) -> str:
        return self.sync.path

    @property
    def backend(self) -> str:
        return self.sync.backend

    @property
    def for_graphs(self) -> GraphStore:
        """This store as the graphs see it (`Deps.store`): the methods they call, forwarded by `__getattr__`."""
        return cast(GraphStore, self)

    def forward(self, method: Callable[Concatenate[Store, P], T]) -> Callable[P, Coroutine[Any, Any, T]]:
        """`method` of the synchronous store as a coroutine function, each call awaited on the store's thread."""

        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.run(method, *args, **kwargs)

        call.__name__, call.__qualname__, call.__doc__ = method.__name__, method.__qualname__, method.__doc__
        return call

    if not TYPE_CHECKING:  # hidden from mypy, which would take any name for a method of any signature

        def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
            """`Store.<name>` forwarded (made once per store: the next lookup finds it as an attribute)."""
            method = None if name.startswith("_") else inspect.getattr_static(Store, name, None)
            if not inspect.isfunction(method) or name in _NOT_FORWARDED:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}"
                                     f" ({_NOT_FORWARDED.get(name, 'it forwards the public methods of Store')})")
            forwarded = self.forward(method)
            setattr(self, name, forwarded)
            return forwarded

    async def run(self, function: Callable[Concatenate[Store, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Any store function (a method, or a function taking the store first) run on the store's thread."""
        return await self._execute(functools.partial(function, self.sync, *args, **kwargs))

    async def _execute(self, call: Callable[[], T]) -> T:
        return call() if self._thread is None else await self._thread.submit(call)

    async def aclose(self) -> None:
        try:
            await self.run(Store.close)
        finally:
            if self._thread is not None:
                self._thread.stop()
