"""The product against a live vLLM server: requests it accepts, replies we read, runs that survive it."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest
import yaml
from helpers import chimera
from vllm_server import SERVED

from chimera.agents import critic, drafter, expander, labeler, solver
from chimera.config import ModelSpec
from chimera.models.dispatch import Endpoints
from chimera.models.llm import build_client
from chimera.models.reply_schemas import CriticVerdict, DraftedProblem, LabelVerdict, TopicList, response_format_for

# One worker holds the CPU vLLM server when the suite runs on several (pytest-xdist, --dist loadgroup).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vllm")]
THINKING_OFF = {"chat_template_kwargs": {"enable_thinking": False}}


def client(url: str, role: str = "solver", **fields):
    spec = ModelSpec(base_url=url, model=SERVED, timeout_s=120, max_retries=1, **fields)
    return build_client(role, spec, endpoints=Endpoints(64), sim_url=None, log=lambda call: None)


def run_config(folder, url, name="v"):
    structured = {"max_tokens": 200, "extra_body": THINKING_OFF}
    config = {
        "run": {"name": name, "db": str(folder / f"{name}.db"), "seed": 0, "concurrency": 16},
        "subjects": [{"name": "Mathematics", "topics": 2, "subfields": 1}, {"name": "Physics", "topics": ["Optics"]}],
        "problems_per_topic": 2,
        # a short retry window: the test that stops the server wants its one line now, not after a minute
        "models": {"default": {"base_url": url, "model": SERVED, "timeout_s": 120, "retry_window_s": 2, **structured},
                   "expander": {}, "drafter": {}, "critics": [{}, {}], "labeler": {},
                   "solver": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 300, "extra_body": {"top_k": 20}}},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_every_topic_has_its_slots(db: sqlite3.Connection) -> None:
    """Each topic of a `run_config` run ended with a problem row in both its slots. Stage 1 on the tiny random
    model may name fewer Mathematics topics than asked (on a shared server, other requests' batches change its
    near-tied tokens), so the count of topics is read, not assumed; Optics is named in the config."""
    topics = db.execute("select count(*) from topics where status = 'done'").fetchone()[0]
    assert topics >= 2
    assert db.execute("select count(*) from problems").fetchone()[0] == 2 * topics


def assert_honest_exit(result, db: sqlite3.Connection) -> None:
    """The tiny random model may leave nothing usable (no problem accepted, or every sample cut): then the run
    exits 1 and its last line says which."""
    usable = db.execute("select count(*) from samples s join problems p on p.id = s.problem_id "
                        "where p.status = 'accepted' and coalesce(s.truncated, 0) = 0").fetchone()[0]
    if usable:
        assert result.returncode == 0, result.stderr
    else:
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 1 and last.startswith(("chimera: 0 accepted", "chimera: no usable samples")), \
            result.stderr


def test_the_solver_reads_reasoning_usage_and_truncation(vllm_url):
    async def go():
        solve = client(vllm_url, temperature=0.6, top_p=0.95, max_tokens=200, extra_body={"top_k": 20})
        full = await solver.solve(solve, problem="How many edges does the complete graph on 10 vertices have?")
        cut = await solver.solve(solve, problem="How many edges does the complete graph on 10 vertices have?",
                                 max_tokens=8)
        await solve.close()
        return full, cut

    full, cut = asyncio.run(go())
    assert full.tokens_in > 0 and full.tokens_out > 0
    assert full.reasoning or full.content, "the reply's text landed somewhere we read"
    assert "</think>" not in full.content and "<think>" not in full.reasoning
    assert cut.truncated and cut.finish_reason == "length" and cut.tokens_out == 8


def test_32_concurrent_critic_calls_parse_into_the_verdict(vllm_url):
    async def go():
        judge = client(vllm_url, role="critic0", max_tokens=400, extra_body=THINKING_OFF)
        verdicts = await asyncio.gather(*[
            critic.critique(judge, subject="Mathematics", topic="Graphs", answer="45", retries=2,
                            problem=f"How many edges does the complete graph on {10 + i} vertices have?")
            for i in range(32)])
        await judge.close()
        return verdicts

    verdicts = asyncio.run(go())
    assert len(verdicts) == 32 and all(isinstance(v, CriticVerdict) for v in verdicts)


def test_every_request_the_product_builds_is_accepted(vllm_url):
    """Each role's exact body, as the product sends it, gets a 200 (no unknown or disallowed field)."""
    structured = dict(max_tokens=60, extra_body=THINKING_OFF, temperature=0.7, top_p=0.9)
    bodies = {
        "expander": client(vllm_url, "expander", **structured).request_body(
            expander.topic_messages("Physics", "Optics", 3, []), response_format=response_format_for(TopicList)),
        "drafter": client(vllm_url, "drafter", **structured).request_body(
            drafter.draft_messages("Physics", "Optics", []), response_format=response_format_for(DraftedProblem)),
        "critic": client(vllm_url, "critic0", **structured).request_body(
            critic.messages("Physics", "Optics", "A lens ...", "2"), response_format=response_format_for(CriticVerdict)),
        "labeler": client(vllm_url, "labeler", **structured).request_body(
            labeler.messages("A lens ...", "2", "so \\boxed{2}"), response_format=response_format_for(LabelVerdict)),
        "solver": client(vllm_url, "solver", temperature=0.6, top_p=0.95, max_tokens=60,
                         extra_body={"top_k": 20, "min_p": 0}).request_body(solver.messages("A lens ..."), seed=3),
    }
    for role, body in bodies.items():
        reply = httpx.post(f"{vllm_url}/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200, (role, reply.text[:300])


def test_a_run_against_vllm_ends_every_slot_with_a_reason(vllm_url, tmp_path):
    result = chimera("run", str(run_config(tmp_path, vllm_url)), "--quiet", timeout=600)
    db = sqlite3.connect(tmp_path / "v.db")
    assert_honest_exit(result, db)
    statuses = db.execute("select status, rejection_reason from problems").fetchall()
    assert_every_topic_has_its_slots(db)
    assert all(status == "accepted" or (status in ("rejected", "failed") and reason) for status, reason in statuses)
    status = chimera("status", str(tmp_path / "v.db"))
    for _, reason in statuses:
        if reason:
            assert reason in status.stdout


def test_killing_the_server_names_the_endpoint_and_a_rerun_resumes(vllm_server, vllm_url, tmp_path):
    config = run_config(tmp_path, vllm_url, name="k")
    first = chimera("run", str(config), "--topics-only", "--quiet", timeout=600)
    assert first.returncode == 0, first.stderr
    vllm_server.stop()
    down = chimera("run", str(config), "--quiet", timeout=600)
    assert down.returncode == 1
    assert down.stderr.strip().splitlines()[-1] == (
        f"chimera: error: drafter endpoint {vllm_url}: cannot connect (is the server running?)")
    vllm_server.start()  # on the same port; the tests after this one go on using it
    again = chimera("run", str(config), "--quiet", timeout=600)
    db = sqlite3.connect(tmp_path / "k.db")
    assert_honest_exit(again, db)
    assert db.execute("select count(*) from problems where status = 'pending'").fetchone()[0] == 0
    assert_every_topic_has_its_slots(db)
