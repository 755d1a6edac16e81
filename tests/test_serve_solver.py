"""`chimera serve-solver --dry-run`: the vLLM command, with the paper's solver served as its model card says."""

from __future__ import annotations

from helpers import chimera


def test_the_paper_solver_is_served_on_eight_gpus_with_its_whole_context_by_default():
    command = chimera("serve-solver", "--dry-run").stdout.splitlines()[0].split()
    assert command[:3] == ["vllm", "serve", "Qwen/Qwen3-235B-A22B-Thinking-2507"]
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags["--tensor-parallel-size"] == "8" and flags["--max-model-len"] == "262144"
    assert flags["--reasoning-parser"] == "deepseek_r1"


def test_another_model_gets_one_gpu_unless_told_and_what_is_asked_wins():
    plain = chimera("serve-solver", "--dry-run", "--model", "Qwen/Qwen3-8B").stdout.splitlines()[0]
    assert "--tensor-parallel-size 1" in plain and "--max-model-len" not in plain
    asked = chimera("serve-solver", "--dry-run", "--tensor-parallel-size", "4", "--max-model-len", "131072",
                    "--pipeline-parallel-size", "2").stdout.splitlines()[0]
    assert "--tensor-parallel-size 4" in asked and "--max-model-len 131072" in asked
    assert "--pipeline-parallel-size 2" in asked
