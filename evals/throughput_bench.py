"""`chimera bench`: the real pipeline against the simulator in its own process, measured.

Reports, for one run of N problems under a budget of B requests in flight:
- time-averaged requests in flight / B;
- requests per second / the ideal from Little's law (B / mean latency);
- orchestration CPU per model call: this process's CPU (the simulator runs in
  another) over the calls it made, checkpoint writes included;
- checkpoint bytes and dataset bytes per sample, peak RSS;
- after a SIGKILL mid-run, seconds from the restart command until the budget is full again;
- a baseline in the same session: a plain asyncio loop of as many calls with the
  openai client and no graph, so the orchestration overhead shows as a ratio;
- with `rss_every_s`, this process's RSS sampled over the run (peak, final, at a tenth of the run);
- with `finished_db`, the database's bytes per sample split into dataset tables, checkpoints and kept
  replies, and the wall time and peak RSS of `chimera status`, `chimera export --split sft` and
  `chimera stats` on the finished database, each in its own process.

`--scale paper` (PRESETS) runs the paper's shape: 8 subjects, 1,180 topics of 8 problems, trajectories of
about 11,000 words.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from chimera.config import SimSettings, load_config
from chimera.engine.runner import RunMonitor, is_checkpoint_table, run_pipeline
from chimera.errors import ChimeraError
from chimera.models.reply_schemas import CriticVerdict, DraftedProblem, LabelVerdict, response_format_for
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
    subjects: int = 1  # spread over the simulator's subject families (SUBJECTS)
    topics: int | None = None  # None: problems / problems_per_topic; given: each topic drafts problems_per_topic
    draft_variety: bool = False  # the simulator's sim.draft_variety
    rss_every_s: float | None = None  # sample this process's RSS this often during the run
    finished_db: bool = False  # bytes split, and status / export / stats timed on the finished database


# One subject per family of the simulator's problem kinds (chimera.sim.problems.FAMILY_KEYWORDS).
SUBJECTS = ("Mathematics", "Physics", "Chemistry", "Biology", "Computer science", "History", "Linguistics",
            "Literature")


def paper_spec() -> BenchSpec:
    """The paper's shape: 8 subjects, 1,180 topics, 8 problems per topic, trajectories of about 11,000 words,
    solve 2 s and other calls 0.3 s, a budget of 256. Drafts vary by topic and slot (sim.draft_variety) so
    near-duplicates stay at a realistic rate; the restart and baseline measurements are left out (each would
    repeat a run of this size)."""
    return BenchSpec(problems=1180 * 8, budget=256, problems_per_topic=8, subjects=8, topics=1180,
                     trajectory_words=11000, draft_variety=True, restart=False, baseline=False, rss_every_s=5.0,
                     finished_db=True)


PRESETS = {"paper": paper_spec}


def scaled(spec: BenchSpec, **given: Any) -> BenchSpec:
    """`spec` with the knobs given (not None) put in; with `topics`, problems is topics x problems per topic."""
    spec = replace(spec, **{k: v for k, v in given.items() if v is not None})
    if spec.topics is not None:
        spec = replace(spec, problems=spec.topics * spec.problems_per_topic)
    if spec.subjects < 1 or spec.subjects > len(SUBJECTS):
        raise ChimeraError(f"--subjects {spec.subjects}: give 1 to {len(SUBJECTS)}")
    if spec.topics is not None and spec.topics < spec.subjects:
        raise ChimeraError(f"--topics {spec.topics}: give at least one topic per subject ({spec.subjects})")
    return spec


def describe(spec: BenchSpec) -> str:
    """What a benchmark runs, in words, printed before it starts."""
    topics = spec.topics or max(1, spec.problems // spec.problems_per_topic)
    latency = ", ".join(f"{task} {seconds:g} s" for task, seconds in spec.latency.items())
    lines = [f"benchmark: {spec.subjects} subject{'s' * (spec.subjects > 1)}, {topics:,} topics x "
             f"{spec.problems_per_topic} problems = {spec.problems:,} problems; trajectories of about "
             f"{spec.trajectory_words:,} words; latency {latency} (+-{spec.jitter:.0%}); budget {spec.budget}; "
             f"faults {', '.join(f'{k} {v:g}' for k, v in spec.faults.items()) or 'none'}; draft variety "
             f"{'on' if spec.draft_variety else 'off'}; the simulator in its own process"]
    then = [what for what, wanted in (("the kill-and-restart measurement", spec.restart),
                                       ("the plain openai-client baseline", spec.baseline),
                                       ("chimera status, export --split sft and stats timed on the finished "
                                        "database", spec.finished_db)) if wanted]
    if spec.rss_every_s:
        lines.append(f"RSS sampled every {spec.rss_every_s:g} s")
    lines.append(f"then: {'; '.join(then)}" if then else "then: nothing more (no restart, no baseline)")
    return "\n".join(lines)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sim_settings(spec: BenchSpec) -> SimSettings:
    other = spec.latency.get("other", 0.0)
    by_task = {task: spec.latency.get(task, other) for task in ("expand", "draft", "critic", "solve", "label", "embed")}
    return SimSettings.model_validate({
        "latency_s": other, "latency_by_task": by_task, "latency_jitter": spec.jitter, "capacity": spec.capacity,
        "trajectory_words": spec.trajectory_words, "draft_variety": spec.draft_variety,
        **{f"fault_{k}": v for k, v in spec.faults.items()}})


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
    topics = spec.topics or max(1, spec.problems // spec.problems_per_topic)
    subjects = SUBJECTS[: spec.subjects]
    # Without `topics`, problems_total spreads `problems` over the topics (the bench's first form); with it,
    # every topic drafts problems_per_topic, whatever the subjects' shares of the topics.
    shape: dict[str, Any] = {"problems_total": spec.problems} if spec.topics is None else \
        {"problems_per_topic": spec.problems_per_topic}
    config = {
        "run": {"name": name, "db": str(folder / f"{name}.db"), "seed": 1, "concurrency": spec.budget},
        "subjects": [{"name": subject, "topics": [f"Benchmark topic {i}" for i in range(j, topics, len(subjects))]}
                     for j, subject in enumerate(subjects)],
        **shape,
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


def rss_mb(part: str = "VmRSS") -> float:
    """This process's resident set now (VmRSS; RssAnon is its heap and stacks, RssFile mapped files), or its
    peak where /proc cannot tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{part}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class RssSampler:
    """RSS every `every_s` seconds from a thread (it reads on while the event loop is busy), with the run's
    samples done (as of the progress display's last look) beside each point."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.points: list[dict[str, float]] = []
        self.samples_done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._started = time.monotonic()

    def _take(self) -> None:
        self.points.append({"t_s": round(time.monotonic() - self._started, 1), "rss_mb": rss_mb(),
                            "anon_mb": rss_mb("RssAnon"), "samples": self.samples_done})

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._take()

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()


def rss_summary(points: list[dict[str, float]]) -> dict[str, Any]:
    """Peak and final RSS, the RSS at a tenth of the run (the first point at or past it), and peak over that."""
    end = points[-1]["t_s"]
    tenth = next(p for p in points if p["t_s"] >= end / 10)
    peak = max(p["rss_mb"] for p in points)
    return {"peak_mb": peak, "final_mb": points[-1]["rss_mb"], "at_tenth_mb": tenth["rss_mb"],
            "at_tenth_t_s": tenth["t_s"], "peak_over_tenth": round(peak / tenth["rss_mb"], 2), "series": points}


async def _pipeline(config_path: Path, rss_every_s: float | None = None) -> dict[str, Any]:
    config = load_config(config_path)
    seen: dict[str, Any] = {}
    sampler = RssSampler(rss_every_s) if rss_every_s else None

    def watch(monitor: RunMonitor) -> None:
        seen["endpoints"] = monitor.endpoints
        if sampler is not None:
            sampler.samples_done = monitor.counts.get("samples", 0)

    cpu, started = _cpu_seconds(), time.monotonic()
    if sampler is None:
        await run_pipeline(config, on_progress=watch, progress_every_s=1.0)
    else:
        with sampler:
            await run_pipeline(config, on_progress=watch, progress_every_s=1.0)
    seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    budgets = list(seen["endpoints"].budgets.values())
    mean_in_flight = sum(b.mean_in_flight() for b in budgets)
    result: dict[str, Any] = {"seconds": seconds, "cpu_s": cpu, "mean_in_flight": mean_in_flight}
    if sampler is not None:
        result["rss"] = rss_summary(sampler.points)
    return result


def near_duplicates(db: Path | str) -> dict[str, Any]:
    """Problems rejected as near-duplicates of a kept one, and their share of the problems drafted."""
    store = Store(db, read_only=True)
    try:
        drafted, duplicates = store.near_duplicate_count()
    finally:
        store.close()
    return {"near_duplicates": duplicates, "near_duplicate_rate": round(duplicates / drafted, 4) if drafted else 0.0}


def bytes_split(db: Path | str) -> dict[str, Any]:
    """The database's bytes per accepted sample in three parts that sum to the pages in use: LangGraph's checkpoint
    tables, the replies kept in llm_calls for exact resume (the `reply` column's bytes; a topic's are deleted
    when it is done, so a finished run keeps few), and the dataset tables (every other table and index,
    llm_calls without its replies). Free pages (what deleted rows left, reused by later writes) are apart."""
    store = Store(db, read_only=True)
    try:
        sizes = store.table_bytes()
        figures = store.storage_figures()
        samples, replies, free = figures["accepted_samples"], figures["kept_reply_bytes"], figures["free_bytes"]
    finally:
        store.close()
    total = sum(sizes.values())
    checkpoint = sum(v for k, v in sizes.items() if is_checkpoint_table(k))
    n = max(1, samples)
    parts = {"checkpoints": checkpoint, "kept_replies": replies, "dataset_tables": total - checkpoint - replies}
    return {"samples": samples, "file_bytes": _file_bytes(Path(db)), "total_bytes": total, "free_bytes": free,
            "total_per_sample": round(total / n), **{f"{k}_per_sample": round(v / n) for k, v in parts.items()},
            **{f"{k}_bytes": v for k, v in parts.items()}}


def _file_bytes(db: Path) -> int:
    """The database file and its write-ahead log, if one is left."""
    return sum(path.stat().st_size for path in (db, db.with_name(db.name + "-wal")) if path.exists())


GNU_TIME = "/usr/bin/time"


def timed_command(args: list[str]) -> dict[str, Any]:
    """Wall time and peak RSS of one command in its own process. The peak is GNU time's %M where it is
    installed; otherwise the child's own rusage from wait4, which on Linux also counts the RSS of this process
    copied into the child before exec, so there it is an upper bound."""
    report = Path(tempfile.mkstemp(prefix="chimera-bench-time-")[1])
    measured = Path(GNU_TIME).exists()
    command = [GNU_TIME, "-f", "%M", "-o", str(report), *args] if measured else args
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None  # stderr=PIPE
    stderr = process.stderr.read()  # read to the end first: a full pipe would stop the command
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise ChimeraError(f"{' '.join(args[:3])} failed on the benchmark database: {last[0]}")
    peak_kb = int(report.read_text().split()[-1]) if measured else usage.ru_maxrss
    report.unlink()
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_kb / 1024, 1),
            "peak_rss_from": "GNU time" if measured else "wait4 (an upper bound)"}


def finished_db_commands(db: Path, folder: Path) -> dict[str, Any]:
    """`chimera status`, `chimera export --split sft` and `chimera stats` on a finished database, timed."""
    export = folder / "sft.jsonl"
    times = {
        "status": timed_command([CHIMERA, "status", str(db)]),
        "export_sft": timed_command([CHIMERA, "export", str(db), "--split", "sft", "-o", str(export)]),
        "stats": timed_command([CHIMERA, "stats", str(db)]),
    }
    times["export_sft"]["bytes"] = export.stat().st_size
    times["export_sft"]["rows"] = sum(1 for _ in export.open("rb"))
    return times


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
        run = asyncio.run(_pipeline(config, spec.rss_every_s))
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
                **near_duplicates(folder / "bench.db"),
            },
        }
        if "rss" in run:
            result["rss"] = run["rss"]
        if spec.finished_db:
            result["bytes"] = bytes_split(folder / "bench.db")
            result["commands"] = finished_db_commands(folder / "bench.db", folder)
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
