"""Throughput and faults: per-endpoint budgets, 429 back-off, replicas, failed slots, and interrupted runs."""

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import time

import openai
import pytest
from helpers import CHIMERA, chimera, write_config
from hostile import is_solve
from stop_at import StopAt

from chimera.config import ModelSpec, SimSettings, load_config
from chimera.engine.runner import run_pipeline
from chimera.errors import CallFailed, EndpointError
from chimera.models.dispatch import EndpointBudget, Endpoints, RateLimiter, queue_place
from chimera.models.llm import HTTP, MAX_BACKOFF_S, backoff_s, build_client, retry_wait
from chimera.sim import server as sim_server


def test_a_429_halves_the_budget_and_successes_win_it_back():
    async def go():
        budget = EndpointBudget("u", 8)
        budget.back_off(sent_at=time.monotonic())
        assert budget.current == 4
        for _ in range(4):
            await budget.acquire()
        blocked = asyncio.create_task(budget.acquire())
        await asyncio.sleep(0.05)
        assert not blocked.done(), "a fifth request must wait while the backed-off budget is full"
        await budget.release(ok=True)
        await asyncio.wait_for(blocked, 1)
        for _ in range(10):
            await budget.release(ok=True)
            await budget.acquire()
        assert budget.current == 8, "it recovers, but never past the configured limit"

    asyncio.run(go())


def test_a_burst_of_429s_to_requests_sent_before_the_halving_halves_the_budget_once():
    budget = EndpointBudget("u", 64)
    sent_together = time.monotonic()
    budget.back_off(sent_at=sent_together)
    for _ in range(5):
        budget.back_off(sent_at=sent_together)
    assert budget.current == 32, "the burst's later 429s tell of the same overload"
    budget.back_off(sent_at=time.monotonic())
    assert budget.current == 16, "a request sent after the halving and still refused halves it again"


def test_rpm_limit_holds_back_the_request_over_the_limit():
    async def go():
        limiter = RateLimiter(rpm=2, tpm=None)
        await limiter.acquire(10)
        await limiter.acquire(10)
        third = asyncio.create_task(limiter.acquire(10))
        await asyncio.sleep(0.1)
        assert not third.done()
        third.cancel()

    asyncio.run(go())


def test_the_budget_fills_across_topics_of_uneven_size(tmp_path):
    path = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": ["Big"]},
                                            {"name": "Physics", "topics": ["Small one", "Small two"]}],
                        problems_total=12, sim={"latency_s": 0.2})
    config = load_config(path)
    config.run.concurrency = 4
    peaks = []
    asyncio.run(run_pipeline(config, on_progress=lambda m: peaks.append(max(b.peak for b in m.endpoints.budgets.values()))))
    assert peaks[-1] == 4, "the run kept as many requests in flight as the budget allows"


def test_an_endpoint_at_capacity_answers_429_the_budget_backs_off_and_the_run_completes(tmp_path):
    path = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 3}], problems_per_topic=2,
                        sim={"latency_s": 0.2, "capacity": 2}, models={"default": {"provider": "sim", "max_retries": 8}})
    config = load_config(path)
    config.run.concurrency = 8
    places: list[float] = []
    asyncio.run(run_pipeline(config, on_progress=lambda m: places.extend(b.current for b in m.endpoints.budgets.values()),
                             progress_every_s=0.05))
    db = sqlite3.connect(tmp_path / "t.db")
    assert db.execute("select count(*) from llm_calls where outcome = 'http_429'").fetchone()[0] > 0
    assert min(places) < 8, "the 429s halved the budget"
    statuses = dict(db.execute("select status, count(*) from problems group by status").fetchall())
    assert sum(statuses.values()) == 6 and not {"pending", "failed"} & set(statuses), statuses


def test_a_fault_mix_loses_no_slot_and_logs_every_failed_attempt(tmp_path):
    faults = {"fault_429": 0.05, "fault_5xx": 0.05, "fault_malformed": 0.1, "fault_truncate": 0.02}
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 6}], problems_per_topic=3,
                          sim=faults, models={"default": {"provider": "sim", "max_retries": 4}})
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(tmp_path / "t.db")
    statuses = dict(db.execute("select status, count(*) from problems group by status").fetchall())
    assert sum(statuses.values()) == 18 and "pending" not in statuses
    outcomes = dict(db.execute("select outcome, count(*) from llm_calls group by outcome").fetchall())
    assert outcomes.get("http_429", 0) + outcomes.get("http_500", 0) > 0
    assert outcomes.get("truncated", 0) > 0
    assert outcomes.get("malformed_reply", 0) > 0, "an unparseable reply is marked on its call's row"


