"""The app's handler logic (recsys/app/), without Gradio: tiny Pop / S-Pop / item-kNN model folders.

The data and folders are the load test's (tools.loadtest.demo_dataset / build_demo_checkpoints);
`build_checkpoints` and `build_processed` are also used by tests/test_app_api.py and tests/test_browser.py.
"""

import json
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.app import cards, catalogue, chart, explain, items, scores, text, views
from recsys.app.service import AppService
from recsys.app.visitors import load_visitors
from tools.loadtest import N_ITEMS, build_demo_checkpoints, demo_dataset

N = N_ITEMS  # raw ids "101".."120"; odd indices in category "shoes", even in "hats"
RAW = [str(100 + i) for i in range(1, N + 1)]
COLOURS = ("graphite", "red", "navy", "sand", "olive", "white", "black", "teal", "plum", "amber")
# readable names (some with commas, as the synthetic catalogue's), unique; odd items are shoes, even ones hats
NAMES = {raw: (f"Trail running shoes, {COLOURS[i // 2]}" if i % 2 else f"Wool beanie, {COLOURS[i // 2 - 1]}")
         for i, raw in enumerate(RAW, 1)}
NAMES["120"] = "A very long product name that goes on and on about its many fine qualities, " * 1 + "extra edition"
CATEGORY = {"shoes": "Sports › Running › Shoes", "hats": "Fashion › Hats"}


def build_checkpoints(root: Path, models=("pop", "spop", "itemknn")) -> Path:
    """The load test's folders, each items.json given readable attributes (name, category path, price, brand),
    as the synthetic catalogue writes them."""
    build_demo_checkpoints(root, models)
    for name in models:
        path = Path(root) / name / "items.json"
        info = json.loads(path.read_text())
        ids = info["item_ids"]
        info["attributes"] = {
            "name": [NAMES[i] for i in ids],
            "category": [CATEGORY[c] for c in info["category_ids"]],
            "price": [f"{20 + int(i) % 7 * 5}.90" for i in ids],
            "brand": ["Northpeak" if int(i) % 3 else None for i in ids],
        }
        path.write_text(json.dumps(info))
    return Path(root)


def build_processed(root: Path) -> Path:
    return demo_dataset().save(root)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    build_checkpoints(root / "checkpoints")
    build_processed(root / "data")
    return AppService.from_env({"RECSYS_CHECKPOINTS": str(root / "checkpoints"),
                                      "RECSYS_DATA": str(root / "data")})


def items_of(result) -> list[str]:
    return result.table["item"].tolist()


# ---------------------------------------------------------------------------------------------------------------
# catalogue and models


def test_catalogue_lists_local_models_with_headline_metrics(service):
    assert set(service.catalogue) == {"pop", "spop", "itemknn"}
    labels = dict((key, label) for label, key in service.choices)
    assert "HR@10 0.200" in labels["pop"] and "MRR@20 0.100" in labels["pop"] and "NDCG@10" in labels["pop"]
    assert service.default_model == "itemknn"  # best on validation
    card = cards.model_card(service, "pop")
    assert "most viewed" in card and "0.150–0.250" in card


def test_hub_repos_are_expanded_and_failures_reported():
    def list_models(repo):
        if repo == "bad/repo":
            raise OSError("offline")
        return ["sasrec", f"{repo}/gru4rec"]

    entries, warnings = catalogue.discover_hub(["user/data", "bad/repo", " ", "user/other/sknn"], list_models)
    assert [e.key for e in entries] == ["user/data/sasrec", "user/data/gru4rec", "user/other/sknn"]
    assert all(e.where == "hub" and "(Hub)" in e.label for e in entries)
    assert len(warnings) == 1 and "bad/repo" in warnings[0]
    root_model, _ = catalogue.discover_hub(["user/single"], lambda repo: [])
    assert [e.key for e in root_model] == ["user/single"]


