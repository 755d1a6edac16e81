"""Provider options reach the server exactly: extra headers (literal, or from the environment and never
stored), query parameters (Azure's api-version, also when written into base_url), the token-limit field
a server reads, and reasoning controls."""

import os
import sqlite3

import pytest
from helpers import chimera, write_config
from hostile import HostileEndpoint

from chimera.config import parse_config
from chimera.errors import ConfigError

SECRET = "azure-key-never-stored-7f3a"



def test_headers_query_token_field_and_reasoning_effort_are_sent_as_configured(tmp_path):
    with HostileEndpoint() as endpoint:
        models = {"default": {"base_url": endpoint.url + "?api-version=2024-10-21", "model": "sim",
                              "headers": {"X-Team": "chimera"}, "headers_env": {"api-key": "CHIMERA_TEST_AZURE"},
                              "query": {"deployment-tag": "a"}, "max_tokens_field": "max_tokens",
                              "max_tokens": 4096, "reasoning_effort": "low", "max_retries": 0}}
        config = write_config(tmp_path, models=models, subjects=[{"name": "Mathematics", "topics": ["Counting"]}],
                              problems_per_topic=2)
        result = chimera("run", str(config), "--quiet", "-vv", "--log-file", str(tmp_path / "run.log"),
                         env={**os.environ, "CHIMERA_TEST_AZURE": SECRET})
    assert result.returncode == 0, result.stderr
    chats = [r for r in endpoint.requests if r["path"].endswith("/chat/completions")]
    assert chats
    for request in chats:
        assert request["path"] == "/v1/chat/completions", "the query is not glued into the path"
        assert request["query"] == {"api-version": "2024-10-21", "deployment-tag": "a"}
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["x-team"] == "chimera" and headers["api-key"] == SECRET
        body = request["body"]
        assert body["max_tokens"] >= 4096 and "max_completion_tokens" not in body
        assert body["reasoning_effort"] == "low"
    for path in tmp_path.iterdir():
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.stdout + result.stderr
    stored = sqlite3.connect(tmp_path / "t.db").execute("select config from runs").fetchone()[0]
    assert "CHIMERA_TEST_AZURE" in stored and SECRET not in stored


@pytest.mark.parametrize("header", ["Authorization", "api-key", "X-API-Key"])
def test_a_credential_in_literal_headers_is_refused_at_the_door(header):
    with pytest.raises(ConfigError) as error:
        parse_config({"run": {"name": "r", "db": "r.db"}, "subjects": [{"name": "M", "topics": 1}],
                      "models": {"default": {"base_url": "http://x/v1", "model": "m", "headers": {header: "k"}}}})
    assert "holds a credential" in str(error.value) and "headers_env" in str(error.value)


def test_a_header_variable_that_is_not_set_is_named(tmp_path):
    models = {"default": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "headers_env": {"api-key": "CHIMERA_UNSET_H"}}}
    result = chimera("run", str(write_config(tmp_path, models=models)), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "headers_env: environment variable CHIMERA_UNSET_H (for the api-key header) is not set" in result.stderr


@pytest.mark.parametrize("mode", ["json_object", "tgi", "none"])
def test_every_structured_output_mode_runs_end_to_end_and_sends_its_own_form(tmp_path, mode):
    with HostileEndpoint() as endpoint:
        models = {"default": {"base_url": endpoint.url, "model": "sim", "structured_output": mode, "max_retries": 0},
                  "solver": {"base_url": endpoint.url, "model": "sim"}}
        config = write_config(tmp_path, models=models, subjects=[{"name": "Mathematics", "topics": 2}],
                              problems_per_topic=2)
        result = chimera("run", str(config), "--quiet")
    assert result.returncode == 0, result.stderr
    structured = [r["body"] for r in endpoint.requests
                  if r["path"].endswith("/chat/completions") and "Reply with only a JSON object" in
                  r["body"]["messages"][-1]["content"]]
    assert structured, "the schema is spelled out in the prompt"
    expected = {"json_object": {"type": "json_object"}, "none": None}.get(mode)
    for body in structured:
        sent = body.get("response_format")
        if mode == "tgi":
            assert sent["type"] == "json_object" and sent["value"]["title"] in body["messages"][-1]["content"]
        else:
            assert sent == expected
    outcomes = dict(sqlite3.connect(tmp_path / "t.db").execute(
        "select outcome, count(*) from llm_calls group by outcome").fetchall())
    assert set(outcomes) == {"ok"}
    accepted = sqlite3.connect(tmp_path / "t.db").execute(
        "select count(*) from problems where status = 'accepted'").fetchone()[0]
    assert accepted > 0


def test_eval_bench_sends_a_key_and_can_leave_sampling_out_or_change_it(tmp_path):
    from test_evals import qa_file

    data = qa_file(tmp_path / "qa.jsonl", 2)
    env = {**os.environ, "CHIMERA_BENCH_KEY": "bench-key-5e1d"}
    with HostileEndpoint() as endpoint:
        plain = chimera("eval", "bench", "--data", str(data), "--model", endpoint.url, "--model-name", "sim-solver",
                        "--api-key-env", "CHIMERA_BENCH_KEY", "--no-sampling", "--samples", "1",
                        "--results", str(tmp_path / "a.db"), env=env)
        cooler = chimera("eval", "bench", "--data", str(data), "--model", endpoint.url, "--model-name", "sim-solver",
                         "--temperature", "0.2", "--samples", "1", "--results", str(tmp_path / "b.db"), env=env)
    assert plain.returncode == 0 and cooler.returncode == 0, plain.stderr + cooler.stderr
    first, second = endpoint.requests[:2], endpoint.requests[2:]
    for request in first:
        assert {k.lower(): v for k, v in request["headers"].items()}["authorization"] == "Bearer bench-key-5e1d"
        assert not {"temperature", "top_p", "top_k"} & set(request["body"])
    for request in second:
        assert (request["body"]["temperature"], request["body"]["top_p"], request["body"]["top_k"]) == (0.2, 0.95, 20)
