"""Hostile input cannot hurt the reviewer, the machine or the run. Each test is written as the attack."""

import asyncio
import hashlib
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import ormsgpack
import pytest
import yaml
from aiohttp import web
from helpers import chimera, finished_run, write_config
from hostile import HostileEndpoint, echo_error, is_solve
from test_review_cli import pending, review_config
from test_review_web import ReviewServer, launch_chromium, needs_chromium

KEY = "sk-test-SECRETKEY0123456789"
PASSWORD = "pa55-w0rd-xyz"


def config_for(tmp_path, url, **spec):
    models = {"default": {"provider": "openai", "base_url": url, "model": "sim", "api_key_env": "CHIMERA_TEST_KEY",
                          "timeout_s": 3, "max_retries": 0, **spec}}
    return write_config(tmp_path, models=models, subjects=[{"name": "Mathematics", "topics": ["Counting"]}],
                        problems_per_topic=2)


def env_with_key():
    return {**os.environ, "CHIMERA_TEST_KEY": KEY}


def every_text_in(db: Path) -> str:
    """Every value of every table, checkpoint blobs included, as one string."""
    conn = sqlite3.connect(db)
    parts = []
    for (table,) in conn.execute("select name from sqlite_master where type = 'table'"):
        for row in conn.execute(f'select * from "{table}"'):
            parts += [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row]
    return "\n".join(parts)


# -- endpoints ----------------------------------------------------------------------------------

def test_a_key_echoed_by_a_server_or_written_in_a_url_is_found_nowhere_afterwards(tmp_path):
    async def echo_the_key(body, reply, request):
        if is_solve(body):
            return echo_error(500, f"bad request from {request.headers.get('Authorization')} key={KEY}")
        return None

    with HostileEndpoint(echo_the_key) as endpoint:
        with_password = config_for(tmp_path, endpoint.url.replace("http://", f"http://user:{PASSWORD}@"))
        refused = chimera("run", str(with_password), "--quiet", env=env_with_key())
        assert refused.returncode == 2 and "base_url: holds a user:password part" in refused.stderr
        assert not (tmp_path / "t.db").exists()
        config = config_for(tmp_path, endpoint.url)
        result = chimera("run", str(config), "--quiet", env=env_with_key(), timeout=120)
        status = chimera("status", str(tmp_path / "t.db"))
        stats = chimera("stats", str(tmp_path / "t.db"), "--out", str(tmp_path / "stats"))
        card = chimera("export", str(tmp_path / "t.db"), "--format", "hf", "--out", str(tmp_path / "hf"))
    assert any(r["path"].endswith("/chat/completions") for r in endpoint.requests)
    outputs = [refused.stdout, refused.stderr, result.stdout, result.stderr, status.stdout, status.stderr,
               stats.stdout, stats.stderr, card.stdout, card.stderr, every_text_in(tmp_path / "t.db")]
    outputs += [p.read_text(errors="replace") for folder in ("stats", "hf") for p in (tmp_path / folder).rglob("*")
                if p.is_file() and p.suffix in (".md", ".json")]
    assert "HTTP 500" in every_text_in(tmp_path / "t.db"), "the failure itself is recorded"
    for text in outputs:
        assert KEY not in text and PASSWORD not in text


def test_an_oversized_reply_fails_its_call_and_the_run_goes_on(tmp_path):
    async def inflate(body, reply, request):
        if is_solve(body):
            reply["choices"][0]["message"]["content"] = "x" * (3 << 20)
            return web.json_response(reply)
        return None

    with HostileEndpoint(inflate) as endpoint:
        result = chimera("run", str(config_for(tmp_path, endpoint.url, max_reply_mb=1)), "--quiet",
                         env=env_with_key(), timeout=120)
    assert "Traceback" not in result.stderr
    calls = sqlite3.connect(tmp_path / "t.db").execute(
        "select outcome, error from llm_calls where role = 'solver'").fetchall()
    assert calls and all(o == "malformed_reply" and "larger than 1 MB" in e for o, e in calls)


def test_a_server_that_drips_a_byte_a_second_is_cut_off_at_timeout_s(tmp_path):
    async def drip(body, reply, request):
        if not is_solve(body):
            return None
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for byte in json.dumps(reply).encode()[:40]:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.5)
        return response

    started = time.monotonic()
    with HostileEndpoint(drip) as endpoint:
        result = chimera("run", str(config_for(tmp_path, endpoint.url, timeout_s=2)), "--quiet",
                         env=env_with_key(), timeout=120)
    assert "Traceback" not in result.stderr and time.monotonic() - started < 90
    calls = sqlite3.connect(tmp_path / "t.db").execute(
        "select outcome, latency_s from llm_calls where role = 'solver'").fetchall()
    assert calls and all(o == "timeout" and latency < 3.5 for o, latency in calls)