def test_unreachable_hub_repo_is_a_note_not_a_crash(tmp_path, monkeypatch):
    import recsys.hub

    monkeypatch.setattr(recsys.hub, "_offline", lambda: True)  # and nothing cached: list_models must fail
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    service = AppService.from_env({"RECSYS_CHECKPOINTS": str(tmp_path / "none"), "RECSYS_MODELS": "nobody/x"})
    assert service.catalogue == {} and len(service.notes) == 1 and "nobody/x" in service.notes[0]
    assert views.recommend_view(service, "pop", "1").mode == "error"


def test_models_are_loaded_once_and_cached_across_threads():
    calls = []

    def loader(source):
        calls.append(source)
        return object()

    cache = catalogue.ModelCache(loader, max_models=2)
    entries = [catalogue.ModelEntry(f"m{i}", f"/x/m{i}", "local") for i in range(3)]
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(entries[0]))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["/x/m0"] and len({id(g) for g in got}) == 1
    cache.get(entries[1]), cache.get(entries[2])  # evicts m0 (least recently used)
    assert "m0" not in cache and "m2" in cache


def test_unknown_model_and_paths_are_refused(service):
    result = views.recommend_view(service, "../../etc", "101")
    assert result.mode == "error" and "Unknown model" in result.status
    assert views.recommend_view(AppService(catalogue={}), "pop", "101").mode == "error"


# ---------------------------------------------------------------------------------------------------------------
# recommendations


def test_personalized_from_a_visitor(service):
    assert len(service.visitors) == 5 and "alice:0" in service.visitors.samples
    session, target, status = views.load_visitor(service, "alice:0", "itemknn")
    assert session and target and "held out" in status and f"“{NAMES[target]}”" in status
    lines = session.split("\n")  # one item per line, names first: "Trail running shoes, navy (105)"
    assert lines == [f"{NAMES[i]} ({i})" for i in service.visitors.sessions["alice:0"][:-1]]
    assert "session `0` of visitor `alice`" in status  # what ":0" means
    result = views.recommend_view(service, "itemknn", session, 5, target=target)
    assert result.session + [target] == service.visitors.sessions["alice:0"]
    assert result.mode == "personalized" and "Personalised" in result.status
    assert len(result.table) == 5 and list(result.table["rank"]) == [1, 2, 3, 4, 5]
    assert list(result.table.columns) == ["rank", "item", "id", "score", "why", "category", "price", "brand"]
    assert [NAMES[i] for i in result.table["id"]] == result.table["item"].tolist()  # names first, ids beside
    assert set(result.table["category"]) <= set(CATEGORY.values())
    assert "actually viewed" in result.status and NAMES[target] in result.status
    assert all(f"“{NAMES[i]}”" not in result.explanation for i in [])  # (names, not ids, in the panel below)
    assert NAMES[result.session[-1]] in result.explanation


def test_manual_sequence_follows_the_walk(service):
    result = views.recommend_view(service, "itemknn", "101 102 103", 3)
    assert result.mode == "personalized" and result.session == ["101", "102", "103"]
    assert "104" in result.table["id"].tolist()[:2]  # item-kNN: a close neighbour of the last item
    probs = np.array(result.probability)
    assert np.all(np.diff(probs) <= 0) and 0 < probs.sum() <= 1
    assert result.table["score"].tolist() == [scores.percent(p) for p in probs]
    assert result.chart["label"].tolist() == [NAMES[i][:34] if len(NAMES[i]) <= 34 else NAMES[i][:33].rstrip(" ,")
                                              + "…" for i in result.table["id"]]
    assert "Item neighbours" in result.explanation and NAMES["103"] in result.explanation


