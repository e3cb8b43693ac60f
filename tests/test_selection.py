"""Selection on validation says how sure it is (issue 16 item 9): results.json's "selection" names the metric,
the chosen model, each model's validation value and 95% CI, and the models the data cannot tell from the chosen
one; `--select` takes any ranking metric or a mean of several; `--max-valid-cases` caps validation (item 6).

The script runs in this process (its main()) on a small synthetic data set, with the fast baselines.
"""

import json

import numpy as np
import pytest
from test_output_safety import train_and_eval  # the script, loaded as a module

from recsys.evaluate import objective_report
from recsys.prepare import prepare

MODELS = "pop,spop,sr,sr@same"  # sr@same: sr again with the same (default) parameters, so identical results


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare("synthetic", out=out, synthetic={"n_events": 4000})
    return out


def train(data, out, *extra, models=MODELS) -> int:
    return train_and_eval.main(["--data", str(data), "--models", models, "--out", str(out), "--bootstrap", "50",
                                "--quiet", *map(str, extra)])


@pytest.fixture(scope="module")
def default_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert train(data_dir, out) == 0
    return out


def test_selection_names_the_best_by_validation_with_each_models_ci(default_run):
    results = json.loads((default_run / "results.json").read_text())
    selection = results["selection"]
    assert selection["metric"] == "mrr@20"
    valid = {name: e["valid"]["mrr@20"] for name, e in results["models"].items()}
    assert selection["best"] == max(valid, key=lambda n: valid[n]["value"])  # validation, never test
    assert set(selection["valid"]) == set(valid)
    for name, score in selection["valid"].items():  # the same values and CIs as the validation report
        assert score["value"] == pytest.approx(valid[name]["value"])
        assert score["ci95"] == pytest.approx(valid[name]["ci95"])
    assert selection["best"] in selection["note"]


def test_near_identical_models_are_reported_within_noise(default_run, capsys):
    results = json.loads((default_run / "results.json").read_text())
    selection = results["selection"]
    assert selection["best"] in ("sr", "sr@same")  # sr beats the popularity baselines on this log
    twin = "sr@same" if selection["best"] == "sr" else "sr"
    assert twin in selection["within_noise"]
    assert selection["paired_valid"][twin]["p_value"] == 1.0
    assert "pop" not in selection["within_noise"]  # far worse: significant on the paired test
    md = (default_run / "results.md").read_text()
    best = selection["best"]
    value, (lo, hi) = 100 * selection["valid"][best]["value"], (100 * v for v in selection["valid"][best]["ci95"])
    chosen = f"Chosen by validation mrr@20: {best} ({value:.2f}, 95% CI {lo:.2f}–{hi:.2f})"
    assert chosen in md
    assert f"within noise of {best} on validation: {twin}" in md
    assert "the choice between them is not supported by the data" in md


def test_the_printed_output_says_the_pick_and_the_noise(data_dir, tmp_path, capsys):
    assert train(data_dir, tmp_path / "run", models="pop,sr,sr@same") == 0
    printed = capsys.readouterr().out
    assert "Chosen by validation mrr@20: sr" in printed
    assert "on validation: sr" in printed and "the choice between them is not supported by the data" in printed


def test_select_takes_a_combined_objective(data_dir, tmp_path):
    assert train(data_dir, tmp_path / "run", "--select", "hr@20+mrr@20", models="pop,spop,sr") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    selection = results["selection"]
    assert selection["metric"] == "hr@20+mrr@20"
    for name, e in results["models"].items():  # the objective is the mean of the two
        mean = (e["valid"]["hr@20"]["value"] + e["valid"]["mrr@20"]["value"]) / 2
        assert selection["valid"][name]["value"] == pytest.approx(mean)
        lo, hi = selection["valid"][name]["ci95"]
        assert lo <= selection["valid"][name]["value"] <= hi
    assert selection["best"] == max(selection["valid"], key=lambda n: selection["valid"][n]["value"])
    assert "Chosen by validation hr@20+mrr@20" in (tmp_path / "run" / "results.md").read_text()
    assert all(t["metric"] == "hr@20+mrr@20" and t["b"] == selection["best"] for t in results["paired_tests"])


@pytest.mark.parametrize("bad", ["mrr@7", "accuracy", "hr@20+", "coverage@20"])
def test_a_bad_select_exits_2_before_any_work(data_dir, tmp_path, capsys, bad):
    assert train(data_dir, tmp_path / "run", "--select", bad) == 2
    err = capsys.readouterr().err
    assert "unknown selection metric" in err and "hr@20+mrr@20" in err
    assert not (tmp_path / "run").exists()


def test_max_valid_cases_caps_validation_and_says_so(data_dir, default_run, tmp_path):
    assert train(data_dir, tmp_path / "run", "--max-valid-cases", "40", models="pop,sr") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    full = json.loads((default_run / "results.json").read_text())
    assert full["models"]["pop"]["valid"]["cases"]["value"] > 40
    assert results["protocol"]["max_valid_cases"] == 40
    for e in results["models"].values():
        assert e["valid"]["cases"]["value"] == 40
        assert e["test"]["cases"]["value"] == full["models"]["pop"]["test"]["cases"]["value"]  # test untouched
    assert "validation on at most 40 evenly spaced cases" in (tmp_path / "run" / "results.md").read_text()
    assert train(data_dir, tmp_path / "bad", "--max-valid-cases", "0") == 2


def test_objective_report_of_one_metric_matches_the_report():
    from recsys.evaluate import EvalResult

    result = EvalResult(np.array([1, 3, 50, 2, 7]), np.zeros((5, 20), np.int64), 100, (5, 10, 20), None)
    report = result.report(200)["mrr@20"]
    mine = objective_report(result, "mrr@20", 200)
    assert mine["value"] == pytest.approx(report["value"]) and mine["ci95"] == pytest.approx(report["ci95"])


def test_a_model_kept_from_an_earlier_run_is_compared_by_ci_overlap(data_dir, tmp_path):
    out = tmp_path / "run"
    assert train(data_dir, out, models="pop,sr") == 0
    assert train(data_dir, out, models="sr@same") == 0  # pop and sr kept, with only their reported values
    selection = json.loads((out / "results.json").read_text())["selection"]
    assert set(selection["valid"]) == {"pop", "sr", "sr@same"} and selection["paired_valid"] == {}
    twin = "sr@same" if selection["best"] == "sr" else "sr"
    assert selection["within_noise"] == [twin] and "overlap of validation 95% CIs" in selection["note"]
