"""Hostile request values (issue 12, items 5 and 16): every handler of app.py, called in-process with a
10-million-character value for each of its arguments, or a value of the wrong type, answers with a message and
does work bounded by the input caps whatever was sent.

No timing is asserted (flaky on a shared machine): a spy on `unicodedata.normalize` and `unicodedata.category`,
which every cleaning step goes through character by character, records how much text was read.
The same values through the HTTP API are in tests/test_app_api.py (test_wrongly_typed_values_get_a_message).
"""

import unicodedata
from pathlib import Path

import gradio as gr
import pytest
from conftest import fresh_app
from test_app_logic import build_checkpoints, build_processed

from recsys.app import text

ROOT = Path(__file__).resolve().parents[1]
HUGE = 10_000_000
# the most characters one cleaning step may read: the longest cap (a session) times the slack
MOST_READ = text.SLACK * (text.MAX_INPUT_CHARS + 1)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    build_checkpoints(tmp / "checkpoints", models=("pop", "itemknn"))
    build_processed(tmp / "data")
    with pytest.MonkeyPatch.context() as mp, fresh_app(mp, tmp / "checkpoints", tmp / "data") as app:
        yield app


@pytest.fixture()
def reads(monkeypatch):
    """Lengths of every text unicodedata.normalize saw, and the number of characters unicodedata.category saw."""
    seen = {"normalize": [], "category": 0}
    normalize, category = unicodedata.normalize, unicodedata.category

    def spy_normalize(form, value):
        seen["normalize"].append(len(value))
        return normalize(form, value)

    def spy_category(ch):
        seen["category"] += 1
        return category(ch)

    monkeypatch.setattr(unicodedata, "normalize", spy_normalize)
    monkeypatch.setattr(unicodedata, "category", spy_category)
    return seen


def _select(row):
    return gr.SelectData(None, {"index": [0, 1], "value": row[1] if len(row) > 1 else None, "row_value": row,
                                "key": None})


