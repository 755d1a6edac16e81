"""The Python API (chimera.api): a run from a script or a notebook ends as `chimera run` would, and a run
database reads back exactly as `chimera status --json` and `chimera export` give it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import yaml
from helpers import chimera, write_config

import chimera as package
from chimera.api import open_run, run
from chimera.errors import ChimeraError, ConfigError, LoopRunning


def config_dict(folder: Path, **top) -> dict:
    """`write_config`'s small run (two subjects, three topics on the simulator) as the mapping the API takes."""
    return yaml.safe_load(write_config(folder, **top).read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One run through the API: the mapping says two problems a topic and run name t; the settings override both."""
    folder = tmp_path_factory.mktemp("api")
    result = run(config_dict(folder), settings={"problems_per_topic": 1, "run.name": "api"})
    return result


def test_a_dict_config_runs_on_the_simulator_with_the_settings_applied(finished):
    assert finished.exit_code == 0 and finished.ok and finished.reasons == []
    assert finished.run == "api"
    assert Path(finished.db).name == "t.db"
    counts = finished.counts
    assert counts["topics"] >= 2 and counts["problems"] == counts["topics"]  # one problem a topic, not the file's two
    assert finished.accepted == counts["by_status"]["accepted"] > 0
    assert finished.samples == counts["samples"] and finished.correct == counts["correct"]


def test_the_result_counts_are_the_databases_status(finished):
    printed = json.loads(chimera("status", finished.db, "--json").stdout)
    assert list(printed) == ["api"]
    with finished.open() as handle:
        status = json.loads(json.dumps(handle.status()))
    assert status == printed["api"]
    assert {key: status[key] for key in finished.counts} == finished.counts


@pytest.mark.parametrize("split, options, flags", [
    ("all", {}, []),
    ("sft", {}, []),
    ("sft", {"reasoning": "field", "sft_format": "prompt-completion"},
     ["--reasoning", "field", "--sft-format", "prompt-completion"]),
    ("rl", {}, []),
    ("rl", {"schema": "verl"}, ["--schema", "verl"]),
])
def test_samples_are_the_rows_chimera_export_writes(finished, tmp_path, split, options, flags):
    out = tmp_path / "export.jsonl"
    assert chimera("export", finished.db, "--split", split, *flags, "-o", str(out)).returncode == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    with open_run(finished.db) as handle:
        rows = list(handle.samples(split, **options))
    assert exported and rows == exported


def test_problems_are_every_slot_of_the_run(finished):
    with open_run(finished.db, run="api") as handle:
        problems = handle.problems()
    assert len(problems) == finished.problems
    assert {p["status"] for p in problems} <= {"accepted", "rejected", "failed"}
    assert sum(p["status"] == "accepted" for p in problems) == finished.accepted


def test_to_dataset_has_the_exports_columns_and_rows(finished, tmp_path):
    pytest.importorskip("datasets")
    with open_run(finished.db) as handle:
        sft = handle.to_dataset("sft")
        rows = list(handle.samples("sft"))
        everything = handle.to_dataset("all")
        first = next(handle.samples("all"))
    assert sft.column_names == list(rows[0]) and sft.num_rows == len(rows)
    assert sft[0]["messages"] == rows[0]["messages"]
    assert everything.column_names == list(first)
    assert json.loads(everything[0]["usage"]) == first["usage"]  # free-form maps as JSON text, as Parquet holds them


def test_to_dataset_without_datasets_names_the_extra(finished, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets now fails, as where it is not installed
    with open_run(finished.db) as handle, pytest.raises(ChimeraError, match=r"chimera-engine\[datasets\]"):
        handle.to_dataset("sft")


def test_an_unknown_export_option_is_named_with_the_known_ones(finished):
    with open_run(finished.db) as handle, pytest.raises(ChimeraError, match="'format'.*reasoning"):
        handle.samples("sft", format="parquet")


def test_run_inside_a_running_loop_says_to_await_arun_which_works_there(tmp_path):
    config = config_dict(tmp_path)

    async def notebook_cell():
        with pytest.raises(LoopRunning, match=r"await chimera\.arun\(\.\.\.\)"):
            run(config)
        # settings as the command line's --set strings, too
        return await package.arun(config, db=tmp_path / "cell.db",
                                  settings=["subjects=[{name: Mathematics, topics: 1}]", "problems_per_topic=1"])

    result = asyncio.run(notebook_cell())
    assert result.exit_code == 0 and result.db == str(tmp_path / "cell.db")
    assert result.counts["topics"] == 1 and result.problems == 1
    assert not (tmp_path / "t.db").exists(), "db= replaces run.db"


def test_a_bad_config_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^config: subjects\.0\.topics: must be at least 1"):
        run(config_dict(tmp_path, subjects=[{"name": "Mathematics", "topics": 0}]))
    with pytest.raises(ConfigError, match=r"run\.concurency: Extra inputs are not permitted"):
        run(config_dict(tmp_path), settings={"run.concurency": 4})
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        run(tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError, match="expected a mapping, the path of a YAML file or a Config, not int"):
        run(42)
    assert not (tmp_path / "t.db").exists(), "nothing starts on a bad config"


def test_settings_change_a_yaml_file_or_a_config_and_keep_their_values_types(tmp_path):
    from chimera.api import resolve_config

    path = write_config(tmp_path)
    config = resolve_config(path, settings={"run.concurrency": 64, "run.name": "123", "subjects.1.topics": ["a", "b"]})
    assert (config.run.concurrency, config.run.name, config.subjects[1].topics) == (64, "123", ["a", "b"])
    again = resolve_config(config, db=tmp_path / "other.db", settings={"max_revisions": 0})
    assert (again.run.db, again.max_revisions, again.run.name) == (str(tmp_path / "other.db"), 0, "123")
    assert config.max_revisions == 1 and config.run.db == str(tmp_path / "t.db"), "the Config given is left as it was"


def test_open_run_names_a_missing_database_and_an_unknown_run(finished, tmp_path):
    with pytest.raises(ChimeraError, match="missing.db: no such database"):
        open_run(tmp_path / "missing.db")
    with pytest.raises(ChimeraError, match=r"no run named 'other' \(runs: api\)"):
        open_run(finished.db, run="other")


def test_import_chimera_stays_light_until_the_api_is_used():
    import subprocess

    probe = ("import sys, chimera\n"
             "assert 'chimera.api' not in sys.modules and 'chimera.engine.runner' not in sys.modules, 'loaded at import'\n"
             "assert chimera.open_run is sys.modules['chimera.api'].open_run\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
