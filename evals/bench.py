"""`chimera bench`: the real pipeline against the simulator in its own process, measured.

Reports, for one run of N problems under a budget of B requests in flight:
- time-averaged requests in flight / B;
- requests per second / the ideal from Little's law (B / mean latency);
- orchestration CPU per model call: this process's CPU (the simulator runs in
  another) over the calls it made, checkpoint writes included;
- checkpoint bytes and dataset bytes per sample, peak RSS;
- after a SIGKILL mid-run, seconds from the restart command until the budget is full again;
- a baseline in the same session: a plain asyncio loop of as many calls with the
  openai client and no graph, so the orchestration overhead shows as a ratio.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chimera.config import SimSettings, load_config
from chimera.errors import ChimeraError
from chimera.records import CriticVerdict, DraftedProblem, LabelVerdict, response_format_for
from chimera.runner import RunMonitor, is_checkpoint_table, run_pipeline
from chimera.store import Store

CHIMERA = str(Path(sys.executable).parent / "chimera")


@dataclass
class BenchSpec:
    problems: int = 2000
    budget: int = 256
    problems_per_topic: int = 4
    latency: dict[str, float] = field(default_factory=lambda: {"solve": 2.0, "other": 0.3})
    jitter: float = 0.5
    capacity: int | None = None
    faults: dict[str, float] = field(default_factory=dict)
    trajectory_words: int = 400
    restart: bool = True
    baseline: bool = True


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sim_settings(spec: BenchSpec) -> SimSettings:
    other = spec.latency.get("other", 0.0)
    by_task = {task: spec.latency.get(task, other) for task in ("expand", "draft", "critic", "solve", "label", "embed")}
    return SimSettings.model_validate({
        "latency_s": other, "latency_by_task": by_task, "latency_jitter": spec.jitter, "capacity": spec.capacity,
        "trajectory_words": spec.trajectory_words, **{f"fault_{k}": v for k, v in spec.faults.items()}})


def _start_sim(settings: SimSettings) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([CHIMERA, "sim", "--port", "0", "--seed", "1", "--settings", settings.model_dump_json()],
                               stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None  # stderr=PIPE
    line = process.stderr.readline()
    if "serving at" not in line:
        process.kill()
        raise RuntimeError(f"the simulator did not start: {line.strip()}")
    return process, line.split("serving at ")[1].split()[0]


def _write_config(folder: Path, spec: BenchSpec, url: str, name: str) -> Path:
    topics = max(1, spec.problems // spec.problems_per_topic)
    config = {
        "run": {"name": name, "db": str(folder / f"{name}.db"), "seed": 1, "concurrency": spec.budget},
        "subjects": [{"name": "Mathematics", "topics": [f"Benchmark topic {i}" for i in range(topics)]}],
        "problems_total": spec.problems,
        "max_revisions": 1,
        # The topics are numbered names that look alike; only exact duplicates may merge, so every topic
        # keeps its share of the problems (merged topics would leave a few topics drafting long queues).
        "taxonomy": {"lexical_threshold": 1.0},
        "models": {"default": {"base_url": url, "model": "sim", "max_retries": 6, "timeout_s": 30}},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _db_figures(db: Path | str) -> dict[str, Any]:
    store = Store(db, read_only=True)
    figures = store.bench_figures()
    store.close()
    sizes = figures["table_bytes"]
    checkpoint = sum(v for k, v in sizes.items() if is_checkpoint_table(k))
    samples = (figures["samples"], figures["mean_sample_chars"])
    statuses, outcomes, latency = figures["problems_by_status"], figures["call_outcomes"], figures["mean_latency_s"]
    n = max(1, samples[0])
    return {
        "samples": samples[0], "problems_by_status": statuses, "call_outcomes": outcomes,
        "calls": sum(outcomes.values()), "mean_latency_s": latency or 0.0,
        "sample_bytes": round(samples[1]), "checkpoint_bytes_per_sample": round(checkpoint / n),
        "dataset_bytes_per_sample": round((sum(sizes.values()) - checkpoint) / n),
        "checkpoint_to_sample_ratio": round(checkpoint / n / samples[1], 2) if samples[1] else None,
    }


async def _pipeline(config_path: Path) -> dict[str, Any]:
    config = load_config(config_path)
    seen: dict[str, Any] = {}

    def watch(monitor: RunMonitor) -> None:
        seen["endpoints"] = monitor.endpoints

    cpu, started = _cpu_seconds(), time.monotonic()
    await run_pipeline(config, on_progress=watch, progress_every_s=1.0)
    seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    budgets = list(seen["endpoints"].budgets.values())
    mean_in_flight = sum(b.mean_in_flight() for b in budgets)
    return {"seconds": seconds, "cpu_s": cpu, "mean_in_flight": mean_in_flight}


async def _baseline(url: str, budget: int, calls_by_role: dict[str, int]) -> dict[str, Any]:
    """The same number of calls, per role, from a plain asyncio loop with the openai client."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="sim", max_retries=6, timeout=30)
    schema = {"drafter": DraftedProblem, "critic0": CriticVerdict, "critic1": CriticVerdict, "labeler": LabelVerdict}
    gate = asyncio.Semaphore(budget)
    state = {"in_flight": 0, "area": 0.0, "since": time.monotonic()}

    def account(delta: int) -> None:
        now = time.monotonic()
        state["area"] += state["in_flight"] * (now - state["since"])
        state["since"], state["in_flight"] = now, state["in_flight"] + delta

    async def one(role: str, i: int) -> None:
        kwargs: dict[str, Any] = {}
        if role in schema:
            kwargs["response_format"] = response_format_for(schema[role])
        content = f"Subject: Mathematics\nTopic: Benchmark topic {i}\n\n<problem>\nHow many edges does the complete " \
                  f"graph on {5 + i % 190} vertices have?\n</problem>\nReference answer: {i}\n"
        async with gate:
            account(+1)
            try:
                await client.chat.completions.create(model="sim", messages=[{"role": "user", "content": content}],
                                                     **kwargs)
            finally:
                account(-1)

    cpu, started = _cpu_seconds(), time.monotonic()
    await asyncio.gather(*[one(role, i) for role, n in calls_by_role.items() for i in range(n)])
    seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    account(0)
    await client.close()
    calls = sum(calls_by_role.values())
    return {"calls": calls, "seconds": round(seconds, 2), "cpu_ms_per_call": round(1000 * cpu / calls, 2),
            "mean_in_flight": round(state["area"] / seconds, 1), "in_flight_ratio": round(state["area"] / seconds / budget, 3)}


