"""Model calls traced: a LangSmith run under its graph node's run, an OpenTelemetry span after the GenAI
conventions, one per row of `llm_calls` (failed attempts included); nothing made while tracing is off."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import chimera, write_config
from langsmith import Client, tracing_context
from langsmith import utils as ls_utils
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chimera.config import ModelSpec, SimSettings
from chimera.models import llm, tracing
from chimera.models.dispatch import Endpoints
from chimera.models.llm import build_client

SECRET = "sk-trace-" + "5c1e9a7f3b2d8e46" * 2
LANGSMITH_KEY = "lsv2-capture-server-key"
TRACING_SWITCHES = ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING", "LANGCHAIN_TRACING_V2")
FAULTS = SimSettings(fault_5xx=0.25)  # some attempts fail and are retried: each is a row, a run, a span


class CaptureServer:
    """Enough of the LangSmith API for its client: /info (batch ingestion as plain JSON, no multipart, no
    compression) and every run it posts, kept with its headers."""

    INFO = {"version": "capture", "instance_flags": {},
            "batch_ingest_config": {"use_multipart_endpoint": False, "size_limit": 100, "size_limit_bytes": 20 << 20,
                                    "scale_up_nthreads_limit": 1, "scale_up_qsize_trigger": 1000,
                                    "scale_down_nempty_trigger": 4}}

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _take(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.requests.append((self.command, self.path, dict(self.headers), raw))
                self._answer({})

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(capture.INFO if self.path.startswith("/info") else {})

            do_POST = do_PATCH = _take  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def runs(self) -> dict[str, dict[str, Any]]:
        """Every run posted, by id, its later updates merged in."""
        runs: dict[str, dict[str, Any]] = {}
        for method, path, _, raw in self.requests:
            assert path == "/runs/batch", f"{method} {path}: only batch ingestion is served here"
            batch = json.loads(raw)
            for run in batch.get("post", []) + batch.get("patch", []):
                runs.setdefault(run["id"], {}).update({k: v for k, v in run.items() if v is not None})
        return runs


@pytest.fixture
def capture():
    server = CaptureServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def tracing_env(monkeypatch):
    """LangSmith's switches as this test sets them (langsmith caches what it read of the environment)."""
    for name in TRACING_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    ls_utils.get_env_var.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    ls_utils.get_env_var.cache_clear()


