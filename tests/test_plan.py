"""`chimera plan`: a projection of a run's calls, tokens, cost and time before it runs, from a pilot whose calls
the run reuses, or from an earlier run's database."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import chimera, dataset, finished_run, write_config

from chimera.engine.plan import pilot_topics

PRICED = {"default": {"provider": "sim", "price_per_mtok_in": 1.25, "price_per_mtok_out": 10.0}, "embedder": {}}
SUBJECTS = [{"name": "Mathematics", "topics": 8, "weight": 2}, {"name": "Physics", "topics": 6},
            {"name": "Chemistry", "topics": 6}]


def totals(db: Path) -> tuple[int, int, float]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        calls, tokens_in, tokens_out = conn.execute(
            "select count(*), sum(tokens_in), sum(tokens_out) from llm_calls").fetchone()
    return calls, tokens_in + tokens_out, (tokens_in * 1.25 + tokens_out * 10.0) / 1e6


def answered(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("select request_key from llm_calls where outcome = 'ok' and request_key is not null")
        return {key for (key,) in rows}


def problems_of(request_keys: set[str], *dbs: Path) -> set[str | None]:
    """The problems those answered requests were made for, in any of the databases."""
    found: set[str | None] = set()
    for db in dbs:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            found |= {problem for key, problem in conn.execute("select request_key, problem_id from llm_calls")
                      if key in request_keys}
    return found


def duplicates(db: Path) -> set[str | None]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {pid for (pid,) in conn.execute("select id from problems where rejection_reason = 'duplicate'")}


def answered_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("select count(*) from llm_calls where outcome = 'ok' and request_key is not null").fetchone()[0]


def plan_json(*args: str) -> dict[str, Any]:
    result = chimera("plan", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_pilot_projects_the_run_and_the_run_then_reuses_its_calls(tmp_path):
    planned = write_config(tmp_path, name="planned", models=PRICED, subjects=SUBJECTS, problems_per_topic=3)
    plan = plan_json(str(planned), "--pilot", "0.25")
    assert plan["sample_topics"] == 2 + 2 + 2 and plan["topics"] == 20
    assert chimera("run", str(planned), "--quiet").returncode == 0
    # the same run (ids derive from its name) straight through, on a database of its own
    direct = tmp_path / "direct.yaml"
    direct.write_text(planned.read_text().replace(str(tmp_path / "planned.db"), str(tmp_path / "direct.db")))
    assert chimera("run", str(direct), "--quiet").returncode == 0
    calls, tokens, cost = totals(tmp_path / "planned.db")
    # the pilot's calls were not asked again: each request answered once (a retried attempt, such as a timeout on a
    # loaded machine, is a row of its own and is not a call asked again), and the same requests as the straight run
    # but for problems rejected as near-duplicates in both: which of two near-duplicates is caught before it is
    # solved depends on the order the topics ran in
    assert len(answered(tmp_path / "planned.db")) == answered_rows(tmp_path / "planned.db")
    differing = answered(tmp_path / "planned.db") ^ answered(tmp_path / "direct.db")
    assert problems_of(differing, tmp_path / "planned.db", tmp_path / "direct.db") <= \
        duplicates(tmp_path / "planned.db") & duplicates(tmp_path / "direct.db")
    assert dataset(tmp_path / "planned.db") == dataset(tmp_path / "direct.db")
    assert plan["tokens"] == pytest.approx(tokens, rel=0.2)
    assert plan["cost_usd"] == pytest.approx(cost, rel=0.2)
    low, high = plan["cost_usd_range"]
    assert low < plan["cost_usd"] < high


def test_a_plan_from_an_earlier_run_sends_nothing_and_scales_to_the_configs_shape(tmp_path):
    db = finished_run(tmp_path)  # 3 topics of 2 problems
    calls, tokens, _ = totals(db)
    bigger = write_config(tmp_path, name="bigger", models=PRICED, problems_per_topic=4,
                          subjects=[{"name": "Mathematics", "topics": 6}, {"name": "Chemistry", "topics": 3}])
    plan = plan_json(str(bigger), "--from", str(db))
    assert totals(db)[0] == calls and not (tmp_path / "bigger.db").exists()
    assert plan["topics"] == 9 and plan["slots"] == 36
    assert plan["tokens"] == pytest.approx(tokens * 36 / 6, rel=0.35)  # six times the slots, Stage 1 three times
    assert plan["price_sources"]["drafter"] == "config" and plan["cost_usd"] > 0


def test_roles_without_a_price_in_the_config_are_priced_from_the_price_table_with_its_date(tmp_path):
    pytest.importorskip("genai_prices")
    db = finished_run(tmp_path)
    openai = {"default": {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
              "expander": {"model": "gpt-5"}, "drafter": {"model": "gpt-5", "batch": True},
              "critics": [{"model": "gpt-5"}, {"model": "o4-mini"}],
              "solver": {"base_url": "http://localhost:8000/v1", "model": "Qwen/Qwen3-235B-A22B-Thinking-2507",
                         "api_key_env": None},
              "labeler": {"model": "gpt-5-mini"}}
    config = write_config(tmp_path, name="paper", models=openai)
    plan = plan_json(str(config), "--from", str(db))
    assert plan["price_sources"]["drafter"].startswith("genai-prices") and "prices as of 20" in \
        plan["price_sources"]["drafter"]
    assert plan["price_sources"]["solver"] == "none" and plan["cost_usd"] is None  # a self-hosted model has no price
    assert plan["batched_roles"] == ["drafter"]
    text = chimera("plan", str(config), "--from", str(db))
    assert "no price for solver" in " ".join(text.stdout.split())


def test_a_pilot_takes_a_share_of_every_subject_and_the_same_topics_each_time():
    topics: list[Any] = [{"id": f"t{i}", "subject": "A" if i < 40 else "B"} for i in range(50)]
    picked = pilot_topics(topics, 0.1)
    assert sum(t["subject"] == "A" for t in picked) == 4 and sum(t["subject"] == "B" for t in picked) == 1
    assert {t["id"] for t in picked} == {t["id"] for t in pilot_topics(list(reversed(topics)), 0.1)}


def test_a_bad_pilot_share_is_one_line_naming_it(tmp_path):
    result = chimera("plan", str(write_config(tmp_path)), "--pilot", "1.5")
    assert result.returncode == 2 and "--pilot 1.5" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_plan_takes_set_like_run(tmp_path):
    db = finished_run(tmp_path)
    config = write_config(tmp_path, name="other", models=PRICED)
    plan = plan_json(str(config), "--from", str(db), "--set", "problems_per_topic=5")
    assert plan["slots"] == 3 * 5
    assert yaml.safe_load(config.read_text())["problems_per_topic"] == 2
