"""The launched app, called the way any client would: `python app.py` in a subprocess, gradio_client against it.

The app serves tiny Pop / S-Pop / item-kNN folders built here (RECSYS_CHECKPOINTS) and visitors from a tiny
processed data set (RECSYS_DATA); nothing touches the network (HF_HUB_OFFLINE=1).
"""

import os
import re
import sys
from pathlib import Path

import pytest
from conftest import fresh_app
from test_app_logic import CATEGORY, NAMES, N, build_checkpoints, build_processed

from tools import loadtest

ROOT = Path(__file__).resolve().parents[1]
gradio_client = pytest.importorskip("gradio_client")


def launch_app(tmp: Path, timeout: float = 180.0):
    """Start app.py on a free port with models and visitors under tmp/; returns (process, url)."""
    build_checkpoints(tmp / "checkpoints")
    build_processed(tmp / "data")
    return loadtest.launch_app(tmp / "checkpoints", tmp / "data", tmp / "app.log", timeout)


stop_app = loadtest.stop_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app_api")
    proc, url = launch_app(tmp)
    yield url, tmp
    stop_app(proc)


@pytest.fixture(scope="module")
def client(app):
    return gradio_client.Client(app[0], verbose=False)


def recommend(client, model="itemknn", session="", k=5, category=None, exclude_seen=True):
    table, chart, status, explanation = client.predict(model, session, k, category, exclude_seen,
                                                       api_name="/recommend")
    return table, chart, status, explanation


def items(table) -> list[str]:
    """The item ids of a table (the names are in the "item" column)."""
    col = table["headers"].index("id")
    return [row[col] for row in table["data"]]


def bar_items(chart: str) -> list[str]:
    return re.findall(r'<div class="bar-row" title="[^"]*\((\w+)\)">', chart)


def test_named_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/recommend", "/recommend_visitor", "/model_info", "/models", "/search_visitors",
            "/append_item"} <= set(api)


def test_personalized_for_a_sample_visitor(client):
    visitors = client.predict("", api_name="/search_visitors")
    assert "alice:0" in visitors and "visitor:7" in client.predict("visitor:", 2, api_name="/search_visitors")
    session, table, chart, status, explanation = client.predict("alice:0", "itemknn", 5, None, True,
                                                                api_name="/recommend_visitor")
    assert session and "Personalised" in status and "held out" in status and "actually viewed" in status
    assert session.split("\n")[0] == f"{NAMES['105']} (105)"  # names first in the session box
    assert len(table["data"]) == 5 and table["headers"][:5] == ["rank", "item", "id", "score", "why"]
    assert [row[1] for row in table["data"]] == [NAMES[i] for i in items(table)]
    assert bar_items(chart) == items(table)  # bars in ranking order
    assert all(row[3].endswith("%") and row[4] for row in table["data"])  # a probability and a reason each
    assert "Item neighbours" in explanation and NAMES["109"] in explanation


