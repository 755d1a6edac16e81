"""The simulator is an honest OpenAI-compatible peer: real problems, recomputed checks, reproducible replies."""

import asyncio
import json

import httpx
import pytest

from chimera.config import SimSettings
from chimera.models.reply_schemas import CriticVerdict, DraftedProblem, response_format_for
from chimera.sim import problems
from chimera.sim.oracle import Oracle


@pytest.mark.parametrize("kind", problems.KINDS, ids=lambda k: k.name)
def test_every_kind_solves_its_own_statements(kind):
    import random

    for seed in range(20):
        text = kind.make(random.Random(seed))
        assert problems.identify(text) is not None, text
        assert problems.identify(text)[0] is kind
        assert problems.identify(problems.make_ill_posed(text)) is None, "an ill-posed statement must not solve"


def test_known_answers():
    assert problems.identify("How many edges does the complete graph on 10 vertices have?")[1] == "45"
    assert problems.identify("Compute the remainder when 2^10 is divided by 1000.")[1] == "24"
    assert problems.identify("Solve for the real number x: 4x + 2 = 5. Give x")[1] == "3/4"


def post(url, body):
    return httpx.post(f"{url}/chat/completions", json=body, timeout=10)


def draft_request(subject="Mathematics", earlier="(none)"):
    return {"model": "m", "messages": [
        {"role": "user", "content": f"Subject: {subject}\nTopic: Graph theory\n\nProblems already written:\n{earlier}"}],
        "response_format": response_format_for(DraftedProblem)}


def test_replies_are_a_pure_function_of_seed_and_request(simulator):
    url, _ = simulator(SimSettings(), seed=4)
    first, again = post(url, draft_request()).json(), post(url, draft_request()).json()
    assert first["choices"] == again["choices"]
    other_url, _ = simulator(SimSettings(), seed=5)
    assert post(other_url, draft_request()).json()["choices"] != first["choices"]


def test_critics_check_by_recomputing(simulator):
    url, _ = simulator(SimSettings(critic_error_rate=0, critic_revise_rate=0))

    def judge(answer):
        content = ("Subject: Math\nTopic: Graphs\n\n<problem>\nHow many edges does the complete graph on 10 "
                   f"vertices have?\n</problem>\nReference answer: {answer}\n")
        body = {"model": "m", "messages": [{"role": "user", "content": content}],
                "response_format": response_format_for(CriticVerdict)}
        return CriticVerdict.model_validate_json(post(url, body).json()["choices"][0]["message"]["content"])

    assert judge("45").verdict == "accept"
    wrong = judge("46")
    assert wrong.verdict == "revise" and wrong.own_answer == "45" and not wrong.agrees_with_reference


def test_faults_are_injected_per_attempt_and_a_retry_can_succeed(simulator):
    url, sim = simulator(SimSettings(fault_5xx=0.5), seed=2)
    statuses = [post(url, draft_request(earlier=str(i))).status_code for i in range(40)]
    assert 500 in statuses and 200 in statuses
    retried = [post(url, draft_request(earlier="0")).status_code for _ in range(10)]
    assert 200 in retried


def test_capacity_limit_answers_429_with_retry_after(simulator):
    url, _ = simulator(SimSettings(capacity=2, latency_s=0.3))

    async def burst():
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(*[client.post(f"{url}/chat/completions", json=draft_request(earlier=str(i)))
                                          for i in range(6)])

    replies = asyncio.run(burst())
    limited = [r for r in replies if r.status_code == 429]
    assert len(limited) == 4 and all(r.headers["retry-after"] == "1" for r in limited)


def test_bad_requests_get_openai_style_errors(simulator):
    url, _ = simulator()
    reply = httpx.post(f"{url}/chat/completions", content=b"{not json", timeout=10)
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    assert post(url, {"model": "m", "messages": []}).status_code == 400


def test_models_and_embeddings_endpoints(simulator):
    url, _ = simulator()
    assert "sim-solver" in [m["id"] for m in httpx.get(f"{url}/models", timeout=10).json()["data"]]
    data = httpx.post(f"{url}/embeddings", json={"model": "e", "input": ["a graph", "a graph", "enzyme"]},
                      timeout=10).json()["data"]
    a, b, c = (d["embedding"] for d in data)
    dot = lambda x, y: sum(i * j for i, j in zip(x, y))  # noqa: E731
    assert dot(a, b) == pytest.approx(1.0) and dot(a, c) < 0.5


def test_a_structured_reply_carries_the_schema_named_task():
    sim = Oracle(SimSettings(), seed=0)
    reply = sim.respond(draft_request())
    drafted = DraftedProblem.model_validate_json(reply["choices"][0]["message"]["content"])
    assert drafted.problem and drafted.answer
    assert json.loads(reply["choices"][0]["message"]["content"]).keys() == {"problem", "answer"}
