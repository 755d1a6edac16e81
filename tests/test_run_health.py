"""A run tells the truth about itself: its exit status says whether it did its job, and status explains why."""

import hashlib
import json
import os
import sqlite3

from aiohttp import web
from helpers import chimera, write_config
from hostile import HostileEndpoint, echo_error, is_solve

from chimera.engine.health import RoleCalls, assess, earlier_failures, failure_groups, role_calls

COUNTS = {"problems": 4, "by_status": {"accepted": 4}, "reviews": {"pending": 0}, "rejection_reasons": [],
          "samples": 4, "truncated": 0}
CUT_DRAFTS = "drafter reply unparseable: reply cut at max_tokens before the JSON was complete"


def counts(reasons=(), **by_status):
    return {**COUNTS, "by_status": by_status, "problems": sum(by_status.values()),
            "rejection_reasons": [{"reason": reason, "count": count} for reason, count in reasons]}


def calls(role, ok, failed, outcome="http_500", message="boom"):
    return RoleCalls(role, "http://127.0.0.1:9/v1", ok + failed, ok, ok, {(outcome, message): failed} if failed else {})


def test_a_run_whose_every_slot_ended_is_0_a_broken_role_is_1_and_failed_slots_are_3():
    assert assess(counts(accepted=3, rejected=1), [calls("solver", 4, 0)], retry_command="R").exit_code == 0
    broken = assess(counts(failed=4), [calls("drafter", 0, 4), calls("solver", 0, 0)], retry_command="R")
    assert broken.exit_code == 1
    assert broken.lines == ["drafter at http://127.0.0.1:9/v1: every call failed (4 calls; 4 http_500: boom)",
                            "once the drafter answers again, take the 4 failed slots again with: R"]
    some = assess(counts(accepted=2, failed=2), [calls("solver", 2, 2)], retry_command="chimera run c.yaml --retry-failed")
    assert (some.exit_code, some.lines) == (3, ["2 problem slots ended failed (calls ran out of retries); take them "
                                                "again with: chimera run c.yaml --retry-failed"])
    nothing = assess(counts(failed=4), [calls("drafter", 1, 3), calls("critic0", 2, 2)], retry_command="R")
    assert nothing.exit_code == 1 and nothing.lines[0] == "the run produced nothing: all 4 problem slots failed"
    waiting = assess({**counts(pending=4), "reviews": {"pending": 4}}, [calls("solver", 4, 0)], retry_command="R")
    assert waiting.exit_code == 0


def test_a_solver_that_failed_every_call_is_named_with_its_error_and_the_retry_command_for_afterwards():
    health = assess(counts(failed=6), [calls("drafter", 6, 0), calls("solver", 0, 6, "http_404", "no such model")],
                    retry_command="chimera run c.yaml --retry-failed")
    assert health.exit_code == 1
    assert health.lines == [
        "solver at http://127.0.0.1:9/v1: every call failed (6 calls; 6 http_404: no such model)",
        "once the solver answers again, take the 6 failed slots again with: chimera run c.yaml --retry-failed"]


def test_a_run_that_accepted_nothing_exits_1_with_the_dominant_reason_and_the_setting_to_change():
    solver = [calls("solver", 0, 0)]
    cut = assess(counts([(CUT_DRAFTS, 40), ("rejected by critic", 2)], rejected=42), solver, retry_command="R")
    assert (cut.exit_code, cut.lines) == (1, [
        "0 accepted: 40 of 42 problems were rejected because the drafter's replies were cut at max_tokens "
        "(raise models.drafter.max_tokens or max_tokens_cap)"])
    garbled = assess(counts([("critic reply unparseable: reply is not JSON", 5)], rejected=5), solver,
                     retry_command="R")
    assert garbled.lines == ["0 accepted: 5 of 5 problems were rejected because the critic's replies could not be "
                             "read: reply is not JSON (try another models.critics[*].structured_output, such as "
                             "json_object)"]
    copies = assess(counts([("duplicate", 3), ("rejected by critic", 1)], rejected=4), solver, retry_command="R")
    assert copies.lines == ["0 accepted: 3 of 4 problems were rejected as near-duplicates of earlier problems "
                            "(raise dedup.threshold)"]
    mixed = assess(counts([("rejected by critic", 2), ("duplicate", 1), ("critics disagree after 1 revision", 1),
                           ("not a final answer", 1)], rejected=5), solver, retry_command="R")
    assert mixed.lines == ["0 accepted: 5 of 5 problems were rejected, for several reasons: rejected by critic (2); "
                           "duplicate (1); critics disagree after 1 revision (1)"]


