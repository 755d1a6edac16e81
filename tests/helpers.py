"""Helpers for tests: configs in a temp folder and the installed `chimera` command."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

CHIMERA = str(Path(sys.executable).parent / "chimera")


def write_config(folder: Path, *, name: str = "t", seed: int = 5, sim: dict[str, Any] | None = None,
                 models: dict[str, Any] | None = None, **top: Any) -> Path:
    config: dict[str, Any] = {
        "run": {"name": name, "db": str(folder / f"{name}.db"), "seed": seed, "concurrency": 8},
        "subjects": [{"name": "Mathematics", "topics": 2}, {"name": "Chemistry", "topics": ["Stoichiometry"]}],
        "problems_per_topic": 2,
        "max_revisions": 1,
    }
    config.update(top)
    if sim is not None:
        config["sim"] = sim
    if models is not None:
        config["models"] = models
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def chimera(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CHIMERA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)


def interrupt_when(args: list[str], db: Path, count_sql: str, at_least: int, sig: int = signal.SIGKILL,
                   timeout: float = 60) -> tuple[int, subprocess.CompletedProcess]:
    """Start `chimera ARGS`, send `sig` once `count_sql` on `db` reaches `at_least`; returns (count seen, result)."""
    # A shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler: give the child the disposition a terminal's foreground process has, wherever pytest runs.
    process = subprocess.Popen([CHIMERA, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        try:
            seen = sqlite3.connect(db).execute(count_sql).fetchone()[0]
        except sqlite3.OperationalError:
            continue  # the tables are not created yet
        if seen >= at_least:
            break
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    return seen, subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
