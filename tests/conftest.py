"""Shared fixtures."""

import pytest


@pytest.fixture(scope="module")
def hub_server():
    """A Hub-compatible server on 127.0.0.1 (tests/hubserver.py) that takes writes with `server.state.token` only.
    Clients reach it through HF_ENDPOINT, which huggingface_hub reads at import: run them in a subprocess."""
    from hubserver import HubServer

    with HubServer(token="hf_testtoken0123456789abcdef") as server:
        yield server
