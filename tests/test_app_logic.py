"""The app's handler logic (recsys/app/), without Gradio: tiny Pop / S-Pop / item-kNN model folders.

The data and folders are the load test's (tools.loadtest.demo_dataset / build_demo_checkpoints);
`build_checkpoints` and `build_processed` are also used by tests/test_app_api.py and tests/test_browser.py.
"""

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from recsys.app import cards, catalogue, explain, text, views
from recsys.app.service import AppService
from recsys.app.visitors import load_visitors
from tools.loadtest import N_ITEMS, build_demo_checkpoints, demo_dataset

N = N_ITEMS  # raw ids "101".."120"; odd indices in category "shoes", even in "hats"
RAW = [str(100 + i) for i in range(1, N + 1)]
build_checkpoints = build_demo_checkpoints


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
    session, target, status = views.load_visitor(service, "alice:0")
    assert session and target and "held out" in status
    assert session.split(", ") + [target] == service.visitors.sessions["alice:0"]
    result = views.recommend_view(service, "itemknn", session, 5, target=target)
    assert result.mode == "personalized" and "Personalised" in result.status
    assert len(result.table) == 5 and list(result.table["rank"]) == [1, 2, 3, 4, 5]
    assert list(result.table.columns) == ["rank", "item", "category", "description", "score"]
    assert "actually viewed" in result.status


def test_manual_sequence_follows_the_walk(service):
    result = views.recommend_view(service, "itemknn", "101 102 103", 3)
    assert result.mode == "personalized" and result.session == ["101", "102", "103"]
    assert "104" in items_of(result)[:2]  # item-kNN: a close neighbour of the last item
    scores = result.table["score"].to_numpy()
    assert scores[0] == 1.0 and np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores) <= 0)
    assert result.chart["item"].tolist() == items_of(result)
    assert "Item neighbours" in result.explanation and "104" in result.explanation  # decoded neighbour ids


def test_bar_chart_in_ranking_order(service):
    result = views.recommend_view(service, "pop", "", 12)
    scores = result.table["score"].tolist()
    assert len(set(scores)) < len(scores)  # the fallback has tied scores: the order must not come from them
    chart = views.bar_chart(result.chart)
    assert chart["sort"] == items_of(result)  # bars in the table's order, ties included
    assert chart["value"]["item"].tolist() == items_of(result) and chart["value"]["score"].tolist() == scores
    assert chart["y_lim"] == [0, 1]
    empty = views.bar_chart(views.empty_chart())
    assert empty["value"] is None and empty["sort"] == []


def test_items_by_name_and_separators(service):
    by_name = views.recommend_view(service, "itemknn", "product 103, red shoe", 3)
    assert by_name.session == ["103", "105"] and not by_name.skipped
    assert text.split_session("a, b c;d\ne") == (["a", "b c", "d", "e"], False)
    assert text.split_session(" 1  2   3 ")[0] == ["1", "2", "3"]


def test_exclude_seen(service):
    shown = views.recommend_view(service, "spop", "101, 102", 20, exclude_seen=False)
    assert items_of(shown)[:2] == ["101", "102"] or set(items_of(shown)[:2]) == {"101", "102"}
    hidden = views.recommend_view(service, "spop", "101, 102", 20, exclude_seen=True)
    assert not {"101", "102"} & set(items_of(hidden)) and len(hidden.table) == N - 2


def test_cold_start_empty_session_and_unknown_visitor(service):
    result = views.recommend_view(service, "itemknn", "   ", 5)
    assert result.mode == "popularity" and "Cold start" in result.status and "not personalised" in result.status
    assert items_of(result)[0] == "101" and result.table["score"].iloc[0] == 1.0
    session, target, status = views.load_visitor(service, "nobody:0")
    assert session == "" and target is None and "Unknown visitor" in status


