"""Batch mode: a role's calls go through the provider's batch API (the simulator serves OpenAI's shape), make
the same dataset as online calls, survive a kill without sending an item twice, and retry what a batch did
not answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import CHIMERA, chimera, dataset, write_config
from stop_at import count

from chimera.config import ModelSpec, SimSettings
from chimera.models.batching import BatchQueue, OpenAIBatches
from chimera.models.llm import OpenAITransport
from chimera.sim import server as sim_server
from chimera.store.nonblocking import AsyncStore

BATCHED = {"batch": True, "batch_max_wait_s": 0.2, "batch_poll_s": 0.1}


class SimulatorThread:
    """The simulator on a loop of its own in this process: it outlives the runs the tests kill."""

    def __init__(self, settings: SimSettings, seed: int):
        self.settings, self.seed = settings, seed
        self.url = ""
        self.simulator: sim_server.Simulator | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> SimulatorThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runner, self.url, self.simulator = await sim_server.start(self.settings, seed=self.seed)
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def items_received(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/sim/batch-items", timeout=10) as reply:
            return json.loads(reply.read())


def batched_models(url: str, **batch: Any) -> dict[str, Any]:
    """Every role on `url`; all but the solver in batch mode."""
    def role() -> dict[str, Any]:
        return {**BATCHED, **batch}

    return {"default": {"provider": "openai", "base_url": url, "model": "sim", "timeout_s": 30},
            "expander": role(), "drafter": role(), "critics": [role(), role()], "solver": {}, "labeler": role()}


def calls(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def test_a_batched_run_makes_the_same_dataset_as_the_online_run_with_the_same_seed(tmp_path):
    sim = {"batch_delay_s": 0.2}
    with SimulatorThread(SimSettings(**sim), seed=5) as server:
        online = write_config(tmp_path, name="online", models={"default": {
            "provider": "openai", "base_url": server.url, "model": "sim", "timeout_s": 30}})
        batched = write_config(tmp_path, name="batched", models=batched_models(server.url))
        assert chimera("run", str(online), "--quiet").returncode == 0
        result = chimera("run", str(batched), "--quiet")
        assert result.returncode == 0, result.stderr
        received = server.items_received()
    assert dataset(tmp_path / "batched.db") == dataset(tmp_path / "online.db")
    by_role = dict(calls(tmp_path / "batched.db", "select role, count(batch_id) from llm_calls group by role"))
    assert by_role["drafter"] > 0 and by_role["critic0"] > 0 and by_role["solver"] == 0
    assert set(received.values()) == {1}  # every item sent once
    assert calls(tmp_path / "batched.db", "select count(*) from batches where state != 'read'") == [(0,)]


def test_a_run_killed_while_its_batches_are_in_flight_polls_them_on_resume_and_sends_no_item_twice(tmp_path):
    # A long batch delay keeps the batches open at the kill; the trigger is the first batch the provider took.
    with SimulatorThread(SimSettings(batch_delay_s=2.0), seed=5) as server:
        config = write_config(tmp_path, models=batched_models(server.url))
        db = tmp_path / "t.db"
        run = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while count(db, "select count(*) from batches where state = 'sent'") == 0:
            assert run.poll() is None and time.monotonic() < deadline, "no batch was sent"
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait()
        still_open = count(db, "select count(*) from batches where state in ('sent', 'ended')")
        assert still_open > 0  # the kill landed while a batch was at the provider, unread
        in_flight = next(iter(json.loads(chimera("status", str(db), "--json").stdout).values()))["batches"]
        assert len(in_flight) == still_open
        assert all(b["provider_id"].startswith("batch-") and b["items"] > 0 and b["age_s"] >= 0 for b in in_flight)
        resumed = chimera("run", str(config), "--quiet")
        assert resumed.returncode == 0, resumed.stderr
        received = server.items_received()
        online = write_config(tmp_path, name="online", models={"default": {
            "provider": "openai", "base_url": server.url, "model": "sim", "timeout_s": 30}})
        assert chimera("run", str(online), "--quiet").returncode == 0
    assert received and set(received.values()) == {1}
    assert count(db, "select count(*) from batches where state = 'abandoned'") == 0
    assert dataset(db) == dataset(tmp_path / "online.db")  # nothing lost to the kill


def test_items_a_batch_failed_or_left_unanswered_are_sent_again_and_the_run_finishes(tmp_path):
    with SimulatorThread(SimSettings(batch_delay_s=0.1, batch_item_error_rate=0.2, batch_expire_rate=0.3),
                         seed=5) as server:
        # About a third of the items fail at each try, and which share a batch is up to timing: enough retries
        # that no slot runs out of them by chance (3 would, now and then)
        config = write_config(tmp_path, models=batched_models(server.url, max_retries=12))
        result = chimera("run", str(config), "--quiet")
        received = server.items_received()
    assert result.returncode == 0, result.stderr
    db = tmp_path / "t.db"
    outcomes = dict(calls(db, "select outcome, count(*) from llm_calls where role != 'solver' group by outcome"))
    assert outcomes.get("batch_http_500", 0) > 0 and outcomes.get("batch_unanswered", 0) > 0
    retried = {key for key, times in received.items() if times > 1}
    failed_keys = {row[0] for row in calls(db, "select request_key from llm_calls where outcome like 'batch_%'")}
    assert retried and retried <= failed_keys  # only what failed was sent again
    assert count(db, "select count(*) from problems where status = 'failed'") == 0


def test_a_batch_the_provider_took_before_the_process_could_record_it_is_found_and_not_sent_again(tmp_path):
    """The narrowest window: the provider made the batch, and the process died before writing its id."""

    async def scenario() -> tuple[dict[str, Any], dict[str, int]]:
        runner, url, simulator = await sim_server.start(SimSettings(batch_delay_s=0.3), seed=1)
        store = await AsyncStore.open(tmp_path / "ledger.db", offload=False)
        transport = OpenAITransport(url, "none", 30, connections=4)
        spec = ModelSpec(provider="sim", batch=True, batch_max_wait_s=0.0, batch_poll_s=0.1)
        body = {"model": "sim-solver", "messages": [{"role": "user", "content": "What is 2 + 3? Answer: ..."}]}

        class DiesAfterTheProviderTookIt:
            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            async def batch_sent(self, *args: Any) -> None:
                await asyncio.Event().wait()  # the process is gone before this write

        backend = OpenAIBatches(transport.client, run="r", role="solver", window="24h")
        first = BatchQueue(role="solver", run="r", base_url=url, spec=spec, backend=backend,
                           ledger=DiesAfterTheProviderTookIt(), online=transport.chat, max_result_bytes=1 << 20)
        asking = asyncio.ensure_future(first.chat("key-1", body))
        while not simulator.batches.batches:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        asking.cancel()
        await first.close()
        assert [row["state"] for row in await store.open_batches("r", "solver")] == ["sending"]
        second = BatchQueue(role="solver", run="r", base_url=url, spec=spec, backend=backend, ledger=store,
                            online=transport.chat, max_result_bytes=1 << 20)
        reply = await asyncio.wait_for(second.chat("key-1", body), 10)
        await second.close()
        await transport.close()
        received = dict(simulator.batches.items_received)
        await store.aclose()
        await runner.cleanup()
        return reply, received

    reply, received = asyncio.run(scenario())
    assert reply["choices"][0]["message"]["content"]
    assert received == {"key-1": 1}


def test_a_role_in_batch_mode_on_a_langchain_provider_is_refused_in_one_line(tmp_path):
    config = write_config(tmp_path, models={"default": {"provider": "sim"},
                                            "drafter": {"provider": "langchain", "class": "a.B", "batch": True}})
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 2
    assert "batch" in result.stderr and len(result.stderr.strip().splitlines()) == 1


PRICED = {"default": {"provider": "sim", "price_per_mtok_in": 1.25, "price_per_mtok_out": 10.0}}


def spend(db: Path) -> tuple[float, list[float]]:
    """Dollars spent by the run's calls, and each call's cost."""
    costs = [(tokens_in * 1.25 + tokens_out * 10.0) / 1e6
             for tokens_in, tokens_out in calls(db, "select tokens_in, tokens_out from llm_calls")]
    return sum(costs), costs


def test_a_run_stops_at_its_budget_with_exit_3_and_goes_on_exactly_once_the_cap_is_raised(tmp_path):
    full = write_config(tmp_path, name="full", models=PRICED)
    assert chimera("run", str(full), "--quiet").returncode == 0
    full_cost, costs = spend(tmp_path / "full.db")
    cap = round(full_cost / 2, 6)
    capped = write_config(tmp_path, name="capped", models=PRICED, run={
        "name": "capped", "db": str(tmp_path / "capped.db"), "seed": 5, "concurrency": 8, "max_cost_usd": cap})
    stopped = chimera("run", str(capped), "--quiet")
    assert stopped.returncode == 3, stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert "budget reached" in last and f"of ${cap:g}" in last and "raise the cap" in last
    spent_at_stop, _ = spend(tmp_path / "capped.db")
    in_flight_at_most = sum(sorted(costs)[-8:])  # the eight dearest calls: the budget keeps 8 in flight at most
    assert 0 < spent_at_stop <= cap + in_flight_at_most
    again = chimera("run", str(capped), "--quiet")  # the cap is still passed: nothing is sent
    assert again.returncode == 3 and spend(tmp_path / "capped.db")[0] == spent_at_stop
    resumed = chimera("run", str(capped), "--quiet", "--set", f"run.max_cost_usd={full_cost * 3}")
    assert resumed.returncode == 0, resumed.stderr
    assert dataset(tmp_path / "capped.db") == dataset(tmp_path / "full.db")


def test_a_token_cap_on_one_role_stops_the_run_when_that_role_reaches_it(tmp_path):
    models = {"default": {"provider": "sim"}, "drafter": {"max_total_tokens": 400}}
    config = write_config(tmp_path, models=models)
    stopped = chimera("run", str(config), "--quiet")
    assert stopped.returncode == 3
    assert "models.drafter.max_total_tokens" in stopped.stderr.strip().splitlines()[-1]


def usage(db: Path) -> dict[str, Any]:
    report = json.loads(chimera("status", str(db), "--json").stdout)
    return next(iter(report.values()))["usage"]


def test_input_tokens_served_from_cache_are_stored_with_each_call_and_priced_at_the_cached_price(tmp_path):
    priced = {"default": {"provider": "sim", "price_per_mtok_in": 1.0, "price_per_mtok_cached": 0.1,
                          "price_per_mtok_out": 0.0}}
    config = write_config(tmp_path, models=priced)
    assert chimera("run", str(config), "--quiet").returncode == 0
    by_role = usage(tmp_path / "t.db")
    stored = dict(calls(tmp_path / "t.db", "select role, sum(cached_tokens) from llm_calls group by role"))
    # every role's system prompt is fixed, so each call after a role's first finds it cached
    for role in ("drafter", "critic0", "critic1"):
        figures = by_role[role]
        assert figures["cached_tokens"] == stored[role] > 0
        assert 0 < figures["cached_share"] < 1
        expected = ((figures["tokens_in"] - figures["cached_tokens"]) * 1.0 + figures["cached_tokens"] * 0.1) / 1e6
        assert figures["cost_usd"] == pytest.approx(expected, abs=1e-6)  # rounded to the micro-dollar


def test_a_batched_run_costs_at_most_055_of_the_online_run_per_accepted_sample(tmp_path):
    prices = {"price_per_mtok_in": 1.25, "price_per_mtok_out": 10.0}
    with SimulatorThread(SimSettings(batch_delay_s=0.1), seed=5) as server:
        online_models = {"default": {"provider": "openai", "base_url": server.url, "model": "sim", "timeout_s": 30,
                                     **prices}, "solver": {"price_per_mtok_in": 0, "price_per_mtok_out": 0}}
        batched = batched_models(server.url, **prices)
        batched["default"].update(prices)
        batched["solver"] = {"price_per_mtok_in": 0, "price_per_mtok_out": 0}  # self-hosted, as in the paper
        assert chimera("run", str(write_config(tmp_path, name="online", models=online_models)), "--quiet").returncode == 0
        assert chimera("run", str(write_config(tmp_path, name="batched", models=batched)), "--quiet").returncode == 0
    costs = {name: sum(u["cost_usd"] for u in usage(tmp_path / f"{name}.db").values() if u["cost_usd"])
             for name in ("online", "batched")}
    accepted = {name: count(tmp_path / f"{name}.db", "select count(*) from samples") for name in costs}
    assert accepted["online"] == accepted["batched"] > 0
    assert costs["batched"] / accepted["batched"] <= 0.55 * costs["online"] / accepted["online"]


def test_a_role_may_ask_a_failed_batch_item_again_online_instead_of_in_the_next_batch(tmp_path):
    with SimulatorThread(SimSettings(batch_delay_s=0.1, batch_item_error_rate=0.3), seed=5) as server:
        config = write_config(tmp_path, models=batched_models(server.url, batch_retry_online=True))
        result = chimera("run", str(config), "--quiet")
        received = server.items_received()
    assert result.returncode == 0, result.stderr
    assert set(received.values()) == {1}  # nothing went into a batch twice
    db = tmp_path / "t.db"
    failed = {row[0] for row in calls(db, "select request_key from llm_calls where outcome = 'batch_http_500'")}
    answered_online = {row[0] for row in calls(
        db, "select request_key from llm_calls where outcome = 'ok' and batch_id is null and role != 'solver'")}
    assert failed and failed <= answered_online


def test_every_roles_system_prompt_is_the_same_for_every_call_so_prompt_caches_can_serve_it():
    """The fixed part of a prompt comes first: each role's system message renders alike whatever the problem."""
    from importlib.resources import files

    from chimera.agents.base import prompt_template, render

    names = sorted(p.name.removesuffix(".system.md") for p in files("chimera.agents").joinpath("prompts").iterdir()
                   if p.name.endswith(".system.md"))
    assert len(names) >= 6
    for name in names:
        fields = set(prompt_template(f"{name}.user").get_identifiers()) | set(
            prompt_template(f"{name}.system").get_identifiers())
        first = render(name, **{field: f"first {field}" for field in fields})
        second = render(name, **{field: f"another {field} entirely" for field in fields})
        if first[0]["role"] == "system":
            assert first[0] == second[0], f"{name}: the system prompt changes with the call"
            assert first[1] != second[1] or not fields
