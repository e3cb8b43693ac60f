"""The JSON HTTP API (recsys/api.py) as `python app.py` serves it: FastAPI's TestClient on app.py's own app (the
API with the Gradio UI mounted, launch options applied), and one real server for the README example."""

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import fresh_app
from fastapi.testclient import TestClient

import recsys
from recsys.api import build_api, serve_app
from recsys.app.service import AppService
from tools import loadtest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("pop", "spop", "itemknn")  # the load test's demo folders: raw ids "101".."120"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return loadtest.build_demo(root, MODELS)


@pytest.fixture()
def app_module(folders, monkeypatch):
    with fresh_app(monkeypatch, *folders) as app:
        yield app


@pytest.fixture()
def client(app_module):
    server = serve_app(app_module.SERVICE, app_module.demo.queue(default_concurrency_limit=4),
                       app_module.launch_options())
    with TestClient(server) as client:
        yield client
    app_module.demo.close()


def post(client, **body):
    return client.post("/v1/recommend", json=body)


def test_models_lists_the_catalogue_with_data_and_metrics(client):
    body = client.get("/v1/models").json()
    assert [m["key"] for m in body["models"]] == sorted(MODELS) and body["default"] == "itemknn"
    pop = next(m for m in body["models"] if m["key"] == "pop")
    assert pop["kind"] == "pop" and pop["where"] == "local" and pop["metrics"]["test"]["hr@10"] == pytest.approx(0.2)
    assert set(pop["data"]) == {"source", "n_items"}


def test_recommend_is_recsys_recommend_with_unknown_ids_returned(client, folders):
    r = post(client, model="itemknn", items=["101", "nope", "103", "nope"], k=4)
    assert r.status_code == 200
    body = r.json()
    model = recsys.load(folders[0] / "itemknn")
    ids, scores = recsys.recommend(model, np.array(model.vocab.encode(["101", "103"])), k=4)
    assert body["items"] == model.vocab.decode(ids) and np.allclose(body["scores"], scores)
    assert body["fallback"] == "none" and body["unknown_items"] == ["nope"] and body["model"] == "itemknn"
    seen = post(client, model="itemknn", items=["101", "103"], k=4, exclude_seen=True).json()
    assert not {"101", "103"} & set(seen["items"]) and len(seen["items"]) == 4


def test_cold_and_empty_sessions_fall_back_to_popularity(client, folders):
    model = recsys.load(folders[0] / "pop")
    pop = model.item_info["popularity"]
    for items in ([], ["x", "y"]):
        body = post(client, model="spop", items=items, k=3).json()
        assert body["fallback"] == "popularity" and body["unknown_items"] == items
        assert body["scores"] == sorted(pop, reverse=True)[:3] and body["items"][0] == "101"  # item 1: most seen
    assert post(client, model="pop", items=["101"]).json()["fallback"] == "none"  # a known item: the model ranks
    assert len(post(client, model="pop", items=["101"]).json()["items"]) == 10  # k defaults to 10


