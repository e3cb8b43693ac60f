"""Shared fixtures."""

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def fresh_app(mp: pytest.MonkeyPatch, checkpoints: Path, data: Path):
    """app.py imported anew (it loads its models at import) over these folders and no Hub models."""
    mp.setenv("RECSYS_CHECKPOINTS", str(checkpoints))
    mp.setenv("RECSYS_DATA", str(data))
    mp.setenv("RECSYS_MODELS", "")
    mp.syspath_prepend(str(ROOT))
    sys.modules.pop("app", None)
    import app

    try:
        yield app
    finally:
        sys.modules.pop("app", None)


@pytest.fixture(scope="module")
def hub_server():
    """A Hub-compatible server on 127.0.0.1 (tests/hubserver.py) that takes writes with `server.state.token` only.
    Clients reach it through HF_ENDPOINT, which huggingface_hub reads at import: run them in a subprocess."""
    from hubserver import HubServer

    with HubServer(token="hf_testtoken0123456789abcdef") as server:
        yield server


@pytest.fixture
def one_cpu_thread():
    """Tiny models on a shared 2-core machine: a second torch thread only spin-waits (10x slower under load).
    Test modules that train or score ask for it with `pytestmark = pytest.mark.usefixtures("one_cpu_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
