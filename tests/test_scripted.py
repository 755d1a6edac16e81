"""The scripted endpoint tests lean on: each reply answers once, and a call past the script ends the test."""

import asyncio

import pytest
from scripted import ScriptSpent, scripted, seen

from chimera.agents import expander


def test_a_scripted_client_answers_its_replies_in_order_once_each():
    client = scripted("expander", {"topics": ["Rings"]}, {"topics": ["Fields"]})
    first, second = (asyncio.run(expander.expand(client, subject="M", subfield="Algebra", count=1, existing=[],
                                                 retries=0)) for _ in range(2))
    assert (first, second) == (["Rings"], ["Fields"])
    assert len(seen(client)) == 2


def test_a_call_after_the_script_is_spent_ends_the_test_naming_how_many_replies_there_were():
    client = scripted("expander", {"topics": ["Rings"]})
    asyncio.run(expander.expand(client, subject="M", subfield="Algebra", count=1, existing=[], retries=0))
    with pytest.raises(ScriptSpent, match=r"scripted expander: call 2 arrived, but the script has only 1 reply"):
        # the real client turns an ordinary exception into CallFailed; this one comes through as itself
        asyncio.run(expander.expand(client, subject="M", subfield="Algebra", count=1, existing=[], retries=3))
    assert len(seen(client)) == 1, "the call past the script is not recorded as answered"