@pytest.mark.parametrize("usage", [10 ** 30, -5, "many", 1.5])
def test_an_impossible_usage_count_is_a_malformed_reply_not_a_crash(tmp_path, usage):
    async def poison(body, reply, request):
        if is_solve(body):
            reply["usage"] = {"prompt_tokens": usage, "completion_tokens": 3}
            return web.json_response(reply)
        return None

    with HostileEndpoint(poison) as endpoint:
        config = config_for(tmp_path, endpoint.url)
        first = chimera("run", str(config), "--quiet", env=env_with_key(), timeout=120)
        again = chimera("run", str(config), "--quiet", env=env_with_key(), timeout=120)
    assert "Traceback" not in first.stderr + again.stderr
    outcomes = {row[0] for row in sqlite3.connect(tmp_path / "t.db").execute(
        "select outcome from llm_calls where role = 'solver'")}
    assert outcomes == {"malformed_reply"}


# -- databases ----------------------------------------------------------------------------------

def plant(db: Path, payload: ormsgpack.Ext) -> str:
    """Put `payload` into the latest checkpoint of a thread that waits for review; returns the thread."""
    conn = sqlite3.connect(db)
    thread, checkpoint_id, blob = conn.execute(
        "select c.thread_id, c.checkpoint_id, c.checkpoint from checkpoints c join reviews r "
        "on r.thread_id = c.thread_id where c.checkpoint_ns = '' and r.action is null "
        "order by c.checkpoint_id desc limit 1").fetchone()
    checkpoint = ormsgpack.unpackb(blob, ext_hook=lambda code, data: ormsgpack.Ext(code, data))
    checkpoint["channel_values"]["planted"] = payload
    conn.execute("update checkpoints set checkpoint = ? where thread_id = ? and checkpoint_id = ?",
                 (ormsgpack.packb(checkpoint), thread, checkpoint_id))
    conn.commit()
    return thread


def test_a_planted_object_in_a_checkpoint_is_refused_not_run(tmp_path):
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    marker = tmp_path / "pwned"
    plant(tmp_path / "review.db", ormsgpack.Ext(1, ormsgpack.packb(["os", "system", [f"touch {marker}"]])))
    result = chimera("review", str(tmp_path / "review.db"), "--resume", "--yes", "--quiet")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "checkpoint refused: it holds a os.system object" in result.stderr
    assert not marker.exists()


def test_a_stored_config_never_sends_requests_or_keys_on_its_own(tmp_path):
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    db = tmp_path / "review.db"
    with HostileEndpoint(lambda body, reply, request: asyncio.sleep(0)) as endpoint:
        conn = sqlite3.connect(db)
        (stored,) = conn.execute("select config from runs").fetchone()
        config = json.loads(stored)
        config["models"]["solver"] = {**config["models"]["solver"], "provider": "openai", "base_url": endpoint.url,
                                      "model": "x", "api_key_env": "CHIMERA_TEST_KEY"}
        conn.execute("update runs set config = ?", (json.dumps(config),))
        conn.commit()
        refused = chimera("review", str(db), "--resume", "--quiet", env=env_with_key(), input="")
        own = chimera("review", str(db), "--resume", "--quiet", "--config", str(tmp_path / "review.yaml"))
    assert refused.returncode == 1 and "needs your consent" in refused.stderr
    assert f'solver: provider openai, model "x"\n    endpoint: "{endpoint.url}"\n    key from: $CHIMERA_TEST_KEY' \
        in refused.stderr
    assert own.returncode == 0, own.stderr
    assert endpoint.requests == [], "no request reached the URL the database named"


def test_a_newer_schema_or_a_foreign_database_gets_one_line_and_is_left_as_it_was(tmp_path):
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("create table notes(x)")
    conn.commit()
    conn.close()
    before = hashlib.sha256(foreign.read_bytes()).hexdigest()
    for command in (["status"], ["export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl")], ["taxonomy"],
                    ["review", "--list"]):
        result = chimera(command[0], str(foreign), *command[1:])
        assert result.returncode == 1 and result.stderr.strip().endswith("not a chimera database (it has tables, "
                                                                         "but no chimera schema)"), result.stderr
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"], "no WAL or journal files were made"
    finished_run(tmp_path)
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("insert into _migrations values ('0100_from_the_future', 0)")
    conn.commit()
    newer = chimera("status", str(tmp_path / "t.db"))
    assert newer.returncode == 1 and "written by a newer chimera (schema step 0100_from_the_future)" in newer.stderr