def test_scores_are_each_models_probability(service):
    """One definition for every model: softmax of logits, else the share of non-negative scores; over every
    recommendable item the scores sum to 1, so a whole-catalogue list adds up to 100%."""
    assert np.allclose(scores.probabilities([2.0, 1.0, 0.0], logits=True), np.exp([2, 1, 0]) / np.exp([2, 1, 0]).sum())
    assert np.allclose(scores.probabilities([3.0, 1.0, 0.0, -2.0], logits=False), [0.75, 0.25, 0, 0])
    assert np.allclose(scores.probabilities([0.0, 0.0], logits=False), [0.5, 0.5])
    for key in ("pop", "spop", "itemknn"):
        whole = views.recommend_view(service, key, "101, 102", 100, exclude_seen=True)
        assert len(whole.table) == N - 2 and abs(sum(whole.probability) - 1) < 1e-9
    pop = views.recommend_view(service, "pop", "101", 3, exclude_seen=False)  # Pop: an item's share of all views
    counts = np.array(service.served("pop").model.item_info["popularity"], dtype=float)
    assert np.isclose(pop.probability[0], counts.max() / counts.sum())
    assert scores.percent(0.1234) == "12.3%" and scores.percent(0.00001) == "<0.01%" and scores.percent(1) == "100%"
    assert "probability" in scores.LEGEND and "every model" in scores.LEGEND.lower()


def test_bar_chart_in_ranking_order_with_names(service):
    result = views.recommend_view(service, "pop", "", 12)
    html = chart.bar_chart(result.chart)
    labels = re.findall(r'<span class="bar-label">(\d+)\. ([^<]*)</span>', html)
    assert [int(r) for r, _ in labels] == list(range(1, 13))  # bars in the table's order, ties included
    assert [name for _, name in labels] == [NAMES[i] for i in result.table["id"]][:12]
    assert "12 items" in html and chart.bar_chart(chart.empty_chart()) == ""
    whole = views.recommend_view(service, "pop", "", 100)  # item 120's long name is shortened on its bar
    assert "A very long product name that goe…" in chart.bar_chart(whole.chart)
    k100 = pd.DataFrame({"label": [f"item {i}" for i in range(100)], "item": [f"item {i} (x{i})" for i in range(100)],
                         "probability": np.linspace(0.05, 0.001, 100)})
    html = chart.bar_chart(k100)  # K = 100: MAX_BARS bars, never 100 labels on top of each other
    assert html.count('class="bar-row"') == chart.MAX_BARS and f"first {chart.MAX_BARS} of 100" in html
    hostile = chart.bar_chart(pd.DataFrame({"label": ["<b>x</b>"], "item": ['"><script>'], "probability": [1.0]}))
    assert "<b>x" not in hostile and "<script>" not in hostile


def test_items_by_name_id_or_label(service):
    by_name = views.recommend_view(service, "itemknn", "trail running shoes, red\nWool beanie, navy", 3)
    assert by_name.session == ["103", "106"] and not by_name.skipped
    one_line = views.recommend_view(service, "itemknn", "Trail running shoes, red, Wool beanie, navy, 107", 3)
    assert one_line.session == ["103", "106", "107"] and not one_line.skipped  # names holding commas
    labels = views.recommend_view(service, "itemknn", "Trail running shoes, red (103)\nno such thing (104)", 3)
    assert labels.session == ["103", "104"]  # a label's id decides
    spaced = views.recommend_view(service, "itemknn", " 101  102   103 ", 3)
    assert spaced.session == ["101", "102", "103"]
    mixed = views.recommend_view(service, "itemknn", "101, 102, nope", 3)
    assert mixed.session == ["101", "102"] and mixed.skipped == ["nope"]


def test_ambiguous_names_are_refused_with_the_reason():
    info = {"item_ids": ["1", "2", "3"], "attributes": {"name": ["Cap", "cap", "Scarf"]}}
    names = items.ItemNames.of(info)
    vocab = {"1", "2", "3"}
    read = items.read_session("cap, scarf", names, vocab, 10)
    assert read.items == ["3"] and read.ambiguous == ["cap"] and read.unknown == []
    assert names.resolve("Cap (2)", vocab) == "2" and names.label("3") == "Scarf (3)" and names.name("9") == "9"


def test_suggestions_and_placeholder_show_items_that_exist(service):
    suggestions = views.suggestions(service, "pop")
    assert suggestions[0] == f"{NAMES['101']} (101)" and len(suggestions) == N  # most viewed first
    assert views.placeholder(service, "pop").split("\n")[1:] == suggestions[:3]
    assert views.suggestions(service, "no-such-model") == []