def test_an_empty_run_with_failed_slots_too_counts_both_and_gives_the_retry_command():
    health = assess(counts([("rejected by critic", 2), ("solver call failed", 2)], rejected=2, failed=2),
                    [calls("solver", 2, 2)], retry_command="R")
    assert (health.exit_code, health.lines) == (1, [
        "0 accepted: 2 of 4 problems were rejected and 2 failed (chimera status lists why)",
        "2 problem slots ended failed (calls ran out of retries); take them again with: R"])


def test_accepted_problems_whose_every_sample_was_cut_are_an_empty_result_too():
    every = assess({**counts(accepted=3), "samples": 6, "truncated": 6}, [calls("solver", 6, 0)], retry_command="R")
    assert (every.exit_code, every.lines) == (1, [
        "no usable samples: all 6 samples of the accepted problems were cut, at max_tokens or past "
        "solver.max_trajectory_chars (raise models.solver.max_tokens, or set solver.max_tokens_retry)"])
    some = assess({**counts(accepted=3), "samples": 6, "truncated": 5}, [calls("solver", 6, 0)], retry_command="R")
    assert some.exit_code == 0


def test_a_run_with_something_accepted_or_waiting_for_review_is_not_empty():
    assert assess(counts([(CUT_DRAFTS, 9)], accepted=1, rejected=9), [], retry_command="R").exit_code == 0
    waiting = {**counts([(CUT_DRAFTS, 3)], rejected=3, pending=1), "reviews": {"pending": 1}}
    assert assess(waiting, [], retry_command="R").exit_code == 0


def test_earlier_failures_are_the_runs_failed_calls_less_this_invocations():
    this_run = [{"role": "solver", "base_url": "u", "outcome": "http_500", "error": "x", "count": 2},
                {"role": "solver", "base_url": "u", "outcome": "ok", "error": None, "count": 3}]
    outcomes = {"ok": 10, "truncated": 2, "http_500": 5, "connection_error": 3, "malformed_reply": 1}
    assert earlier_failures(outcomes, this_run) == 7
    assert earlier_failures({"ok": 3, "http_500": 2}, this_run) == 0


def test_failures_group_by_role_outcome_and_message_without_ports():
    rows = [{"role": "solver", "base_url": "u", "outcome": "http_500", "error": "at 127.0.0.1:4242 down", "count": 2},
            {"role": "solver", "base_url": "u", "outcome": "http_500", "error": "at 127.0.0.1:5151 down", "count": 1},
            {"role": "solver", "base_url": "u", "outcome": "ok", "error": None, "count": 9}]
    assert failure_groups(rows) == [{"role": "solver", "outcome": "http_500", "message": "at 127.0.0.1:PORT down",
                                     "calls": 3}]
    (solver,) = role_calls(rows)
    assert (solver.calls, solver.ok) == (12, 9)


def config_for(tmp_path, url):
    models = {"default": {"provider": "openai", "base_url": url, "model": "sim", "timeout_s": 5, "max_retries": 0,
                          "retry_window_s": 0}}
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
    named, retry = result.stderr.strip().splitlines()[-2:]
    assert named.startswith(f"chimera: drafter at {endpoint.url}: every call failed (6 calls; 6 http_500")
    assert "response_format is not supported" in named
    assert retry.startswith("chimera: once the drafter answers again, take the 6 failed slots again with: ")
    status = json.loads(chimera("status", str(tmp_path / "t.db"), "--json").stdout)["t"]
    assert status["failures"][0]["role"] == "drafter" and status["failures"][0]["calls"] == 6


def test_a_solver_that_fails_on_some_problems_ends_with_exit_3_and_the_retry_hint(tmp_path):
    async def flaky_solver(body, reply, request):
        text = body["messages"][-1]["content"]
        if is_solve(body) and hashlib.sha256(text.encode()).digest()[0] % 2:
            return echo_error(503, "overloaded")
        return None

    with HostileEndpoint(flaky_solver) as endpoint:
        config = config_for(tmp_path, endpoint.url)
        result = chimera("run", str(config), "--quiet", env=dict(os.environ))
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"take them again with: chimera run {config} --retry-failed")
    assert "failed calls: solver http_503" in result.stderr


def test_a_resumed_run_reports_its_own_failures_and_counts_the_earlier_ones_apart(tmp_path):
    failing = [True]

    async def flaky_until_fixed(body, reply, request):
        text = body["messages"][-1]["content"]
        if failing[0] and is_solve(body) and hashlib.sha256(text.encode()).digest()[0] % 2:
            return echo_error(503, "overloaded")
        return None

    with HostileEndpoint(flaky_until_fixed) as endpoint:
        config = config_for(tmp_path, endpoint.url)
        first = chimera("run", str(config), "--quiet", env=dict(os.environ))
        assert first.returncode == 3 and "failed calls: solver http_503" in first.stderr, first.stderr
        failing[0] = False
        again = chimera("run", str(config), "--quiet", "--retry-failed", env=dict(os.environ))
    earlier = sqlite3.connect(tmp_path / "t.db").execute(
        "select count(*) from llm_calls where outcome = 'http_503'").fetchone()[0]
    assert again.returncode == 0, again.stderr
    assert "failed calls:" not in again.stderr, "the first run's failures are not this one's"
    assert f"earlier runs: {earlier} failed calls (chimera status lists them)" in again.stderr


