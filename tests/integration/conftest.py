"""Fixtures: one vLLM server for the test process, which a test may stop and start again on the same port (see
vllm_server.py for how it is installed and started). Each start costs about 50 s of CPU, so tests share it."""

from __future__ import annotations

import pytest
from vllm_server import SharedServer


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    server = SharedServer(tmp_path_factory.mktemp("vllm"))
    yield server
    server.stop()


@pytest.fixture
def vllm_url(vllm_server):
    """The shared server's URL, started again first where an earlier test left it stopped."""
    return vllm_server.url if vllm_server.running else vllm_server.start()