def test_held_out_next_item_that_repeats_a_session_item(service, monkeypatch):
    """The check ranks the visitor's true next item as the model's metrics did: a repeat hidden by the box is
    said to be hidden, with its rank as the metrics counted it (repeats allowed)."""
    model = service.served("itemknn").model
    monkeypatch.setattr(model, "metrics", {**model.metrics, "protocol": {"exclude_seen": False}})
    hidden = views.recommend_view(service, "itemknn", "101\n102\n103", 10, exclude_seen=True, target="102")
    assert "102" not in hidden.table["id"].tolist()
    assert "not in this top 10" in hidden.status and "repeats an item of the session" in hidden.status
    assert "computed with repeats allowed, where it ranks **" in hidden.status
    shown = views.recommend_view(service, "itemknn", "101\n102\n103", 10, exclude_seen=False, target="102")
    rank = shown.table["id"].tolist().index("102") + 1
    assert f"**rank {rank}** in this list" in shown.status and f"ranks **{rank}**" in hidden.status
    # the evaluator's own rank (recsys.evaluate.rank_targets, pessimistic ties) agrees
    from recsys.evaluate import rank_targets
    from recsys.models.base import mask_scores, score_batch

    history = model.vocab.encode(["101", "102", "103"], strict=True)
    raw = mask_scores(score_batch(model, [history]), [history], False)
    assert int(rank_targets(raw, torch.tensor([model.vocab.encode(["102"])[0]]))[0]) == rank
    monkeypatch.setattr(model, "metrics", {**model.metrics, "protocol": {"exclude_seen": True}})
    miss = views.recommend_view(service, "itemknn", "101\n102\n103", 10, exclude_seen=True, target="102")
    assert "count it as a miss" in miss.status and "session's items hidden" in miss.status


def test_status_says_what_each_model_used(service):
    pop = views.recommend_view(service, "pop", "101, 102", 5)
    assert "Not personalised" in pop.status and "popularity only" in pop.status and "Personalised" not in pop.status
    spop = views.recommend_view(service, "spop", "101, 102", 5)
    assert "Personalised" in spop.status and "how often each item occurs in this session" in spop.status
    knn = views.recommend_view(service, "itemknn", "101, 102", 5)
    assert "neighbours of the session" in knn.status and f"“{NAMES['102']}”" in knn.status


def test_every_item_gets_a_reason(service):
    knn = views.recommend_view(service, "itemknn", "101\n103", 5)
    assert all(knn.table["why"]) and knn.table["why"].str.startswith("often viewed with “").any()
    assert any(f"“{NAMES[i]}”" in w for w in knn.table["why"] for i in ("101", "103"))
    pop = views.recommend_view(service, "pop", "101", 3, exclude_seen=False)
    most = max(service.served("pop").model.item_info["popularity"])
    assert pop.table["why"].tolist()[0] == f"popular in Shoes: {most} views in training"
    spop = views.recommend_view(service, "spop", "105, 105", 2, exclude_seen=False)
    assert spop.table["why"].tolist()[0] == "already viewed 2× in this session"
    cold = views.recommend_view(service, "itemknn", "", 3)
    assert cold.table["why"].str.startswith("popular").all()


def test_exclude_seen(service):
    shown = views.recommend_view(service, "spop", "101, 102", 20, exclude_seen=False)
    assert set(shown.table["id"].tolist()[:2]) == {"101", "102"}
    hidden = views.recommend_view(service, "spop", "101, 102", 20, exclude_seen=True)
    assert not {"101", "102"} & set(hidden.table["id"]) and len(hidden.table) == N - 2


def test_cold_start_empty_session_and_unknown_visitor(service):
    result = views.recommend_view(service, "itemknn", "   ", 5)
    assert result.mode == "popularity" and "Cold start" in result.status and "not personalised" in result.status
    assert result.table["id"].iloc[0] == "101" and result.table["item"].iloc[0] == NAMES["101"]
    session, target, status = views.load_visitor(service, "nobody:0")
    assert session == "" and target is None and "Unknown visitor" in status