def test_cold_start_by_category(service):
    result = views.recommend_view(service, "pop", "", 10, category="hats")
    assert result.mode == "category popularity" and "hats" in result.status
    assert set(result.table["category"]) == {"hats"}
    unknown_cat = views.recommend_view(service, "pop", "", 3, category="<b>boots</b>")
    assert unknown_cat.mode == "popularity" and "unknown to this model" in unknown_cat.status
    assert "`<b>boots</b>`" in unknown_cat.status  # a code span: shown literally, never rendered as HTML
    assert views.categories(service, "pop")[:2] in (["shoes", "hats"], ["hats", "shoes"])


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
    assert items_of(pop)[0] == "101" and items_of(knn)[0] != "101"
    assert "pop" in pop.status and "itemknn" in knn.status
    assert "Not available for this model" in pop.explanation
    assert "description" not in pop.table.columns and "description" in knn.table.columns


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
    assert huge.mode == "personalized" and "only its end" in huge.status
    assert any(s.endswith("…") and len(s) <= text.MAX_TOKEN_CHARS + 1 for s in huge.skipped)


def test_control_and_unicode_characters(service):
    result = views.recommend_view(service, "pop", "\x00101\u200b, 10\x072, ｆｏｏ, 🛒", 3)
    assert result.session == ["101", "102"]
    assert result.skipped == ["ｆｏｏ", "🛒"]
    assert "\x00" not in result.status


def test_everything_already_seen(service):
    result = views.recommend_view(service, "pop", ", ".join(RAW), 5, exclude_seen=True)
    assert result.mode == "error" and "already in the session" in result.status


def test_append_item_extends_and_caps():
    assert views.append_item("101, 102", "103") == "101, 102, 103"
    assert views.append_item("", "103") == "103"
    assert views.append_item("101", "  ") == "101"
    capped = views.append_item(", ".join(["101"] * 250), "109").split(", ")
    assert len(capped) == text.MAX_SESSION_ITEMS and capped[-1] == "109"


def test_visitor_search(service):
    visitors = service.visitors
    assert visitors.search("visitor:7")[0] == "visitor:7" and "visitor:70" in visitors.search("visitor:7")
    assert visitors.search("ALICE") == ["alice:0"]
    assert visitors.search("") == visitors.samples[:20]
    assert visitors.search("\x00<zzz>") == []


def test_visitors_from_json(tmp_path):
    path = tmp_path / "samples.json"
    path.write_text(json.dumps({"sessions": [{"session_id": "s1", "items": ["101", "102", "103"]}]}))
    visitors = load_visitors(None, path)
    assert visitors.sessions == {"s1": ["101", "102", "103"]} and visitors.samples == ["s1"]
    assert len(load_visitors(tmp_path / "missing", tmp_path / "missing.json")) == 0


def test_explanation_renders_any_dict(service):
    model = service.served("itemknn").model
    text = explain.render({"kind": "attention", "items": [1, 2], "weights": [0.25, 0.75]}, model.vocab)
    assert "*Attention*" in text and "| 101 | 0.250 |" in text and "| 102 | 0.750 |" in text
    sasrec_like = {"method": "attention of the last position", "positions": [2, 0], "items": [3, 1],
                   "weights": [0.6, 0.3], "all_weights": [0.3, 0.1, 0.6]}
    text = explain.render(sasrec_like, model.vocab)
    assert "| 2 | 103 | 0.600 |" in text and "| 0 | 101 | 0.300 |" in text and "**method**" in text
    text = explain.render({"kind": "neighbour sessions", "n_neighbours": 3,
                          "neighbours": [{"session": 4, "similarity": 0.5, "items": [1, 3]}]}, model.vocab)
    assert "| 4 | 0.500 | 101, 103 |" in text and "**n neighbours**: 3" in text

    class Broken:
        vocab = model.vocab

        def explain(self, session, top):
            raise RuntimeError("boom")

    assert "could not be computed" in explain.format_explanation(Broken(), np.array([1]))


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
    result = views.recommend_view(service, "hybrid", "101, 102", 5)
    assert result.mode == "personalized" and len(result.table) == 5 and "Personalised" in result.status
