"""The launched app under concurrent users (recsys/loadtest.py): 16 gradio_client users x 10 mixed requests.

Typed sessions, sample visitors, cold starts and unknown items across every served model; no request may fail
and no user's (unique) session token may appear in another user's answer. The full run (16 x 100, latency
percentiles into benchmarks/results/load.json) is `python scripts/load_test.py`.
"""

import pytest
from test_app_logic import build_checkpoints, build_processed

from recsys.loadtest import launch_app, run_load, stop_app

pytest.importorskip("gradio_client")


@pytest.mark.slow
def test_concurrent_users_get_their_own_answers_without_errors(tmp_path):
    build_checkpoints(tmp_path / "checkpoints")
    build_processed(tmp_path / "data")
    proc, url = launch_app(tmp_path / "checkpoints", tmp_path / "data", tmp_path / "app.log")
    try:
        report = run_load(url, clients=16, requests=10)
    finally:
        stop_app(proc)
    assert report["errors"] == [] and report["requests"] == 160, report["errors"][:5]
    assert set(report["models"]) == {"pop", "spop", "itemknn"}
    assert report["latency_ms"]["p50"] > 0