def test_visitor_found_by_part_of_its_id(service):
    session, target, status = views.load_visitor(service, "alice", "pop")  # one id contains it: loaded
    assert target and "the only visitor id containing it is `alice:0`" in status and "Visitor `alice:0`" in status
    session, target, status = views.load_visitor(service, "visitor:", "pop")  # several: say which, load none
    assert session == "" and "3 ids contain it" in status and "`visitor:12`" in status
    assert "visitor:n" in views.VISITOR_IDS


def test_cold_start_by_category(service):
    result = views.recommend_view(service, "pop", "", 10, category=CATEGORY["hats"])
    assert result.mode == "category popularity" and "Fashion › Hats" in result.status
    assert set(result.table["category"]) == {CATEGORY["hats"]}
    unknown_cat = views.recommend_view(service, "pop", "", 3, category="<b>boots</b>")
    assert unknown_cat.mode == "popularity" and "unknown to this model" in unknown_cat.status
    assert "`<b>boots</b>`" in unknown_cat.status  # a code span: shown literally, never rendered as HTML
    assert sorted(views.categories(service, "pop")) == sorted(CATEGORY.values())


def test_all_items_unknown_falls_back(service):
    result = views.recommend_view(service, "pop", "999, 998", 4)
    assert result.mode == "popularity" and result.skipped == ["999", "998"]
    assert "Cold start" in result.status and "`999`" in result.status


def test_unknown_items_are_skipped_and_named(service):
    result = views.recommend_view(service, "itemknn", "101, nope, 102, <script>alert(1)</script>", 5)
    assert result.mode == "personalized" and result.session == ["101", "102"]
    assert result.skipped == ["nope", "<script>alert(1)</script>"]
    assert "Skipped 2 unknown items" in result.status and "nope" in result.status
    assert "`<script>alert(1)</script>`" in result.status  # inert inside a code span


def test_model_switch_changes_the_ranking(service):
    session = "101, 102, 103"
    pop = views.recommend_view(service, "pop", session, 5, exclude_seen=False)
    knn = views.recommend_view(service, "itemknn", session, 5, exclude_seen=False)
    assert pop.table["id"].iloc[0] == "101" and knn.table["id"].iloc[0] != "101"
    assert "pop" in pop.status and "itemknn" in knn.status
    assert "does not show its internals" in pop.explanation and "popularity only" in pop.explanation


# ---------------------------------------------------------------------------------------------------------------
# caps and bad input


@pytest.mark.parametrize(("k", "expected", "noted"), [
    (10, 10, False), (1, 1, False), (100, 100, False), (7.6, 8, False), ("12", 12, False),
    (0, 1, True), (-5, 1, True), (1000, 100, True), (None, 10, True), ("ten", 10, True), (float("nan"), 10, True)])
def test_bad_k_is_clamped_with_a_note(k, expected, noted):
    value, note = text.parse_k(k)
    assert value == expected and (note is not None) == noted


def test_caps_on_k_and_session_length(service):
    big_k = views.recommend_view(service, "pop", "101", -3)
    assert len(big_k.table) == 1 and "at least 1" in big_k.status
    long = ", ".join(RAW * 20)  # 400 items
    result = views.recommend_view(service, "itemknn", long, 500, exclude_seen=False)
    assert len(result.session) == text.MAX_SESSION_ITEMS and "200 most recent of 400" in result.status
    assert "capped at 100" in result.status and len(result.table) == N  # the whole catalogue, under the cap
    huge = views.recommend_view(service, "pop", "x" * 100_000 + ", 101", 3)
    assert huge.mode == "personalized" and "only its last 80,000 characters were read" in huge.status
    assert huge.session == ["101"] and "of at least" not in huge.status  # 2 items, the cut one counted
    long_token = views.recommend_view(service, "pop", "y" * 500 + ", 101", 3)
    assert [len(s) for s in long_token.skipped] == [text.MAX_TOKEN_CHARS + 1] and long_token.skipped[0][-1] == "…"


