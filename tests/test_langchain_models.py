"""Any LangChain chat model as a role (`provider: langchain`): the same door as every call (budget, retries,
logging, kept replies, the reasoning split), structured roles through the model's own structured output."""

import os
import sqlite3

import pytest
from helpers import chimera, write_config
from hostile import HostileEndpoint

from chimera.config import parse_config
from chimera.errors import ConfigError

pytest.importorskip("langchain_openai")


def chat_openai(url, model):
    return {"provider": "langchain", "class": "langchain_openai.ChatOpenAI",
            "kwargs": {"base_url": url, "model": model}, "api_key_env": "CHIMERA_LC_KEY", "max_retries": 0}


def test_a_run_on_langchain_chat_openai_against_the_simulator_over_http(tmp_path):
    with HostileEndpoint() as endpoint:
        role = lambda **extra: {**chat_openai(endpoint.url, "sim-any"), **extra}  # noqa: E731 - fresh dicts
        models = {"default": role(temperature=0.4), "critics": [role(), role()], "solver": role(max_tokens=6000)}
        config = write_config(tmp_path, models=models, sim={"reasoning_shape": "think"},
                              subjects=[{"name": "Mathematics", "topics": 2}], problems_per_topic=2)
        result = chimera("run", str(config), "--quiet", env={**os.environ, "CHIMERA_LC_KEY": "lc-key-0c9d"})
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(tmp_path / "t.db")
    roles = {row[0] for row in db.execute("select distinct role from llm_calls")}
    assert {"expander", "drafter", "critic0", "critic1", "solver"} <= roles, "every call is a row of llm_calls"
    reasoning = db.execute("select count(*) from samples where length(reasoning) > 100").fetchone()[0]
    assert reasoning > 0, "the thinking is split from the answer"
    structured = [r["body"] for r in endpoint.requests if (r["body"].get("response_format") or {}).get("type")]
    assert structured and all(b["response_format"]["json_schema"]["name"] for b in structured)
    assert any(b.get("temperature") == 0.4 for b in structured), "the role's sampling reaches the request"
    solve = [r for r in endpoint.requests if "response_format" not in r["body"] and "messages" in r["body"]]
    assert solve and all(r["body"]["max_completion_tokens"] == 6000 for r in solve)
    assert all(r["headers"].get("Authorization") == "Bearer lc-key-0c9d" for r in endpoint.requests)
    assert "lc-key-0c9d" not in db.execute("select config from runs").fetchone()[0]


def test_thinking_blocks_and_cut_replies_read_as_the_fast_path_reads_them():
    from langchain_core.messages import AIMessage

    from chimera.models.langchain_transport import completion
    from chimera.models.llm import reply_from_completion

    message = AIMessage(content=[{"type": "thinking", "thinking": "Try n = 3 first."},
                                 {"type": "text", "text": "So \\boxed{9}."}],
                        response_metadata={"stop_reason": "max_tokens", "model": "claude-x"},
                        usage_metadata={"input_tokens": 12, "output_tokens": 40, "total_tokens": 52,
                                        "output_token_details": {"reasoning": 30}})
    reply = reply_from_completion(completion(message, "So \\boxed{9}.", "m"), "m")
    assert (reply.reasoning, reply.content, reply.truncated) == ("Try n = 3 first.", "So \\boxed{9}.", True)
    assert (reply.tokens_in, reply.tokens_out, reply.reasoning_tokens, reply.model) == (12, 40, 30, "claude-x")


@pytest.mark.parametrize(("spec", "complaint"), [
    ({"provider": "langchain"}, "class is required"),
    ({"provider": "langchain", "class": "langchain_openai.ChatOpenAI", "kwargs": {"api_key": "k"}},
     "kwargs.api_key would be stored"),
])
def test_a_langchain_role_is_checked_at_the_door(spec, complaint):
    with pytest.raises(ConfigError) as error:
        parse_config({"run": {"name": "r", "db": "r.db"}, "subjects": [{"name": "M", "topics": 1}],
                      "models": {"default": spec}})
    assert complaint in str(error.value)


def test_a_class_that_cannot_be_imported_is_one_line(tmp_path):
    models = {"default": {"provider": "langchain", "class": "langchain_nowhere.ChatNothing"}}
    result = chimera("run", str(write_config(tmp_path, models=models)), "--quiet")
    assert result.returncode == 2 and "class langchain_nowhere.ChatNothing: cannot import langchain_nowhere" in \
        result.stderr
