"""Kill fuzz: runs killed with SIGKILL at random moments and resumed, against a sampled simulator.

    python -m chimera.evals.resume_bench [--trials 10] [--kills 2] [--seed 0]

Each trial starts `chimera run` on a fresh database (the simulator with `deterministic: false`, so a call
asked twice is answered differently), kills it `--kills` times at random moments, then lets it finish.
It reports how many answered calls were asked again after a kill and what `chimera status --check`
finds; both should be zero. With `--deterministic` it also compares each trial's dataset with an
uninterrupted run of the same seed, which must be identical.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from chimera.store import Store

CHIMERA = str(Path(sys.executable).parent / "chimera")


def write_config(folder: Path, name: str, *, deterministic: bool, seed: int) -> Path:
    config = {
        "run": {"name": name, "db": str(folder / f"{name}.db"), "seed": seed, "concurrency": 8},
        "subjects": [{"name": "Mathematics", "topics": 4}, {"name": "Physics", "topics": 3},
                     {"name": "Chemistry", "topics": ["Stoichiometry", "Equilibria"]}],
        "problems_per_topic": 3, "max_revisions": 1, "solver": {"samples": 2},
        "sim": {"deterministic": deterministic, "latency_s": 0.05, "latency_jitter": 0.8,
                "drafter_error_rate": 0.3},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def dataset(db: Path) -> list[tuple]:
    store = Store(db, read_only=True)
    try:
        return store.dataset_rows()
    finally:
        store.close()


def trial(folder: Path, index: int, *, kills: int, deterministic: bool, rng: random.Random) -> dict:
    config = write_config(folder, f"t{index}", deterministic=deterministic, seed=index)
    db = folder / f"t{index}.db"
    killed = 0
    for _ in range(kills):
        process = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait()
    final = subprocess.run([CHIMERA, "run", str(config), "--quiet"], capture_output=True, text=True)
    store = Store(db, read_only=True)
    asked_again = store.calls_asked_again(f"t{index}")
    problems = {name: len(ids) for name, ids in store.consistency(f"t{index}").items() if ids}
    store.close()
    result = {"kills": killed, "exit": final.returncode, "answered_calls_asked_again": asked_again,
              "inconsistent": problems}
    if deterministic:
        straight = write_config(folder, f"s{index}", deterministic=True, seed=index)
        text = straight.read_text().replace(f"name: s{index}", f"name: t{index}")
        straight.write_text(text)
        subprocess.run([CHIMERA, "run", str(straight), "--quiet"], capture_output=True)
        result["same_dataset_as_uninterrupted"] = dataset(db) == dataset(folder / f"s{index}.db")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per trial before it may finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true",
                        help="the deterministic simulator, and compare with an uninterrupted run")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.trials):
            results.append(trial(Path(folder), i, kills=args.kills, deterministic=args.deterministic, rng=rng))
            print(json.dumps(results[-1]), flush=True)
    summary = {"trials": len(results), "kills": sum(r["kills"] for r in results),
               "answered_calls_asked_again": sum(r["answered_calls_asked_again"] for r in results),
               "trials_inconsistent": sum(bool(r["inconsistent"]) for r in results),
               "runs_not_exit_0": sum(r["exit"] != 0 for r in results)}
    if args.deterministic:
        summary["trials_with_another_dataset"] = sum(not r["same_dataset_as_uninterrupted"] for r in results)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
