"""Processes that survive: a run on PostgreSQL rides out its database going away (a restart, a dropped
connection, its own sessions ended after it stalled past its lease) and a worker killed beside it, with every
process ending 0 and the dataset equal to one process's on SQLite; SIGTERM is a graceful stop; lease renewals
never wait behind store work.

Under starvation: `pytest tests/test_postgres.py tests/test_process_survival.py --busy-loops 2` holds both
cores of a 2-core machine with busy loops for the whole session (see the README)."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from helpers import chimera, write_config
from hostile import is_solve
from stop_at import StopAt
from tcp_proxy import TcpProxy
from test_postgres import dataset, finish, query, sqlite_dataset, start, twin_configs, wait_for

from chimera.config import SimSettings
from chimera.store import Store

pytestmark = pytest.mark.xdist_group("postgres")


def sound(url: str, run: str = "pg") -> None:
    store = Store(url, read_only=True)
    try:
        assert not any(store.consistency(run).values()), store.consistency(run)
        assert store.calls_asked_again(run) == 0
    finally:
        store.close()
    assert chimera("status", url, "--check").returncode == 0


def test_a_worker_killed_and_the_others_stalled_past_a_short_lease_all_finish_with_exit_0(tmp_path, postgres):
    """The others' sessions are ended by whoever finds them stalled; each opens new ones, drops the topics it
    lost, and takes topics again."""
    url = postgres.new_database("starved")
    pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=2, sim={"latency_by_task": {"solve": 0.2}},
                                            run_extra={"topics_in_flight": 2})
    main = start("run", pg_config, tmp_path / "main.log")
    doomed = start("worker", pg_config, tmp_path / "doomed.log")
    other = start("worker", pg_config, tmp_path / "other.log")
    wait_for(lambda: query(url, "select count(*) from samples")[0][0] >= 2)
    doomed.kill()
    doomed.wait()
    for stalled in (main, other):  # each stopped past its lease in turn, as a starved process is
        stalled.send_signal(signal.SIGSTOP)
        time.sleep(2 * 2)
        stalled.send_signal(signal.SIGCONT)
    finish(other, tmp_path / "other.log")
    finish(main, tmp_path / "main.log")
    assert dataset(url) == sqlite_dataset(sqlite_config)
    sound(url)


def test_a_run_whose_database_restarts_mid_run_goes_on_to_exit_0(tmp_path, postgres):
    url = postgres.new_database("restart_survived")
    pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=3, sim={"latency_by_task": {"solve": 0.3}})
    main = start("run", pg_config, tmp_path / "main.log")
    worker = start("worker", pg_config, tmp_path / "worker.log")
    wait_for(lambda: query(url, "select count(*) from samples")[0][0] >= 3)
    postgres.stop("fast")  # every connection is dropped, and new ones are refused until it is back
    time.sleep(2.0)
    postgres.start()
    log = finish(main, tmp_path / "main.log")
    finish(worker, tmp_path / "worker.log")
    assert "the connection to the run's database was lost" in log + (tmp_path / "worker.log").read_text()
    assert dataset(url) == sqlite_dataset(sqlite_config)
    sound(url)


def test_a_proxy_that_drops_every_connection_once_stops_nothing(tmp_path, postgres):
    proxy = TcpProxy(postgres.port)
    try:
        direct = postgres.new_database("dropped")
        url = proxy.url("dropped")
        pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=3, sim={"latency_by_task": {"solve": 0.3}})
        main = start("run", pg_config, tmp_path / "main.log")
        worker = start("worker", pg_config, tmp_path / "worker.log")
        wait_for(lambda: query(direct, "select count(*) from samples")[0][0] >= 3)
        assert proxy.drop_all() >= 4  # each process's store, checkpointer and heartbeat connections
        finish(main, tmp_path / "main.log")
        finish(worker, tmp_path / "worker.log")
        assert dataset(direct) == sqlite_dataset(sqlite_config)
        sound(direct)
    finally:
        proxy.close()


def test_a_database_away_longer_than_the_outage_limit_stops_the_run_in_one_line(tmp_path, postgres):
    url = postgres.new_database("outage")
    pg_config, _ = twin_configs(tmp_path, url, lease_s=3, sim={"latency_by_task": {"solve": 0.3}},
                                run_extra={"db_outage_s": 2})
    main = start("run", pg_config, tmp_path / "main.log")
    wait_for(lambda: query(url, "select count(*) from samples")[0][0] >= 1)
    postgres.stop("fast")
    try:
        main.wait(timeout=60)
    finally:
        postgres.start()
    errors = [line for line in (tmp_path / "main.log").read_text().splitlines() if line.startswith("chimera: error")]
    assert main.returncode == 1 and len(errors) == 1, errors
    assert "127.0.0.1" in errors[0] and "run the same command again" in errors[0]
    finish(start("run", pg_config, tmp_path / "again.log"), tmp_path / "again.log")
    sound(url)


def test_sigterm_stops_a_worker_gracefully_releasing_its_topics(tmp_path, postgres):
    url = postgres.new_database("sigterm")
    with StopAt(SimSettings(latency_by_task={"solve": 0.3})) as endpoint:
        pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=30, models=endpoint.models(),
                                                run_extra={"stop_grace_s": 1})
        finish(start("run", pg_config, tmp_path / "main.log", "--topics-only"), tmp_path / "main.log")
        stopped = endpoint.run(["worker", str(pg_config), "--quiet"], when=is_solve, sig=signal.SIGTERM)
        assert stopped.returncode == 130
        assert stopped.stderr.strip().splitlines()[-1].startswith("chimera: stopped by SIGTERM")
        # Released at once, not left to run out in 30 s: the next process takes its topics straight away.
        assert query(url, "select count(*) from topic_leases where released = 0 and expires_at > now()")[0][0] == 0
        assert query(url, "select count(*) from workers where stopped_at is null")[0][0] == 0
        finish(start("run", pg_config, tmp_path / "again.log"), tmp_path / "again.log")
        assert dataset(url) == sqlite_dataset(sqlite_config)
    sound(url)


def test_sigterm_stops_a_run_on_sqlite_that_then_resumes_to_the_same_dataset(tmp_path):
    with StopAt(SimSettings(latency_by_task={"solve": 0.2})) as endpoint:
        config = write_config(tmp_path, models=endpoint.models(), run={"name": "t", "db": str(tmp_path / "t.db"),
                                                                       "seed": 5, "stop_grace_s": 1})
        stopped = endpoint.run(["run", str(config), "--quiet"], when=is_solve, sig=signal.SIGTERM)
        assert stopped.returncode == 130, stopped.stderr
        assert "stopped by SIGTERM" in stopped.stderr.strip().splitlines()[-1]
        resumed = chimera("run", str(config), "--quiet")
        assert resumed.returncode == 0, resumed.stderr
        (tmp_path / "ref").mkdir()
        reference = write_config(tmp_path / "ref", models=endpoint.models(),
                                 run={"name": "t", "db": str(tmp_path / "ref" / "t.db"), "seed": 5})
        assert chimera("run", str(reference), "--quiet").returncode == 0
    assert Store(tmp_path / "t.db", read_only=True).dataset_rows() == \
        Store(tmp_path / "ref" / "t.db", read_only=True).dataset_rows()
    assert Store(tmp_path / "t.db", read_only=True).calls_asked_again("t") == 0


def test_lease_renewals_go_on_while_the_store_is_busy(postgres):
    """The heartbeat has its own thread and connection: a store call that holds the store's thread for two and a
    half leases does not let the worker's lease run out."""
    from chimera.engine.heartbeat import Heartbeat
    from chimera.store.nonblocking import AsyncStore

    url = postgres.new_database("busy_store")
    setup = Store(url)
    setup.upsert_topic(id="t1", run="r", subject="Mathematics", name="Algebra", position=0, source="config")
    setup.register_worker("w1", "r", host="h", pid=1)
    assert [t["id"] for t in setup.claim_topics("r", "w1", lease_s=2, limit=1)] == ["t1"]

    async def main() -> list:
        store = await AsyncStore.open(url)
        renewals: list = []
        heartbeat = Heartbeat(url, run="r", worker="w1", lease_s=2, on_renewal=renewals.append).start()
        try:
            await store.run(lambda _: time.sleep(5))  # bulk work on the store's one thread
            live = await store.run(lambda s: s.live_leases("r"))
        finally:
            await heartbeat.stop()
            await store.aclose()
        return [live, renewals]

    live, renewals = asyncio.run(main())
    assert live == 1
    assert len(renewals) >= 3 and all(r.held == {"t1"} for r in renewals)