def test_manual_sequence_and_click_to_extend(client):
    table, chart, status, _ = recommend(client, session="101, 102, 103", k=3)
    assert "Personalised" in status and len(table["data"]) == 3
    scores = [float(row[3].rstrip("%")) for row in table["data"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 100
    clicked = items(table)[0]
    extended = client.predict("101, 102, 103", f"{NAMES[clicked]} ({clicked})", api_name="/append_item")
    assert extended == f"101, 102, 103\n{NAMES[clicked]} ({clicked})"
    table2, _, status2, _ = recommend(client, session=extended, k=3)
    assert "from 4 items" in status2 and clicked not in items(table2)


def test_cold_start(client):
    table, _, status, explanation = recommend(client, session="", k=4)
    assert "Cold start" in status and "popular" in status and items(table)[0] == "101"
    assert "Popularity fallback" in explanation
    table, _, status, _ = recommend(client, session="", k=20, category=CATEGORY["hats"])
    assert "category" in status and {row[5] for row in table["data"]} == {CATEGORY["hats"]}
    session, table, _, status, _ = client.predict("nobody:42", "pop", 3, None, True, api_name="/recommend_visitor")
    assert session == "" and "Unknown visitor" in status and "Cold start" in status and len(table["data"]) == 3


def test_unknown_items(client):
    _, _, status, _ = recommend(client, session="101, not-an-item, 102", k=3)
    assert "Personalised" in status and "Skipped 1 unknown item" in status and "not-an-item" in status
    table, _, status, _ = recommend(client, session="<img src=x onerror=alert(1)>, 999", k=3)
    assert "Cold start" in status and "`<img src=x onerror=alert(1)>`" in status and len(table["data"]) == 3


def test_model_switch(client):
    models = client.predict(api_name="/models")
    assert {m["key"] for m in models} == {"pop", "spop", "itemknn"}
    assert all(m["test"]["hr@10"] is not None and "HR@10" in m["label"] for m in models)
    pop, _, pop_status, pop_why = recommend(client, model="pop", session="101, 102, 103", exclude_seen=False)
    knn, _, knn_status, _ = recommend(client, model="itemknn", session="101, 102, 103", exclude_seen=False)
    assert items(pop) != items(knn) and "**pop**" in pop_status and "**itemknn**" in knn_status
    assert "Not personalised" in pop_status and "popularity only" in pop_why
    card, *_ = client.predict("spop", api_name="/model_info")
    assert "S-Pop" in card and "test" in card
    _, _, status, _ = recommend(client, model="no-such-model", session="101")
    assert "Unknown model" in status


def test_caps_and_bad_k(client):
    long = ", ".join(str(100 + (i % N) + 1) for i in range(300))
    table, _, status, _ = recommend(client, session=long, k=100, exclude_seen=False)
    assert "200 most recent of 300" in status and len(table["data"]) == N
    table, _, status, _ = recommend(client, session="101", k=-5)  # what the slider cannot send, the API can
    assert "K must be at least 1 (got -5); using 1." in status and len(table["data"]) == 1


@pytest.mark.parametrize("endpoint, args, message", [
    ("/search_visitors", ("visitor:", "abc"), "Bad input: limit must be a whole number from 1 to 100, got `abc`"),
    ("/search_visitors", ("visitor:", None), "Bad input: limit must be a whole number from 1 to 100, got `None`"),
    ("/search_visitors", ("visitor:", {"n": 2}), "Bad input: limit must be a number, got a dict"),
    ("/search_visitors", (["visitor:"], 2), "Bad input: query must be text, got a list"),
    ("/append_item", ("101", ["102"]), "Bad input: item must be text, got a list"),
], ids=["limit-text", "limit-null", "limit-dict", "query-list", "item-list"])
def test_wrongly_typed_values_of_the_typed_endpoints_get_an_error_message(client, endpoint, args, message):
    """Issue 12 item 16: `limit="abc"` used to come back as `{"error": null}` (gradio_client: "has not enabled
    verbose error reporting"): search_visitors' int() raised a ValueError, which Gradio does not show."""
    with pytest.raises(Exception, match=re.escape(message)) as err:
        client.predict(*args, api_name=endpoint)
    assert "verbose error reporting" not in str(err.value)


def test_wrongly_typed_k_gets_a_message(client):
    """Issue 12 item 16: k="abc" or null used to come back as `{"error": null}` (gr.Slider's bounds check raised a
    bare TypeError before the handler ran). The handler now gets k as sent: not a number -> K 10 and a note."""
    for k, shown in [("abc", "`abc`"), (None, "`None`"), ("", "(blank)")]:
        table, _, status, _ = recommend(client, session="101", k=k)
        assert f"K must be a number, got {shown}; using 10." in status and len(table["data"]) == 10
    _, _, status, _ = recommend(client, session="101", k=[5])
    assert status == "⚠️ Bad input: k must be a number, got a list"
    assert len(recommend(client, session="101", k="3")[0]["data"]) == 3  # a number as text is a number
    session, _, _, status, _ = client.predict("alice:0", "itemknn", "many", None, True, api_name="/recommend_visitor")
    assert session and "K must be a number, got `many`; using 10." in status


def test_wrongly_typed_text_comes_back_in_the_status(client):
    _, _, status, _ = recommend(client, session={"items": [101]})
    assert status == "⚠️ Bad input: session must be text, got a dict"
    _, _, status, _ = recommend(client, session="101", exclude_seen="no")
    assert status == "⚠️ Bad input: exclude_seen must be true or false, got `no`"
    card, *_ = client.predict(["itemknn"], api_name="/model_info")
    assert card == "⚠️ Bad input: model must be text, got a list"
    _, _, status, _ = recommend(client, session="101", category="c" * 200_000, k=3)
    assert "Personalised" in status  # a long category is read only up to its cap (tests/test_app_hostile.py)


def test_a_request_body_over_the_limit_is_refused_before_it_is_parsed(app):
    import httpx

    for huge in ("x" * 10_000_000, list(range(2_000_000))):
        body = {"data": ["itemknn", "101", 5, huge, True], "fn_index": 0, "session_hash": "big"}
        response = httpx.post(app[0] + "gradio_api/queue/join", json=body, timeout=60)
        assert response.status_code == 413 and "Request body over 262,144 bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"data": ["itemknn", "101", 5, "'
        for _ in range(30):
            yield b"x" * 100_000
        yield b'", true], "fn_index": 0, "session_hash": "big"}'

    response = httpx.post(app[0] + "gradio_api/queue/join", content=chunks(), timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413 and "Request body over" in response.json()["detail"]
    assert "Personalised" in recommend(gradio_client.Client(app[0], verbose=False), session="101", k=2)[2]


# ---------------------------------------------------------------------------------------------------------------
# app.py in-process: its handlers never raise, and a fresh machine builds the default models first


@pytest.fixture()
def app_module(tmp_path, monkeypatch):
    build_checkpoints(tmp_path / "checkpoints", models=("pop",))
    with fresh_app(monkeypatch, tmp_path / "checkpoints", tmp_path / "no-data") as app:
        yield app


@pytest.mark.filterwarnings("ignore:Something went wrong")  # gr.Warning outside a request is a UserWarning
def test_handlers_never_raise(app_module, monkeypatch):
    table, chart, status, _ = app_module.recommend("pop", "101", 3)
    assert len(table) == 3 and bar_items(chart) == table["id"].tolist() and "**pop**" in status

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app_module.logic, "recommend_view", boom)
    table, chart, status, _ = app_module.recommend("pop", "101", 3)
    assert "Something went wrong" in status and "disk on fire" in status and len(table) == 0 and chart == ""
    outputs = app_module.recommend_visitor("alice:0", "pop", 3)
    assert len(outputs) == 6 and "Something went wrong" in outputs[4]


def test_the_server_keeps_state_for_a_bounded_number_of_sessions(tmp_path, monkeypatch):
    """Issue 12 item 6: Gradio keeps a SessionState (~75 KB) for every session hash it has seen, 10,000 by
    default, and a one-shot API caller is a new session each time; app.py keeps RECSYS_SESSIONS of them."""
    import uuid

    build_checkpoints(tmp_path / "checkpoints", models=("pop",))
    for key, value in {"RECSYS_CHECKPOINTS": str(tmp_path / "checkpoints"), "RECSYS_DATA": str(tmp_path / "none"),
                       "RECSYS_MODELS": "", "RECSYS_SESSIONS": "3"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("app", None)
    import app

    try:
        port = loadtest.free_port()
        app.demo.queue(default_concurrency_limit=4).launch(server_name="127.0.0.1", server_port=port,
                                                           prevent_thread_lock=True, **app.launch_options())
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        for _ in range(8):
            assert loadtest.wait_for_stream_close(client)
            client.session_hash = str(uuid.uuid4())  # what a one-shot caller (curl, a new Client) sends
            status = client.predict("pop", "101", 2, None, True, api_name="/recommend")[2]
            assert "**pop**" in status
        assert len(app.demo.state_holder.session_data) == 3
        assert app.demo._queue.ANALYTICS_MAX_EVENTS == int(os.environ["GRADIO_ANALYTICS_MAX_EVENTS"])
        client.close()
    finally:
        app.demo.close()
        sys.modules.pop("app", None)


def test_fresh_machine_builds_default_models_first(app_module, tmp_path, monkeypatch, capsys):
    import recsys.pipeline

    empty = tmp_path / "fresh"
    calls = []

    def fake_ensure(checkpoints_dir, data_dir=None, progress=print):
        progress("training pop ...")
        calls.append(str(checkpoints_dir))
        return [build_checkpoints(Path(checkpoints_dir), models=("pop",)) / "pop"]

    monkeypatch.setattr(recsys.pipeline, "ensure_default_models", fake_ensure)
    service = app_module.logic.AppService.from_env({"RECSYS_CHECKPOINTS": str(empty)})
    assert service.catalogue == {}
    assert app_module.ensure_models(service) and calls == [str(empty)] and list(service.catalogue) == ["pop"]
    assert "training pop" in capsys.readouterr().out
    assert not app_module.ensure_models(service) and len(calls) == 1  # models exist: nothing to build
    assert app_module.build_demo(service) is not None
