"""The Python API: run a job from a script or a notebook, and read a run database, with the commands' meaning.

    result = chimera.run("quickstart.yaml", db="out.db", settings={"run.concurrency": 64})
    with chimera.open_run(result.db) as run:
        rows = list(run.samples("sft"))

`run` and `arun` do what `chimera run` does (the simulator started where roles are on it, resuming a database
that holds the run already) and return the exit status the command would give; `open_run` reads what
`chimera status --json` and `chimera export` would print. Bad input raises the typed errors of chimera.errors,
whose message is the one line the command prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from chimera.config import Config, load_config, parse_config, with_settings
from chimera.engine.health import assess, role_calls
from chimera.engine.runner import ProgressHook, RunSummary, run_pipeline
from chimera.engine.status import only_run, status_report
from chimera.errors import ChimeraError, ConfigError, LoopRunning, Stopped
from chimera.products.export import ExportOptions, arrow_table, records
from chimera.store import Store

__all__ = ["Run", "RunResult", "arun", "open_run", "resolve_config", "run"]

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str]
Settings = Mapping[str, Any] | Sequence[str]
RETRY_HINT = "run(config, retry_failed=True)"  # what the failed-slots line of a result says to call


@dataclass(frozen=True)
class RunResult:
    """How a run ended: `exit_code` is what `chimera run` would exit with (0: every problem slot ended accepted,
    rejected or waiting for review and something was accepted; 1: the run did not do its job; 3: it finished
    with some slots failed; see the README's exit rules), `reasons` the lines that say why, `counts` the run's
    counts as `chimera status` shows them, and `db` the database to open with `open_run`."""

    exit_code: int
    reasons: list[str]
    run: str
    db: str
    seconds: float
    counts: dict[str, Any]
    summary: RunSummary = field(repr=False)  # the whole summary: this invocation's calls, label figures, ...

    @property
    def ok(self) -> bool:
        """True when the run did its job (exit code 0)."""
        return self.exit_code == 0

    @property
    def problems(self) -> int:
        """Problem slots of the run, whatever their status."""
        return int(self.counts["problems"])

    @property
    def accepted(self) -> int:
        """Problems accepted into the dataset."""
        return int(self.counts["by_status"].get("accepted", 0))

    @property
    def failed(self) -> int:
        """Problem slots whose calls ran out of retries (`run(..., retry_failed=True)` takes them again)."""
        return int(self.counts["by_status"].get("failed", 0))

    @property
    def samples(self) -> int:
        """Trajectories of the accepted problems."""
        return int(self.counts["samples"])

    @property
    def correct(self) -> int:
        """Trajectories labelled correct."""
        return int(self.counts["correct"])

    def open(self) -> Run:
        """The run's database, opened read-only (`open_run(result.db, run=result.run)`)."""
        return open_run(self.db, run=self.run)


def run(config: ConfigSource, *, db: str | os.PathLike[str] | None = None, settings: Settings | None = None,
        topics_only: bool = False, retry_failed: bool = False, on_progress: ProgressHook | None = None) -> RunResult:
    """Run (or resume) a job and wait for it, as `chimera run CONFIG` does; for scripts.

    `config`: a mapping (the YAML file's content), the path of a YAML config, or a `chimera.config.Config`.
    `db`: the database to use instead of `run.db` (a SQLite path or a postgresql:// URL), as `--db`.
    `settings`: config values to change, `{"run.concurrency": 64, "models.critics.1.model": "o4-mini"}`, as
    `--set KEY.PATH=VALUE` (a list of "KEY.PATH=VALUE" strings is taken too). `topics_only` and
    `retry_failed` are the command's flags; `on_progress` is called about twice a second with a
    `chimera.engine.runner.RunMonitor` (stage, counts, topics finished).

    Raises ConfigError for a bad config or setting (naming the key), LoopRunning where an event loop runs in
    this thread already (Jupyter: `await arun(...)` there), and ChimeraError for what stops a run (an
    endpoint that cannot be reached, a database that cannot be opened). Ctrl-C interrupts; running it again
    resumes."""
    if _loop_running():
        raise LoopRunning("chimera.run waits for the run, and this thread runs an event loop already (a Jupyter "
                          "notebook, an async app): use `result = await chimera.arun(...)` with the same arguments")
    return asyncio.run(arun(config, db=db, settings=settings, topics_only=topics_only, retry_failed=retry_failed,
                            on_progress=on_progress))


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def arun(config: ConfigSource, *, db: str | os.PathLike[str] | None = None, settings: Settings | None = None,
               topics_only: bool = False, retry_failed: bool = False, on_progress: ProgressHook | None = None,
               stop: asyncio.Event | None = None) -> RunResult:
    """`run`, awaited on the caller's event loop (a notebook cell, an async app); the same arguments.

    `stop`: once set, no new request is sent and the calls in flight get `run.stop_grace_s` to finish (their
    replies kept for the resume), then this raises `chimera.errors.Stopped`, as SIGTERM does to the command."""
    resolved = resolve_config(config, db=db, settings=settings)
    try:
        summary = await run_pipeline(resolved, on_progress=on_progress, topics_only=topics_only,
                                     retry_failed=retry_failed, stop=stop)
    except asyncio.CancelledError:
        if stop is not None and stop.is_set():
            raise Stopped("stopped: the calls in flight finished or were left for the resume") from None
        raise
    health = assess(summary.counts, role_calls(summary.call_rows), retry_command=RETRY_HINT,
                    shortfalls=summary.shortfalls)
    return RunResult(exit_code=health.exit_code, reasons=health.lines, run=summary.name, db=summary.db,
                     seconds=summary.seconds, counts=summary.counts, summary=summary)


def resolve_config(config: ConfigSource, *, db: str | os.PathLike[str] | None = None,
                   settings: Settings | None = None) -> Config:
    """The validated config `run` would use: `config` (mapping, YAML path or Config) with `settings` applied,
    then `db` as run.db. The caller's mapping or Config is left as it was. Raises ConfigError naming the key."""
    changes = _setting_args(settings)
    if db is not None:
        changes.append(f"run.db={_yaml_text('db', os.fspath(db))}")
    if isinstance(config, Config):
        if not changes:
            return config.model_copy(deep=True)
        return parse_config(with_settings(config.model_dump(mode="json", by_alias=True), changes), source="config")
    if isinstance(config, str | os.PathLike):
        return load_config(Path(config), changes)
    if isinstance(config, Mapping):
        return parse_config(with_settings(dict(config), changes), source="config")
    raise ConfigError(f"config: expected a mapping, the path of a YAML file or a Config, not {type(config).__name__}")


def _setting_args(settings: Settings | None) -> list[str]:
    """`settings` as `--set` arguments: each value of a mapping written as YAML, which the setting reads back
    (so 64 stays a number and "64" a string); a list of "KEY.PATH=VALUE" strings is taken as it is."""
    if settings is None:
        return []
    if isinstance(settings, Mapping):
        args = []
        for key, value in settings.items():
            if not isinstance(key, str) or not key.strip() or "=" in key:
                raise ConfigError(f"settings: {key!r} is not a dotted config key (e.g. run.concurrency)")
            args.append(f"{key}={_yaml_text(key, value)}")
        return args
    if isinstance(settings, str) or not all(isinstance(item, str) for item in settings):
        raise ConfigError("settings: give a mapping of dotted keys to values ({'run.concurrency': 64}) or a list "
                          "of 'key.path=value' strings")
    return list(settings)


def _yaml_text(key: str, value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    try:
        text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True)
    except yaml.YAMLError:
        raise ConfigError(f"settings: {key}: a {type(value).__name__} is not a config value (give numbers, strings, "
                          "booleans, lists or mappings)") from None
    return text.removesuffix("...\n").strip()


class Run:
    """One run of a database, read-only: its samples and problems, as `chimera export` and `chimera status`
    give them. Open it with `open_run`; close it, or use it as a context manager."""

    def __init__(self, store: Store, name: str):
        self._store = store
        self.name = name  # the run's name

    @property
    def db(self) -> str:
        """The database (a URL's password shown as ***)."""
        return self._store.shown_path

    def samples(self, split: str = "all", **options: Any) -> Iterator[dict[str, Any]]:
        """The rows `chimera export DB --split SPLIT --run NAME` writes, one dict per line, in its order.

        `all`: every sample of an accepted problem; `sft`: the correct, untruncated ones as chats; `rl`: one row
        per accepted problem (chimera.products.export.records describes each split). `options` are the export's, as
        keywords of chimera.products.export.ExportOptions: `reasoning` (inline, field, none), `sft_format` (messages,
        prompt-completion), `schema` (chimera, verl, trl). A bad split or option value raises ChimeraError when
        iteration starts, an unknown option at once."""
        return records(self._store, split, self.name, _export_options(options))

    def problems(self) -> list[dict[str, Any]]:
        """Every problem slot of the run, whatever its status (pending, accepted, rejected, failed), as the
        database holds it, ordered by subject, topic and slot."""
        return [dict(row) for row in self._store.problems(self.name)]

    def status(self) -> dict[str, Any]:
        """The run's entry of `chimera status DB --json`: counts by status, samples, labels, calls, failures."""
        return status_report(self._store, [self.name])[self.name]

    def to_dataset(self, split: str = "all", **options: Any) -> Any:
        """The split as a `datasets.Dataset`, with the columns of `samples` (the free-form `models` and `usage`
        maps as JSON text, as the Parquet and Hugging Face exports hold them); `options` as for `samples`.
        Needs the datasets package (`pip install 'chimera-engine[datasets]'`)."""
        try:
            import datasets
        except ImportError:
            raise ChimeraError("to_dataset needs the datasets package: pip install 'chimera-engine[datasets]' "
                               "(or pip install datasets)") from None
        rows = list(self.samples(split, **options))
        return datasets.Dataset(arrow_table(rows))

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({self.name!r}, db={self.db!r})"


def _export_options(options: Mapping[str, Any]) -> ExportOptions:
    """The export options named by keyword (`reasoning="field"`); an unknown name is a ChimeraError listing them."""
    known = [option.name for option in dataclasses.fields(ExportOptions)]
    unknown = [name for name in options if name not in known]
    if unknown:
        raise ChimeraError(f"unknown export option {unknown[0]!r} (options: {', '.join(known)})")
    return ExportOptions(**options)


def open_run(db: str | os.PathLike[str], *, run: str | None = None) -> Run:
    """A read-only handle on run `run` of the database `db` (a SQLite path or a postgresql:// URL); with no
    name, the database's one run. Raises ChimeraError when there is no such database, it is not chimera's, it
    holds no run of that name, or it holds several and none is named."""
    store = Store(os.fspath(db), read_only=True)
    try:
        name = only_run(store, run, naming="open_run(db, run=NAME)")
    except BaseException:
        store.close()
        raise
    return Run(store, name)
