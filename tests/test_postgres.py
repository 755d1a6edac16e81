"""A run on PostgreSQL: the same dataset as on SQLite, from one process or from several workers that claim
topics under leases, survive each other's deaths and stalls, and never write for a topic they lost."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from helpers import CHIMERA, chimera, write_config
from hostile import is_solve
from stop_at import StopAt

from chimera.config import SimSettings
from chimera.store import Store, schema_postgres
from chimera.store.postgres import connection_lost

pytestmark = pytest.mark.xdist_group("postgres")

SUBJECTS = [{"name": "Mathematics", "topics": 4}, {"name": "Physics", "topics": 3}]


def twin_configs(folder: Path, url: str, *, name: str = "pg", lease_s: float = 30, sim: dict[str, Any] | None = None,
                 run_extra: dict[str, Any] | None = None, **top: Any) -> tuple[Path, Path]:
    """The same run twice: on PostgreSQL at `url`, and on a SQLite file (what it must equal). `run_extra`: more
    `run` settings for the PostgreSQL one."""
    sqlite_config = write_config(folder, name=name, sim=sim, subjects=SUBJECTS, problems_per_topic=3, **top)
    raw = yaml.safe_load(sqlite_config.read_text())
    raw["run"] |= {"db": url, "lease_s": lease_s, **(run_extra or {})}
    pg_config = folder / f"{name}-pg.yaml"
    pg_config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return pg_config, sqlite_config


def dataset(db: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every problem's outcome and text, and every sample of an accepted problem with its label."""
    store = Store(db, read_only=True)
    try:
        problems = [(p["id"], p["status"], p["rejection_reason"], p["problem"], p["answer"])
                    for p in sorted(store.problems(), key=lambda p: p["id"])]
        samples = sorted((s["id"], s["problem_id"], s["solution"], s["correct"]) for s in store.samples())
        return problems, samples
    finally:
        store.close()


