"""The shipped example configs are valid and say what the README says they do."""

from pathlib import Path

import pytest

from chimera.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["quickstart.yaml", "review.yaml", "paper.yaml", "local-vllm.yaml"])
def test_example_configs_load(name):
    load_config(EXAMPLES / name)


def test_quickstart_runs_on_the_simulator():
    config = load_config(EXAMPLES / "quickstart.yaml")
    assert {spec.provider for spec in config.models.all_roles().values()} == {"sim"}


def test_review_example_stops_on_disagreements_on_the_simulator():
    config = load_config(EXAMPLES / "review.yaml")
    assert config.review.active == {"disagreement"}
    assert {spec.provider for spec in config.models.all_roles().values()} == {"sim"}


def test_paper_setup_matches_the_paper():
    config = load_config(EXAMPLES / "paper.yaml")
    solver = config.models.solver
    assert solver.model == "Qwen/Qwen3-235B-A22B-Thinking-2507"
    assert (solver.temperature, solver.top_p, solver.extra_body["top_k"]) == (0.6, 0.95, 20)
    assert [c.model for c in config.models.critics] == ["gpt-5", "o4-mini"]
    assert config.models.drafter.model == config.models.expander.model == "gpt-5"
    assert len(config.subjects) == 8
