"""The accuracy report's choices: rows under today's protocol only, a model's default beside its best validated
row, issue targets checked on one model's rows, and the accuracy chart's marks for rows of an earlier protocol
(tools/bench/accuracy.py, render.py, plots.py)."""

from tools.bench.accuracy import accuracy_checks, current_entry, default_and_best
from tools.bench.plots import accuracy_bars, plot_accuracy
from tools.bench.render import render_accuracy


def row(valid, test, params_file=None, exclude_seen=True, stamp="2026-12-01T00:00"):
    metric = lambda v: {"value": v / 100, "ci95": [v / 100 - 0.002, v / 100 + 0.002]}  # noqa: E731
    return {"valid": {"ndcg@10": valid / 100, "hr@10": 2 * valid / 100},
            "test_scaled": {m: metric(test * f) for m, f in (("hr@10", 2), ("ndcg@10", 1), ("hr@20", 3),
                                                                 ("mrr@10", 1), ("mrr@20", 1), ("ndcg@20", 1))},
            "test_raw": {}, "params_file": params_file, "exclude_seen": exclude_seen, "timestamp": stamp,
            "fit": {"epochs": 3, "best_epoch": 2}, "fit_seconds": 1.0, "refit": False}


def beauty(**models):
    # stored under an older protocol: the spec's exclude_seen (True for Beauty) must win
    return {"protocol": "old words", "main_k": 10, "exclude_seen": False, "models": models,
            "data": {"kept_fraction": 1.0}}


def test_the_spec_protocol_replaces_the_stored_one():
    d = current_entry("beauty", beauty())
    assert d["exclude_seen"] is True and d["protocol"] != "old words" and d["main_k"] == 10
    assert current_entry("not-a-suite-dataset", {"x": 1}) == {"x": 1}


def test_default_beside_the_row_validation_chooses_with_old_protocol_rows_left_out():
    d = current_entry("beauty", beauty(**{
        "sasrec@default": row(6.3, 5.8),
        "sasrec@long": row(6.5, 6.2, params_file="benchmarks/params/beauty/sasrec@long.json"),
        "sasrec@old": row(9.9, 9.9, params_file="x.json", exclude_seen=False),  # ranked seen items: not comparable
        "sasrec@tuned": row(6.4, 7.0, params_file="y.json"),  # better test, worse validation: never chosen
        "gru4rec@tuned": row(5.0, 5.0, params_file="z.json"),  # no default row: no line
        "lstm": row(5.9, 5.6)}))
    got = {c["model"]: c for c in default_and_best(d)}
    assert set(got) == {"sasrec", "lstm"}
    assert got["sasrec"]["default"] == "sasrec@default" and got["sasrec"]["best"] == "sasrec@long"
    assert got["sasrec"]["candidates"] == 3
    assert got["lstm"]["best"] == "lstm"
    text = render_accuracy({"timestamp": "t", "command": "c", "timing": {"wall_s": 1}, "datasets": {"beauty": d}})
    line = next(x for x in text.splitlines() if x.startswith("| beauty | sasrec |"))
    assert "`sasrec@long` (of 3)" in line and line.endswith(f"| {100 * 5.8 / 6.2:.1f}% |")


def test_a_model_pool_goal_chooses_among_that_models_rows_only():
    datasets = {"beauty": beauty(**{
        "sasrec@default": row(6.3, 5.8), "sasrec@long": row(6.5, 6.2, params_file="p.json"),
        "sr": row(7.0, 6.0, params_file="sr.json")})}
    checks = {c["what"]: c for c in accuracy_checks(datasets)}
    sasrec = checks["beauty: SASRec alone vs issue 15's target, test NDCG@10 (misses counted)"]
    assert sasrec["measured"] == 6.2 and sasrec["met"] and sasrec["note"].startswith("sasrec@long")
    best = checks["beauty: best model vs the goal, test NDCG@10 (misses counted)"]
    assert best["note"].startswith("sr,")
    ml1m = checks["ml-1m: SASRec alone vs the published full-softmax row (issue 15), test HR@10 (misses counted)"]
    assert ml1m["measured"] is None and "no model run yet" in ml1m["note"]


def test_the_accuracy_chart_marks_rows_of_an_earlier_protocol(tmp_path):
    stored = beauty(**{"sasrec@old": row(9.9, 9.9, params_file="x.json", exclude_seen=False),
                       "sasrec@default": row(6.3, 5.8)})
    metric, bars = accuracy_bars("beauty", stored)  # the stored entry: the spec's protocol applies inside
    assert metric == "hr@10"
    ours = {label: kind for label, _, kind, _ in bars if label.startswith("ours")}
    assert ours == {"ours: sasrec@old (earlier protocol)": "ours, earlier protocol", "ours: sasrec@default": "ours"}
    assert any(kind == "published" for _, _, kind, _ in bars)  # the anchors stay beside them
    assert plot_accuracy({"datasets": {"beauty": stored}}, tmp_path / "a.png").stat().st_size > 0
