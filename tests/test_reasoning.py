"""Whatever shape the server uses, thinking lands in `reasoning` and only the answer in `solution`."""

import asyncio

import pytest

from chimera.agents import solver
from chimera.config import ModelSpec, SimSettings
from chimera.models.dispatch import Endpoints
from chimera.models.llm import build_client
from chimera.models.reasoning import split_reasoning

ANSWER = "So the answer is \\boxed{42}."


@pytest.mark.parametrize("content, field, expected", [
    (ANSWER, "I think hard.", ("I think hard.", ANSWER)),
    (f"<think>\nI think hard.\n</think>\n\n{ANSWER}", None, ("I think hard.", ANSWER)),
    (f"I think hard.\n</think>\n\n{ANSWER}", None, ("I think hard.", ANSWER)),
    (ANSWER, None, ("", ANSWER)),
    ("<think>cut while thinking", None, ("cut while thinking", "")),
    (f"</think>{ANSWER}", "from the parser", ("from the parser", ANSWER)),
])
def test_split_reasoning(content, field, expected):
    assert tuple(split_reasoning(content, field)) == expected


@pytest.mark.parametrize("shape", ["reasoning_content", "reasoning", "think", "close_think"])
def test_each_server_shape_is_captured_over_http(simulator, shape):
    url, _ = simulator(SimSettings(reasoning_shape=shape, trajectory_words=50, trajectory_jitter=0,
                                   solver_correct_rate=1.0))

    async def go():
        client = build_client("solver", ModelSpec(provider="openai", base_url=url, model="sim-solver"),
                              endpoints=Endpoints(4), sim_url=None, log=lambda call: None)
        return await solver.solve(client, problem="How many edges does the complete graph on 10 vertices have?")

    reply = asyncio.run(go())
    assert reply.reasoning.startswith("Step 1.") and len(reply.reasoning.split()) == 50
    assert "think>" not in reply.reasoning and "think>" not in reply.content
    assert reply.content.endswith("\\boxed{45}.")
    assert "Step 1." not in reply.content
    assert not reply.truncated and reply.tokens_out > 0


def test_a_reply_cut_at_max_tokens_is_marked_truncated(simulator):
    url, _ = simulator(SimSettings(reasoning_shape="reasoning", trajectory_words=400))

    async def go():
        spec = ModelSpec(provider="openai", base_url=url, model="sim-solver", max_tokens=50)
        client = build_client("solver", spec, endpoints=Endpoints(4), sim_url=None, log=lambda call: None)
        return await solver.solve(client, problem="How many edges does the complete graph on 10 vertices have?")

    reply = asyncio.run(go())
    assert reply.truncated and reply.finish_reason == "length"
    assert "\\boxed" not in reply.content