def test_failed_slots_are_taken_again_with_retry_failed(tmp_path):
    models = {"default": {"provider": "sim", "max_retries": 0}}
    flaky = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 4}], problems_per_topic=3,
                         sim={"fault_5xx": 0.2}, models=models)
    first = chimera("run", str(flaky), "--quiet")
    assert first.returncode == 3 and first.stderr.strip().endswith(f"chimera run {flaky} --retry-failed")
    db = sqlite3.connect(tmp_path / "t.db")
    failed = db.execute("select count(*) from problems where status = 'failed'").fetchone()[0]
    assert failed > 0, "with no retries some slots must fail"
    healthy = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 4}], problems_per_topic=3,
                           models=models)
    assert chimera("run", str(healthy), "--quiet").returncode == 3, "the failed slots are still there"
    assert db.execute("select count(*) from problems where status = 'failed'").fetchone()[0] == failed, \
        "a plain re-run leaves failed slots alone"
    assert chimera("run", str(healthy), "--quiet", "--retry-failed").returncode == 0
    assert db.execute("select count(*) from problems where status in ('failed', 'pending')").fetchone()[0] == 0
    assert db.execute("select count(*) from problems where retries = 1").fetchone()[0] == failed


def test_replicas_share_the_load(tmp_path):
    servers = [subprocess.Popen([CHIMERA, "sim", "--port", "0", "--seed", "1"], stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        urls = [s.stderr.readline().split("serving at ")[1].split()[0] for s in servers]
        config = write_config(tmp_path, models={"default": {"base_url": urls, "model": "m"}},
                              subjects=[{"name": "Mathematics", "topics": 4}], problems_per_topic=3)
        assert chimera("run", str(config), "--quiet").returncode == 0
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    calls = dict(sqlite3.connect(tmp_path / "t.db").execute(
        "select base_url, count(*) from llm_calls group by base_url").fetchall())
    assert set(calls) == set(urls)
    assert min(calls.values()) >= 0.3 * sum(calls.values()), calls


def test_sigint_leaves_a_database_the_next_run_completes(tmp_path):
    sim = SimSettings(latency_s=0.3, latency_by_task={"solve": 2.0}, latency_jitter=0.5)
    with StopAt(sim, seed=5) as endpoint:
        shape = dict(models=endpoint.models(), subjects=[{"name": "Mathematics", "topics": 5}], problems_per_topic=3)
        config = write_config(tmp_path, **shape)
        straight = write_config(tmp_path, name="s", **shape)
        # Interrupted as the first trajectory is asked for, with seconds of solving to come.
        interrupted = endpoint.run(["run", str(config), "--quiet"], when=is_solve, sig=signal.SIGINT)
        assert interrupted.returncode == 130, interrupted.stderr
        assert sqlite3.connect(tmp_path / "t.db").execute(
            "select count(*) from topics where status != 'done'").fetchone()[0]
        assert interrupted.stderr.strip().splitlines()[-1] == \
            "chimera: interrupted; run the same command again to resume"
        assert chimera("run", str(config), "--quiet").returncode == 0
        assert chimera("run", str(straight), "--quiet").returncode == 0

    def dataset(name):
        result = chimera("export", str(tmp_path / f"{name}.db"), "-o", str(tmp_path / f"{name}.jsonl"))
        assert result.returncode == 0
        rows = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        return [(r["problem"], r["answer"], r["reasoning"], r["solution"], r["correct"]) for r in rows]

    assert dataset("t") == dataset("s")


def test_a_released_place_goes_to_the_longest_waiter_and_cancelled_waiters_lose_nothing():
    async def go():
        budget = EndpointBudget("u", 2)
        await budget.acquire()
        await budget.acquire()
        order: list[int] = []

        async def wait(i):
            await budget.acquire()
            order.append(i)

        waiters = [asyncio.create_task(wait(i)) for i in range(4)]
        await asyncio.sleep(0)
        waiters[1].cancel()
        await budget.release(ok=True)
        await budget.release(ok=True)
        await asyncio.sleep(0)
        assert order == [0, 2] and budget.in_flight == 2
        for _ in range(2):
            await budget.release(ok=True)
        await asyncio.sleep(0)
        assert order == [0, 2, 3] and budget.in_flight == 1
        await asyncio.gather(*waiters, return_exceptions=True)

    asyncio.run(go())


ARRIVALS = [("solve, step 2", "solver", 2), ("critic a, step 5", "critic0", 5), ("solve, step 6", "solver", 6),
            ("draft, step 5", "drafter", 5), ("critic b, step 5", "critic1", 5), ("label, step 5", "labeler", 5),
            ("rating", "evaluator", 0)]


def served_order(*, in_step_after_queueing: bool) -> list[str]:
    """The order the budget hands one place at a time to ARRIVALS, queued in that order behind a held place."""
    async def go():
        budget = EndpointBudget("u", 1)
        await budget.acquire()
        order: list[str] = []

        async def wait(name, role, step):
            await budget.acquire(queue_place(role, step))
            order.append(name)
            await budget.release(ok=True)

        tasks = []
        for arrival in ARRIVALS:
            tasks.append(asyncio.create_task(wait(*arrival)))
            await asyncio.sleep(0)
        if in_step_after_queueing:
            budget.keep_in_step()
        await budget.release(ok=True)
        await asyncio.gather(*tasks)
        assert budget.in_flight == 0
        return order

    return asyncio.run(go())


def test_a_released_place_goes_to_the_furthest_along_thread_then_the_latest_stage_then_the_first_come():
    assert served_order(in_step_after_queueing=False) == [
        "solve, step 6", "label, step 5", "critic a, step 5", "critic b, step 5", "draft, step 5", "solve, step 2",
        "rating"]


def test_topics_kept_in_step_serve_the_least_advanced_thread_and_the_earliest_stage_first():
    # the calls already queued are ranked again when the order changes
    assert served_order(in_step_after_queueing=True) == [
        "solve, step 2", "draft, step 5", "critic a, step 5", "critic b, step 5", "label, step 5", "solve, step 6",
        "rating"]


# -- a server that goes away ----------------------------------------------------------------------------------------

QUESTION = [{"role": "user", "content": "How many ways can 3 books be arranged on a shelf?"}]


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def solver_at(url: str, **spec):
    """A solver client on `url` and the llm_calls rows it logs."""
    logged: list[dict] = []
    client = build_client("solver", ModelSpec(base_url=url, model="sim-solver", timeout_s=5, **spec),
                          endpoints=Endpoints(4), sim_url=None, log=logged.append)
    return client, logged


def status_error(status: int) -> openai.APIStatusError:
    response = HTTP.Response(status, request=HTTP.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    return openai.APIStatusError(f"Error code: {status}", response=response, body=None)


def test_a_refused_connection_is_logged_as_one_and_stops_the_run_once_its_window_is_spent():
    client, logged = solver_at(f"http://127.0.0.1:{closed_port()}/v1", max_retries=1, retry_window_s=0)

    async def ask():
        try:
            await client.complete(QUESTION)
        finally:
            await client.close()

    with pytest.raises(EndpointError, match="cannot connect"):
        asyncio.run(ask())
    assert [row["outcome"] for row in logged] == ["connection_error", "connection_error"]
    assert all(row["error"].startswith("connection refused: ") for row in logged), logged[0]["error"]


def test_a_connection_dropped_under_a_request_is_a_connection_error_not_a_timeout():
    async def ask_a_server_that_hangs_up():
        async def hang_up(reader, writer):
            await reader.read(100)
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        client, logged = solver_at(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", max_retries=0,
                                   retry_window_s=0)
        try:
            with pytest.raises(CallFailed, match="connection lost"):
                await client.complete(QUESTION)
        finally:
            await client.close()
            server.close()
        return logged

    logged = asyncio.run(ask_a_server_that_hangs_up())
    assert [row["outcome"] for row in logged] == ["connection_error"]
    assert logged[0]["error"].startswith("connection lost: ") and "timed out" not in logged[0]["error"]


def test_a_call_waits_out_a_server_restart_within_its_retry_window():
    port = closed_port()

    async def ask_while_the_server_comes_back():
        client, logged = solver_at(f"http://127.0.0.1:{port}/v1", max_retries=0, retry_window_s=30)

        async def start_once_refused():
            while not logged:
                await asyncio.sleep(0.01)
            return await sim_server.start(port=port)

        restart = asyncio.create_task(start_once_refused())
        try:
            reply = await client.complete(QUESTION)
        finally:
            await client.close()
            runner, _, _ = await restart
            await runner.cleanup()
        return reply, [row["outcome"] for row in logged]

    reply, outcomes = asyncio.run(ask_while_the_server_comes_back())
    assert reply.content
    assert outcomes[-1] == "ok" and outcomes[:-1] and set(outcomes[:-1]) == {"connection_error"}, outcomes


def test_retries_back_off_to_a_ceiling_and_only_an_outage_is_retried_past_max_retries_for_its_window():
    spec = ModelSpec(provider="sim", max_retries=2, retry_window_s=60)
    refused = ConnectionRefusedError(111, "Connection refused")

    def wait(error, retries, failing_s, on=spec):
        return retry_wait(error, retries=retries, failing_s=failing_s, spec=on, jitter=1.0)

    assert [backoff_s(n) for n in range(8)] == [0.5, 1, 2, 4, 8, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert [wait(status_error(500), n, 0) for n in range(3)] == [0.5, 1.0, None], "an ordinary 5xx: max_retries"
    assert wait(status_error(400), 0, 0) is None, "a client error is not retried"
    assert wait(refused, 9, 20) == MAX_BACKOFF_S, "a refused connection goes on past max_retries"
    assert wait(status_error(502), 9, 55) == 5.0, "the last attempt comes at the window's end"
    assert wait(refused, 9, 60) is None and wait(status_error(503), 9, 61) is None
    assert wait(refused, 2, 0, on=spec.model_copy(update={"retry_window_s": 0})) is None, "0: max_retries alone"
