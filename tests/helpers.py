"""Helpers for tests: configs in a temp folder and the `chimera` command, in this process or as one."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
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


def dataset(db: Path) -> list[tuple[Any, ...]]:
    """What two runs of one seed must agree on: every problem's outcome, and the samples of the accepted ones. (A
    problem rejected as a near-duplicate may or may not have been solved first, as timing has it; no export holds
    its samples.)"""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        problems = conn.execute("select problem, answer, status from problems").fetchall()
        samples = conn.execute("select p.problem, s.solution, s.correct from samples s join problems p "
                               "on p.id = s.problem_id where p.status = 'accepted'").fetchall()
    return sorted(problems, key=repr) + sorted(samples, key=repr)


_FINISHED: dict[str, Path] = {}


def finished_run(folder: Path) -> Path:
    """The default run (`write_config`'s), finished: built once per test process, then copied into `folder`
    as t.db beside its config t.yaml, for tests that only read or export it. Returns the database's path."""
    if "db" not in _FINISHED:
        import tempfile

        built = Path(tempfile.mkdtemp(prefix="chimera-finished-run-"))
        result = chimera("run", str(write_config(built)), "--quiet")
        assert result.returncode == 0, result.stderr
        with contextlib.closing(sqlite3.connect(built / "t.db")) as conn:
            conn.execute("pragma wal_checkpoint(truncate)")  # every row in the one file that is copied
        _FINISHED["db"] = built / "t.db"
    write_config(folder)
    (folder / "t.db").write_bytes(_FINISHED["db"].read_bytes())
    return folder / "t.db"


def chimera(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, input: str | None = None, process: bool = False) -> subprocess.CompletedProcess:
    """`chimera ARGS`: by default its `main` in this process (the same code, without two seconds of imports),
    with its own working folder, environment, stdin, stdout and stderr; `process=True` runs the installed
    command, for what only a separate process shows (a real terminal, signals, exit on a crash, a timeout)."""
    if process:
        return subprocess.run([CHIMERA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              input=input)
    from chimera.cli import main

    # Text streams over bytes, as a process's are: an export to `-` writes bytes to sys.stdout.buffer.
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    with _as_a_command(cwd, env, input, out, err):
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse: --help, --version, a usage error
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return subprocess.CompletedProcess([CHIMERA, *args], code, *(_text(stream) for stream in (out, err)))


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", errors="replace")  # type: ignore[attr-defined]


@contextlib.contextmanager
def _as_a_command(cwd: Path | None, env: dict[str, str] | None, input: str | None, out: io.TextIOWrapper,
                  err: io.TextIOWrapper) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
