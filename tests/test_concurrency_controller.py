"""Adaptive budgets: the simulator plays a GPU server that queues instead of refusing, and the budget of an
endpoint follows the server's metrics or its latency, under max_in_flight, with 429 back-off intact."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from helpers import chimera, dataset, write_config

from chimera.config import ModelSpec, SimSettings
from chimera.models.concurrency import START, default_metrics_url, parse_metrics
from chimera.models.dispatch import EndpointBudget, Endpoints
from chimera.models.llm import build_client
from chimera.sim import server

QUESTION = [{"role": "user", "content": "How many ways can 3 books be arranged on a shelf?"}]


def question(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Problem {i}: what is {i} + {i + 3}?"}]


async def metrics_of(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(default_metrics_url(url)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


async def watch(budget: EndpointBudget, seen: list[float], until: asyncio.Event) -> None:
    while not until.is_set():
        seen.append(budget.steered)
        await asyncio.sleep(0.01)


# -- the simulated GPU server -----------------------------------------------------------------------------------------

def test_the_simulated_gpu_queues_what_its_kv_cache_cannot_hold_and_shows_it_in_vllm_metrics():
    async def scenario():
        # One token of KV cache: one request runs at a time, the others wait in the server's queue.
        runner, url, sim = await server.start(SimSettings(gpu_knee=4, gpu_kv_tokens=1, gpu_request_s=0.3,
                                                          gpu_token_s=0))
        client = build_client("solver", ModelSpec(provider="sim"), endpoints=Endpoints(8), sim_url=url,
                              log=lambda call: None)
        try:
            calls = [asyncio.create_task(client.complete(question(i))) for i in range(4)]
            deadline = time.monotonic() + 10
            while (load := parse_metrics(await metrics_of(url))) is not None and load.running + load.waiting < 4:
                assert time.monotonic() < deadline, load
                await asyncio.sleep(0.02)
            text = await metrics_of(url)
            replies = await asyncio.gather(*calls)
            idle = parse_metrics(await metrics_of(url))
        finally:
            await client.close()
            await runner.cleanup()
        return text, load, idle, replies, sim

    text, load, idle, replies, sim = asyncio.run(scenario())
    assert load is not None and (load.running, load.waiting) == (1, 3)
    assert 'vllm:num_requests_waiting{model_name="sim-solver"} 3.0' in text
    for name in ("vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
        assert f"# TYPE {name} gauge" in text
    assert load.kv_usage == 1.0
    assert idle is not None and (idle.running, idle.waiting) == (0, 0)
    assert sim.gpu is not None and sim.gpu.totals.wait_s > 0 and sim.gpu.totals.finished == 4
    assert all(reply.content for reply in replies)


def test_playing_a_gpu_changes_when_a_reply_comes_not_what_it_says(simulator):
    plain, _ = simulator(SimSettings(), seed=2)
    gpu, _ = simulator(SimSettings(gpu_knee=2, gpu_kv_tokens=500, gpu_token_s=0.0001), seed=2)

    async def ask(url: str) -> list[str]:
        client = build_client("solver", ModelSpec(base_url=url, model="sim-solver"), endpoints=Endpoints(8),
                              sim_url=None, log=lambda call: None)
        try:
            return [reply.content for reply in await asyncio.gather(*(client.complete(question(i)) for i in range(6)))]
        finally:
            await client.close()

    assert asyncio.run(ask(gpu)) == asyncio.run(ask(plain))


def test_metrics_are_read_from_any_series_and_a_page_without_them_is_none():
    text = "\n".join([
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        'vllm:num_requests_running{engine="0",model_name="a"} 3.0',
        'vllm:num_requests_running{engine="1",model_name="a"} 2.0 1712345678000',
        'vllm:num_requests_waiting{model_name="a, b {x}"} 4',
        'vllm:gpu_cache_usage_perc{model_name="a"} 0.5',
        "garbage line",
    ])
    load = parse_metrics(text)
    assert load is not None and (load.running, load.waiting, load.kv_usage) == (5.0, 4.0, 0.5)
    assert parse_metrics("# nothing here\nprocess_cpu_seconds_total 1.0\n") is None
    assert parse_metrics('vllm:num_requests_waiting{model_name="a"} 0.0') == parse_metrics(
        'vllm:num_requests_waiting{model_name="a"} 0.0\nvllm:num_requests_running{model_name="a"} 0')
    assert default_metrics_url("http://gpu:8000/v1") == "http://gpu:8000/metrics"
    assert default_metrics_url("https://host/serve/v1/?x=1") == "https://host/serve/metrics"


# -- adaptive: metrics ------------------------------------------------------------------------------------------------

async def solve_many(spec: ModelSpec, url: str, count: int, ceiling: int) -> tuple[EndpointBudget, list[float]]:
    """`count` solver calls at once through a budget of `ceiling` steered as `spec` says; the budget and
    every steered limit seen along the way."""
    endpoints = Endpoints(ceiling)
    client = build_client("solver", spec, endpoints=endpoints, sim_url=url, log=lambda call: None)
    budget, seen, done = endpoints.budgets[url], [], asyncio.Event()
    watcher = asyncio.create_task(watch(budget, seen, done))
    try:
        await asyncio.gather(*(client.complete(question(i)) for i in range(count)))
    finally:
        done.set()
        await watcher
        await endpoints.stop_steering()
        await client.close()
    return budget, seen


def test_the_metrics_controller_shrinks_the_budget_while_requests_wait_at_the_server():
    async def scenario():
        runner, url, _ = await server.start(SimSettings(gpu_knee=8, gpu_kv_tokens=1, gpu_request_s=0.03,
                                                        gpu_token_s=0))
        try:
            spec = ModelSpec(provider="sim", adaptive="metrics", adaptive_interval_s=0.05, max_in_flight=32)
            return await solve_many(spec, url, 60, 32)
        finally:
            await runner.cleanup()

    budget, seen = asyncio.run(scenario())
    assert seen[0] == START
    assert min(seen) < START / 2, "requests waited at the server, so the budget shrank"


def test_the_metrics_controller_grows_the_budget_while_none_wait_up_to_max_in_flight_and_no_further():
    async def scenario():
        runner, url, _ = await server.start(SimSettings(gpu_knee=64, gpu_request_s=0.05, gpu_token_s=0))
        try:
            spec = ModelSpec(provider="sim", adaptive="metrics", adaptive_interval_s=0.03, max_in_flight=14)
            return await solve_many(spec, url, 300, 14)
        finally:
            await runner.cleanup()

    budget, seen = asyncio.run(scenario())
    assert seen[0] == START and max(seen) == 14 == budget.steered
    assert START < budget.peak <= 14


def test_a_server_without_metrics_leaves_the_steered_budget_where_it_is(simulator):
    url, _ = simulator(SimSettings(latency_s=0.02))

    async def scenario():
        spec = ModelSpec(provider="sim", adaptive="metrics", adaptive_interval_s=0.02, max_in_flight=32,
                         metrics_url=url.replace("/v1", "/no-metrics-here"))
        return await solve_many(spec, url, 120, 32)

    budget, seen = asyncio.run(scenario())
    assert set(seen) == {START} and budget.peak == START


# -- adaptive: latency ------------------------------------------------------------------------------------------------

def test_the_latency_controller_grows_a_full_budget_while_latency_stays_at_its_baseline():
    async def scenario():
        runner, url, _ = await server.start(SimSettings(gpu_knee=64, gpu_request_s=0.05, gpu_token_s=0))
        try:
            spec = ModelSpec(provider="sim", adaptive="latency", adaptive_interval_s=0.02, max_in_flight=20)
            return await solve_many(spec, url, 400, 20)
        finally:
            await runner.cleanup()

    budget, seen = asyncio.run(scenario())
    assert seen[0] == START and max(seen) > START and budget.peak <= 20


def test_the_latency_controller_shrinks_the_budget_when_another_load_slows_the_server():
    async def scenario():
        # Four requests at once run at full speed; past that each is slowed by the others.
        runner, url, _ = await server.start(SimSettings(gpu_knee=4, gpu_request_s=0.05, gpu_token_s=0))
        ours = Endpoints(4)
        client = build_client("solver", ModelSpec(provider="sim", adaptive="latency", adaptive_interval_s=0.02,
                                                  max_in_flight=4), endpoints=ours, sim_url=url, log=lambda call: None)
        flood = build_client("solver", ModelSpec(provider="sim", max_in_flight=40), endpoints=Endpoints(40),
                             sim_url=url, log=lambda call: None)
        budget = ours.budgets[url]
        try:
            calls = [asyncio.create_task(client.complete(question(i))) for i in range(2000)]
            while budget.completed < 40:  # the baseline: latency with our four alone
                await asyncio.sleep(0.02)
            steady = budget.steered
            flooding = [asyncio.create_task(flood.complete(question(-i))) for i in range(1, 2000)]
            deadline = time.monotonic() + 20
            while budget.steered >= steady and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return steady, budget.steered
        finally:
            for task in calls + flooding:
                task.cancel()
            await asyncio.gather(*calls, *flooding, return_exceptions=True)
            await ours.stop_steering()
            await client.close()
            await flood.close()
            await runner.cleanup()

    steady, after = asyncio.run(scenario())
    # Alone, the budget sits at its ceiling of 4, or a step below where a busy machine made latency jitter; the
    # flood is what the test is about.
    assert after < steady, "ten times the load on the server made latency climb, so the budget shrank"
    assert after < 4


# -- the budget under a controller --------------------------------------------------------------------------------

def test_a_steered_budget_stays_within_one_place_and_its_limit():
    budget = EndpointBudget("http://gpu/v1", 16)
    budget.steer(0.2)
    assert (budget.steered, budget.current) == (1.0, 1.0)
    budget.steer(1000)
    assert budget.steered == 16.0 and budget.current == 1.0, "current recovers by successes, not at once"


def test_a_429_still_halves_a_steered_budget_which_recovers_only_up_to_the_steered_limit():
    async def scenario():
        budget = EndpointBudget("http://gpu/v1", 32)
        budget.steer(20)
        budget.back_off(time.monotonic())
        halved = budget.current
        for _ in range(30):
            await budget.acquire()
            await budget.release(ok=True)
        return halved, budget.current

    halved, recovered = asyncio.run(scenario())
    assert halved == 10.0
    assert recovered == 20.0


def test_429s_from_the_server_still_halve_an_adaptive_budget(simulator):
    url, _ = simulator(SimSettings(fault_429=0.5, latency_s=0.01))

    async def scenario():
        endpoints = Endpoints(32)
        spec = ModelSpec(provider="sim", adaptive="latency", adaptive_interval_s=5, max_in_flight=32,
                         max_retries=20)
        client = build_client("solver", spec, endpoints=endpoints, sim_url=url, log=lambda call: None)
        budget, seen, done = endpoints.budgets[url], [], asyncio.Event()

        async def currents():
            while not done.is_set():
                seen.append(budget.current)
                await asyncio.sleep(0.001)

        watcher = asyncio.create_task(currents())
        try:
            await asyncio.gather(*(client.complete(question(i)) for i in range(16)))
        finally:
            done.set()
            await watcher
            await endpoints.stop_steering()
            await client.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == START and min(seen) <= START / 2


# -- a whole run ------------------------------------------------------------------------------------------------------

def test_a_run_with_adaptive_metrics_writes_the_same_dataset_as_one_without(tmp_path: Path):
    sim = {"gpu_knee": 4, "gpu_kv_tokens": 3000, "gpu_token_s": 0.00002}
    databases = []
    for adaptive in ("off", "metrics"):
        folder = tmp_path / adaptive
        folder.mkdir()
        models = {"default": {"provider": "sim", "adaptive": adaptive, "adaptive_interval_s": 0.05}}
        result = chimera("run", str(write_config(folder, seed=7, sim=sim, models=models)), "--quiet")
        assert result.returncode == 0, result.stderr
        databases.append(folder / "t.db")
    off, adaptive = (dataset(db) for db in databases)
    assert off and adaptive == off
