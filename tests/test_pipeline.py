"""`chimera run` end to end over real HTTP against the simulator, and what survives a kill."""

import json
import os
import sqlite3
import subprocess

import pytest
from helpers import CHIMERA, chimera, finished_run, write_config
from hostile import is_solve
from stop_at import StopAt

from chimera.config import SimSettings

SAMPLE_FIELDS = ("subject", "topic", "problem", "answer", "reasoning", "solution", "predicted_answer")


def exported(db, path):
    result = chimera("export", str(db), "--format", "jsonl", "-o", str(path))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_times(records):
    return [{k: v for k, v in r.items() if k != "created_at"} for r in records]


def test_a_full_run_fills_every_sample_field_and_export_round_trips(tmp_path):
    config = write_config(tmp_path)
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "samples" in result.stderr.splitlines()[-1]
    records = exported(tmp_path / "t.db", tmp_path / "out.jsonl")
    assert len(records) >= 3
    for record in records:
        for field in SAMPLE_FIELDS:
            assert isinstance(record[field], str) and record[field], (field, record)
        assert isinstance(record["correct"], bool)
        assert record["truncated"] is False
        assert set(record["models"]) >= {"drafter", "critic0", "critic1", "solver", "labeler"}
        assert record["usage"]["solver_tokens_out"] > 0
    rows = sqlite3.connect(tmp_path / "t.db").execute(
        "select s.id, s.problem, s.answer, s.reasoning, s.solution from samples s join problems p on p.id = s.problem_id "
        "where p.status = 'accepted' order by s.subject, s.topic, p.slot").fetchall()
    assert [(r["id"], r["problem"], r["answer"], r["reasoning"], r["solution"]) for r in records] == rows


def test_a_finished_run_run_again_makes_no_model_calls(tmp_path):
    config = write_config(tmp_path)
    assert chimera("run", str(config), "--quiet").returncode == 0
    db = sqlite3.connect(tmp_path / "t.db")
    before = db.execute("select count(*) from llm_calls").fetchone()[0]
    assert chimera("run", str(config), "--quiet").returncode == 0
    assert db.execute("select count(*) from llm_calls").fetchone()[0] == before
    assert db.execute("select count(*) from llm_calls where reply is not null").fetchone()[0] == 0, \
        "replies are kept only while their thread runs"


def test_the_same_seed_gives_the_same_dataset(tmp_path):
    for name in ("a", "b"):
        assert chimera("run", str(write_config(tmp_path, name=name, seed=11)), "--quiet").returncode == 0
    a = exported(tmp_path / "a.db", tmp_path / "a.jsonl")
    b = exported(tmp_path / "b.db", tmp_path / "b.jsonl")
    # Ids derive from the run name; everything a model wrote must be equal.
    strip = lambda rs: [{k: r[k] for k in (*SAMPLE_FIELDS, "correct")} for r in rs]  # noqa: E731
    assert strip(a) == strip(b)


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path):
    sim = SimSettings(latency_s=0.1, latency_by_task={"solve": 1.0}, latency_jitter=0.5, reasoning_shape="mixed")
    killed_db = tmp_path / "killed.db"
    with StopAt(sim, seed=3) as endpoint:
        config = write_config(tmp_path, name="k", seed=3, models=endpoint.models(), problems_per_topic=3,
                              subjects=[{"name": "Mathematics", "topics": 4}, {"name": "Physics", "topics": 3}])
        assert chimera("run", str(config), "--quiet", "--db", str(tmp_path / "straight.db")).returncode == 0
        # Killed as the first trajectory is asked for: problems drafted and voted on, none solved yet.
        endpoint.run(["run", str(config), "--quiet", "--db", str(killed_db)], when=is_solve)
        db = sqlite3.connect(killed_db)
        assert db.execute("select count(*) from votes").fetchone()[0] > 0
        assert db.execute("select count(*) from samples").fetchone()[0] == 0
        result = chimera("run", str(config), "--quiet", "--db", str(killed_db))
    assert result.returncode == 0, result.stderr
    assert db.execute("select count(*) - count(distinct id) from problems").fetchone()[0] == 0
    assert db.execute("select count(*) - count(distinct problem_id) from samples").fetchone()[0] == 0
    assert db.execute("select count(*) from problems where status = 'pending'").fetchone()[0] == 0
    assert without_times(exported(killed_db, tmp_path / "killed.jsonl")) == without_times(
        exported(tmp_path / "straight.db", tmp_path / "straight.jsonl"))


def test_an_unreachable_endpoint_is_one_line_naming_role_and_url(tmp_path):
    models = {"default": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0, "timeout_s": 5,
                          "retry_window_s": 0}}
    result = chimera("run", str(write_config(tmp_path, models=models)), "--quiet")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["chimera: error: expander endpoint http://127.0.0.1:9/v1: cannot connect (is the server running?)"]


def test_the_api_key_never_reaches_the_database_or_the_logs(tmp_path):
    secret = "sk-test-" + "7f3a9c1e5d2b8a64" * 2
    sim = subprocess.Popen([CHIMERA, "sim", "--port", "0", "--seed", "1"], stderr=subprocess.PIPE, text=True)
    try:
        line = sim.stderr.readline()
        url = line.split("serving at ")[1].split()[0]
        models = {"default": {"base_url": url, "model": "any", "api_key_env": "CHIMERA_TEST_KEY"}}
        config = write_config(tmp_path, models=models)
        import os

        result = chimera("run", str(config), env={**os.environ, "CHIMERA_TEST_KEY": secret})
        assert result.returncode == 0, result.stderr
    finally:
        sim.terminate()
        sim.wait(10)
    assert sqlite3.connect(tmp_path / "t.db").execute("select count(*) from samples").fetchone()[0] > 0
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.stdout + result.stderr


def test_a_missing_api_key_variable_is_named(tmp_path):
    models = {"default": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "CHIMERA_UNSET_KEY_X"}}
    result = chimera("run", str(write_config(tmp_path, models=models)), "--quiet")
    assert result.returncode == 2
    assert "CHIMERA_UNSET_KEY_X is not set" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
def test_a_database_this_process_cannot_write_is_named_so_and_read_only_commands_still_read_it(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    db = finished_run(runs)
    out = tmp_path / "out"
    out.mkdir()
    db.chmod(0o444)
    runs.chmod(0o555)
    try:
        refused = chimera("run", str(runs / "t.yaml"), "--quiet")
        status = chimera("status", str(db))
        export = chimera("export", str(db), "-o", str(out / "t.jsonl"))
        stats = chimera("stats", str(db), "--json")
    finally:
        runs.chmod(0o755)
        db.chmod(0o644)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"chimera: error: cannot write to {db} (no permission to write the file); copy "
                                      "it somewhere writable, or use a read-only command (status, export, stats)")
    assert "not a chimera database" not in refused.stderr
    assert status.returncode == 0 and export.returncode == 0 and stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["problems_accepted"] > 0


def test_export_errors_are_one_line(tmp_path):
    missing = chimera("export", str(tmp_path / "none.db"), "-o", str(tmp_path / "x.jsonl"))
    assert missing.returncode == 1 and missing.stderr.strip() == f"chimera: error: {tmp_path / 'none.db'}: no such database"
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": ["Graphs"]}], problems_per_topic=1)
    assert chimera("run", str(config), "--quiet").returncode == 0
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = chimera("export", str(tmp_path / "t.db"), "-o", str(blocked / "x.jsonl"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot write the export" in result.stderr
