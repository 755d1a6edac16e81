"""`chimera bench --db URL --workers N`: the benchmark's run on PostgreSQL, beside the SQLite figures.

Each measurement gets a database of its own, created on the server the URL names:
- orchestration CPU per call with one process (this one; the database server's CPU, like the simulator's, is
  another process's);
- requests in flight / budget with 1 and with N processes (`chimera run` plus N-1 `chimera worker`s, from their
  traces over Stages 2-3: the sum of in flight over the sum of budgets);
- seconds from a worker's SIGKILL until another process has taken each topic it held (resumed from its last
  checkpoint), and until each has made a model call again (its requests queue in the new holder's budget);
- database bytes per sample: dataset tables (indexes and TOAST included) and checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from chimera.store import Store
from chimera.store.postgres import create_database, shown_url

BENCH_LEASE_S = 5.0


def _as_postgres(config: Path, url: str, name: str, *, topics_in_flight: int | None = None) -> Path:
    raw = yaml.safe_load(config.read_text())
    raw["run"] |= {"db": url, "lease_s": BENCH_LEASE_S}
    if topics_in_flight is not None:
        raw["run"]["topics_in_flight"] = topics_in_flight
    path = config.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


def _trace_ratio(traces: list[Path]) -> dict[str, Any]:
    """Mean requests in flight over mean budget, summed across processes, while topics ran."""
    in_flight = limit = 0.0
    for trace in traces:
        points = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
        points = [p for p in points if p["stage"].startswith("stages 2-3")]
        if points:
            in_flight += sum(p["in_flight"] for p in points) / len(points)
            limit += sum(p["limit"] for p in points) / len(points)
    return {"mean_in_flight": round(in_flight, 1), "budget": round(limit),
            "in_flight_ratio": round(in_flight / limit, 3) if limit else None}


def _processes(chimera: str, config: Path, workers: int, folder: Path, tag: str) -> list[subprocess.Popen]:
    commands = [["run"]] + [["worker"]] * (workers - 1)
    return [subprocess.Popen([chimera, *command, str(config), "--quiet", "--trace", str(folder / f"{tag}{i}.trace")],
                             stdout=subprocess.DEVNULL, stderr=(folder / f"{tag}{i}.log").open("w"))
            for i, command in enumerate(commands)]


def _wait_all(processes: list[subprocess.Popen], timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))


def in_flight_with(chimera: str, config: Path, server_url: str, workers: int, folder: Path) -> dict[str, Any]:
    url = create_database(server_url, f"chimera_bench_w{workers}")
    pg_config = _as_postgres(config, url, f"workers{workers}")
    processes = _processes(chimera, pg_config, workers, folder, f"w{workers}-")
    started = time.monotonic()
    _wait_all(processes)
    seconds = time.monotonic() - started
    if any(p.returncode != 0 for p in processes):
        raise RuntimeError(f"a process of the {workers}-worker run failed; see {folder}/w{workers}-*.log")
    store = Store(url, read_only=True)
    samples = store.sample_count()
    store.close()
    return {"workers": workers, "seconds": round(seconds, 2), "samples": samples,
            **_trace_ratio([folder / f"w{workers}-{i}.trace" for i in range(workers)])}


def takeover_after_kill(chimera: str, config: Path, server_url: str, folder: Path) -> dict[str, Any]:
    """Kill one of two processes mid-run; time until every topic it held has made a model call again."""
    url = create_database(server_url, "chimera_bench_takeover")
    pg_config = _as_postgres(config, url, "takeover")
    main, worker = _processes(chimera, pg_config, 2, folder, "takeover-")
    store = Store(url, read_only=True) if _wait_for_schema(url) else None
    assert store is not None
    held: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.2)
        held = store.topics_held_by_pid(worker.pid)
        if len(held) >= 2:
            break
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_wall, killed = time.time(), time.monotonic()
    taken_over = running_again = None
    while time.monotonic() < deadline and main.poll() is None and held:
        if taken_over is None and store.topics_taken_over(held) == len(held):
            taken_over = time.monotonic() - killed
        if store.topics_called_since(held, killed_wall) == len(held):
            running_again = time.monotonic() - killed
            break
        time.sleep(0.05)
    main.send_signal(signal.SIGKILL)
    main.wait()
    store.close()
    return {"lease_s": BENCH_LEASE_S, "topics_held_by_the_killed_worker": len(held),
            "seconds_until_taken_over": round(taken_over, 2) if taken_over is not None else None,
            "seconds_until_running_again": round(running_again, 2) if running_again is not None else None}


def _wait_for_schema(url: str, timeout: float = 60) -> bool:
    from chimera.errors import ChimeraError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            Store(url, read_only=True).close()
            return True
        except ChimeraError:
            time.sleep(0.2)
    return False


def postgres_figures(config: Path, server_url: str, workers: int, folder: Path, *, chimera: str, budget: int,
                     measure_pipeline: Any, db_figures: Any) -> dict[str, Any]:
    """Everything the PostgreSQL column of the report shows."""
    url = create_database(server_url, "chimera_bench_one")
    one = asyncio.run(measure_pipeline(_as_postgres(config, url, "postgres1")))
    figures = db_figures(url)
    calls = figures["calls"]
    result: dict[str, Any] = {
        "server": shown_url(server_url),
        "seconds": round(one["seconds"], 2), "calls": calls,
        "cpu_ms_per_call": round(1000 * one["cpu_s"] / calls, 2) if calls else None,
        "in_flight_ratio": round(one["mean_in_flight"] / budget, 3),
        "dataset_bytes_per_sample": figures["dataset_bytes_per_sample"],
        "checkpoint_bytes_per_sample": figures["checkpoint_bytes_per_sample"],
    }
    if workers >= 2:
        result["processes"] = in_flight_with(chimera, config, server_url, workers, folder)
    result["takeover"] = takeover_after_kill(chimera, config, server_url, folder)
    return result
