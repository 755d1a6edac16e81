"""The graphs served by `langgraph dev` (LangGraph's own server, with its blocking-call detector on) from the
shipped `langgraph.json`, and driven through `langgraph-sdk`: Stage 1 and a topic run to completion, an
interrupt is resumed through the API, and the run's database holds the run, its topics (done as `chimera run`
leaves them), the problem and the decision. Every assistants endpoint answers, and a server without a usable
config says what is wrong in one line."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from helpers import chimera, write_config

langgraph_sdk = pytest.importorskip("langgraph_sdk")
LANGGRAPH = Path(sys.executable).parent / "langgraph"
pytestmark = pytest.mark.skipif(not LANGGRAPH.exists(), reason="langgraph-cli is not installed (the dev extra)")


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serving(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`langgraph dev` on the shipped langgraph.json (but its .env) in `folder`; yields its URL and its log."""
    shipped = json.loads((Path(__file__).parent.parent / "langgraph.json").read_text())
    (folder / "langgraph.json").write_text(json.dumps({key: value for key, value in shipped.items() if key != "env"}))
    port = _free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
                               "--port", str(port)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, folder / "server.log")
        yield url, folder / "server.log"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(folder / ".langgraph_api", ignore_errors=True)


@pytest.fixture
def served(tmp_path: Path, simulator):
    sim_url, _ = simulator(seed=3)
    config = write_config(tmp_path, name="served", seed=3, subjects=[{"name": "Mathematics", "topics": 1}],
                          problems_per_topic=1, review={"policy": "all"})
    with _serving(tmp_path, {**os.environ, "CHIMERA_CONFIG": str(config), "CHIMERA_SIM_URL": sim_url}) as (url, log):
        yield url, tmp_path / "served.db", log


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"langgraph dev exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"langgraph dev did not answer in 90 s:\n{log.read_text()[-3000:]}")


def _rows(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def test_a_served_run_expands_topics_drafts_and_takes_a_review_decision_through_the_api(served):
    url, db, log = served
    from langgraph_sdk import get_client

    async def drive() -> tuple[dict, dict, dict]:
        client = get_client(url=url)
        for assistant in await client.assistants.search():
            schemas[assistant["graph_id"]] = await client.assistants.get_schemas(assistant["assistant_id"])
        stage1 = await client.threads.create()
        expanded = await client.runs.wait(stage1["thread_id"], "taxonomy", input={}, raise_error=True)
        # The taxonomy run's output gives each topic as the topic graph takes it, id included.
        [topic] = expanded["topics"]
        assert [(topic["topic_id"], topic["subject"], topic["topic"])] == \
            _rows(db, "select id, subject, name from topics where status = 'pending'")
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "topic", raise_error=True, input={**topic, "slots": 1})
        waiting = await client.threads.get_state(thread["thread_id"], subgraphs=True)
        await client.runs.wait(thread["thread_id"], "topic", raise_error=True,
                               command={"resume": {"action": "reject", "note": "too easy", "reviewer": "ana"}})
        done = await client.threads.get_state(thread["thread_id"])
        return stage1, waiting, done

    schemas: dict[str, dict] = {}
    _, waiting, done = asyncio.run(drive())
    # The input forms LangGraph Studio draws: typing_extensions.TypedDict, which pydantic reads on 3.11 too.
    assert set(schemas["topic"]["input_schema"]["properties"]) == {"topic_id", "subject", "topic", "slots"}
    assert "subjects" in schemas["taxonomy"]["input_schema"]["properties"]
    interrupts = [i for task in waiting["tasks"] for i in task["interrupts"]] + \
                 [i for task in waiting["tasks"] if task.get("state") for sub in task["state"]["tasks"]
                  for i in sub["interrupts"]]
    assert interrupts, waiting
    payload = interrupts[0]["value"]
    assert payload["proposed"] in ("accept", "reject") and payload["problem"]
    assert done["next"] == []
    assert done["values"]["outcomes"][0]["status"] == "rejected"

    assert _rows(db, "select name from runs") == [("served",)]
    [(review_id, action, note, reviewer, applied)] = _rows(
        db, "select id, action, note, reviewer, applied_at is not null from reviews")
    assert (review_id, action, note, reviewer, applied) == (payload["review_id"], "reject", "too easy", "ana", 1)
    [(status, reason)] = _rows(db, "select status, rejection_reason from problems")
    assert status == "rejected" and "rejected by reviewer ana: too easy" in reason
    calls = _rows(db, "select role, count(*) from llm_calls group by role")
    assert {role for role, _ in calls} >= {"expander", "drafter", "critic0", "critic1"}
    text = log.read_text()
    assert "BlockingError" not in text and "Blocking call" not in text


