"""The shipped example configs are valid and say what the README says they do."""

from pathlib import Path

import pytest

from chimera.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["quickstart.yaml", "review.yaml", "paper.yaml", "local-vllm.yaml", "postgres.yaml"])
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


def test_the_cluster_launchers_start_chimera_commands_that_exist():
    import re
    import shlex

    import yaml

    from chimera.cli.commands import build_parser

    parser = build_parser()
    commands = []
    for document in yaml.safe_load_all((EXAMPLES / "workers" / "kubernetes.yaml").read_text()):
        for container in document["spec"]["template"]["spec"]["containers"]:
            commands += re.findall(r"chimera (run|worker) (\S+)", container["command"][-1])
    commands += re.findall(r"exec chimera (worker) (\S+)", (EXAMPLES / "workers" / "slurm.sbatch").read_text())
    commands += re.findall(r'"chimera", "(worker)", (config)', (EXAMPLES / "workers" / "ray_workers.py").read_text())
    assert sorted({c for c, _ in commands}) == ["run", "worker"] and len(commands) == 4
    for command, config in commands:
        parser.parse_args(shlex.split(f"{command} {config.strip(chr(34))}"))


@pytest.mark.parametrize("how", ["as a script", "inside a running event loop, as a notebook runs it"])
def test_the_python_api_example_runs_the_quickstart_and_reads_it_back(tmp_path, how):
    import re
    import subprocess
    import sys

    example = EXAMPLES / "python_api.py"
    command = [sys.executable, str(example)] if how == "as a script" else [
        sys.executable, "-c", f"import asyncio, runpy\nasync def cell():\n    runpy.run_path({str(example)!r}, "
                              "run_name='__main__')\nasyncio.run(cell())"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ran = re.search(r"run quickstart ended with exit code 0: (\d+) problems, (\d+) accepted, (\d+) samples "
                    r"\((\d+) correct\)", result.stdout)
    splits = re.search(r"splits: all (\d+) samples, sft (\d+) chats, rl (\d+) problems", result.stdout)
    dataset = re.search(r"sft dataset: (\d+) rows, columns messages, id, problem_id, ", result.stdout)
    assert ran and splits and dataset, result.stdout
    problems, accepted, samples, correct = map(int, ran.groups())
    assert 0 < accepted <= problems and int(splits[1]) == samples and int(splits[3]) == accepted
    assert 0 < int(splits[2]) <= correct and int(dataset[1]) == int(splits[2])
    assert list(tmp_path.iterdir()) == [], "the example writes nothing where it is run"
