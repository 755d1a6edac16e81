"""Serving the solver with vLLM: build the `vllm serve` command, start it, wait for health, stop it.

The paper's solver, as Qwen's model card recommends, on one 8-GPU node:

    vllm serve Qwen/Qwen3-235B-A22B-Thinking-2507 --tensor-parallel-size 8 \\
        --max-model-len 262144 --reasoning-parser deepseek_r1

Past one node: `--pipeline-parallel-size` across nodes (tensor parallel within
each) on a Ray cluster, `--data-parallel-size` for several engine copies behind
one server, or independent replicas listed in `models.solver.base_url`.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PAPER_SOLVER = "Qwen/Qwen3-235B-A22B-Thinking-2507"
# What the model card recommends for the paper's solver on one node: 8 GPUs, the whole 256K context.
CARD_SETTINGS = {PAPER_SOLVER: {"tensor_parallel": 8, "max_model_len": 262144}}


def card_settings(model: str, *, tensor_parallel: int | None, max_model_len: int | None) -> tuple[int, int | None]:
    """The tensor-parallel size and context length to serve `model` with: what was asked, else its model
    card's (CARD_SETTINGS), else one GPU and vLLM's own default length."""
    card = CARD_SETTINGS.get(model, {})
    return (tensor_parallel or card.get("tensor_parallel", 1),
            max_model_len if max_model_len is not None else card.get("max_model_len"))


@dataclass
class ServeSpec:
    model: str = PAPER_SOLVER
    served_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    reasoning_parser: str | None = "deepseek_r1"
    max_model_len: int | None = None
    extra: list[str] = field(default_factory=list)
    vllm: list[str] = field(default_factory=lambda: ["vllm", "serve"])  # the command that starts the server

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def serve_command(spec: ServeSpec) -> list[str]:
    """The argv that starts the server; `vllm serve MODEL` or an equivalent entry point given in `spec.vllm`."""
    command = [*spec.vllm]
    command += [spec.model] if command[-1] == "serve" else ["--model", spec.model]
    command += ["--host", spec.host, "--port", str(spec.port)]
    if spec.served_name:
        command += ["--served-model-name", spec.served_name]
    command += ["--tensor-parallel-size", str(spec.tensor_parallel)]  # shown even at 1: the GPUs it takes
    for flag, value in (("--pipeline-parallel-size", spec.pipeline_parallel),
                        ("--data-parallel-size", spec.data_parallel)):
        if value != 1:
            command += [flag, str(value)]
    if spec.max_model_len:
        command += ["--max-model-len", str(spec.max_model_len)]
    if spec.reasoning_parser:
        command += ["--reasoning-parser", spec.reasoning_parser]
    return command + list(spec.extra)


def solver_config_block(spec: ServeSpec) -> str:
    """The `models.solver` entry to paste into a run config, with the model card's sampling."""
    name = spec.served_name or spec.model
    return "\n".join([
        "  solver:",
        f"    base_url: {spec.base_url}",
        f"    model: {name}",
        "    api_key_env: null",
        "    temperature: 0.6",
        "    top_p: 0.95",
        "    max_tokens: 32768",
        "    timeout_s: 3600",
        "    extra_body: {top_k: 20, min_p: 0}",
    ])


class ServerProcess:
    """A running server; `stop()` ends it (TERM, then KILL) and its process group."""

    def __init__(self, spec: ServeSpec, *, env: dict[str, str] | None = None, log: Path | None = None):
        self.spec = spec
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - kept open while it runs
        self.process = subprocess.Popen(serve_command(spec), env={**os.environ, **(env or {})}, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout_s: float = 600) -> None:
        """Poll /health until 200; raises RuntimeError naming the URL when the server dies or never answers."""
        url = f"http://{self.spec.host}:{self.spec.port}/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""
                raise RuntimeError(f"vLLM exited with {self.process.returncode} before {url} was healthy\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{url} not healthy after {timeout_s:g}s")

    def stop(self, grace_s: float = 20) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass


def describe(spec: ServeSpec) -> str:
    return shlex.join(serve_command(spec))
