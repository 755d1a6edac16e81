"""`chimera calls`: a run's model calls, newest first, filtered, as a table or JSON lines."""

from __future__ import annotations

import json

from helpers import chimera, finished_run, write_config


def test_calls_lists_the_newest_first_and_filters_by_role_and_outcome(tmp_path):
    db = finished_run(tmp_path)
    listed = chimera("calls", str(db), "--json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows and [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert {"drafter", "solver"} <= {r["role"] for r in rows}
    assert "reply" not in rows[0] and "request_key" not in rows[0]
    solver = [json.loads(line) for line in chimera("calls", str(db), "--json", "--role", "solver").stdout.splitlines()]
    assert solver and all(r["role"] == "solver" and r["problem_id"] for r in solver)
    problem = solver[0]["problem_id"]
    for_problem = chimera("calls", str(db), "--json", "--problem", problem, "--limit", "1000").stdout.splitlines()
    assert {json.loads(line)["problem_id"] for line in for_problem} == {problem}
    assert chimera("calls", str(db), "--json", "--limit", "3").stdout.count("\n") == 3
    table = chimera("calls", str(db), "--role", "solver", "--limit", "2")
    assert "2 calls, newest first" in table.stdout and "solver" in table.stdout


def test_calls_shows_only_failed_calls_with_their_messages(tmp_path):
    config = write_config(tmp_path, sim={"fault_5xx": 0.3}, models={"default": {"provider": "sim", "max_retries": 5}})
    chimera("run", str(config), "--quiet")
    failed = [json.loads(line) for line in chimera("calls", str(tmp_path / "t.db"), "--failed", "--json",
                                                   "--limit", "1000").stdout.splitlines()]
    assert failed and all(r["outcome"] == "http_500" and "injected" in r["error"] for r in failed)
    assert chimera("calls", str(tmp_path / "t.db"), "--outcome", "http_500", "--json",
                   "--limit", "1000").stdout.count("\n") == len(failed)


def test_calls_on_a_database_of_several_runs_asks_which(tmp_path):
    db = finished_run(tmp_path)
    result = chimera("calls", str(db), "--run", "nope")
    assert result.returncode == 1 and "no run named 'nope'" in result.stderr