def _restart_to_full(folder: Path, spec: BenchSpec, url: str) -> dict[str, Any]:
    """Kill a run mid-way, restart it, and time how long until its budget is full again."""
    config = _write_config(folder, spec, url, "restart")
    db = folder / "restart.db"
    first = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    done = 0  # a run that exits before its database opens was killed after no samples
    while time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.5)
        try:
            watched = Store(db, read_only=True)
        except ChimeraError:
            continue  # not created yet, or not migrated yet
        done = watched.sample_count()
        watched.close()
        if done >= spec.problems // 3:
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    trace = folder / "restart.trace"
    launched = time.time()
    second = subprocess.Popen([CHIMERA, "run", str(config), "--quiet", "--trace", str(trace)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    full_at = None
    while time.monotonic() < deadline and second.poll() is None and full_at is None:
        time.sleep(0.2)
        if trace.exists():
            for line in trace.read_text().splitlines():
                point = json.loads(line)
                if point["in_flight"] >= 0.95 * point["limit"]:
                    full_at = point["t"]
                    break
    second.send_signal(signal.SIGKILL)
    second.wait()
    return {"killed_after_samples": done, "seconds_to_full_budget": round(full_at - launched, 2) if full_at else None}


def run_bench(spec: BenchSpec, out: Path | None = None, *, postgres: str | None = None,
              workers: int = 1) -> dict[str, Any]:
    """The figures on SQLite and, with `postgres` (a server's URL), the same run there with 1 and `workers`
    processes (see bench_postgres)."""
    folder = Path(tempfile.mkdtemp(prefix="chimera-bench-"))
    sim, url = _start_sim(_sim_settings(spec))
    try:
        config = _write_config(folder, spec, url, "bench")
        run = asyncio.run(_pipeline(config))
        figures = _db_figures(folder / "bench.db")
        calls = figures["calls"]
        ideal_rps = spec.budget / figures["mean_latency_s"] if figures["mean_latency_s"] else None
        result: dict[str, Any] = {
            "spec": asdict(spec),
            "pipeline": {
                "seconds": round(run["seconds"], 2),
                "calls": calls,
                "requests_per_s": round(calls / run["seconds"], 1),
                "ideal_requests_per_s": round(ideal_rps, 1) if ideal_rps else None,
                "throughput_ratio": round(calls / run["seconds"] / ideal_rps, 3) if ideal_rps else None,
                "mean_in_flight": round(run["mean_in_flight"], 1),
                "in_flight_ratio": round(run["mean_in_flight"] / spec.budget, 3),
                "cpu_ms_per_call": round(1000 * run["cpu_s"] / calls, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                **{k: v for k, v in figures.items() if k != "calls"},
            },
        }
        if spec.baseline:
            store = Store(folder / "bench.db", read_only=True)
            by_role = store.calls_by_role(("drafter", "critic0", "critic1", "solver", "labeler"))
            store.close()
            baseline = asyncio.run(_baseline(url, spec.budget, by_role))
            result["baseline"] = baseline
            result["overhead_ratio"] = round(result["pipeline"]["cpu_ms_per_call"] / baseline["cpu_ms_per_call"], 2)
        if spec.restart:
            result["restart"] = _restart_to_full(folder, spec, url)
        if postgres is not None:
            from chimera.evals.bench_postgres import postgres_figures

            result["postgres"] = postgres_figures(config, postgres, workers, folder, chimera=CHIMERA,
                                                  budget=spec.budget, measure_pipeline=_pipeline,
                                                  db_figures=_db_figures)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
    result["folder"] = str(folder)
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
    return result


def parse_pairs(text: str | None) -> dict[str, float]:
    """`solve=2,other=0.3` -> {"solve": 2.0, "other": 0.3}."""
    if not text:
        return {}
    pairs = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        pairs[key.strip()] = float(value)
    return pairs