@pytest.mark.parametrize("body,message", [
    ({"model": "pop", "items": ["101"], "k": "10"}, "k: Input should be a valid integer"),
    ({"model": "pop", "items": ["101"], "k": 2.5}, "k: Input should be a valid integer"),
    ({"model": "pop", "items": "101"}, "items: Input should be a valid list"),
    ({"model": "pop", "items": [101]}, "items.0: Input should be a valid string"),
    ({"model": "pop", "items": [["101"]]}, "items.0: Input should be a valid string"),
    ({"model": "pop", "items": ["101"], "exclude_seen": "yes"}, "exclude_seen: Input should be a valid boolean"),
    ({"model": 5, "items": []}, "model: Input should be a valid string"),
    ({"items": ["101"]}, "model: Field required"),
    ({"model": "pop", "items": ["101"] * 201}, "items: List should have at most 200 items"),
    ({"model": "pop", "items": ["x" * 121]}, "items.0: String should have at most 120 characters"),
    ({"model": "pop", "items": [], "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"model": "pop", "items": [], "k": 101}, "k: Input should be less than or equal to 100"),
    ({"model": "pop", "items": [], "n": 3}, "n: Extra inputs are not permitted"),
    ({"model": "m" * 301, "items": []}, "model: String should have at most 300 characters"),
    ([1, 2], "Input should be a valid dictionary"),
])
def test_bad_bodies_get_422_with_one_line(client, body, message):
    r = client.post("/v1/recommend", json=body)
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert "\n" not in r.json()["detail"] and len(r.json()["detail"]) <= 300
    assert "x" * 50 not in r.text  # the values sent are not echoed


def test_malformed_json_and_wrong_content_get_422(client):
    for content in (b'{"model": "pop", "items": [', b"not json", b"\xff\xfe"):
        r = client.post("/v1/recommend", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 422 and isinstance(r.json()["detail"], str)


def test_unknown_model_is_404_and_a_model_that_cannot_load_503(client, app_module, tmp_path):
    r = post(client, model="../../etc/passwd", items=["101"])
    assert r.status_code == 404 and "unknown model" in r.json()["detail"] and "pop" in r.json()["detail"]
    broken = Path(app_module.SERVICE.checkpoints_dir) / "pop" / "model.safetensors"
    saved = broken.read_bytes()
    try:
        app_module.SERVICE.cache = type(app_module.SERVICE.cache)()  # nothing loaded yet
        broken.write_bytes(b"garbage")
        r = post(client, model="pop", items=["101"])
        assert r.status_code == 503 and "could not be loaded" in r.json()["detail"]
    finally:
        broken.write_bytes(saved)
        app_module.SERVICE.cache = type(app_module.SERVICE.cache)()


def test_a_failing_model_is_500_without_a_traceback(client, monkeypatch):
    import recsys.batch

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals at /home/x")

    monkeypatch.setattr(recsys.batch.Ranker, "top", boom)
    r = post(client, model="itemknn", items=["101"])
    assert r.status_code == 500 and r.json() == {"detail": "recommending failed: RuntimeError"}


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(client):
    r = client.post("/v1/recommend", content=b'{"model": "pop", "items": ["' + b"x" * 300_000 + b'"]}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "Request body over 262,144 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"model": "pop", "items": ["'
        for _ in range(30):
            yield b"x" * 100_000
        yield b'"]}'

    r = client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "Request body over" in r.json()["detail"]
    assert post(client, model="pop", items=["101"]).status_code == 200


def test_the_schema_documents_both_routes_and_the_ui_is_still_served(client, app_module):
    schema = client.get("/openapi.json").json()
    assert {"/v1/models", "/v1/recommend"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["RecommendRequest"]
    assert request["properties"]["items"]["maxItems"] == 200 and request["properties"]["k"]["maximum"] == 100
    assert request["additionalProperties"] is False
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "gradio" in page.text.lower()
    config = client.get("/config").json()
    assert config["title"] == "Next-item recommender"
    assert app_module.demo.state_session_capacity == app_module.MAX_SESSIONS  # launch_options reached the Blocks


def test_build_api_alone_over_a_service(folders):
    service = AppService.from_env({"RECSYS_CHECKPOINTS": str(folders[0]), "RECSYS_MODELS": ""})
    with TestClient(build_api(service)) as client:
        assert post(client, model="pop", items=["101"], k=2).json()["fallback"] == "none"
    empty = AppService.from_env({"RECSYS_CHECKPOINTS": "/nonexistent", "RECSYS_MODELS": ""})
    with TestClient(build_api(empty)) as client:
        assert client.get("/v1/models").json() == {"models": [], "default": None}
        r = post(client, model="pop", items=[])
        assert r.status_code == 404 and "no model is available" in r.json()["detail"]


def test_serve_app_refuses_launch_options_mount_does_not_take(app_module):
    with pytest.raises(TypeError, match="takes no"):
        serve_app(app_module.SERVICE, app_module.demo, {"no_such_option": 1})


# ---------------------------------------------------------------------------------------------------------------
# the real server: python app.py, and the README's example


def readme_example() -> tuple[dict, dict]:
    """The request and response of the README's "HTTP JSON API" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("# HTTP JSON API"):]
    section = section[: section.index("\n#", 5)]
    request = json.loads(re.search(r"-d '(\{.*?\})'", section, re.S).group(1))
    response = json.loads(re.search(r"```json\n(\{.*?\})\n```", section, re.S).group(1))
    return request, response


def test_the_api_load_test_flags_wrong_and_leaked_answers():
    body, kind, token = loadtest._api_body(3, 0, ["pop"], ["101", "102"], 5, np.random.default_rng(0))
    assert kind == "typed" and token in body["items"] and body["model"] == "pop"
    good = {"model": "pop", "items": ["101"], "scores": [1.0], "fallback": "none", "unknown_items": [token]}
    assert loadtest._api_problem(200, good, body, kind, token) is None
    leaked = {**good, "unknown_items": [token, "u-c4-r0"]}
    assert "LEAK" in loadtest._api_problem(200, leaked, body, kind, token)
    assert "HTTP 500" in loadtest._api_problem(500, {"detail": "x"}, body, kind, token)
    assert "fallback" in loadtest._api_problem(200, {**good, "fallback": "popularity"}, body, kind, token)


def test_python_app_py_serves_the_readme_example_and_the_ui(folders, tmp_path):
    proc, url = loadtest.launch_app(*folders, tmp_path / "app.log")
    try:
        request, expected = readme_example()
        got = httpx.post(url + "v1/recommend", json=request, timeout=30).json()
        assert got == {**expected, "scores": got["scores"]}
        assert [round(s, 3) for s in got["scores"]] == expected["scores"]  # the README shows 3 decimals
        assert httpx.get(url + "openapi.json", timeout=30).json()["info"]["title"] == "recsys"
        assert re.search(r"Running on .*\(HTTP parser (httptools|h11), event loop (uvloop|asyncio)\)",
                         (tmp_path / "app.log").read_text())
        from gradio_client import Client

        client = Client(url, verbose=False)
        answer = client.predict("pop", "101", 2, None, True, api_name="/recommend")  # the UI's own endpoint
        assert isinstance(answer, tuple) and len(answer) >= 3 and "rank" in json.dumps(answer, default=str)
        client.close()
        load = loadtest.run_api_load(url, clients=4, requests=60, server_pid=proc.pid, sample_every=30, k=5)
        assert load["n_errors"] == 0, load["errors"][:5]
        assert load["requests"] == 60 and set(load["latency_ms_by_model"]) == set(MODELS)
        assert [n for n, _ in load["rss_mb"]] == [0, 30, 60]
    finally:
        loadtest.stop_app(proc)


def test_the_api_load_tests_client_keeps_its_connection_and_reads_whole_answers():
    """tools.loadtest._Connection: one connection while the server keeps it, a new one after `Connection: close`,
    bodies read by Content-Length (split across writes too), and an answer it cannot frame is an error."""
    import asyncio

    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n"
               b"Connection: close\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    connections, bodies = [], []

    async def serve(reader, writer):
        connections.append(writer)
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            bodies.append(await reader.readexactly(length))
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if b"chunked" not in answer:
                writer.write(b'{"a": ')  # the body in two writes
                await writer.drain()
                writer.write(b'"b"}')
            if b"close" in answer:
                writer.close()
                return

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = loadtest._Connection("127.0.0.1", port)
        got = [await connection.post("/v1/recommend", b'{"n": %d}' % i) for i in range(3)]
        with pytest.raises(RuntimeError, match="Content-Length only"):
            await connection.post("/v1/recommend", b"{}")
        await connection.close()
        server.close()
        return got

    got = asyncio.run(main())
    assert [s for s, _ in got] == [200, 404, 200] and all(json.loads(b) == {"a": "b"} for _, b in got)
    assert bodies == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}', b"{}"]
    assert len(connections) == 2  # kept alive, then a new connection after "Connection: close"


def test_a_fast_loaded_model_answers_on_the_event_loop_and_a_slow_one_in_the_thread_pool(client, monkeypatch):
    import recsys.api

    hops = []
    real = recsys.api.run_in_threadpool

    async def counted(func, *args):
        hops.append(args[0].model)
        return await real(func, *args)

    monkeypatch.setattr(recsys.api, "run_in_threadpool", counted)
    monkeypatch.setattr(recsys.api, "INLINE_SECONDS", 1.0)  # fast: whatever the machine's load makes of it
    first, again = post(client, model="spop", items=["101"], k=3), post(client, model="spop", items=["101"], k=3)
    assert first.json() == again.json() and first.json()["fallback"] == "none"
    assert hops == ["spop"]  # the first answer (the model loads, its cost unknown) only
    monkeypatch.setattr(recsys.api, "INLINE_SECONDS", 0.0)  # every model now counts as slow
    assert post(client, model="spop", items=["101"], k=3).json() == first.json() and hops == ["spop", "spop"]


def test_the_production_overview_shows_the_tested_readme_example():
    """README "Using the models in production" repeats the "HTTP JSON API" example, which
    test_python_app_py_serves_the_readme_example_and_the_ui sends to `python app.py`: they must agree."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the models in production"):]
    section = section[: section.index("\n## ", 5)]
    request = json.loads(re.search(r"-d '(\{.*?\})'", section, re.S).group(1))
    response = json.loads(re.search(r"\n# (\{.*?\})\n", section).group(1))
    tested_request, tested_response = readme_example()
    assert {"exclude_seen": False, **request} == tested_request and response == tested_response


def test_the_server_takes_httptools_and_uvloop_when_installed_and_runs_without_them():
    """recsys.api.server_config (app.py's uvicorn settings) names the HTTP parser and event loop uvicorn picks:
    httptools and uvloop when importable (requirements.txt), h11 and asyncio in a Python where they are not."""
    import importlib.util
    import subprocess
    import sys

    from recsys.api import server_config

    config, stack = server_config(None, "127.0.0.1", 0)
    installed = all(importlib.util.find_spec(m) for m in ("httptools", "uvloop"))
    assert config.loaded and stack == ("HTTP parser httptools, event loop uvloop" if installed
                                       else "HTTP parser h11, event loop asyncio")
    hidden = ("import sys; sys.modules.update(httptools=None, uvloop=None)\n"  # import of either now fails
              "from recsys.api import server_config\n"
              "config, stack = server_config(None, '127.0.0.1', 0); print(stack)\n"
              "import asyncio; print(type(config.get_loop_factory()()).__module__)")
    out = subprocess.run([sys.executable, "-c", hidden], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    stack, loop = out.stdout.split("\n")[:2]
    assert stack == "HTTP parser h11, event loop asyncio" and loop.startswith("asyncio.")  # uvicorn's own fallback


def test_the_inline_threshold_comes_from_the_environment_in_milliseconds():
    from recsys.api import _milliseconds

    assert _milliseconds(None, 5.0) == _milliseconds("", 5.0) == 0.005
    assert _milliseconds("0.5", 5.0) == 0.0005 and _milliseconds("0", 5.0) == 0.0
    for bad in ("fast", "-1", "inf", "nan", "1e999"):
        assert _milliseconds(bad, 5.0) == 0.005, bad
