"""The store awaited from an event loop: calls run on the store's own thread, in the order they were awaited,
while the loop goes on; errors reach the awaiting coroutine; replies kept for a resume are found by key."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any, Protocol

import pytest

from chimera.errors import ChimeraError
from chimera.models.batching import BatchLedger
from chimera.store import Store
from chimera.store.graph_store import GraphStore
from chimera.store.kept_replies import KeptReplies
from chimera.store.nonblocking import AsyncStore
from chimera.store.rows import ProblemRow


def test_calls_run_off_the_loop_in_the_order_they_were_awaited_while_the_loop_goes_on(tmp_path):
    async def scenario() -> tuple[set[str], list[int], int]:
        store = await AsyncStore.open(tmp_path / "s.db")
        threads: set[str] = set()

        def slow_write(sync: Store, n: int) -> int:
            threads.add(threading.current_thread().name)
            time.sleep(0.05)
            sync.save_run(f"r{n}", {"n": n})
            return n

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        beat = asyncio.create_task(ticker())
        done = await asyncio.gather(*(store.run(slow_write, n) for n in range(4)))
        beat.cancel()
        names = [run["name"] for run in await store.run(Store.runs)]
        await store.aclose()
        return threads, [*done, len(names)], ticks

    threads, done, ticks = asyncio.run(scenario())
    assert threads == {"chimera-store"} and threading.current_thread().name not in threads
    assert done == [0, 1, 2, 3, 4]
    assert ticks >= 10, "the loop kept running while the store thread slept through 0.2 s of writes"


def test_an_error_in_a_store_call_reaches_the_coroutine_that_awaited_it(tmp_path):
    async def scenario() -> str:
        store = await AsyncStore.open(tmp_path / "s.db")
        try:
            await store.problem("missing")
        except ChimeraError as error:
            return str(error)
        finally:
            await store.aclose()
        return "no error"

    assert asyncio.run(scenario()) == "problem missing: not in the run's database"


def test_opening_a_file_that_is_not_a_database_fails_in_one_line_off_the_loop(tmp_path):
    (tmp_path / "junk.db").write_text("not sqlite at all, just text " * 100)
    with pytest.raises(ChimeraError, match="junk.db: not a chimera database"):
        asyncio.run(AsyncStore.open(tmp_path / "junk.db"))


def test_kept_replies_are_looked_up_only_for_keys_that_have_one(tmp_path):
    async def scenario() -> tuple:
        store = await AsyncStore.open(tmp_path / "s.db")
        kept = await KeptReplies.of_run(store, "r")
        asked: list[str] = []
        original = store.kept_reply

        async def counting(key: str):
            asked.append(key)
            return await original(key)

        store.kept_reply = counting  # type: ignore[method-assign]
        call = {"run": "r", "role": "solver", "model": "m", "base_url": "u", "outcome": "ok",
                "request_key": "k1", "reply": '{"content": "42"}'}
        call_id = await kept.log_call(call)
        found, missing = await kept.lookup("k1"), await kept.lookup("k2")
        reopened = await KeptReplies.of_run(store, "r")
        again = await reopened.lookup("k1")
        await store.aclose()
        return call_id, found, missing, asked, again

    call_id, found, missing, asked, again = asyncio.run(scenario())
    assert found == (call_id, {"content": "42"}) and again == found
    assert missing is None and asked == ["k1", "k1"], "a key with nothing kept costs no database round trip"


def unlike_store(protocol: type) -> list[str]:
    """How `protocol`, a face of the awaited store, departs from `Store`: each of its methods must be the Store
    method of the same name with the same parameters and return type, and each property a Store attribute."""
    departures = []
    for name, member in vars(protocol).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            if not hasattr(Store, name) or not isinstance(inspect.getattr_static(AsyncStore, name), property):
                departures.append(f"{name}: no Store attribute, or AsyncStore does not show it")
            continue
        if not inspect.iscoroutinefunction(member):
            departures.append(f"{name}: not an awaited method")
            continue
        method = inspect.getattr_static(Store, name, None)
        if not inspect.isfunction(method):
            departures.append(f"{name}: not a method of Store")
        elif inspect.signature(member) != inspect.signature(method):
            departures.append(f"{name}{inspect.signature(member)} is Store's {name}{inspect.signature(method)}")
    return departures


@pytest.mark.parametrize("protocol", [GraphStore, BatchLedger], ids=lambda p: p.__name__)
def test_every_method_the_graphs_and_batches_await_is_the_store_method_of_that_name_and_signature(protocol):
    assert unlike_store(protocol) == []


def test_a_face_that_asks_for_what_store_lacks_or_differs_from_it_is_named_at_once():
    class Askew(Protocol):
        async def problem(self, problem_id: str, round_: int) -> ProblemRow: ...
        async def explode(self) -> None: ...
        def votes(self, problem_id: str) -> dict[int, dict[str, Any]]: ...

    found = unlike_store(Askew)
    assert [line.split("(")[0].split(":")[0] for line in found] == ["problem", "explode", "votes"]
    assert "not a method of Store" in found[1] and "not an awaited method" in found[2]


def test_the_awaited_store_forwards_store_methods_only_and_leaves_closing_to_aclose(tmp_path):
    async def scenario() -> list[str]:
        store = await AsyncStore.open(tmp_path / "s.db")
        await store.save_run("r", {"n": 1})
        refused = []
        for name in ("close", "explode", "_table_names", "conn"):
            try:
                getattr(store, name)
            except AttributeError as error:
                refused.append(str(error))
        names = [run["name"] for run in await store.runs()]
        await store.aclose()
        return [*names, *refused]

    found = asyncio.run(scenario())
    assert found[0] == "r" and len(found) == 5
    assert "aclose" in found[1] and all("has no attribute" in line for line in found[1:])


def test_a_done_topics_reply_keys_are_dropped_with_its_replies(tmp_path):
    async def scenario() -> tuple:
        store = await AsyncStore.open(tmp_path / "s.db")
        kept = await KeptReplies.of_run(store, "r")
        for topic, key in (("t1", "k1"), ("t1", "k2"), ("t2", "k3")):
            await kept.log_call({"run": "r", "role": "solver", "model": "m", "base_url": "u", "outcome": "ok",
                            "topic_id": topic, "request_key": key, "reply": '{"content": "42"}'})
        held = len(kept)
        kept.forget_topic("t1")
        after, found = len(kept), await kept.lookup("k3")
        await store.aclose()
        return held, after, found

    held, after, found = asyncio.run(scenario())
    assert (held, after) == (3, 1), "only the keys of topics still running are held"
    assert found is not None and found[1] == {"content": "42"}