@pytest.fixture
def spans():
    """An OpenTelemetry SDK provider whose spans are kept in memory, the one chimera's spans go to."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


def calls(db) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [dict(row) for row in conn.execute("select * from llm_calls order by id")]


def models_at(url: str) -> dict[str, Any]:
    """Every role, the embedder included, on one endpoint whose key comes from the environment."""
    return {"default": {"base_url": url, "model": "any", "api_key_env": "CHIMERA_TEST_KEY", "max_retries": 8},
            "embedder": {}}


def test_each_model_call_is_a_langsmith_llm_run_under_its_graph_nodes_run(tmp_path, simulator, capture, tracing_env):
    url, _ = simulator(FAULTS, seed=2)
    tracing_env.setenv("LANGSMITH_TRACING", "true")
    tracing_env.setenv("LANGSMITH_ENDPOINT", capture.url)
    tracing_env.setenv("LANGSMITH_API_KEY", LANGSMITH_KEY)
    tracing_env.setenv("CHIMERA_TEST_KEY", SECRET)
    client = Client(api_url=capture.url, api_key=LANGSMITH_KEY)
    with tracing_context(client=client, project_name="chimera-tracing-test"):
        result = chimera("run", str(write_config(tmp_path, models=models_at(url))), "--quiet")
    client.flush()
    assert result.returncode == 0, result.stderr

    rows, runs = calls(tmp_path / "t.db"), capture.runs()
    model_runs = [r for r in runs.values() if r["run_type"] in ("llm", "embedding")]
    assert len(model_runs) == len(rows) > 0
    assert {r["outcome"] for r in rows} > {"ok"}, "the simulator's faults should have failed some attempts"

    def usage(run):
        found = run["extra"]["metadata"].get("usage_metadata") or {}
        return found.get("input_tokens", 0), found.get("output_tokens", 0)

    assert Counter((r["extra"]["metadata"]["role"], r["extra"]["metadata"]["outcome"], *usage(r)) for r in model_runs) \
        == Counter((row["role"], row["outcome"], row["tokens_in"], row["tokens_out"]) for row in rows)
    for run in model_runs:
        metadata = run["extra"]["metadata"]
        assert run["run_type"] == ("embedding" if metadata["role"] == "embedder" else "llm")
        assert metadata["ls_model_name"] == "any" and metadata["ls_provider"] == "openai"
        assert metadata["base_url"] == url and metadata["latency_s"] >= 0
        assert run["start_time"] <= run["end_time"]
        parent = runs[run["parent_run_id"]]
        assert parent["run_type"] == "chain" and parent["extra"]["metadata"]["langgraph_node"] == parent["name"]
        assert run["trace_id"] == parent["trace_id"] and run["session_name"] == "chimera-tracing-test"
        if metadata["outcome"] == "ok":
            assert "error" not in run
            if run["run_type"] == "llm":
                assert run["inputs"]["messages"][0]["role"] in ("system", "user")
                message = run["outputs"]["choices"][0]["message"]
                assert message["role"] == "assistant" and message["content"]
                used = metadata["usage_metadata"]
                assert used["total_tokens"] == used["input_tokens"] + used["output_tokens"]
            else:
                assert run["inputs"]["input"] and run["inputs"]["model"] == "any"
        else:
            assert run["error"] and not run.get("outputs") and metadata["outcome"].startswith("http_5")
    assert any("reasoning_content" in (r.get("outputs") or {"choices": [{"message": {}}]})["choices"][0]["message"]
               for r in model_runs if r["run_type"] == "llm"), "the simulator's thinking, split off"
    posted = b"".join(raw + json.dumps(headers).encode() for _, _, headers, raw in capture.requests)
    assert SECRET.encode() not in posted


def test_each_model_call_is_an_opentelemetry_client_span_after_the_genai_conventions(tmp_path, simulator, spans):
    url, _ = simulator(FAULTS, seed=2)
    models = {"default": {"base_url": url, "model": "any", "temperature": 0.6, "top_p": 0.95, "max_tokens": 4096,
                          "max_retries": 8}, "embedder": {}}
    result = chimera("run", str(write_config(tmp_path, models=models)), "--quiet")
    assert result.returncode == 0, result.stderr

    rows, finished = calls(tmp_path / "t.db"), spans.get_finished_spans()
    assert len(finished) == len(rows) > 0
    assert {r["outcome"] for r in rows} > {"ok"}
    attributes = [dict(span.attributes or {}) for span in finished]
    assert Counter((a["chimera.role"], a["chimera.outcome"], a.get("gen_ai.usage.input_tokens", 0),
                    a.get("gen_ai.usage.output_tokens", 0)) for a in attributes) \
        == Counter((row["role"], row["outcome"], row["tokens_in"], row["tokens_out"]) for row in rows)
    port = int(url.split(":")[2].split("/")[0])
    for span, a in zip(finished, attributes):
        chat = a["chimera.role"] != "embedder"
        assert span.kind is trace.SpanKind.CLIENT and span.start_time <= span.end_time
        assert span.name == ("chat any" if chat else "embeddings any")
        assert a["gen_ai.operation.name"] == ("chat" if chat else "embeddings")
        assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai" and a["gen_ai.request.model"] == "any"
        assert (a["server.address"], a["server.port"]) == ("127.0.0.1", port)
        if chat:
            assert (a["gen_ai.request.temperature"], a["gen_ai.request.top_p"]) == (0.6, 0.95)
            assert a["gen_ai.request.max_tokens"] == 4096
        assert not any(name.endswith(".messages") for name in a), "message content is opt-in"
        if a["chimera.outcome"] == "ok":
            assert "error.type" not in a and span.status.status_code is not trace.StatusCode.ERROR
            assert a["gen_ai.response.model"]
            if chat:
                assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
        else:
            assert a["error.type"] == a["chimera.outcome"] and span.status.status_code is trace.StatusCode.ERROR
    problem_ids = {a.get("chimera.problem_id") for a in attributes} - {None}
    assert problem_ids == {r["problem_id"] for r in rows} - {None} and problem_ids


def ask_solver(url: str) -> Any:
    async def go():
        client = build_client("solver", ModelSpec(base_url=url, model="sim-solver"), endpoints=Endpoints(4),
                              sim_url=None, log=lambda call: None)
        try:
            return await client.complete([{"role": "user", "content": "How many edges has K_5? Box the answer."}],
                                         context={"problem_id": "p1"})
        finally:
            await client.close()

    return asyncio.run(go())


def test_message_content_is_on_a_span_only_when_the_standard_variable_asks(simulator, spans, monkeypatch):
    url, _ = simulator(SimSettings(reasoning_shape="reasoning_content", trajectory_words=20))
    ask_solver(url)
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true")
    reply = ask_solver(url)
    without, with_content = (dict(span.attributes or {}) for span in spans.get_finished_spans())
    assert "gen_ai.input.messages" not in without and "gen_ai.output.messages" not in without
    assert json.loads(with_content["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "How many edges has K_5? Box the answer."}]}]
    [output] = json.loads(with_content["gen_ai.output.messages"])
    assert output["parts"] == [{"type": "reasoning", "content": reply.reasoning}, {"type": "text", "content": reply.content}]
    assert with_content["chimera.problem_id"] == "p1"


def test_a_call_outside_any_graph_is_a_langsmith_trace_of_its_own(simulator, capture, tracing_env):
    url, _ = simulator()
    tracing_env.setenv("LANGSMITH_TRACING", "true")
    client = Client(api_url=capture.url, api_key=LANGSMITH_KEY)
    with tracing_context(client=client, project_name="loose-calls"):
        reply = ask_solver(url)
    client.flush()
    [run] = capture.runs().values()
    assert run["run_type"] == "llm" and run["name"] == "solver" and "parent_run_id" not in run
    assert run["trace_id"] == run["id"] and run["session_name"] == "loose-calls"
    assert run["outputs"]["choices"][0]["message"]["content"] == reply.content
    assert run["extra"]["metadata"]["usage_metadata"]["output_tokens"] == reply.tokens_out > 0


def test_a_langchain_role_is_left_to_langchains_own_langsmith_runs(tracing_env):
    tracing_env.setenv("LANGSMITH_TRACING", "true")
    posted = []
    tracing_env.setattr(tracing, "_post_run", lambda spec, *args: posted.append(spec.provider))
    row = {"role": "solver", "model": "m", "base_url": "langchain:x", "outcome": "ok", "latency_s": 0.1}
    for provider in ("langchain", "openai", "sim"):
        tracing.record_call(ModelSpec.model_construct(provider=provider), row, {"messages": []}, None)
    assert posted == ["openai", "sim"]


def test_with_tracing_off_a_run_makes_no_langsmith_run_and_no_span(tmp_path, tracing_env):
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), "no global provider in tests"
    hooked, traced = [], []
    record = llm.record_call
    tracing_env.setattr(llm, "record_call", lambda *args: (hooked.append(args), record(*args)))
    tracing_env.setattr(tracing, "_post_run", lambda *args: traced.append(("langsmith", args)))
    tracing_env.setattr(tracing, "_emit_span", lambda *args: traced.append(("otel", args)))
    assert chimera("run", str(write_config(tmp_path)), "--quiet").returncode == 0
    assert len(hooked) == len(calls(tmp_path / "t.db")) > 0
    assert traced == []


def test_without_opentelemetry_installed_calls_go_on_untraced(simulator, monkeypatch):
    url, _ = simulator()
    monkeypatch.setattr(tracing, "_modules", {})
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # what an absent package gives: ImportError
    assert ask_solver(url).content
    assert tracing._modules["opentelemetry.trace"] is None


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8400/v1", ("127.0.0.1", 8400)),
    ("https://api.openai.com/v1", ("api.openai.com", 443)),
    ("langchain:langchain_anthropic.ChatAnthropic", (None, None)),
])
def test_the_server_attributes_come_from_the_base_url(url, expected):
    assert tracing.server_of(url) == expected


def test_a_credential_in_a_base_url_never_reaches_a_trace():
    assert tracing.public_url("https://user:s3cret@example.com:8443/v1") == "https://example.com:8443/v1"
    assert tracing.public_url("http://127.0.0.1:8400/v1") == "http://127.0.0.1:8400/v1"