def test_a_run_whose_drafter_replies_are_all_cut_exits_1_naming_max_tokens(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": ["Counting", "Graphs"]}],
                          problems_per_topic=3, sim={"fault_truncate": 1.0})
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "chimera: 0 accepted: 6 of 6 problems were rejected because the drafter's replies were cut at max_tokens "
        "(raise models.drafter.max_tokens or max_tokens_cap)")


def test_vv_logs_one_line_per_model_call_and_never_the_key(tmp_path):
    config = write_config(tmp_path)
    log_file = tmp_path / "run.log"
    result = chimera("run", str(config), "--quiet", "-vv", "--log-file", str(log_file))
    assert result.returncode == 0, result.stderr
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
                       "--results", str(tmp_path / "bench.db"), env=dict(os.environ)), endpoint.url


def test_eval_bench_against_a_server_that_fails_every_call_exits_1_naming_it(tmp_path):
    async def refuse(body, reply, request):
        return echo_error(400, "max_completion_tokens is not supported")

    result, url = bench_against(tmp_path, refuse)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"chimera: bench at {url}: every call failed (24 calls; 24 http_400: max_completion_tokens is not supported)")


def test_eval_bench_with_some_failed_calls_exits_3_and_says_to_ask_again(tmp_path):
    async def flaky(body, reply, request):
        text = body["messages"][-1]["content"]
        return echo_error(400, "bad luck") if hashlib.sha256(text.encode()).digest()[0] % 2 else None

    result, _ = bench_against(tmp_path, flaky)
    assert result.returncode == 3, result.stderr
    assert "items failed (calls ran out of retries); ask them again with: the same chimera eval bench command" \
        in result.stderr


def test_eval_bench_prints_the_samples_cut_at_max_tokens_beside_pass_at_k_and_counts_them_wrong(tmp_path):
    async def cut_some(body, reply, request):
        asked = body["messages"][-1]["content"] + str(body.get("seed"))
        if hashlib.sha256(asked.encode()).digest()[0] % 3 == 0:
            reply["choices"][0]["finish_reason"] = "length"  # the answer stays in the text: still not correct
            return web.json_response(reply)
        return None

    result, _ = bench_against(tmp_path, cut_some)
    assert result.returncode == 0, result.stderr
    graded = sqlite3.connect(tmp_path / "bench.db").execute("select correct, method from bench_results").fetchall()
    cut = [correct for correct, method in graded if method == "truncated"]
    assert cut and set(cut) == {0}
    assert "pass@1 " in result.stdout
    assert f"; {len(cut)} of 24 samples cut at max_tokens (counted wrong; raise --max-tokens, now 32768)" \
        in result.stdout


def test_the_progress_line_counts_each_endpoint_against_its_own_budget():
    from chimera.cli.progress import in_flight
    from chimera.models.dispatch import Endpoints

    endpoints = Endpoints(32)
    chat, embedder = endpoints.budget("http://gpu-1:8000/v1"), endpoints.budget("http://embed:9000/v1", 4)
    chat.in_flight, embedder.in_flight = 30, 1
    assert in_flight(endpoints.by_endpoint()) == "gpu-1:8000 30/32, embed:9000 1/4"
    assert in_flight([("http://x/v1", 3, 8)]) == "3/8", "one endpoint: just its count against its budget"


def test_the_progress_line_counts_problem_slots_and_the_time_left_at_the_pace_so_far():
    from chimera.cli.progress import slot_progress

    assert slot_progress(0, 400, None, now=100.0) == "0/400 (0%)"
    assert slot_progress(0, 0, None, now=100.0) == "0/0"
    # 100 slots in the 50 s since 20 were done: 280 left at 2 a second
    assert slot_progress(120, 400, (50.0, 20), now=100.0) == "120/400 (30%), about 2m left"
    assert slot_progress(390, 400, (0.0, 0), now=390.0) == "390/400 (98%), about 10s left"
    assert slot_progress(100, 400, (0.0, 0), now=3600.0) == "100/400 (25%), about 3.0h left"
    assert slot_progress(20, 400, (50.0, 20), now=100.0) == "20/400 (5%)", "no pace yet: no guess"
    assert slot_progress(400, 400, (0.0, 0), now=100.0) == "400/400 (100%)"