def test_a_late_renewal_is_logged_with_how_late(postgres, caplog):
    from chimera.engine.heartbeat import Heartbeat

    url = postgres.new_database("late_renewal")
    Store(url).register_worker("w1", "r", host="h", pid=1)

    async def main() -> None:
        renewed = asyncio.Event()
        heartbeat = Heartbeat(url, run="r", worker="w1", lease_s=3, on_renewal=lambda _: renewed.set())
        heartbeat._last_renewal -= 10  # as if the process had been stopped for ten seconds
        heartbeat.start()
        await asyncio.wait_for(renewed.wait(), 60)
        await heartbeat.stop()

    with caplog.at_level("WARNING", logger="chimera.worker"):
        asyncio.run(main())
    late = [r.getMessage() for r in caplog.records if "late" in r.getMessage()]
    assert late and "renewed its leases" in late[0] and "s late" in late[0]


def test_status_check_passes_on_a_run_of_hundreds_of_problems_with_chains_of_near_duplicates(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 20}, {"name": "Physics", "topics": 20}],
                          problems_per_topic=6, run={"name": "t", "db": str(tmp_path / "t.db"), "seed": 11,
                                                     "concurrency": 64})
    assert chimera("run", str(config), "--quiet").returncode == 0
    store = Store(tmp_path / "t.db", read_only=True)
    assert store.counts("t")["problems"] >= 200
    assert store.conn.execute("select count(*) from problems where rejection_reason = 'duplicate'").fetchone()[0] > 0
    check = chimera("status", str(tmp_path / "t.db"), "--check", "--json")
    assert check.returncode == 0, check.stdout
    assert not any(json.loads(check.stdout)["t"].values())