def test_read_only_commands_work_on_a_read_only_copy_and_write_nothing(tmp_path):
    finished_run(tmp_path)
    sqlite3.connect(tmp_path / "t.db").execute("pragma wal_checkpoint(truncate)")
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "t.db").write_bytes((tmp_path / "t.db").read_bytes())
    before = hashlib.sha256((folder / "t.db").read_bytes()).hexdigest()
    for command in (["status"], ["taxonomy"], ["review", "--list"]):
        result = chimera(command[0], str(folder / "t.db"), *command[1:])
        assert result.returncode == 0, result.stderr
    assert hashlib.sha256((folder / "t.db").read_bytes()).hexdigest() == before


# -- files --------------------------------------------------------------------------------------

def test_an_export_never_deletes_a_folder_it_did_not_write(tmp_path):
    finished_run(tmp_path)
    db = tmp_path / "t.db"
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    refused = chimera("export", str(db), "--format", "hf", "--out", str(home))
    assert refused.returncode == 1 and "holds files chimera did not write" in refused.stderr
    assert (home / "thesis.tex").read_text() == "years of work" and len(list(home.iterdir())) == 1
    dot = chimera("export", str(db), "--format", "hf", "--out", ".", cwd=home)
    assert dot.returncode == 1 and (home / "thesis.tex").exists()
    forced = chimera("export", str(db), "--format", "hf", "--out", str(home), "--force")
    assert forced.returncode == 0 and (home / "thesis.tex").read_text() == "years of work"
    assert (home / "sft").is_dir()
    fresh = tmp_path / "export"
    assert chimera("export", str(db), "--format", "hf", "--out", str(fresh)).returncode == 0
    again = chimera("export", str(db), "--format", "hf", "--out", str(fresh))
    assert again.returncode == 0, "an earlier export is replaced"
    stats_refused = chimera("stats", str(db), "--out", str(home))
    assert stats_refused.returncode == 0 or "did not write" in stats_refused.stderr


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
             for i in range(8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("run: {name: r, db: r.db}\nsubjects: [{name: M, topics: 1}]\nmodels:\n  default:\n"
                    "    provider: sim\n    extra_body:\n" + "\n".join("      " + line for line in bomb) + "\n")
    result = chimera("run", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"chimera: error: {path}: YAML aliases (*name) are not allowed in a config (line 8)"


@pytest.mark.parametrize("change, says", [
    (lambda t: t.update(run="../../etc"), "run: String should match pattern"),
    (lambda t: t["subjects"][0]["subfields"][0]["topics"][0].update(slots=10 ** 30), "slots: Input should be less"),
    (lambda t: t["subjects"][0]["subfields"][0]["topics"][0].update(name="n" * 5_000_000), "name: String should have at most"),
])
def test_an_imported_taxonomy_is_validated(tmp_path, change, says):
    assert chimera("run", str(write_config(tmp_path)), "--quiet", "--topics-only").returncode == 0
    taxonomy = json.loads(chimera("taxonomy", str(tmp_path / "t.db"), "--json").stdout)
    change(taxonomy)
    path = tmp_path / "tax.json"
    path.write_text(json.dumps(taxonomy))
    result = chimera("taxonomy", str(tmp_path / "t.db"), "--import", str(path))
    assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr


def test_a_taxonomy_import_that_fails_halfway_leaves_the_old_taxonomy(tmp_path):
    assert chimera("run", str(write_config(tmp_path)), "--quiet", "--topics-only").returncode == 0
    db = tmp_path / "t.db"
    before = chimera("taxonomy", str(db), "--json").stdout
    taxonomy = json.loads(before)
    topics = taxonomy["subjects"][-1]["subfields"][-1]["topics"]
    topics += [{"name": "Fresh topic", "slots": 2}, {"name": "Fresh topic", "slots": 2}]  # a duplicate, last
    (tmp_path / "tax.json").write_text(json.dumps(taxonomy))
    result = chimera("taxonomy", str(db), "--import", str(tmp_path / "tax.json"))
    assert result.returncode == 1 and "listed twice" in result.stderr
    assert chimera("taxonomy", str(db), "--json").stdout == before


def test_a_jsonl_line_past_the_cap_is_refused_by_line_number(tmp_path):
    from chimera.errors import ChimeraError
    from chimera.jsonl import json_lines

    path = tmp_path / "big.jsonl"
    path.write_text('{"a": 1}\n' + json.dumps({"a": "x" * 5000}) + "\n")
    with pytest.raises(ChimeraError, match=r"big.jsonl:2: line longer than"):
        list(json_lines(path, max_line_bytes=1000))


# -- what a person sees ---------------------------------------------------------------------------

MARKUP = "[/x] [bold]loud[/bold] \x1b[2J\x1b[31m \u202e82"


def test_rich_markup_and_escape_sequences_in_data_are_shown_as_text(tmp_path):
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    db = tmp_path / "review.db"
    conn = sqlite3.connect(db)
    conn.execute("update topics set name = ?", (MARKUP,))
    # one rejected problem at least, whatever this seed's run gave, so the reasons table has a row to show
    conn.execute("update problems set status = 'rejected', rejection_reason = ? where status = 'rejected' "
                 "or id = (select min(id) from problems where status = 'accepted')", (MARKUP,))
    (review_id, payload) = conn.execute("select id, payload from reviews where action is null").fetchone()
    payload = json.loads(payload)
    payload["topic"] = payload["problem"] = MARKUP
    for vote in payload["critics"]:
        vote["reasons"] = vote["own_answer"] = MARKUP
    conn.execute("update reviews set payload = ?, topic = ? where id = ?", (json.dumps(payload), MARKUP, review_id))
    conn.commit()
    for command in (["status"], ["status", "--by", "topic"], ["taxonomy"], ["review", "--list"]):
        result = chimera(command[0], str(db), *command[1:])
        assert result.returncode == 0, (command, result.stderr)
        assert "\x1b[2J" not in result.stdout and "⟨U+001B⟩" in result.stdout and "[/x]" in result.stdout, command
    walked = chimera("review", str(db), review_id, input="s\n")
    assert walked.returncode == 0, walked.stderr
    assert "\x1b" not in walked.stdout and "⟨U+202E⟩82" in walked.stdout
    noted = chimera("review", str(db), review_id, "--reject", "--note", MARKUP, "--reviewer", MARKUP)
    assert noted.returncode == 0, noted.stderr
    listed = chimera("review", str(db), "--list", "--all")
    assert listed.returncode == 0 and "\x1b" not in listed.stdout and "[/x]" in listed.stdout


PAYLOADS = ["$\\text{<script>window.__pwned = 1</script>}$",
            "$\\href{javascript:window.__pwned=1}{click}$",
            "$\\style{position:fixed;top:0;left:0;width:100vw;height:100vh;background:red}{x}$",
            "<img src=x onerror='window.__pwned=1'>", "\\(<svg onload='window.__pwned=1'>\\)"]


def served(server, path, method="GET", headers=None, data=None):
    request = urllib.request.Request(server.url + path, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_the_review_server_refuses_foreign_hosts_and_cross_origin_posts_and_sends_a_strict_policy(tmp_path):
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    db = tmp_path / "review.db"
    item = pending(db)[0]
    server = ReviewServer(db)
    try:
        server.get()
        status, headers = served(server, "")
        assert status == 200
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "form-action 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin"
        assert served(server, "", headers={"Host": f"evil.example:{server.port}"})[0] == 421
        form = b"action=accept&nonce=x"
        assert served(server, f"item/{item['id']}", "POST", {"Origin": "http://evil.example"}, form)[0] == 403
        assert served(server, f"item/{item['id']}", "POST", {}, form)[0] == 403
    finally:
        server.stop()
    assert pending(db)[0]["id"] == item["id"], "nothing was decided"


@needs_chromium
def test_model_text_on_the_review_page_runs_no_script_and_draws_no_overlay(tmp_path):
    from playwright.sync_api import sync_playwright

    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    db = tmp_path / "review.db"
    conn = sqlite3.connect(db)
    rows = conn.execute("select id, payload from reviews where action is null").fetchall()
    hostile = " ".join(PAYLOADS)
    for review_id, payload in rows:
        payload = json.loads(payload)
        payload.update(problem=hostile, answer=hostile, topic=hostile, rejection_reason=hostile)
        for vote in payload["critics"]:
            vote.update(reasons=hostile, own_answer=hostile, model=hostile)
        for sample in payload.get("solver", []):
            sample["answer"] = hostile
        conn.execute("update reviews set payload = ?, topic = ?, subject = ? where id = ?",
                     (json.dumps(payload), hostile, hostile, review_id))
    conn.commit()
    server = ReviewServer(db)
    try:
        server.get()
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            dialogs = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            for path in ["", f"item/{rows[0][0]}"]:
                page.goto(server.url + path)
                page.wait_for_load_state("load")
                assert page.evaluate("window.__pwned") is None
                assert page.locator("script, img, svg, iframe").count() == 0
                fixed = page.evaluate("[...document.querySelectorAll('*')].filter("
                                      "e => getComputedStyle(e).position === 'fixed').length")
                assert fixed == 0
            shown = page.locator("#problem").inner_text().replace("\xa0", " ")
            assert "<script>window.__pwned = 1</script>" in shown, "the payload is shown as text"
            browser.close()
    finally:
        server.stop()
    assert not dialogs


def test_a_huge_trajectory_is_stored_cut_and_flagged_not_whole(tmp_path):
    async def ramble(body, reply, request):
        if is_solve(body):
            reply["choices"][0]["message"]["content"] = "so on and " * 150_000 + "\\boxed{7}"
            return web.json_response(reply)
        return None

    with HostileEndpoint(ramble) as endpoint:
        config = config_for(tmp_path, endpoint.url)
        settings = yaml.safe_load(config.read_text())
        settings["solver"] = {"max_trajectory_chars": 100_000}
        config.write_text(yaml.safe_dump(settings))
        result = chimera("run", str(config), "--quiet", env=env_with_key(), timeout=120)
    assert "Traceback" not in result.stderr
    rows = sqlite3.connect(tmp_path / "t.db").execute(
        "select length(reasoning) + length(solution), truncated, label_detail from samples").fetchall()
    assert rows and all(size <= 100_000 and cut == 1 and "max_trajectory_chars" in why for size, cut, why in rows)


def test_embeddings_of_different_widths_fail_the_call_not_the_process(tmp_path):
    from chimera.config import ModelSpec
    from chimera.errors import CallFailed
    from chimera.models.dispatch import Endpoints
    from chimera.models.embeddings import Embedder

    async def ragged(body, reply, request):
        if "input" in body:
            reply["data"][1]["embedding"] = reply["data"][1]["embedding"][:3]
            return web.json_response(reply)
        return None

    logged = []
    with HostileEndpoint(ragged) as endpoint:
        spec = ModelSpec(base_url=endpoint.url, model="sim-embedder", timeout_s=5, max_retries=0)
        embedder = Embedder(spec, endpoints=Endpoints(4), sim_url=None, log=logged.append)

        async def embed_then_close():
            try:
                await embedder.embed(["first topic", "second topic"])
            finally:
                await embedder.close()

        with pytest.raises(CallFailed, match="different or no lengths"):
            asyncio.run(embed_then_close())
    assert logged[0]["outcome"] == "malformed_reply"


def test_embeddings_go_through_the_chat_roles_door_replicas_back_off_and_a_row_per_attempt(tmp_path):
    from chimera.config import ModelSpec
    from chimera.models.dispatch import Endpoints
    from chimera.models.embeddings import Embedder

    refused = []

    async def busy_once(body, reply, request):
        if "input" in body and not refused:
            refused.append(body)
            return web.Response(status=429, headers={"Retry-After": "0"},
                                text=json.dumps({"error": {"message": "slow down"}}), content_type="application/json")
        return None

    logged = []
    with HostileEndpoint(busy_once) as first, HostileEndpoint(busy_once) as second:
        spec = ModelSpec(base_url=[first.url, second.url], model="sim-embedder", timeout_s=5, max_retries=2)
        embedder = Embedder(spec, endpoints=Endpoints(4), sim_url=None, log=logged.append)

        async def embed_side_by_side():
            try:
                return await asyncio.gather(*(embedder.embed([f"topic {i}", f"other {i}"], {"run": "r"})
                                              for i in range(4)))
            finally:
                await embedder.close()

        batches = asyncio.run(embed_side_by_side())
        asked = [r for endpoint in (first, second) for r in endpoint.requests if r["path"].endswith("/embeddings")]
    assert all(vectors.shape[0] == 2 for vectors in batches)
    # The four calls run side by side, so the refused attempt's row need not be logged first.
    assert sorted(row["outcome"] for row in logged) == ["http_429"] + ["ok"] * 4
    assert {row["base_url"] for row in logged} == {first.url, second.url}, "both replicas serve"
    assert all(row["role"] == "embedder" and row["scope"] == "topic dedup" and row["run"] == "r" for row in logged)
    assert len(asked) == 5 and all(r["body"]["model"] == "sim-embedder" for r in asked)
