"""The launched app under concurrent users (tools/loadtest.py): 16 gradio_client users, 160 mixed requests.

Typed sessions, sample visitors, cold starts and unknown items across every served model; no request may fail
and no user's (unique) session token may appear in another user's answer. The full run (1,600 requests, latency
percentiles and the server's RSS into benchmarks/results/load.json) is `python scripts/load_test.py`.

The race behind the CancelledError that the full run once had (one request in 1,600) is reproduced here on
every run by holding back the client's reader thread on the server's `close_stream` message.
"""

import concurrent.futures
import time

import httpx
import pytest

from tools.loadtest import build_demo, launch_app, run_load, stop_app, wait_for_stream_close

pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def app_proc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    checkpoints, data = build_demo(tmp)
    proc, url = launch_app(checkpoints, data, tmp / "app.log")
    yield proc, url
    stop_app(proc)


@pytest.fixture(scope="module")
def app_url(app_proc):
    return app_proc[1]


@pytest.mark.slow
def test_concurrent_users_get_their_own_answers_without_errors(app_url):
    report = run_load(app_url, clients=16, requests=160)
    assert report["errors"] == [] and report["requests"] == 160, report["errors"][:5]
    assert set(report["models"]) == {"pop", "spop", "itemknn"}
    assert report["latency_ms"]["p50"] > 0 and "rss_mb" not in report


@pytest.mark.slow
def test_fresh_sessions_and_the_servers_memory_are_sampled(app_proc):
    proc, url = app_proc
    report = run_load(url, clients=3, requests=31, fresh_sessions=True, server_pid=proc.pid, sample_every=10)
    assert report["errors"] == [] and report["requests"] == 31 and report["fresh_sessions"]
    assert [n for n, _ in report["rss_mb"]] == [0, 10, 20, 30, 31]
    assert all(50 < mb < 10_000 for _, mb in report["rss_mb"])  # MB of a Python process serving three models


def _slow_close_stream(iter_bytes):
    """httpx's iter_bytes with a 0.3 s pause before `close_stream`: the reader thread of a busy process."""

    def slow(self, *args, **kwargs):
        rest = b""  # a message may span chunks (a ~32 KB answer does): pass on whole messages only
        for chunk in iter_bytes(self, *args, **kwargs):
            *messages, rest = (rest + chunk).split(b"\n\n")
            for message in messages:
                if b"close_stream" in message:
                    time.sleep(0.3)
                if message:
                    yield message + b"\n\n"
        if rest:
            yield rest

    return slow


@pytest.mark.slow
def test_waiting_for_the_stream_to_close_avoids_the_clients_cancelled_requests(app_url, monkeypatch):
    from gradio_client import Client

    monkeypatch.setattr(httpx.Response, "iter_bytes", _slow_close_stream(httpx.Response.iter_bytes))

    def outcomes(wait: bool) -> list[str]:
        client, out = Client(app_url, verbose=False), []
        for _ in range(4):
            if wait:
                assert wait_for_stream_close(client, timeout=10)
            try:
                client.predict("pop", "101", 5, None, True, api_name="/recommend")
                out.append("ok")
            except concurrent.futures.CancelledError:
                out.append("cancelled")
        client.close()
        return out

    assert outcomes(wait=True) == ["ok"] * 4
    # Without the wait, the request sent while the reader still holds `close_stream` is cancelled. If this
    # fails, gradio_client no longer has the race and wait_for_stream_close may go.
    assert "cancelled" in outcomes(wait=False)
