"""The two scripts users run first: prepare_data.py and train_and_eval.py, end to end on small data."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys.data import Dataset
from recsys.pipeline import build_model

ROOT = Path(__file__).resolve().parents[1]


def script(name, *args, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "synthetic"
    proc = script("prepare_data.py", "--source", "synthetic", "--n-events", 20000, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    return out


def test_prepare_writes_a_loadable_folder(small_data):
    data = Dataset.load(small_data)
    assert len(data.train) > 100 and len(data.test) > 10 and data.meta["source"] == "synthetic"
    assert data.test.items.max() < data.n_items


def test_train_and_eval_writes_results_folders_and_chart(small_data, tmp_path):
    params = tmp_path / "spop.json"
    params.write_text(json.dumps({"model": "spop", "params": {"exclude_session": False}}))
    proc = script("train_and_eval.py", "--data", small_data, "--models", "pop,spop", "--out", tmp_path / "run",
                  "--assets", tmp_path / "assets", "--params", params, "--bootstrap", 50, "--quiet")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["models"]) == {"pop", "spop"}
    for entry in results["models"].values():
        hr = entry["test"]["hr@10"]
        assert 0 <= hr["ci95"][0] <= hr["value"] <= hr["ci95"][1] <= 1
        assert {"valid", "test", "fit_seconds", "params"} <= set(entry)
        assert {"mrr@20", "ndcg@10", "precision@5", "coverage@20"} <= set(entry["test"])
    assert results["protocol"]["exclude_seen"] is False
    assert (tmp_path / "run" / "results.md").read_text().startswith("# Results")
    assert (tmp_path / "assets" / "model_comparison.png").stat().st_size > 1000
    # each model folder loads and scores exactly what the results say
    data = Dataset.load(small_data)
    model = recsys.load(str(tmp_path / "run" / "spop"))
    again = recsys.evaluate(model, data.test, data.protocol("test"))
    assert again.metrics()["hr@10"] == pytest.approx(results["models"]["spop"]["test"]["hr@10"]["value"])


def test_train_and_eval_rejects_unknown_models(small_data, tmp_path):
    proc = script("train_and_eval.py", "--data", small_data, "--models", "pop,nosuchmodel", "--out", tmp_path)
    assert proc.returncode == 2 and "nosuchmodel" in proc.stderr


def test_prepare_bad_input_leaves_no_folder(tmp_path):
    bad = tmp_path / "events.csv"
    bad.write_text("timestamp,visitorid,event,itemid,transactionid\nnot-a-time,1,view,5,\n")
    proc = script("prepare_data.py", "--source", "retailrocket", "--input", bad, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "events.csv" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert "Traceback" not in proc.stderr


def test_unknown_parameters_fail_loudly():
    with pytest.raises(ValueError, match="unknown parameters"):
        build_model("spop", 10, {"no_such_knob": 1})


def test_spop_beats_pop_on_synthetic(small_data, tmp_path):
    data = Dataset.load(small_data)
    scores = {}
    for name in ("pop", "spop"):
        model = build_model(name, data.n_items)
        model.fit(data)
        scores[name] = recsys.evaluate(model, data.test).metrics()["mrr@20"]
    assert scores["spop"] > 2 * scores["pop"]
    assert np.isfinite(list(scores.values())).all()


def test_first_start_trains_only_what_is_missing(tmp_path):
    from recsys.pipeline import ensure_default_models

    logs = []
    kw = dict(models=("pop", "spop"), data_dir=tmp_path / "data", progress=logs.append, n_events=8000)
    folders = ensure_default_models(tmp_path / "ckpt", **kw)
    assert [f.name for f in folders] == ["pop", "spop"]
    assert any("Training pop, spop" in line for line in logs)
    shutil.rmtree(tmp_path / "ckpt" / "spop")  # as if the first start was cut short (folders appear whole or not)
    logs.clear()
    ensure_default_models(tmp_path / "ckpt", **kw)
    assert any("Training spop" in line for line in logs) and not any("pop," in line for line in logs)
    results = json.loads((tmp_path / "ckpt" / "results.json").read_text())
    assert set(results["models"]) == {"pop", "spop"}
    logs.clear()
    ensure_default_models(tmp_path / "ckpt", **kw)
    assert logs == []  # nothing to do


def test_session_knn_beats_pop_by_a_wide_margin_on_the_synthetic_default(small_data):
    data = Dataset.load(small_data)
    hr = {}
    for name in ("pop", "sknn"):
        model = build_model(name, data.n_items)
        model.fit(data)
        hr[name] = recsys.evaluate(model, data.test, data.protocol("test")).metrics()["hr@10"]
    assert hr["sknn"] > 2 * hr["pop"] and hr["sknn"] - hr["pop"] > 0.2


def test_refit_trains_a_neural_model_anew_on_train_plus_valid_for_the_selected_epochs(small_data, tmp_path):
    from recsys.pipeline import RunConfig, run

    data = Dataset.load(small_data)
    params = {"sasrec": {"dim": 16, "n_layers": 1, "train": {"batch_size": 64, "lr": 0.01, "val_max_cases": 500}}}
    config = RunConfig(models=("sasrec",), out=tmp_path / "run", params=params, max_epochs=3, progress=False,
                       assets=None, refit=True, n_boot=20)
    entry = run(data, config, log=lambda *a: None)["models"]["sasrec"]
    best = entry["fit"]["best_epoch"]
    assert best is not None and entry["refit"]["data"] == "train+valid" and entry["refit"]["epochs"] == best
    assert len(entry["refit"]["epoch_lrs"]) == best and entry["refit"]["epoch_lrs"][0] == 0.01
    model = recsys.load(str(tmp_path / "run" / "sasrec"))  # the saved model is the refitted one
    again = recsys.evaluate(model, data.test, data.protocol("test")).metrics()["mrr@20"]
    assert again == pytest.approx(entry["test"]["mrr@20"]["value"])


def test_a_variant_runs_a_registry_model_again_with_other_parameters_as_a_row_of_its_own(small_data, tmp_path):
    from recsys.pipeline import RunConfig, run

    data = Dataset.load(small_data)
    config = RunConfig(models=("sr", "sr@one_step"), out=tmp_path / "run", params={"sr@one_step": {"steps": 1}},
                       progress=False, assets=None, n_boot=20)
    results = run(data, config, log=lambda *a: None)["models"]
    assert results["sr"]["params"]["steps"] == 10 and results["sr@one_step"]["params"]["steps"] == 1
    assert results["sr"]["test"]["mrr@20"]["value"] != results["sr@one_step"]["test"]["mrr@20"]["value"]
    model = recsys.load(str(tmp_path / "run" / "sr@one_step"))
    assert model.name == "sr" and model.config.steps == 1
    with pytest.raises(KeyError, match="unknown model"):
        build_model("nope@variant", 10)
