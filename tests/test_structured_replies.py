"""Structured replies that fit: schemas carry limits, a cut reply is asked again with a larger limit,
an unparseable one gets a repair turn with the parse error, and the simulator can play a model that
ignores brevity."""

import asyncio
import json
import logging

import pytest
from scripted import cut, scripted

from chimera.agents import critic, drafter, expander
from chimera.agents.base import grown_limit
from chimera.config import ModelSpec, SimSettings
from chimera.errors import ReplyError
from chimera.models.reply_schemas import CriticVerdict, TopicList, response_format_for
from chimera.sim.oracle import Oracle


def with_spec(client, **spec):
    client.spec = ModelSpec(provider="sim", **spec)
    return client


def bodies(client):
    return client.replicas[0].transport.bodies


def test_a_cut_reply_is_asked_again_with_twice_the_limit_then_stops_at_the_cap(caplog):
    client = with_spec(scripted("expander", *[cut('{"topics": ["Rings", "Fie')] * 3), max_tokens=100, max_tokens_cap=300)
    with caplog.at_level(logging.WARNING, logger="chimera.replies"), pytest.raises(ReplyError) as error:
        asyncio.run(expander.expand(client, subject="Mathematics", subfield="Algebra", count=3, existing=[],
                                    retries=5))
    assert [b["max_completion_tokens"] for b in bodies(client)] == [100, 200, 300]
    assert "at max_tokens_cap 300" in str(error.value), "no identical resend once the cap is reached"
    assert [r.getMessage() for r in caplog.records] == [
        "expander reply cut at 100 tokens; asking again with max_tokens 200",
        "expander reply cut at 200 tokens; asking again with max_tokens 300"]


def test_a_cut_reply_with_no_limit_set_is_asked_again_with_twice_what_the_server_gave():
    long_cut = cut('{"topics": [' + '"Topic", ' * 60)
    client = scripted("expander", long_cut, {"topics": ["Rings", "Fields"]})
    names = asyncio.run(expander.expand(client, subject="M", subfield="Algebra", count=2, existing=[], retries=2))
    assert names == ["Rings", "Fields"]
    first, second = bodies(client)
    assert "max_completion_tokens" not in first
    assert second["max_completion_tokens"] == 2 * long_cut["usage"]["completion_tokens"]
    assert second["messages"] == first["messages"], "a cut reply needs room, not a repair turn"


@pytest.mark.parametrize(("current", "used", "cap", "grown"), [
    (100, 100, 1000, 200), (600, 600, 1000, 1000), (1000, 1000, 1000, None), (None, 37, 32768, 74)])
def test_the_grown_limit_doubles_up_to_the_cap(current, used, cap, grown):
    assert grown_limit(current, used, cap) == grown


def test_an_unparseable_reply_is_asked_again_with_the_parse_error_shown():
    bad = 'Here is the problem: {"problem": "A fair coin is tossed twice", "answer": 0.25'
    client = scripted("drafter", bad, {"problem": "A fair coin is tossed twice. P(two heads)?", "answer": "1/4"})
    drafted = asyncio.run(drafter.draft(client, subject="Mathematics", topic="Probability", earlier=[], retries=2))
    assert drafted.answer == "1/4"
    first, second = bodies(client)
    assert second["messages"][: len(first["messages"])] == first["messages"]
    echoed, repair = second["messages"][len(first["messages"]):]
    assert echoed == {"role": "assistant", "content": bad}
    assert repair["role"] == "user" and "could not be used: not valid JSON" in repair["content"]


def test_a_second_unusable_reply_repairs_from_the_original_request_not_a_growing_chat():
    client = scripted("critic0", "no json here", "still none", {"verdict": "accept", "reasons": "fine",
                                                                 "own_answer": "2", "agrees_with_reference": True})
    asyncio.run(critic.critique(client, subject="M", topic="T", problem="1+1?", answer="2", retries=3))
    lengths = [len(b["messages"]) for b in bodies(client)]
    assert lengths[1] == lengths[2] == lengths[0] + 2


def test_reply_schemas_ask_for_as_many_names_as_wanted_and_short_free_text():
    client = scripted("expander", {"topics": ["Rings"]})
    asyncio.run(expander.expand(client, subject="M", subfield="Algebra", count=7, existing=[], retries=0))
    topics = bodies(client)[0]["response_format"]["json_schema"]["schema"]["properties"]["topics"]
    assert topics["maxItems"] == 7 and topics["items"] == {"type": "string", "maxLength": 120}
    verdict = response_format_for(CriticVerdict)["json_schema"]["schema"]["properties"]
    assert verdict["reasons"]["maxLength"] == 1200 and verdict["own_answer"]["maxLength"] == 400
    assert verdict["verdict"]["enum"] == ["accept", "revise", "reject"]


@pytest.mark.parametrize("limits", ["items", "none"])
def test_an_endpoint_can_refuse_length_limits(limits):
    client = with_spec(scripted("expander", {"topics": ["Rings"]}), schema_limits=limits)
    asyncio.run(expander.expand(client, subject="M", subfield="Algebra", count=7, existing=[], retries=0))
    sent = json.dumps(bodies(client)[0]["response_format"])
    assert "maxLength" not in sent
    assert ('"maxItems": 7' in sent) == (limits == "items")


def sim_reply(schema_format, user):
    sim = Oracle(SimSettings(verbose_rate=1.0), seed=1)
    body = {"model": "m", "messages": [{"role": "user", "content": user}], "response_format": schema_format}
    return json.loads(sim.respond(body)["choices"][0]["message"]["content"])


def test_the_simulator_can_ignore_brevity_unless_the_schema_holds_it():
    user = "Subject: Physics\nSubfield: Optics\nNumber of topics: 4\n\nTopics already listed:\n(none)"
    loose = sim_reply(response_format_for(TopicList, 4, "none"), user)
    held = sim_reply(response_format_for(TopicList, 4, "all"), user)
    assert len(loose["topics"]) > 4 and len(held["topics"]) == 4
    critic_user = "Subject: M\nTopic: T\n\n<problem>\nWhat is 2 + 3?\n</problem>\nReference answer: 5"
    rambling = sim_reply(response_format_for(CriticVerdict, None, "none"), critic_user)
    brief = sim_reply(response_format_for(CriticVerdict), critic_user)
    assert len(rambling["reasons"]) > 1200 >= len(brief["reasons"])
    assert brief["own_answer"] == rambling["own_answer"], "brevity never changes the answer"