def sqlite_dataset(config: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 0, result.stderr
    return dataset(yaml.safe_load(config.read_text())["run"]["db"])


def start(command: str, config: Path, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([CHIMERA, command, str(config), "--quiet", "-v", *extra], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def wait_for(condition, timeout: float = 60, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except psycopg.errors.UndefinedTable:  # the schema is not there yet
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def finish(process: subprocess.Popen, log: Path, timeout: float = 120) -> str:
    process.wait(timeout=timeout)
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    return text


def test_a_run_on_postgres_gives_the_dataset_of_the_same_run_on_sqlite(tmp_path, postgres):
    url = postgres.new_database("one_process")
    pg_config, sqlite_config = twin_configs(tmp_path, url)
    result = chimera("run", str(pg_config), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "postgresql://postgres@127.0.0.1" in result.stderr
    assert dataset(url) == sqlite_dataset(sqlite_config)
    store = Store(url, read_only=True)
    assert not any(store.consistency("pg").values())
    assert {"checkpoints", "checkpoint_writes", "problems", "topic_leases"} <= set(store.table_bytes())


def test_two_workers_and_the_main_process_finish_a_run_equal_to_one_process_on_sqlite(tmp_path, postgres):
    url = postgres.new_database("three_processes")
    pg_config, sqlite_config = twin_configs(tmp_path, url, sim={"latency_s": 0.05})
    raw = yaml.safe_load(pg_config.read_text())
    raw["run"]["topics_in_flight"] = 2  # each process holds two topics at a time, so all three get some
    pg_config.write_text(yaml.safe_dump(raw))
    main = start("run", pg_config, tmp_path / "main.log")
    workers = [start("worker", pg_config, tmp_path / f"worker{i}.log") for i in range(2)]
    finish(main, tmp_path / "main.log")
    for i, worker in enumerate(workers):
        assert "nothing is left to take" in finish(worker, tmp_path / f"worker{i}.log")
    assert dataset(url) == sqlite_dataset(sqlite_config)
    holders = query(url, "select count(distinct worker) from topic_leases")[0][0]
    assert holders >= 2
    status = chimera("status", url, "--json")
    report = json.loads(status.stdout)["pg"]
    assert len(report["workers"]) == 3 and all(w["stopped"] for w in report["workers"])
    assert report["expired_leases"] == []
    assert chimera("status", url, "--check").returncode == 0


def test_a_killed_workers_topics_are_taken_over_from_their_checkpoints_without_asking_a_finished_call_again(
        tmp_path, postgres):
    url = postgres.new_database("sigkill")
    with StopAt(SimSettings(latency_by_task={"solve": 0.4})) as endpoint:
        pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=2, models=endpoint.models())
        finish(start("run", pg_config, tmp_path / "main.log", "--topics-only"), tmp_path / "main.log")
        # Killed mid-topic, as its first trajectory is asked for: its problems are drafted and voted on.
        endpoint.run(["worker", str(pg_config), "--quiet", "-v"], when=is_solve)
        killed_at = time.monotonic()
        held = {row[0] for row in query(url, "select topic_id from topic_leases where released = 0")}
        assert held and query(url, "select count(*) from llm_calls c join topic_leases l on l.topic_id = c.topic_id "
                                   "where l.released = 0 and c.outcome = 'ok'")[0][0] >= 3
        main = start("run", pg_config, tmp_path / "main2.log")
        wait_for(lambda: query(url, "select count(*) from topic_leases where topic_id = any(%s) and taken >= 2",
                               list(held))[0][0] == len(held))
        taken_over_after = time.monotonic() - killed_at
        finish(main, tmp_path / "main2.log")
        assert taken_over_after < 2 + 5  # the lease, plus start-up and a claim
        assert dataset(url) == sqlite_dataset(sqlite_config)
    store = Store(url, read_only=True)
    assert store.calls_asked_again("pg") == 0
    assert not any(store.consistency("pg").values())


def test_a_worker_stopped_past_its_lease_writes_nothing_for_the_topics_it_lost(tmp_path, postgres):
    url = postgres.new_database("sigstop")
    with StopAt(SimSettings(latency_by_task={"solve": 0.3})) as endpoint:
        pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=2, models=endpoint.models())
        finish(start("run", pg_config, tmp_path / "main.log", "--topics-only"), tmp_path / "main.log")
        # Stopped mid-topic, as its first trajectory is asked for; its reply waits for it.
        stalled = endpoint.start(["worker", str(pg_config), "--quiet", "-v"], when=is_solve, sig=signal.SIGSTOP,
                                 stderr=(tmp_path / "stalled.log").open("w"))
        assert endpoint.signalled.wait(60), "the worker reached a trajectory"
        lost = {row[0] for row in query(url, "select topic_id from topic_leases where released = 0")}
        assert lost
        other = start("worker", pg_config, tmp_path / "other.log")
        # The other worker takes the stalled one's topics once their leases run out, and finishes them.
        wait_for(lambda: query(url, "select count(*) from topics where id = any(%s) and status = 'done'",
                               list(lost))[0][0] == len(lost))
        stalled.send_signal(signal.SIGCONT)
        log = finish(stalled, tmp_path / "stalled.log")
        assert "no longer holds the lease" in log or "was refused" in log
        finish(other, tmp_path / "other.log")
        finish(start("run", pg_config, tmp_path / "main2.log"), tmp_path / "main2.log")
        assert dataset(url) == sqlite_dataset(sqlite_config)
    assert not any(Store(url, read_only=True).consistency("pg").values())


def test_the_database_refuses_a_write_for_a_topic_whose_lease_the_writer_lost(tmp_path, postgres):
    url = postgres.new_database("fence")
    setup = Store(url)
    setup.upsert_topic(id="t1", run="r", subject="Mathematics", name="Algebra", position=0, source="config")
    first, second = Store(url), Store(url)
    first.act_as("w1", lease_s=30)
    second.act_as("w2", lease_s=30)
    assert [t["id"] for t in first.claim_topics("r", "w1", lease_s=30, limit=5)] == ["t1"]
    assert second.claim_topics("r", "w2", lease_s=30, limit=5) == []  # held: nobody else gets it
    first.save_draft(id="p1", run="r", topic_id="t1", subject="Mathematics", topic="Algebra", slot=0,
                     problem="x", answer="1")
    with pytest.raises(psycopg.Error, match="worker w2 no longer holds the lease of topic t1"):
        second.save_draft(id="p2", run="r", topic_id="t1", subject="Mathematics", topic="Algebra", slot=1,
                          problem="y", answer="2")
    setup.conn.execute("update topic_leases set expires_at = clock_timestamp() - interval '1 second'")
    assert first.renew_leases("w1", lease_s=30) == set()  # a lease that ran out is not renewed
    assert [t["id"] for t in second.claim_topics("r", "w2", lease_s=30, limit=5)] == ["t1"]
    with pytest.raises(psycopg.Error, match="worker w1 no longer holds the lease of topic t1"):
        first.record_vote("p1", round_=0, critic=0, vote={"valid": True})
    with pytest.raises(psycopg.Error, match="no longer holds"):
        first.log_call({"run": "r", "role": "critic0", "topic_id": "t1", "problem_id": "p1", "outcome": "ok"})
    second.record_vote("p1", round_=0, critic=0, vote={"valid": True})
    assert setup.votes("p1", 0) == {0: {"valid": True}}
    assert query(url, "select taken, worker from topic_leases")[0] == (2, "w2")


def test_checkpoints_are_fenced_too(postgres):
    from langgraph.checkpoint.base import empty_checkpoint

    from chimera.store.checkpoint_saver import open_saver

    url = postgres.new_database("fence_checkpoints")
    setup = Store(url)
    setup.upsert_topic(id="t1", run="r", subject="Mathematics", name="Algebra", position=0, source="config")
    holder = Store(url)
    holder.act_as("w1", lease_s=30)
    holder.claim_topics("r", "w1", lease_s=30, limit=1)

    async def write_as(worker: str) -> None:
        saver, stack = await open_saver(url, worker=worker)
        try:
            config = {"configurable": {"thread_id": "r:topic:t1", "checkpoint_ns": ""}}
            await saver.aput(config, empty_checkpoint(), {}, {})
        finally:
            await stack.aclose()

    asyncio.run(write_as("w1"))
    with pytest.raises(psycopg.Error, match="worker w2 no longer holds the lease of topic t1"):
        asyncio.run(write_as("w2"))
    assert query(url, "select count(*) from checkpoints")[0][0] == 1


def test_a_session_the_server_ended_inside_a_transaction_counts_as_lost_and_the_next_call_opens_a_new_one(
        postgres):
    """A worker stopped mid-transaction past the server's idle timeout meets, when it goes on, an error outside
    psycopg's OperationalError class; it must be taken for a lost connection like a restart is."""
    store = Store(postgres.new_database("idle_in_transaction"))
    store.conn.set("idle_in_transaction_session_timeout", "200")
    with pytest.raises(psycopg.Error) as ended:
        with store.conn.transaction():
            store.conn.execute("select 1")
            time.sleep(1)
    assert ended.value.sqlstate == "25P03"
    assert connection_lost(ended.value)
    assert store.conn.execute("show idle_in_transaction_session_timeout").fetchone()[0] == "200ms"
    assert not connection_lost(psycopg.errors.UniqueViolation("a refused write is not a lost connection"))


def test_a_worker_ends_the_sessions_of_others_stalled_past_a_lease_but_never_its_own_however_late(postgres):
    url = postgres.new_database("stalled_sessions")
    setup = Store(url)
    for worker in ("w1", "w2", "w3"):
        setup.register_worker(worker, "r", host="h", pid=1)
    mine, my_second, stalled, alive = Store(url), Store(url), Store(url), Store(url)
    for store, worker in ((mine, "w1"), (my_second, "w1"), (stalled, "w2"), (alive, "w3")):
        store.act_as(worker, lease_s=30)
    # w1 and w2 are a minute past their heartbeat (w1 was starved, not stopped); w3 heartbeats.
    setup.conn.execute("update workers set heartbeat_at = clock_timestamp() - interval '1 minute' where id <> 'w3'")

    def sessions() -> list[str]:
        return sorted(row[0] for row in query(url, "select application_name from pg_stat_activity "
                                                   "where datname = current_database() and application_name <> ''"))

    mine.end_stalled_sessions("r", 30, caller="w1")
    wait_for(lambda: "chimera-worker w2" not in sessions())
    assert sessions().count("chimera-worker w1") == 2 and "chimera-worker w3" in sessions()
    assert my_second.conn.execute("select 1").fetchone()[0] == 1


def test_a_worker_late_on_its_lease_does_not_take_again_a_topic_it_still_runs(postgres):
    url = postgres.new_database("claim_running")
    store = Store(url)
    for position, topic in enumerate(("t1", "t2")):
        store.upsert_topic(id=topic, run="r", subject="Mathematics", name=topic, position=position, source="config")
    store.act_as("w1", lease_s=30)
    assert [t["id"] for t in store.claim_topics("r", "w1", lease_s=30, limit=5)] == ["t1", "t2"]
    store.conn.execute("update topic_leases set expires_at = clock_timestamp() - interval '1 second'")
    # t1's task still runs (its next write will be refused, and the topic dropped); t2's has ended
    assert [t["id"] for t in store.claim_topics("r", "w1", lease_s=30, limit=5, running={"t1"})] == ["t2"]
    assert [t["id"] for t in store.claim_topics("r", "w1", lease_s=30, limit=5)] == ["t1"]


SET_UP = """
import asyncio, sys, time
from chimera.store.checkpoint_saver import open_saver
from chimera.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Store(sys.argv[1]).close()
async def main():
    saver, stack = await open_saver(sys.argv[1])
    await stack.aclose()
asyncio.run(main())
"""


def test_four_processes_set_up_one_new_database_at_the_same_moment(postgres):
    url = postgres.new_database("four_at_once")
    at = str(time.time() + 1.5)
    processes = [subprocess.Popen([sys.executable, "-c", SET_UP, url, at], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, errors
    assert query(url, "select count(*) from _migrations")[0][0] == len(schema_postgres.MIGRATIONS)
    assert query(url, "select count(*) from checkpoint_migrations")[0][0] > 0
    triggers = query(url, "select count(*) from pg_trigger where tgname = 'fence'")[0][0]
    assert triggers == 6 + 3  # the dataset tables and the checkpoint tables


def test_the_commands_that_read_a_run_take_its_url(tmp_path, postgres):
    url = postgres.new_database("commands")
    pg_config, _ = twin_configs(tmp_path, url)
    assert chimera("run", str(pg_config), "--quiet").returncode == 0
    accepted = Store(url, read_only=True).counts("pg")["by_status"]["accepted"]
    export = chimera("export", url, "-o", str(tmp_path / "out.jsonl"))
    assert export.returncode == 0, export.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) >= accepted
    taxonomy = chimera("taxonomy", url, "--json")
    assert taxonomy.returncode == 0 and "Mathematics" in taxonomy.stdout
    assert chimera("review", url, "--list").returncode == 0
    status = chimera("status", url)
    assert "workers" in status.stdout
    stats = chimera("stats", url, "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["problems_accepted"] == accepted
    assert chimera("status", url, "--by", "subject").returncode == 0
    against = tmp_path / "benchmark.jsonl"
    against.write_text(json.dumps({"question": "What is the capital of France?"}) + "\n")
    assert chimera("eval", "contamination", url, "--against", str(against)).returncode == 0


def test_a_password_in_the_database_url_of_a_config_is_refused(tmp_path):
    config = write_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["run"]["db"] = "postgresql://chimera:s3cret@db.example/run"
    config.write_text(yaml.safe_dump(raw))
    result = chimera("run", str(config))
    assert result.returncode != 0
    assert "PGPASSWORD" in result.stderr and "s3cret" not in result.stderr


def test_a_worker_on_a_sqlite_run_is_told_it_needs_postgres(tmp_path):
    result = chimera("worker", str(write_config(tmp_path)))
    assert result.returncode != 0
    assert "postgresql://" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line(tmp_path):
    result = chimera("status", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode != 0
    assert "cannot connect" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_review_decided_on_the_web_page_resumes_its_thread_on_postgres(tmp_path, postgres):
    import re
    import urllib.parse
    import urllib.request

    from test_review_cli import review_config
    from test_review_web import ReviewServer

    url = postgres.new_database("review")
    config = review_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["run"]["db"] = url
    config.write_text(yaml.safe_dump(raw))
    assert chimera("run", str(config), "--quiet").returncode == 0
    items = json.loads(chimera("review", url, "--list", "--json").stdout)
    assert items
    first = items[0]
    server = ReviewServer(url, "--reviewer", "web-pg")  # type: ignore[arg-type]
    try:
        assert server.get() == 200  # waits until it answers
        page = urllib.request.urlopen(server.url + f"item/{first['id']}", timeout=10).read().decode()
        assert "postgresql://postgres@127.0.0.1" in page
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"nonce": nonce, "action": "accept", "note": ""}).encode()
        request = urllib.request.Request(server.url + f"item/{first['id']}", data=form,
                                         headers={"Origin": server.url.rstrip("/")})
        urllib.request.urlopen(request, timeout=10).read()
    finally:
        server.stop()
    decided = query(url, "select action, reviewer, applied_at from reviews where id = %s", first["id"])[0]
    assert decided[:2] == ("accept", "web-pg") and decided[2] is None
    resumed = chimera("review", url, "--resume", "--config", str(config))
    assert resumed.returncode == 0, resumed.stderr
    applied, status = query(url, "select r.applied_at, p.status from reviews r join problems p on p.id = r.problem_id "
                                 "where r.id = %s", first["id"])[0]
    assert applied is not None and status == "accepted"
    assert not any(Store(url, read_only=True).consistency("review").values())


def test_a_run_whose_database_restarts_mid_run_goes_on_or_resumes_to_the_same_dataset(tmp_path, postgres):
    url = postgres.new_database("restart")
    pg_config, sqlite_config = twin_configs(tmp_path, url, lease_s=3, sim={"latency_by_task": {"solve": 0.3}})
    first = start("run", pg_config, tmp_path / "first.log")
    wait_for(lambda: query(url, "select count(*) from samples")[0][0] >= 3)
    postgres.stop("fast")  # every connection is dropped; the processes meet the drop on their next call
    time.sleep(1.0)
    postgres.start()
    first.wait(timeout=120)
    log = (tmp_path / "first.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    if first.returncode != 0:  # stopped with one line naming the database: run again to resume
        assert "chimera: error:" in log, log[-2000:]
        finish(start("run", pg_config, tmp_path / "second.log"), tmp_path / "second.log")
    assert dataset(url) == sqlite_dataset(sqlite_config)
    assert not any(Store(url, read_only=True).consistency("pg").values())


def test_a_run_wide_total_is_shared_out_among_the_live_workers():
    from chimera.models.dispatch import Endpoints

    endpoints = Endpoints(32)
    solver = endpoints.budget("http://vllm:8000/v1", 24, total=40)
    other = endpoints.budget("http://api.example/v1", 8)
    endpoints.share_totals(1)
    assert (solver.limit, other.limit) == (24, 8)  # alone, a worker keeps its own budget
    endpoints.share_totals(4)
    assert (solver.limit, other.limit) == (10, 8) and solver.current == 10
    endpoints.share_totals(100)
    assert solver.limit == 1  # never below one place
    endpoints.share_totals(2)
    assert solver.limit == 20  # a worker that left gives its share back


def test_workers_cap_an_endpoint_at_the_runs_total_share(tmp_path, postgres):
    url = postgres.new_database("totals")
    pg_config, _ = twin_configs(tmp_path, url, lease_s=3, sim={"latency_by_task": {"solve": 0.2}},
                                models={"default": {"provider": "sim", "max_in_flight_total": 4}})
    first = start("run", pg_config, tmp_path / "main.log", "--trace", str(tmp_path / "main.trace"))
    second = start("worker", pg_config, tmp_path / "worker.log", "--trace", str(tmp_path / "worker.trace"))
    finish(first, tmp_path / "main.log")
    finish(second, tmp_path / "worker.log")
    for trace in ("main.trace", "worker.trace"):
        points = [json.loads(line) for line in (tmp_path / trace).read_text().splitlines()]
        topics = [p for p in points if p["stage"].startswith("stages 2-3")]
        assert topics and max(p["in_flight"] for p in topics) <= 4
        assert min(p["limit"] for p in topics) == 2  # its share while the other worker was alive


def test_the_sqlite_and_postgresql_schemas_hold_the_same_tables_and_columns_after_every_migration(tmp_path, postgres):
    """The aggregates' SQL is written once for both backends: a column one schema lacks breaks that backend only."""
    sqlite_store, pg_store = Store(tmp_path / "t.db"), Store(postgres.new_database("schemas_agree"))
    tables = [row[0] for row in sqlite_store.conn.execute("select name from sqlite_master where type = 'table' "
                                                          "and name not like 'sqlite_%'").fetchall()]
    on_sqlite = {(table, row[1]) for table in tables
                 for row in sqlite_store.conn.execute(f"pragma table_info('{table}')").fetchall()}
    on_postgres = {(row[0], row[1]) for row in pg_store.conn.execute(
        "select table_name, column_name from information_schema.columns where table_schema = current_schema()"
    ).fetchall()}
    own = {table for table, _ in on_sqlite} - {"_migrations", "checkpoints", "writes"}  # migration bookkeeping
    only_postgres = {"workers", "topic_leases"}  # leases exist only where several processes share a database
    assert len(own) >= 12 and ("llm_calls", "cached_tokens") in on_sqlite
    assert {c for c in on_sqlite if c[0] in own} == {c for c in on_postgres if c[0] in own}
    assert {c[0] for c in on_postgres} - own - only_postgres <= {"checkpoints", "checkpoint_blobs", "checkpoint_writes",
                                                                  "checkpoint_migrations", "_migrations"}
    sqlite_store.close()
    pg_store.close()
