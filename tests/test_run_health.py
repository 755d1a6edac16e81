"""A run tells the truth about itself: its exit status says whether it did its job, and status explains why."""

import hashlib
import json
import os

from helpers import chimera, write_config
from hostile import HostileEndpoint, echo_error, is_solve

from chimera.run_health import RoleCalls, assess, failure_groups, role_calls

COUNTS = {"problems": 4, "by_status": {"accepted": 4}, "reviews": {"pending": 0}}


def counts(**by_status):
    return {**COUNTS, "by_status": by_status, "problems": sum(by_status.values())}


def calls(role, ok, failed, outcome="http_500", message="boom"):
    return RoleCalls(role, "http://127.0.0.1:9/v1", ok + failed, ok, ok, {(outcome, message): failed} if failed else {})


def test_a_run_whose_every_slot_ended_is_0_a_broken_role_is_1_and_failed_slots_are_3():
    assert assess(counts(accepted=3, rejected=1), [calls("solver", 4, 0)], retry_command="R").exit_code == 0
    broken = assess(counts(failed=4), [calls("drafter", 0, 4), calls("solver", 0, 0)], retry_command="R")
    assert broken.exit_code == 1
    assert broken.lines == ["drafter at http://127.0.0.1:PORT/v1: every call failed (4 calls; 4 http_500: boom)"]
    some = assess(counts(accepted=2, failed=2), [calls("solver", 2, 2)], retry_command="chimera run c.yaml --retry-failed")
    assert (some.exit_code, some.lines) == (3, ["2 problem slots ended failed (calls ran out of retries); take them "
                                                "again with: chimera run c.yaml --retry-failed"])
    nothing = assess(counts(failed=4), [calls("drafter", 1, 3), calls("critic0", 2, 2)], retry_command="R")
    assert nothing.exit_code == 1 and nothing.lines[0] == "the run produced nothing: all 4 problem slots failed"
    waiting = assess({**counts(pending=4), "reviews": {"pending": 4}}, [calls("solver", 4, 0)], retry_command="R")
    assert waiting.exit_code == 0


def test_failures_group_by_role_outcome_and_message_without_ports():
    rows = [{"role": "solver", "base_url": "u", "outcome": "http_500", "error": "at 127.0.0.1:4242 down", "count": 2},
            {"role": "solver", "base_url": "u", "outcome": "http_500", "error": "at 127.0.0.1:5151 down", "count": 1},
            {"role": "solver", "base_url": "u", "outcome": "ok", "error": None, "count": 9}]
    assert failure_groups(rows) == [{"role": "solver", "outcome": "http_500", "message": "at 127.0.0.1:PORT down",
                                     "calls": 3}]
    (solver,) = role_calls(rows)
    assert (solver.calls, solver.ok) == (12, 9)


def config_for(tmp_path, url):
    models = {"default": {"provider": "openai", "base_url": url, "model": "sim", "timeout_s": 5, "max_retries": 0}}
    return write_config(tmp_path, models=models, subjects=[{"name": "Mathematics", "topics": ["Counting", "Graphs"]}],
                        problems_per_topic=3)


def test_a_server_that_refuses_every_structured_call_ends_the_run_with_exit_1_naming_the_role(tmp_path):
    async def refuse_structured(body, reply, request):
        if "response_format" in body:
            return echo_error(500, "response_format is not supported by this server")
        return None

    with HostileEndpoint(refuse_structured) as endpoint:
        result = chimera("run", str(config_for(tmp_path, endpoint.url)), "--quiet", env=dict(os.environ))
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("chimera: drafter at http://127.0.0.1:PORT/v1: every call failed (6 calls; 6 http_500")
    assert "response_format is not supported" in last
    status = json.loads(chimera("status", str(tmp_path / "t.db"), "--json").stdout)["t"]
    assert status["failures"][0]["role"] == "drafter" and status["failures"][0]["calls"] == 6


def test_a_solver_that_fails_on_some_problems_ends_with_exit_3_and_the_retry_hint(tmp_path):
    async def flaky_solver(body, reply, request):
        text = body["messages"][-1]["content"]
        if is_solve(body) and hashlib.sha256(text.encode()).digest()[0] % 2:
            return echo_error(503, "overloaded")
        return None

    config = config_for(tmp_path, "http://127.0.0.1:1/v1")
    with HostileEndpoint(flaky_solver) as endpoint:
        config = config_for(tmp_path, endpoint.url)
        result = chimera("run", str(config), "--quiet", env=dict(os.environ))
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"take them again with: chimera run {config} --retry-failed")
    assert "failed calls: solver http_503" in result.stderr


def test_vv_logs_one_line_per_model_call_and_never_the_key(tmp_path):
    config = write_config(tmp_path)
    log_file = tmp_path / "run.log"
    result = chimera("run", str(config), "--quiet", "-vv", "--log-file", str(log_file))
    assert result.returncode == 0, result.stderr
    import sqlite3

    calls = sqlite3.connect(tmp_path / "t.db").execute("select count(*) from llm_calls").fetchone()[0]
    lines = [line for line in log_file.read_text().splitlines() if " chimera.calls: " in line]
    assert len(lines) == calls and all(" ok tokens " in line or " truncated " in line for line in lines)
    quiet = chimera("run", str(write_config(tmp_path, name="q")), "--quiet")
    assert "chimera.calls" not in quiet.stderr


def test_a_log_level_that_is_not_one_is_a_one_line_error(tmp_path):
    result = chimera("run", str(write_config(tmp_path)), env={**os.environ, "CHIMERA_LOG_LEVEL": "chatty"})
    assert result.returncode == 2 and "CHIMERA_LOG_LEVEL: 'chatty' is not a level" in result.stderr


def bench_against(tmp_path, mischief):
    from test_evals import qa_file

    data = qa_file(tmp_path / "qa.jsonl", 6)
    with HostileEndpoint(mischief) as endpoint:
        return chimera("eval", "bench", "--data", str(data), "--model", endpoint.url, "--model-name", "sim-solver",
                       "--results", str(tmp_path / "bench.db"), env=dict(os.environ))


def test_eval_bench_against_a_server_that_fails_every_call_exits_1_naming_it(tmp_path):
    async def refuse(body, reply, request):
        return echo_error(400, "max_completion_tokens is not supported")

    result = bench_against(tmp_path, refuse)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "chimera: bench at http://127.0.0.1:PORT/v1: every call failed (24 calls; 24 http_400: "
        "max_completion_tokens is not supported)")


def test_eval_bench_with_some_failed_calls_exits_3_and_says_to_ask_again(tmp_path):
    async def flaky(body, reply, request):
        text = body["messages"][-1]["content"]
        return echo_error(400, "bad luck") if hashlib.sha256(text.encode()).digest()[0] % 2 else None

    result = bench_against(tmp_path, flaky)
    assert result.returncode == 3, result.stderr
    assert "items failed (calls ran out of retries); ask them again with: the same chimera eval bench command" \
        in result.stderr


def test_the_progress_line_counts_each_endpoint_against_its_own_budget():
    from chimera.cli.progress import in_flight
    from chimera.dispatch import Endpoints

    endpoints = Endpoints(32)
    chat, embedder = endpoints.budget("http://gpu-1:8000/v1"), endpoints.budget("http://embed:9000/v1", 4)
    chat.in_flight, embedder.in_flight = 30, 1
    assert in_flight(endpoints.by_endpoint()) == "gpu-1:8000 30/32, embed:9000 1/4"
    assert in_flight([("http://x/v1", 3, 8)]) == "3/8", "one endpoint: just its count against its budget"