def test_the_env_example_names_what_the_server_reads_and_the_simulators_own_port():
    import re

    from chimera.cli.commands import build_parser

    root = Path(__file__).parent.parent
    example = (root / ".env.example").read_text()
    read = set(re.findall(r'"(CHIMERA_[A-Z_]+)"', (root / "chimera/cli/studio.py").read_text()
                          + (root / "chimera/cli/server_guard.py").read_text()))
    assert read >= {"CHIMERA_CONFIG", "CHIMERA_SIM_URL", "CHIMERA_SERVER_ORIGINS", "CHIMERA_SERVER_HOSTS"}
    assert all(re.search(rf"^#? ?{name}=", example, re.M) for name in read), read
    assert ".env" in (root / ".gitignore").read_text().split()  # the copy with the keys stays out of git
    # The simulator's default port, which is not the review page's.
    sim_port = build_parser().parse_args(["sim"]).port
    assert sim_port != build_parser().parse_args(["review", "x.db", "--web"]).port
    assert f"CHIMERA_SIM_URL=http://127.0.0.1:{sim_port}/v1" in example
    section = (root / "README.md").read_text().split("## Serving the graphs with LangGraph's server")[1]
    assert f"chimera sim --port {sim_port} &" in section.split("\n## ")[0]


SCHEMA_TROUBLE = ("Failed to get", "SchemaError", "schema-for-unknown-type", "Traceback")


def test_every_assistants_endpoint_answers_for_both_graphs_and_the_log_holds_no_schema_error(served):
    url, _, log = served
    from langgraph_sdk import get_client

    async def ask() -> dict[str, dict[str, object]]:
        client = get_client(url=url)
        answers: dict[str, dict[str, object]] = {}
        for assistant in await client.assistants.search():
            aid = assistant["assistant_id"]
            answers[assistant["graph_id"]] = {
                "get": await client.assistants.get(aid), "graph": await client.assistants.get_graph(aid),
                "xray": await client.assistants.get_graph(aid, xray=True),
                "schemas": await client.assistants.get_schemas(aid),
                "subgraphs": await client.assistants.get_subgraphs(aid),
                "recursed": await client.assistants.get_subgraphs(aid, recurse=True)}
        return answers

    answers = asyncio.run(ask())
    assert set(answers) == {"taxonomy", "topic"}
    topic, taxonomy = answers["topic"], answers["taxonomy"]
    assert topic["get"]["graph_id"] == "topic" and taxonomy["get"]["graph_id"] == "taxonomy"
    assert {"draft", "problem", "finished"} <= {node["id"] for node in topic["graph"]["nodes"]}
    assert "problem" in {node["id"] for node in topic["xray"]["nodes"]}
    assert "finalize" in {node["id"] for node in taxonomy["graph"]["nodes"]}
    # The review policy's per-problem subgraph is described like the graph itself, context included:
    # a served run brings no context (the server holds the run's Deps), an empty object.
    for described in (topic["schemas"], topic["subgraphs"]["problem"], topic["recursed"]["problem"],
                      taxonomy["schemas"]):
        assert described["context_schema"]["type"] == "object" and described["context_schema"]["properties"] == {}
        assert described["input_schema"]["properties"] and described["config_schema"] is not None
    assert "problem_id" in topic["subgraphs"]["problem"]["input_schema"]["properties"]
    assert taxonomy["subgraphs"] == {} and taxonomy["recursed"] == {}
    text = log.read_text()
    assert not [trouble for trouble in SCHEMA_TROUBLE if trouble in text], text[-3000:]


