"""Fixture: one vLLM server for the session (see vllm_server.py for how it is installed and started)."""

from __future__ import annotations

import pytest
from vllm_server import free_port, start_server


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory):
    server = start_server(free_port(), tmp_path_factory.mktemp("vllm") / "server.log")
    yield server.spec.base_url
    server.stop()
