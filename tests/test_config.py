"""The config is validated once, at load, and a bad one is named in one line."""

import pytest
from helpers import chimera, write_config

from chimera.config import load_config, parse_config
from chimera.errors import ConfigError

BASE = {"run": {"name": "r", "db": "r.db"}, "subjects": [{"name": "Math", "topics": 3}]}


def test_no_models_section_means_every_role_is_simulated():
    config = parse_config(BASE)
    assert {spec.provider for spec in config.models.all_roles().values()} == {"sim"}
    assert list(config.models.all_roles()) == ["expander", "drafter", "solver", "labeler", "critic0", "critic1"]


def test_default_fills_unset_fields_and_roles_override_it():
    models = {
        "default": {"base_url": "http://h/v1", "model": "m", "timeout_s": 30},
        "solver": {"model": "qwen", "temperature": 0.6, "extra_body": {"top_k": 20}},
        "critics": [{}, {"model": "o4-mini"}],
    }
    config = parse_config({**BASE, "models": models})
    assert config.models.solver.model == "qwen" and config.models.solver.timeout_s == 30
    assert config.models.solver.extra_body == {"top_k": 20}
    assert config.models.critics[1].model == "o4-mini" and config.models.critics[0].model == "m"
    assert config.models.expander.base_url == "http://h/v1"


def test_a_timeout_is_always_set():
    config = parse_config({**BASE, "models": {"default": {"base_url": "http://h/v1", "model": "m"}}})
    assert all(spec.timeout_s > 0 for spec in config.models.all_roles().values())


@pytest.mark.parametrize("patch, named", [
    ({"run": {"name": "r", "db": "r.db", "concurency": 3}}, "run.concurency: Extra inputs are not permitted"),
    ({"run": {"name": "r", "db": "r.db", "concurrency": "many"}}, "run.concurrency:"),
    ({"problems_per_topic": 0}, "problems_per_topic:"),
    ({"subjects": [{"name": "Math", "topics": []}]}, "subjects.0.topics"),
    ({"subjects": [{"name": "Math", "topics": 4, "subfields": ["Algebra", " "]}]}, "subjects.0.subfields"),
    ({"subjects": [{"name": "Math", "topics": ["--"]}]}, "a name needs a letter or digit: '--'"),
    ({"models": {"default": {"base_url": "http://h/v1", "model": "m"}, "critics": [{}]}}, "models.critics:"),
    ({"models": {"solver": {"base_url": "http://h/v1"}}}, "models.expander:"),
    ({"models": {"default": {"base_url": "http://h/v1", "model": "m"}, "solver": {"temprature": 1}}},
     "models.solver.temprature"),
])
def test_a_bad_config_names_the_bad_key(patch, named):
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, **patch})
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_and_bad_yaml_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_reports_a_bad_key_in_one_line_with_exit_code_2(tmp_path):
    path = write_config(tmp_path, problems_per_topic="two")
    result = chimera("run", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "problems_per_topic" in lines[0], result.stderr


def test_review_policy_is_one_name_or_a_list_and_none_stands_alone():
    from chimera.config import parse_config

    base = {"run": {"name": "r", "db": "r.db"}, "subjects": [{"name": "Math", "topics": 1}]}
    assert parse_config(base).review.active == frozenset()
    assert parse_config({**base, "review": {"policy": "all"}}).review.active == {"all"}
    assert parse_config({**base, "review": {"policy": ["sample", "rejected"], "rate": 0.2}}).review.active == {
        "sample", "rejected"}
    for bad, message in [({"policy": ["none", "all"]}, "review.policy: 'none' cannot be combined"),
                         ({"policy": "everything"}, "review.policy.0: Input should be"),
                         ({"rate": 2}, "review.rate: Input should be less than or equal to 1")]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            parse_config({**base, "review": bad})


def test_set_changes_a_value_of_the_config_for_one_invocation(tmp_path):
    path = write_config(tmp_path, models={"default": {"provider": "sim"}})
    config = load_config(path, ["run.concurrency=64", "models.solver.max_tokens=65536", "problems_per_topic=3",
                                "subjects.1.topics=[Equilibria, Kinetics]", "run.name=renamed"])
    assert config.run.concurrency == 64 and config.problems_per_topic == 3 and config.run.name == "renamed"
    assert config.models.solver.max_tokens == 65536
    assert config.subjects[1].topics == ["Equilibria", "Kinetics"]
    assert load_config(path).run.concurrency == 8  # the file is untouched


@pytest.mark.parametrize("setting, said", [
    ("run.concurency=3", "run.concurency"),
    ("subjects.7.name=x", "subjects is a list of 2"),
    ("problems_per_topic", "expected key.path=value"),
    ("run.concurrency.deep=1", "run.concurrency is a value"),
    ("run.concurrency=[1", "not valid YAML"),
])
def test_a_bad_set_is_one_line_naming_it(tmp_path, setting, said):
    result = chimera("run", str(write_config(tmp_path)), "--set", setting)
    assert result.returncode == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_config_field_whose_name_looks_like_a_secret_is_stored_as_it_is():
    """The stored config scrubs values under credential-like names; a field of our own with such a name (a token
    count) must be known not to be one, or a resumed run would read "[redacted]" for it."""
    from pydantic import BaseModel

    from chimera.config import _NOT_SECRETS, CREDENTIAL_NAME, Config

    def fields(model: type[BaseModel]) -> set[str]:
        names = set()
        for name, info in model.model_fields.items():
            names.add(name)
            for kind in (info.annotation, *getattr(info.annotation, "__args__", ())):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    names |= fields(kind)
                for inner in getattr(kind, "__args__", ()):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        names |= fields(inner)
        return names

    looking_secret = {name for name in fields(Config) if CREDENTIAL_NAME.search(name)}
    assert "max_total_tokens" in looking_secret  # the walk reaches the roles' fields
    assert looking_secret <= _NOT_SECRETS | {"headers", "headers_env", "api_key_env"}


def test_a_config_with_token_caps_and_gpu_settings_is_stored_and_read_back_unchanged(tmp_path):
    from chimera.config import parse_config

    config = parse_config({"run": {"name": "t", "db": str(tmp_path / "t.db"), "max_total_tokens": 5000},
                           "subjects": [{"name": "Mathematics", "topics": 1}],
                           "models": {"default": {"provider": "sim", "max_total_tokens": 900}},
                           "sim": {"gpu_kv_tokens": 4096, "gpu_token_s": 0.001}})
    again = parse_config(config.redacted())
    assert again.run.max_total_tokens == 5000 and again.models.drafter.max_total_tokens == 900
    assert again.sim.gpu_kv_tokens == 4096 and again.sim.gpu_token_s == 0.001


def test_no_test_can_reach_beyond_this_machine_or_spend_a_real_key():
    import os
    import socket

    assert not [name for name in os.environ if name.endswith("_API_KEY")]
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="only this machine"):
        sock.connect(("93.184.215.14", 443))