def test_a_problem_rejected_after_it_passed_the_duplicate_check_leaves_the_index(tmp_path):
    store = Store(tmp_path / "t.db")
    store.upsert_topic(id="t1", run="r", subject="Mathematics", name="Algebra", position=0, source="config")
    for slot, problem_id in enumerate(("pa", "pb")):
        store.save_draft(id=problem_id, run="r", topic_id="t1", subject="Mathematics", topic="Algebra", slot=slot,
                         problem="Find x if 2x = 4.", answer="2")
    store.keep_original("pa", [])
    store.mark_duplicate("pb", "pa", 1.0)
    store.finish_problem("pb", "accepted")
    assert store.problem("pb")["status"] == "rejected" and not store.any_displaced("r")
    assert not any(store.consistency("r").values())
    store.finish_problem("pa", "rejected", "rejected by a reviewer")
    assert store.problem("pa")["indexed"] == 0
    assert store.any_displaced("r")  # so the settling pass runs, and revives pb
    assert store.consistency("r")["problems rejected as duplicates of a twin that left the dataset"] == ["pb"]
    store.revive_duplicate("pb")
    assert not any(store.consistency("r").values())


def test_retrying_failed_slots_is_not_counted_as_asking_answered_calls_twice(tmp_path):
    """A retry asks again on purpose (what failed, and replies that could not be used): its requests are its own."""
    config = write_config(tmp_path, sim={"fault_5xx": 0.3, "fault_malformed": 0.3},
                          models={"default": {"provider": "sim", "max_retries": 0, "retry_window_s": 0}},
                          subjects=[{"name": "Mathematics", "topics": 6}, {"name": "Physics", "topics": 6}],
                          problems_per_topic=4)
    chimera("run", str(config), "--quiet")
    for _ in range(2):
        chimera("run", str(config), "--quiet", "--retry-failed")
    store = Store(tmp_path / "t.db", read_only=True)
    assert store.conn.execute("select count(*) from problems where retries > 0").fetchone()[0] > 0
    assert store.calls_asked_again("t") == 0
    assert not any(store.consistency("t").values())
