"""Anthropic's Message Batches as a role's batch API (`batch_api: anthropic`): chat requests become Messages
parameters and results become chat completions, a run on them (against the simulator's Anthropic-shaped batch
API) makes the online run's dataset and sends each item once, failed items are sent again, and a missing SDK
is one line."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import CHIMERA, chimera, write_config
from stop_at import count

from chimera.config import SimSettings
from chimera.errors import ConfigError
from chimera.models.batch_anthropic import DEFAULT_MAX_TOKENS, AnthropicBatches, item_outcome, messages_params
from chimera.models.batching import BATCH_ID_FIELD, BatchItemFailed
from chimera.models.llm import reply_from_completion
from chimera.models.prompt_markers import SCHEMA_IN_PROMPT
from chimera.sim.anthropic_batches import anthropic_message, chat_body

SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string", "maxLength": 20}}, "required": ["verdict"]}
STRICT = {"type": "json_schema", "json_schema": {"name": "CriticVerdict", "schema": SCHEMA, "strict": True}}


def chat(**fields: Any) -> dict[str, Any]:
    """A request body as chimera builds it."""
    return {"model": "claude-sonnet-4-5", "messages": [
        {"role": "system", "content": "You are a careful critic."},
        {"role": "user", "content": "Judge this problem."},
        {"role": "assistant", "content": "{\"verdict\": "},
        {"role": "user", "content": "That reply was cut; answer again."}], **fields}


# -- requests ----------------------------------------------------------------

def test_a_chat_request_becomes_messages_params_with_its_system_prompt_turns_limit_and_sampling():
    params = messages_params(chat(max_completion_tokens=900, temperature=0.7, top_p=0.9, stop=["END", "  "]))
    assert params["model"] == "claude-sonnet-4-5"
    assert params["system"] == "You are a careful critic."
    assert params["messages"] == [{"role": "user", "content": "Judge this problem."},
                                  {"role": "assistant", "content": "{\"verdict\": "},
                                  {"role": "user", "content": "That reply was cut; answer again."}]
    assert (params["max_tokens"], params["temperature"], params["top_p"]) == (900, 0.7, 0.9)
    assert params["stop_sequences"] == ["END"]  # a whitespace-only stop sequence is one Anthropic refuses


def test_fields_messages_has_no_place_for_are_left_out_and_its_own_are_passed():
    params = messages_params(chat(max_tokens=300, seed=7, reasoning_effort="high", logprobs=True, n=1,
                                  frequency_penalty=0.5, thinking={"type": "enabled", "budget_tokens": 1024}, top_k=40))
    assert set(params) == {"model", "system", "messages", "max_tokens", "thinking", "top_k"}
    assert params["max_tokens"] == 300  # OpenAI's older field name is read too
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_a_request_without_a_token_limit_gets_the_default_one_and_temperature_is_held_to_anthropics_range():
    params = messages_params(chat(temperature=1.6))
    assert params["max_tokens"] == DEFAULT_MAX_TOKENS
    assert params["temperature"] == 1.0


def test_a_json_schema_request_spells_its_schema_out_at_the_end_of_the_system_prompt():
    params = messages_params(chat(response_format=STRICT))
    assert "response_format" not in params
    assert params["system"].startswith("You are a careful critic.\n\n")
    found = SCHEMA_IN_PROMPT.search(params["system"])
    assert found and found.group(1) == "CriticVerdict" and json.loads(found.group(2)) == SCHEMA
    alone = messages_params({"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": STRICT})
    assert alone["system"].startswith("Reply with only a JSON object") and SCHEMA_IN_PROMPT.search(alone["system"])


def test_json_mode_leaves_the_schema_where_the_prompt_already_has_it():
    params = messages_params(chat(response_format={"type": "json_object"}))
    assert params["system"] == "You are a careful critic." and "response_format" not in params


def test_the_simulator_reads_back_the_chat_body_a_request_was_made_from():
    for body in (chat(max_completion_tokens=2048, response_format=STRICT), chat(max_completion_tokens=64, top_p=0.5),
                 {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 10,
                  "temperature": 0.2, "response_format": STRICT}):
        assert chat_body(messages_params(body)) == body


def test_a_request_key_is_an_anthropic_custom_id_and_anything_else_is_refused():
    backend = AnthropicBatches("http://127.0.0.1:9/v1", "key", timeout_s=5)
    key = hashlib.sha256(b"a call").hexdigest()
    assert json.loads(backend.line(key, chat()))["custom_id"] == key
    for bad in ("a.b", "x" * 65, ""):
        with pytest.raises(ValueError, match="custom_id"):
            backend.line(bad, chat())


def test_the_sdk_is_given_the_host_of_the_roles_base_url():
    assert AnthropicBatches("https://api.anthropic.com/v1/", "key", timeout_s=5).root == "https://api.anthropic.com"


# -- results -----------------------------------------------------------------

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "thinking", "thinking": "First, the givens.", "signature": "s"},
                       {"type": "thinking", "thinking": "Then the check.", "signature": "s"},
                       {"type": "text", "text": "{\"verdict\": "}, {"type": "text", "text": "\"accept\"}"}],
           "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 100, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 50,
                     "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 25}}}


def test_a_succeeded_result_becomes_a_completion_with_its_text_thinking_usage_and_batch_id():
    key, completion = item_outcome({"custom_id": "k1", "result": {"type": "succeeded", "message": MESSAGE}}, "msgbatch_9")
    assert key == "k1" and isinstance(completion, dict)
    assert completion[BATCH_ID_FIELD] == "msgbatch_9"
    reply = reply_from_completion(completion, "fallback")
    assert reply.content == "{\"verdict\": \"accept\"}"
    assert reply.reasoning == "First, the givens.\n\nThen the check."
    assert (reply.tokens_in, reply.cached_tokens, reply.tokens_out, reply.reasoning_tokens) == (950, 800, 40, 25)
    assert (reply.finish_reason, reply.model, reply.batch_id) == ("stop", "claude-sonnet-4-5", "msgbatch_9")


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")])
def test_a_stop_reason_becomes_the_finish_reason_openai_would_give(stop_reason, finish_reason):
    _, completion = item_outcome({"custom_id": "k", "result": {"type": "succeeded",
                                                                "message": {**MESSAGE, "stop_reason": stop_reason}}}, "b")
    assert isinstance(completion, dict) and completion["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize(("error_type", "status", "retryable"), [
    ("api_error", 500, True), ("overloaded_error", 529, True), ("rate_limit_error", 429, True),
    ("timeout_error", 504, True), ("invalid_request_error", 400, False), ("permission_error", 403, False)])
def test_an_errored_item_fails_and_is_retried_only_when_the_fault_was_anthropics(error_type, status, retryable):
    line = {"custom_id": "k", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": error_type, "message": "something went wrong"}}}}
    _, failed = item_outcome(line, "msgbatch_1")
    assert isinstance(failed, BatchItemFailed)
    assert (failed.status, failed.retryable) == (status, retryable)
    assert error_type in str(failed) and "something went wrong" in str(failed)


@pytest.mark.parametrize("kind", ["canceled", "expired"])
def test_an_item_a_batch_ended_without_running_fails_and_is_retried(kind):
    _, failed = item_outcome({"custom_id": "k", "result": {"type": kind}}, "msgbatch_1")
    assert isinstance(failed, BatchItemFailed) and failed.retryable and failed.status is None and kind in str(failed)


def test_the_simulators_message_carries_the_completions_reply_and_usage_through_the_conversion():
    online = {"id": "chatcmpl-sim-abc", "model": "sim", "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "Therefore 5.", "reasoning_content": "2 + 3 is 5."}}],
        "usage": {"prompt_tokens": 90, "completion_tokens": 12, "completion_tokens_details": {"reasoning_tokens": 5}}}
    _, batched = item_outcome({"custom_id": "k", "result": {"type": "succeeded",
                                                             "message": anthropic_message(online, cached=60)}}, "b")
    assert isinstance(batched, dict)
    got, expected = reply_from_completion(batched, "sim"), reply_from_completion(online, "sim")
    assert (got.content, got.reasoning, got.finish_reason, got.tokens_in, got.tokens_out, got.reasoning_tokens) == (
        expected.content, expected.reasoning, expected.finish_reason, expected.tokens_in, expected.tokens_out,
        expected.reasoning_tokens)
    assert got.cached_tokens == 60


# -- against the simulator -----------------------------------------------------

def test_results_larger_than_the_limit_are_not_read_and_a_refused_batch_fails_its_items(simulator):
    url, sim = simulator(SimSettings(batch_delay_s=0.0), seed=1)
    backend = AnthropicBatches(url, "sim", timeout_s=10)
    body = {"model": "sim", "max_completion_tokens": 50, "messages": [{"role": "user", "content": "What is 2 + 3?"}]}

    async def scenario() -> None:
        sent = await backend.send("local-1", [backend.line("a" * 64, body), backend.line("b" * 64, body)], _never)
        ended = await backend.poll(sent.id)
        assert ended.ended and ended.status == "ended"
        assert set(await backend.results(ended, 1 << 20)) == {"a" * 64, "b" * 64}
        with pytest.raises(ValueError, match="larger than 100 bytes"):
            await backend.results(ended, 100)
        with pytest.raises(BatchItemFailed) as refused:  # the same custom_id twice: the whole create is refused
            await backend.send("local-2", [backend.line("c" * 64, body)] * 2, _never)
        assert refused.value.status == 400 and not refused.value.retryable

    asyncio.run(scenario())


def test_a_canceled_batch_ends_with_its_items_canceled_and_retryable(simulator):
    url, sim = simulator(SimSettings(batch_delay_s=60.0), seed=1)
    backend = AnthropicBatches(url, "sim", timeout_s=10)
    body = {"model": "sim", "max_completion_tokens": 50, "messages": [{"role": "user", "content": "What is 2 + 3?"}]}

    async def scenario() -> dict[str, Any]:
        sent = await backend.send("local-1", [backend.line("a" * 64, body)], _never)
        assert not sent.ended
        async with backend._client() as client:
            canceling = await client.messages.batches.cancel(sent.id)
        assert canceling.processing_status == "canceling"
        ended = await backend.poll(sent.id)
        assert ended.ended
        return await backend.results(ended, 1 << 20)

    outcome = asyncio.run(scenario())["a" * 64]
    assert isinstance(outcome, BatchItemFailed) and outcome.retryable and "canceled" in str(outcome)


async def _never(file_id: str) -> None:
    raise AssertionError("a Message Batch has no input file")


# -- whole runs --------------------------------------------------------------

def anthropic_roles(url: str, **batch: Any) -> dict[str, Any]:
    """Every role on `url`; the drafter and the critics batched through the Message Batches API."""
    def role() -> dict[str, Any]:
        return {"max_tokens": 2048, "batch": True, "batch_api": "anthropic", "batch_max_wait_s": 0.2,
                "batch_poll_s": 0.1, **batch}

    return {"default": {"provider": "openai", "base_url": url, "model": "sim", "timeout_s": 30},
            "drafter": role(), "critics": [role(), role()]}


def online_roles(url: str) -> dict[str, Any]:
    return {"default": {"provider": "openai", "base_url": url, "model": "sim", "timeout_s": 30},
            "drafter": {"max_tokens": 2048}, "critics": [{"max_tokens": 2048}, {"max_tokens": 2048}]}


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def dataset(db: Path) -> list[tuple[Any, ...]]:
    return sorted(rows(db, "select p.problem, p.answer, p.status, s.solution, s.correct from problems p "
                          "left join samples s on s.problem_id = p.id"), key=repr)


def test_a_run_on_anthropic_batches_makes_the_online_runs_dataset_and_sends_each_item_once(tmp_path, simulator):
    url, sim = simulator(SimSettings(batch_delay_s=0.2), seed=5)
    assert chimera("run", str(write_config(tmp_path, name="online", models=online_roles(url))), "--quiet").returncode == 0
    result = chimera("run", str(write_config(tmp_path, name="batched", models=anthropic_roles(url))), "--quiet")
    assert result.returncode == 0, result.stderr
    received = dict(sim.batches.items_received)
    db = tmp_path / "batched.db"
    assert dataset(db) == dataset(tmp_path / "online.db")
    batched = rows(db, "select role, batch_id from llm_calls where batch_id is not null")
    assert {role for role, _ in batched} == {"drafter", "critic0", "critic1"}
    assert all(batch_id.startswith("msgbatch_") for _, batch_id in batched)
    assert received and set(received.values()) == {1}  # every item sent once
    assert len(received) == len(batched)
    assert rows(db, "select count(*) from batches where state != 'read'") == [(0,)]


def test_items_anthropic_failed_or_left_unanswered_are_sent_again_and_the_run_finishes(tmp_path, simulator):
    url, sim = simulator(SimSettings(batch_delay_s=0.1, batch_item_error_rate=0.2, batch_expire_rate=0.4), seed=5)
    # Which items share a batch depends on timing, so the failures do too: retries enough that none runs out.
    result = chimera("run", str(write_config(tmp_path, models=anthropic_roles(url, max_retries=15))), "--quiet")
    assert result.returncode == 0, result.stderr
    received = dict(sim.batches.items_received)
    db = tmp_path / "t.db"
    outcomes = dict(rows(db, "select outcome, count(*) from llm_calls where batch_id is not null "
                             "or outcome like 'batch_%' group by outcome"))
    assert outcomes.get("batch_http_500", 0) > 0 and outcomes.get("batch_unanswered", 0) > 0
    retried = {key for key, times in received.items() if times > 1}
    failed = {key for (key,) in rows(db, "select request_key from llm_calls where outcome like 'batch_%'")}
    assert retried and retried <= failed  # only what failed was sent again
    assert rows(db, "select count(*) from problems where status = 'failed'") == [(0,)]


def test_a_run_killed_with_anthropic_batches_in_flight_polls_them_on_resume_and_sends_no_item_twice(tmp_path,
                                                                                                   simulator):
    url, sim = simulator(SimSettings(batch_delay_s=2.0), seed=5)  # batches still open at the kill
    config = write_config(tmp_path, models=anthropic_roles(url))
    db = tmp_path / "t.db"
    run = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    # killed with a batch at Anthropic and none being made: a batch made but not yet recorded would be sent
    # again, as a Message Batch cannot be found by our id (chimera.models.batch_anthropic)
    while count(db, "select count(*) from batches where state = 'sent'") == 0 \
            or count(db, "select count(*) from batches where state = 'sending'") > 0:
        assert run.poll() is None and time.monotonic() < deadline, "no batch was sent"
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert count(db, "select count(*) from batches where state in ('sent', 'ended')") > 0
    resumed = chimera("run", str(config), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    received = dict(sim.batches.items_received)
    assert received and set(received.values()) == {1}
    assert count(db, "select count(*) from batches where state = 'abandoned'") == 0


def test_without_the_anthropic_sdk_a_run_on_anthropic_batches_stops_with_one_line_naming_the_extra(tmp_path,
                                                                                                   monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)  # `import anthropic` now fails as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'chimera-engine\[anthropic\]'"):
        AnthropicBatches("https://api.anthropic.com/v1", "key", timeout_s=5)
    config = write_config(tmp_path, models=anthropic_roles("http://127.0.0.1:9/v1"))
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "chimera-engine[anthropic]" in result.stderr