def test_a_long_paste_reports_its_true_item_count(service):
    """5,000 items are ~35,000 characters, past the 20,000 read: they are all counted, the last 200 used."""
    paste = ", ".join(RAW[i % N] for i in range(5000))
    assert len(paste) > text.MAX_INPUT_CHARS
    result = views.recommend_view(service, "itemknn", paste, 5, exclude_seen=False)
    assert "200 most recent of 5,000 items" in result.status and len(result.session) == text.MAX_SESSION_ITEMS
    assert result.session == [RAW[i % N] for i in range(4800, 5000)]
    lines = "\n".join(f"{NAMES[RAW[i % N]]} ({RAW[i % N]})" for i in range(2000))  # the app's own form
    result = views.recommend_view(service, "itemknn", lines, 5, exclude_seen=False)
    assert len(lines) < text.SLACK * text.MAX_INPUT_CHARS and "200 most recent of 2,000 items" in result.status


def test_control_and_unicode_characters(service):
    result = views.recommend_view(service, "pop", "\x00101\u200b, 10\x072, ｆｏｏ, 🛒", 3)
    assert result.session == ["101", "102"]
    assert result.skipped == ["ｆｏｏ", "🛒"]
    assert "\x00" not in result.status


def test_everything_already_seen(service):
    result = views.recommend_view(service, "pop", ", ".join(RAW), 5, exclude_seen=True)
    assert result.mode == "error" and "already in the session" in result.status


def test_append_item_extends_and_caps():
    assert views.append_item("101\n102", "103") == "101\n102\n103"
    assert views.append_item("", "Wool beanie, red (104)") == "Wool beanie, red (104)"
    assert views.append_item("101", "  ") == "101"
    capped = views.append_item("\n".join(["101"] * 250), "109").split("\n")
    assert len(capped) == text.MAX_SESSION_ITEMS and capped[-1] == "109"


def test_visitor_search(service):
    visitors = service.visitors
    assert visitors.search("visitor:7")[0] == "visitor:7" and "visitor:70" in visitors.search("visitor:7")
    assert visitors.search("ALICE") == ["alice:0"]
    assert visitors.search("") == visitors.samples[:20]
    assert visitors.search("\x00<zzz>") == []


def test_toasts_are_plain_text_and_addresses_keep_their_dots():
    status = "⚠️ **Unknown** model " + text.code("x.y") + ": " + text.md("see https://huggingface.co/a_b now, *x*")
    assert "\\" not in text.plain(status) and "`" not in text.plain(status)
    assert text.plain(status) == "⚠️ Unknown model x.y: see https://huggingface.co/a_b now, *x*"  # the user's * kept
    assert "`https://huggingface.co/a_b`" in text.md("see https://huggingface.co/a_b")  # no \. inside it


def test_visitors_from_json(tmp_path):
    path = tmp_path / "samples.json"
    path.write_text(json.dumps({"sessions": [{"session_id": "s1", "items": ["101", "102", "103"]}]}))
    visitors = load_visitors(None, path)
    assert visitors.sessions == {"s1": ["101", "102", "103"]} and visitors.samples == ["s1"]
    assert len(load_visitors(tmp_path / "missing", tmp_path / "missing.json")) == 0


def test_explanation_renders_any_dict(service):
    model = service.served("itemknn").model
    names = service.served("itemknn").names
    out = explain.render({"kind": "attention", "items": [1, 2], "weights": [0.25, 0.75]}, model.vocab, names)
    assert "*Attention*" in out and f"| {NAMES['101']} | 25% |" in out and f"| {NAMES['102']} | 75% |" in out
    assert "weights (share)" in out
    sasrec_like = {"method": "attention of the last position", "positions": [2, 0], "items": [3, 1],
                   "weights": [0.6, 0.3], "all_weights": [0.3, 0.1, 0.6]}
    out = explain.render(sasrec_like, model.vocab, names)
    assert f"| 2 | {NAMES['103']} | 60% |" in out and "**method**" in out and "all weights" not in out
    raw_weights = {"kind": "item neighbours", "items": [{"item": 1, "neighbours": [
        {"item": 2, "weight": 485.139}, {"item": 3, "weight": 97.0278}]}]}
    out = explain.render(raw_weights, model.vocab, names)  # raw neighbour weights become shares of the strongest
    assert "485" not in out and f"{NAMES['102']} (100%)" in out and f"{NAMES['103']} (20%)" in out
    assert "100% is the strongest link" in out
    out = explain.render({"kind": "neighbour sessions", "n_neighbours": 3,
                          "neighbours": [{"session": 4, "similarity": 0.5, "items": [1, 3]}]}, model.vocab, names)
    assert f"{NAMES['101']}, {NAMES['103']}" in out and "**n neighbours**: 3" in out

    class Broken:
        vocab = model.vocab

        def explain(self, session, top):
            raise RuntimeError("boom")

    assert "could not be computed" in explain.format_explanation(Broken(), np.array([1]), names)