BAD_CONFIGS = {
    "unset": (None, "CHIMERA_CONFIG: set it to the run config the graphs should use"),
    "invalid": ({"max_revisions": "many"}, "max_revisions: Input should be a valid integer"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_server_without_a_usable_config_says_what_is_wrong_in_one_line(tmp_path, case):
    from langgraph_sdk import get_client
    from langgraph_sdk.errors import InternalServerError

    broken, line = BAD_CONFIGS[case]
    env = {key: value for key, value in os.environ.items() if key != "CHIMERA_CONFIG"}
    if broken is not None:
        env["CHIMERA_CONFIG"] = str(write_config(tmp_path, name="bad", **broken))

    async def ask() -> list[BaseException]:
        client = get_client(url=url)
        [assistant] = await client.assistants.search(graph_id="topic")
        errors: list[BaseException] = []
        for call in (client.assistants.get_graph(assistant["assistant_id"]),
                     client.assistants.get_schemas(assistant["assistant_id"]),
                     client.assistants.get_subgraphs(assistant["assistant_id"])):
            with pytest.raises(InternalServerError) as caught:
                await call
            errors.append(caught.value)
        thread = await client.threads.create()
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the sdk's own kind for a streamed request
            await client.runs.wait(thread["thread_id"], "topic", raise_error=True,
                                   input={"topic_id": "t", "subject": "s", "topic": "t", "slots": 1})
        errors.append(caught.value)
        return errors

    with _serving(tmp_path, env) as (url, log):
        errors = asyncio.run(ask())
    for error in errors:
        assert error.response.status_code == 503  # type: ignore[attr-defined]
        # The sdk's message (from the reply's `detail`), or for a run its note with the reply.
        assert line in str(error) or line in " ".join(getattr(error, "__notes__", [])), error
    text = log.read_text()
    assert line in text
    assert "Traceback" not in text and "An internal error occurred" not in text
    # The run was refused before it was queued: no run of the graph started.
    assert "Starting background run" not in text


def test_a_topic_run_through_the_server_leaves_its_topic_done_as_chimera_run_does(served):
    url, db, _ = served
    from langgraph_sdk import get_client

    def status() -> dict:
        result = chimera("status", str(db), "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["served"]

    async def drive() -> tuple[dict, dict]:
        client = get_client(url=url)
        expanded = await client.runs.wait((await client.threads.create())["thread_id"], "taxonomy", input={},
                                          raise_error=True)
        [topic] = expanded["topics"]
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "topic", raise_error=True, input=topic)
        waiting = status()
        await client.runs.wait(thread["thread_id"], "topic", raise_error=True,
                               command={"resume": {"action": "accept", "reviewer": "ana"}})
        return waiting, status()

    waiting, ended = asyncio.run(drive())
    # Waiting for its review, the topic is not done; once the decision ends its thread, it is.
    assert (waiting["topics"], waiting["topics_done"], waiting["reviews"]["pending"]) == (1, 0, 1)
    assert (ended["topics"], ended["topics_done"], ended["problems"]) == (1, 1, 1)
    assert ended["by_status"] == {"accepted": 1} and ended["samples"] >= 1
    assert ended["reviews"]["pending"] == 0 and ended["reviews"]["accepted"] == 1
    assert ended["samples"] == _rows(db, "select count(*) from samples")[0][0]
    assert _rows(db, "select status from topics") == [("done",)]
    # As after `chimera run`: the topic's kept replies are dropped, and the run's rows agree with each other.
    assert _rows(db, "select count(*) from llm_calls where topic_id is not null and reply is not null") == [(0,)]
    check = chimera("status", str(db), "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_server_answers_only_its_own_user(served):
    url, db, _ = served
    body = json.dumps({"graph_id": "topic"}).encode()
    # A page on another origin: no CORS grant, and a state-changing request is refused before any route runs,
    # also as a simple request (text/plain), which a browser sends without a preflight.
    status, headers, _ = _request(f"{url}/threads", "OPTIONS", {"Origin": "https://evil.example",
                                                                "Access-Control-Request-Method": "POST"})
    assert headers.get("access-control-allow-origin") in (None, "") and status in (400, 403)
    for content_type in ("application/json", "text/plain"):
        status, _, reply = _request(f"{url}/assistants/search", "POST",
                                    {"Origin": "https://evil.example", "Content-Type": content_type}, body)
        assert status == 403 and b"another origin" in reply
    status, _, _ = _request(f"{url}/threads", "POST", {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
                            b"{}")
    assert status == 403
    # DNS rebinding: a foreign host name pointing at this machine.
    status, _, reply = _request(f"{url}/ok", "GET", {"Host": "attacker.example"})
    assert status == 403 and b"loopback" in reply
    # A body past the bound is refused on its declared length, before it is read.
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", "/threads")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(2 << 20))
    connection.endheaders(b"{}")
    assert connection.getresponse().status == 403
    connection.close()
    # Another local web app is another origin too; the server's own pages and tools still work.
    status, _, _ = _request(f"{url}/threads", "POST", {"Origin": "http://localhost:3000",
                                                       "Content-Type": "application/json"}, b"{}")
    assert status == 403
    status, headers, _ = _request(f"{url}/assistants/search", "POST", {"Origin": url,
                                                                        "Content-Type": "application/json"}, b"{}")
    assert status == 200 and headers.get("access-control-allow-origin") == url
    assert not db.exists() or _rows(db, "select count(*) from topics") == [(0,)], "no refused request ran a graph"


def test_a_page_on_another_origin_cannot_drive_the_server_from_a_browser(served, tmp_path):
    from test_review_web import CHROMIUM, free_port

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    url, db, _ = served
    page_port = free_port()
    page = tmp_path / "site"
    page.mkdir()
    (page / "index.html").write_text(f"""<!doctype html><script>
    const api = "{url}";
    async function attempt(init) {{
      try {{ const r = await fetch(api + "/threads", init); return r.type === "opaque" ? "sent" : "read " + r.status; }}
      catch (e) {{ return "blocked"; }}
    }}
    window.results = (async () => [
      await attempt({{method: "POST", headers: {{"Content-Type": "application/json"}}, body: "{{}}"}}),
      await attempt({{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}}),
    ])();
    </script>""")
    site = subprocess.Popen([sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1",
                             "--directory", str(page)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def threads() -> int:
        status, _, body = _request(f"{url}/threads/search", "POST", {"Content-Type": "application/json"}, b"{}")
        assert status == 200
        return len(json.loads(body))

    try:
        before = threads()
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP evil.test 127.0.0.1"])
            tab = browser.new_page()
            for _ in range(50):
                try:
                    tab.goto(f"http://evil.test:{page_port}/index.html")
                    break
                except Exception:  # noqa: BLE001 - the page server is still starting
                    time.sleep(0.1)
            results = tab.evaluate("window.results")
            browser.close()
    finally:
        site.terminate()
    assert results[0] == "blocked", results  # no CORS grant: the page cannot read a reply
    assert threads() == before, "neither request created a thread"
