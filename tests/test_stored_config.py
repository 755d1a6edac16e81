"""A run's stored config is read back as the typed Config (`Store.config_of`), and every report reads it there."""

import contextlib
import json

import pytest
import yaml
from helpers import chimera

from chimera.config import REDACTED, parse_config
from chimera.engine.status import status_report
from chimera.errors import StoredConfigError
from chimera.products.export import ExportOptions
from chimera.products.hf_export import CONFIGS, dataset_card
from chimera.products.yield_report import yield_by
from chimera.store import Store


def priced(model: str, price_in: float, price_out: float) -> dict:
    return {"provider": "openai", "base_url": "http://10.0.0.7:8000/v1", "model": model, "api_key_env": "KEY",
            "price_per_mtok_in": price_in, "price_per_mtok_out": price_out}


def a_config(db: str) -> dict:
    return {
        "run": {"name": "r", "db": db, "concurrency": 7},
        "subjects": [{"name": "Math", "topics": ["Rings", "Groups"]}],
        "models": {"default": {"provider": "sim"}, "critics": [{}, priced("critic-b", 2.0, 4.0)],
                   "labeler": [{}, priced("judge-b", 1.0, 3.0)], "solver": priced("solver-m", 1.0, 10.0)},
        "taxonomy": {"lexical_threshold": 0.7},
        "dataset": {"license": "cc-by-4.0", "pretty_name": "Hard problems", "language": ["en", "de"]},
    }


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "r.db")
    yield store
    store.close()


def store_raw(store: Store, run: str, raw: dict | str) -> None:
    store.save_run(run, {})
    store.conn.execute("update runs set config = ? where name = ?", [raw if isinstance(raw, str) else json.dumps(raw), run])
    store.conn.commit()


def test_a_stored_config_reads_back_as_the_same_config(store, tmp_path):
    config = parse_config(a_config(str(tmp_path / "r.db")))
    store.save_run("r", config.redacted())
    assert store.config_of("r") == config


def test_a_run_with_no_stored_config_and_an_unknown_run_have_none(store):
    store.save_run("imported", {})  # what a taxonomy import stores before `chimera run` stores the config
    assert store.config_of("imported") is None and store.config_of("nowhere") is None


def test_a_config_stored_before_a_section_existed_reads_with_its_defaults(store, tmp_path):
    old = parse_config(a_config(str(tmp_path / "r.db"))).redacted()
    del old["dataset"], old["labels"], old["models"]["solver"]["retry_window_s"]
    store_raw(store, "r", old)
    config = store.config_of("r")
    assert config is not None
    assert config.dataset.license is None and config.labels.audit_rate == 0.05
    assert config.models.solver.retry_window_s == 60.0 and config.models.solver.model == "solver-m"


def test_redacted_values_and_fields_this_version_does_not_know_are_left_out(store, tmp_path):
    raw = parse_config(a_config(str(tmp_path / "r.db"))).redacted()
    raw["models"]["solver"]["headers"] = {"Authorization": REDACTED, "X-Team": "blue"}
    raw["models"]["solver"]["dataset_token"] = "leak"
    raw["models"]["labeler"][1]["retired_knob"] = 3
    raw["a_later_section"] = {"x": 1}
    store_raw(store, "r", raw)
    config = store.config_of("r")
    assert config is not None
    assert config.models.solver.headers == {"X-Team": "blue"}
    assert "dataset_token" not in config.models.solver.model_dump() and config.models.judges[1].model == "judge-b"


@pytest.mark.parametrize("raw, said", [
    ({"run": {"name": "r", "db": "r.db", "concurrency": 0}, "subjects": [{"name": "M", "topics": 1}]},
     "run.concurrency: Input should be greater than or equal to 1"),
    ("{not json", "is not JSON"),
    ("[1, 2]", "is not a mapping"),
])
def test_a_stored_config_that_cannot_be_read_is_one_line_naming_the_run(store, raw, said):
    store_raw(store, "broken", raw)
    with pytest.raises(StoredConfigError) as error:
        store.config_of("broken")
    message = str(error.value)
    assert message.startswith("run 'broken': ") and said in message and "\n" not in message


def test_status_on_a_database_whose_stored_config_cannot_be_read_says_so_in_one_line(tmp_path):
    with contextlib.closing(Store(tmp_path / "r.db")) as store:
        store_raw(store, "broken", {"run": {"name": "broken"}})
    result = chimera("status", str(tmp_path / "r.db"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "run 'broken'" in result.stderr and "run.db" in result.stderr


def test_the_card_takes_its_title_license_and_every_role_s_model_from_the_typed_config(store, tmp_path):
    store.save_run("r", parse_config(a_config(str(tmp_path / "r.db"))).redacted())
    card = dataset_card("r", dict.fromkeys(CONFIGS, 0), "", {"accepted_by_subject": {}, "share_by_subject": {}},
                        store.config_of("r"), None, None, ExportOptions())
    front = yaml.safe_load(card.split("---")[1])
    assert (front["license"], front["pretty_name"], front["language"]) == ("cc-by-4.0", "Hard problems", ["en", "de"])
    for row in ("| critic1 | critic-b |", "| labeler2 | judge-b |", "| solver | solver-m |",
                "| expander | simulator (sim-expander) |"):
        assert row in card, row
    shown = yaml.safe_load(card.split("```yaml")[1].split("```")[0])
    assert shown["taxonomy"]["lexical_threshold"] == 0.7 and shown["run"]["concurrency"] == 7
    assert "db" not in shown["run"] and "10.0.0.7" not in card and "KEY" not in card


def test_costs_in_status_and_the_yield_report_follow_each_role_s_price_in_the_typed_config(store, tmp_path):
    store.save_run("r", parse_config(a_config(str(tmp_path / "r.db"))).redacted())
    for role in ("critic1", "labeler2", "solver"):
        store.log_call({"run": "r", "role": role, "model": "m", "tokens_in": 1_000_000, "tokens_out": 1_000_000,
                        "outcome": "ok", "problem_id": "p1"})
    usage = status_report(store)["r"]["usage"]
    assert {role: usage[role]["cost_usd"] for role in usage} == {"critic1": 6.0, "labeler2": 4.0, "solver": 11.0}
    store.save_draft(id="p1", run="r", topic_id="t1", subject="Math", topic="Rings", slot=0, problem="Q", answer="1")
    store.finish_problem("p1", "accepted", None)
    store.save_sample({"id": "p1-0", "problem_id": "p1", "sample_index": 0, "run": "r", "subject": "Math",
                       "topic": "Rings", "problem": "Q", "answer": "1", "reasoning": "r", "solution": "s",
                       "correct": 1, "truncated": 0, "models": {}, "usage": {}})
    (row,) = yield_by(store, "r", "subject")
    assert row["subject"] == "Math" and row["cost_per_accepted_sample"] == pytest.approx(21.0)