def test_a_hybrid_folder_is_served_and_its_card_says_what_it_mixes(tmp_path):
    from recsys.folder import save_folder
    from recsys.models import build_model
    from recsys.train import fit
    from tools.loadtest import demo_metrics

    data = demo_dataset()
    model = build_model("hybrid", data.n_items, {"components": ["spop", "itemknn"], "weights": [0.3, 0.7]})
    fit(model, data)
    save_folder(model, tmp_path / "checkpoints" / "hybrid", data.items, metrics=demo_metrics(0.4))
    service = AppService.from_env({"RECSYS_CHECKPOINTS": str(tmp_path / "checkpoints"),
                                         "RECSYS_DATA": str(build_processed(tmp_path / "data"))})
    card = cards.model_card(service, "hybrid")
    assert "weighted mix" in card and "spop" in card and "30%" in card and "70%" in card
    assert "for its length" not in card
    result = views.recommend_view(service, "hybrid", "101, 102", 5)
    assert result.mode == "personalized" and len(result.table) == 5 and "Personalised" in result.status
    bucketed = build_model("hybrid", data.n_items, {"components": ["spop", "itemknn"], "weights": [0.3, 0.7],
                                                    "mix_by": "length-repeat",
                                                    "bucket_weights": [[0.3, 0.7], [1.0, 0.0]] * 6})
    fit(bucketed, data)
    save_folder(bucketed, tmp_path / "checkpoints" / "hybrid-b", data.items, metrics=demo_metrics(0.4))
    service = AppService.from_env({"RECSYS_CHECKPOINTS": str(tmp_path / "checkpoints"),
                                   "RECSYS_DATA": str(tmp_path / "data")})
    card = cards.model_card(service, "hybrid-b")
    assert "30%" in card and "for its length and for whether it repeats an item" in card
    assert len(views.recommend_view(service, "hybrid-b", "101, 102, 101", 5).table) == 5


def test_a_neural_models_reasons_name_the_item_whose_absence_costs_most(tmp_path):
    """SASRec (random weights: the rule, not the training, is under test): each reason names the session item
    whose removal lowers that item's softmax probability most, as recomputed here."""
    from recsys import load
    from recsys.folder import save_folder
    from recsys.models import build_model
    from recsys.models.base import score_batch

    data = demo_dataset()
    torch.manual_seed(0)
    model = build_model("sasrec", data.n_items, {"dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 10})
    save_folder(model, tmp_path / "sasrec", data.items)
    model = load(str(tmp_path / "sasrec"))
    names = items.ItemNames.of(model.item_info)
    history = np.array([1, 3, 5, 7])
    top = np.array([i for i in range(1, N + 1) if i not in history])
    why = explain.reasons(model, history, top, names)
    full = torch.softmax(score_batch(model, [history])[0, 1:].double(), 0)
    checked = 0
    for n, item in enumerate(top):
        drops = {j: (full[item - 1] - torch.softmax(score_batch(model, [history[history != j]])[0, 1:].double(), 0)
                     [item - 1]).item() for j in history}
        best = max(drops, key=drops.get)
        if drops[best] > explain.NEGLIGIBLE * full[item - 1].item():
            assert why[n] == f"mostly from “{names.name(RAW[best - 1])}”", (item, drops, why[n])
            checked += 1
    assert checked >= 3
