"""Cost benchmark: the paper's role layout on the simulator, online against batched, with a kill, a plan and a cap.

    python -m chimera.evals.cost_bench [--topics 160] [--problems 4] [--pilot 0.02] [--out FILE]

Every role but the solver is priced as the paper's API models are (expander, drafter and critics at GPT-5's
$1.25 / $10 per million tokens in / out, cached input $0.125, labeler at GPT-5-mini's $0.25 / $2); the solver is
self-hosted and free. The simulator runs in a process of its own, so it outlives the runs this kills. Reported:
1. the online run and the batched run (expander, drafter, critics and labeler in batch mode): same dataset,
   cost per accepted sample, and the ratio;
2. the batched run killed with SIGKILL while batches are at the provider, then resumed: items the simulator
   received more than once (0 expected), accepted problems lost (0 expected);
3. `chimera plan` with a pilot of `--pilot` of the topics, then the run: the estimate's error on cost and tokens
   against the actual run, and calls made twice (0 expected);
4. a budget cap at half the online cost: the spend at the stop against the cap and the calls in flight.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from chimera.errors import ChimeraError
from chimera.models.costs import prices_of, usage_cost
from chimera.store import Store

CHIMERA = str(Path(sys.executable).parent / "chimera")
RUN = "paper-shape"
SUBJECTS = ["Mathematics", "Physics", "Chemistry", "Biology", "Computer Science", "Economics", "Earth Science",
            "Linguistics"]
API = {"price_per_mtok_in": 1.25, "price_per_mtok_out": 10.0, "price_per_mtok_cached": 0.125}
MINI = {"price_per_mtok_in": 0.25, "price_per_mtok_out": 2.0, "price_per_mtok_cached": 0.025}
FREE = {"price_per_mtok_in": 0.0, "price_per_mtok_out": 0.0}
SIM = {"batch_delay_s": 1.0, "latency_by_task": {"solve": 0.05}, "latency_s": 0.01}


def models(url: str, *, batched: bool) -> dict[str, Any]:
    batch = {"batch": True, "batch_max_wait_s": 0.5, "batch_poll_s": 0.25, "batch_max_requests": 500} if batched else {}
    return {"default": {"provider": "openai", "base_url": url, "model": "sim", "timeout_s": 60, **API},
            "expander": dict(batch), "drafter": dict(batch), "critics": [dict(batch), dict(batch)],
            "solver": dict(FREE), "labeler": {**MINI, **batch}, "embedder": dict(FREE)}


def config(folder: Path, db: str, *, url: str, batched: bool, topics: int, problems: int,
           extra_run: dict[str, Any] | None = None) -> Path:
    per = max(1, topics // len(SUBJECTS))
    body = {"run": {"name": RUN, "db": str(folder / db), "seed": 3, "concurrency": 64, **(extra_run or {})},
            "subjects": [{"name": s, "topics": per * (2 if s == "Mathematics" else 1), "weight": 1}
                         for s in SUBJECTS],
            "problems_per_topic": problems, "max_revisions": 1, "models": models(url, batched=batched)}
    path = folder / f"{Path(db).stem}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def opened(db: Path) -> Store:
    return Store(db, read_only=True)


def spend(db: Path) -> float:
    """Dollars at the config's prices: batched calls at half, cached input at the cached price."""
    with contextlib.closing(opened(db)) as store:
        return usage_cost(store.usage_by_role(RUN), prices_of(store.config_of(RUN))) or 0.0


def dataset(db: Path) -> list[tuple[Any, ...]]:
    """Every problem's outcome, and the samples of the accepted ones (a problem rejected as a near-duplicate may
    or may not have been solved first, as timing has it; its samples are in no export)."""
    with contextlib.closing(opened(db)) as store:
        return [row if row[1] == "accepted" else row[:4] for row in store.dataset_rows()]


def asked_again(db: Path) -> int:
    with contextlib.closing(opened(db)) as store:
        return store.calls_asked_again(RUN)


def figure(db: Path, name: str) -> int:
    """One of `Store.counts`: samples, calls, tokens_in, tokens_out; 0 before the database exists."""
    if not db.exists():
        return 0
    with contextlib.closing(opened(db)) as store:
        return int(store.counts(RUN)[name]) if store.runs() else 0