def calls(app, big):
    """Every handler of app.py with `big` in each argument in turn (the others valid), as (label, thunk)."""
    plain = {
        "recommend": (app.recommend, ["pop", "101, 102", 5, "shoes", True, None]),
        "recommend_visitor": (app.recommend_visitor, ["alice:0", "pop", 5, "shoes", True]),
        "suggest_visitors": (app.suggest_visitors, ["ali"]),
        "pick_searched": (app.pick_searched, ["alice:0", "pop", 5, "shoes", True]),
        "add_picked": (app.add_picked, ["101", "102"]),
        "clear_session": (app.clear_session, ["pop", 5, "shoes", True]),
        "model_info": (app.model_info, ["pop"]),
        "search_visitors": (app.search_visitors, ["ali", 5]),
        "append_item": (app.append_item, ["101", "102"]),
    }
    out = []
    for name, (fn, args) in plain.items():
        for i in range(len(args)):
            if name == "recommend" and i == 5:
                continue  # `held`: gr.State, kept by the server, never sent by a client
            hostile = [*args[:i], big, *args[i + 1:]]
            out.append((f"{name}[{i}]", lambda fn=fn, hostile=hostile: fn(*hostile)))
    out.append(("append_clicked[session]", lambda: app.append_clicked(big, _select([1, "x", "103", "9%"]))))
    out.append(("append_clicked[item]", lambda: app.append_clicked("101", _select([1, "x", big, "9%"]))))
    out.append(("append_clicked[name]", lambda: app.append_clicked("101", _select([1, big, "103", "9%"]))))
    out.append(("append_clicked[row]", lambda: app.append_clicked("101", _select(big))))
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request
@pytest.mark.parametrize("fill", ["x", "é", "\u200b", "1, "], ids=["ascii", "accented", "zero-width", "items"])
def test_ten_million_characters_in_any_argument_are_read_only_up_to_the_caps(app, reads, fill):
    big = (fill * (HUGE // len(fill) + 1))[:HUGE]
    for label, call in calls(app, big):
        reads["normalize"].clear()
        reads["category"] = 0
        try:
            call()  # the UI handlers never raise: a refused value comes back as a status message
        except gr.Error as err:  # the typed API endpoints refuse with an error message
            assert "Bad input" in err.message and len(err.message) < 200, label
        assert max(reads["normalize"], default=0) <= MOST_READ, label
        # a handler cleans a few values (session, category, names in its answer), never one of HUGE characters
        assert reads["category"] <= 3 * MOST_READ, label


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_wrongly_typed_values_are_refused_with_a_message(app):
    _, _, status, _ = app.recommend("pop", ["101"], 5)
    assert status == "⚠️ Bad input: session must be text, got a list"
    _, _, status, _ = app.recommend("pop", "101", 5, {"category": 1})
    assert "Bad input: category must be text, got a dict" in status
    _, _, status, _ = app.recommend("pop", "101", [5])
    assert "Bad input: k must be a number, got a list" in status
    _, _, status, _ = app.recommend("pop", "101", 5, None, "yes")
    assert "Bad input: exclude_seen must be true or false, got `yes`" in status
    _, _, status, _ = app.recommend("pop", "101", "x" * HUGE)  # parse_k's note, on a short copy
    assert "K must be a number, got `xxxxxxxxxxxxxxxxxxx…`; using 10." in status and len(status) < 500
    outputs = app.recommend_visitor(["alice:0"], "pop", 5)
    assert "Bad input: visitor must be text, got a list" in outputs[4]
    card, *_ = app.model_info({"key": "pop"})
    assert "Bad input: model must be text, got a dict" in card
    with pytest.raises(gr.Error, match=r"limit must be a whole number from 1 to 100, got `abc`"):
        app.search_visitors("a", "abc")
    with pytest.raises(gr.Error, match="limit must be a whole number from 1 to 100, got `None`"):
        app.search_visitors("a", None)
    with pytest.raises(gr.Error, match="limit must be a number, got a list"):
        app.search_visitors("a", [3])
    with pytest.raises(gr.Error, match="item must be text, got a list"):
        app.append_item("101", ["102"])
    with pytest.raises(gr.Error, match="Bad input: .*unexpected keyword argument 'extra'"):
        app.append_item("101", "102", extra=1)
    assert app.search_visitors("visitor:", 2.7) == ["visitor:7", "visitor:12"]  # numbers are clamped, not refused


def test_every_wired_handler_gets_the_values_as_sent_through_the_gate(app):
    fns = [f for f in app.demo.fns.values() if f.fn is not None]
    assert len(fns) >= 10 and all(getattr(f.fn, "bounded", False) and not f.preprocess for f in fns)

    def echo(model: str):
        return model

    for wiring in ({"fn": text.bounded(echo)}, {"fn": echo, "preprocess": False}):
        with gr.Blocks() as demo:
            box = gr.Textbox()
            box.submit(inputs=[box], outputs=[box], **wiring)  # preprocess=True unless told
        with pytest.raises(TypeError, match=r"not behind logic.bounded, or .*: \['echo'\]"):
            app.check_gated(demo)

    def sneaky(model: str, anything: str):
        return model

    with pytest.raises(TypeError, match=r"\['anything'\] have no entry"):  # a new input needs a cap first
        text.bounded(sneaky)


# ---------------------------------------------------------------------------------------------------------------
# the gate itself (recsys.app.text)


def test_bounded_text_cuts_before_any_work_and_refuses_other_types():
    assert text.bounded_text(None, 5) == "" and text.bounded_text(12, 5) == "12"
    assert text.bounded_text("abcdefgh", 3) == "abc" and text.bounded_text("abcdefgh", 3, tail=True) == "fgh"
    for bad in ([1], {"a": 1}, b"bytes", object()):
        with pytest.raises(text.BadInput, match="expected text, got a "):
            text.bounded_text(bad, 5)


def test_gate_slack_keeps_text_that_cleaning_shrinks():
    padded = "\u200b" * 300 + "alice:0"  # zero-width spaces are removed by cleaning; the id survives the gate
    assert text.clean_text(text.gate("visitor", padded), text.MAX_TOKEN_CHARS) == "alice:0"
    composed = "e\u0301" * 100  # 200 characters that NFC makes 100
    assert text.clean_text(text.gate("item", composed), text.MAX_TOKEN_CHARS) == "é" * 100
    session = "x" * HUGE + ", 101"
    assert text.gate("session", session).endswith(", 101")  # a session keeps its most recent items
    assert len(text.gate("session", session)) == text.SLACK * text.MAX_INPUT_CHARS


def test_clean_text_reads_a_bounded_prefix_of_anything(reads):
    assert text.clean_text("x" * HUGE, 10) == "x" * 10
    assert text.clean_text(ValueError("x" * HUGE), 10) == "x" * 10  # internal values (errors): any object
    assert max(reads["normalize"]) <= text.SLACK * 10
    assert text.md("y" * HUGE, 5) == "yyyy…" and text.code("z" * HUGE, 5) == "`zzzz…`"