def open_batches(db: Path) -> int:
    """Batches at the provider, unread; 0 while the run is still making its database."""
    try:
        with contextlib.closing(opened(db)) as store:
            return len(store.batches(RUN)) if store.runs() else 0
    except ChimeraError:
        return 0


def run(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHIMERA, "run", str(path), "--quiet", *extra], capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chimera.evals.cost_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=160, help="topics over the eight subjects (math twice)")
    parser.add_argument("--problems", type=int, default=4, help="problem slots per topic")
    parser.add_argument("--pilot", type=float, default=0.02)
    parser.add_argument("--port", type=int, default=8431)
    parser.add_argument("--out", help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="chimera-cost-bench-"))
    sim_config = folder / "sim.yaml"
    sim_config.write_text(yaml.safe_dump({"run": {"name": "sim", "db": str(folder / "unused.db"), "seed": 3},
                                          "subjects": [{"name": "x", "topics": 1}], "sim": SIM}))
    url = f"http://127.0.0.1:{args.port}/v1"
    simulator = subprocess.Popen([CHIMERA, "sim", "--port", str(args.port), "--config", str(sim_config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    figures: dict[str, Any] = {"topics": args.topics, "problems_per_topic": args.problems}
    try:
        _wait_for(url)
        shape = {"url": url, "topics": args.topics, "problems": args.problems}
        started = time.monotonic()
        online = config(folder, "online.db", batched=False, **shape)
        assert run(online).returncode == 0
        figures["online_s"] = round(time.monotonic() - started, 1)
        online_cost = spend(folder / "online.db")
        figures["online_cost_per_sample"] = online_cost / figure(folder / "online.db", "samples")

        batched = config(folder, "batched.db", batched=True, **shape)
        before = _items(url)
        process = subprocess.Popen([CHIMERA, "run", str(batched), "--quiet"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        db = folder / "batched.db"
        while not open_batches(db):
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
        figures["batches_open_at_kill"] = open_batches(db)
        started = time.monotonic()
        assert run(batched).returncode == 0
        figures["batched_resume_s"] = round(time.monotonic() - started, 1)
        sent = _items(url)
        figures["items_sent_twice"] = sum(1 for key, n in sent.items() if n - before.get(key, 0) > 1)
        figures["same_dataset_as_online"] = dataset(db) == dataset(folder / "online.db")
        figures["batched_cost_per_sample"] = spend(db) / figure(db, "samples")
        figures["cost_ratio"] = round(figures["batched_cost_per_sample"] / figures["online_cost_per_sample"], 4)

        planned = config(folder, "planned.db", batched=False, **shape)
        plan = json.loads(subprocess.run([CHIMERA, "plan", str(planned), "--pilot", str(args.pilot), "--json"],
                                         capture_output=True, text=True, check=True).stdout)
        pilot_calls = figure(folder / "planned.db", "calls")
        assert run(planned).returncode == 0
        actual_cost = spend(folder / "planned.db")
        actual_tokens = figure(folder / "planned.db", "tokens_in") + figure(folder / "planned.db", "tokens_out")
        figures |= {"pilot_topics": plan["sample_topics"], "pilot_calls": pilot_calls,
                    "plan_cost": plan["cost_usd"], "plan_cost_range": plan["cost_usd_range"], "actual_cost": actual_cost,
                    "plan_cost_error": round(plan["cost_usd"] / actual_cost - 1, 4),
                    "plan_tokens_error": round(plan["tokens"] / actual_tokens - 1, 4),
                    "pilot_calls_asked_again": asked_again(folder / "planned.db"),
                    "planned_same_dataset_as_online": dataset(folder / "planned.db") == dataset(folder / "online.db")}

        cap = round(online_cost / 2, 4)
        capped = config(folder, "capped.db", batched=False, extra_run={"max_cost_usd": cap}, **shape)
        stopped = run(capped)
        figures |= {"cap": cap, "cap_exit": stopped.returncode, "spent_at_stop": round(spend(folder / "capped.db"), 4),
                    "cap_line": stopped.stderr.strip().splitlines()[-1] if stopped.stderr.strip() else ""}
    finally:
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(10)
    for name, value in figures.items():
        print(f"{name:32} {value}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))
    return 0


def _items(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/sim/batch-items", timeout=10) as reply:
        return json.loads(reply.read())


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=1).close()
            return
        time.sleep(0.1)
    raise SystemExit(f"the simulator at {url} did not start")


if __name__ == "__main__":
    raise SystemExit(main())
