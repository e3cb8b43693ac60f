"""scripts/refit.py: a folder fitted on train only, refitted on train + valid, is the model `--refit` gives, and
says so; a hybrid, an already refitted folder or another data set's folder is refused with a message."""

import json

import pytest
import torch
from test_contract import cycling_dataset
from test_hybrid_params import load_script, write

from recsys.folder import load_folder
from recsys.models import REGISTRY

GRU = {"emb_dim": 16, "hidden": 16, "train": {"max_epochs": 3, "batch_size": 32, "lr": 0.01, "patience": 3}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("refit") / "data"
    cycling_dataset().save(path)
    return path


def train(monkeypatch, data_dir, out, models, params, *extra):
    script = load_script("train_and_eval", monkeypatch)
    return script.main(["--data", str(data_dir), "--models", models, "--out", str(out), "--assets",
                        str(out / "assets"), "--bootstrap", "20", "--quiet", "--params", params, *extra])


def refit(monkeypatch, *argv):
    return load_script("refit", monkeypatch).main([*map(str, argv), "--quiet"])


def test_refit_of_a_train_only_folder_equals_the_refit_run(monkeypatch, tmp_path, data_dir, capsys):
    params = write(tmp_path / "gru.json", "gru4rec", GRU)
    assert train(monkeypatch, data_dir, tmp_path / "a", "gru4rec", params) == 0
    assert train(monkeypatch, data_dir, tmp_path / "b", "gru4rec", params, "--refit") == 0
    capsys.readouterr()
    assert refit(monkeypatch, "--model", tmp_path / "a" / "gru4rec", "--data", data_dir,
                 "--out", tmp_path / "c") == 0
    assert "refitted on train+valid" in capsys.readouterr().out
    by_run, by_script = (load_folder(p, REGISTRY) for p in (tmp_path / "b" / "gru4rec", tmp_path / "c"))
    for (name, x), (_, y) in zip(by_run.state_dict().items(), by_script.state_dict().items()):
        torch.testing.assert_close(x, y, msg=name)
    entry = json.loads((tmp_path / "b" / "results.json").read_text())["models"]["gru4rec"]["refit"]
    assert by_script.metrics["refit"]["epoch_lrs"] == entry["epoch_lrs"]
    assert by_script.metrics["protocol"]["refit"] is True and "test" not in by_script.metrics

    # the refitted folder is now one a hybrid with given weights takes as fitted on train+valid
    hybrid = write(tmp_path / "h.json", "hybrid", {"components": ["gru4rec", "pop"], "weights": [0.5, 0.5],
                                                   "folders": {"gru4rec": str(tmp_path / "c")}})
    assert train(monkeypatch, data_dir, tmp_path / "d", "hybrid", hybrid, "--refit") == 0
    entry = json.loads((tmp_path / "d" / "results.json").read_text())["models"]["hybrid"]
    assert "fitted on train+valid (--refit or scripts/refit.py)" in json.dumps(entry["refit"])

    # refitting it again, or writing over the input folder, is refused; the input is untouched
    before = (tmp_path / "a" / "gru4rec" / "model.safetensors").read_bytes()
    assert refit(monkeypatch, "--model", tmp_path / "c", "--data", data_dir, "--out", tmp_path / "e") == 2
    assert "already fitted on train+valid" in capsys.readouterr().err
    assert refit(monkeypatch, "--model", tmp_path / "a" / "gru4rec", "--data", data_dir,
                 "--out", tmp_path / "a" / "gru4rec") == 2
    assert "new folder" in capsys.readouterr().err
    assert (tmp_path / "a" / "gru4rec" / "model.safetensors").read_bytes() == before


def test_a_hybrid_or_another_data_sets_folder_is_refused(monkeypatch, tmp_path, data_dir, capsys):
    hybrid = write(tmp_path / "h.json", "hybrid", {"components": ["sr", "pop"], "grid_step": 0.5})
    assert train(monkeypatch, data_dir, tmp_path / "a", "hybrid", hybrid) == 0
    capsys.readouterr()
    assert refit(monkeypatch, "--model", tmp_path / "a" / "hybrid", "--data", data_dir, "--out", tmp_path / "b") == 2
    assert "is a hybrid" in capsys.readouterr().err
    other = cycling_dataset()
    other.items["item_id"] = other.items["item_id"].str.replace("item", "x")
    other.save(tmp_path / "other")
    assert refit(monkeypatch, "--model", tmp_path / "a" / "hybrid", "--data", tmp_path / "other",
                 "--out", tmp_path / "c") == 2
    assert "another data set" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_no_test_never_scores_test_and_a_refit_of_its_folders_works(monkeypatch, tmp_path, data_dir, capsys):
    """--no-test: fit and validate only; the evaluator is never handed the test split, the report says so, and
    the folders it writes are what scripts/refit.py and a hybrid take."""
    import recsys.pipeline as pipeline

    seen = []
    original = pipeline.evaluate
    monkeypatch.setattr(pipeline, "evaluate", lambda model, cases, *a, **kw: seen.append(kw.get("desc")) or
                        original(model, cases, *a, **kw))
    params = write(tmp_path / "gru.json", "gru4rec", GRU)
    assert train(monkeypatch, data_dir, tmp_path / "a", "gru4rec,sr", params, "--no-test") == 0
    out = capsys.readouterr().out
    assert seen and not any("test" in d for d in seen), seen
    assert "Test not scored" in out and "test not scored (--no-test)" in out
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert all("test" not in e and "valid" in e for e in results["models"].values())
    assert results["selection"]["best"] in ("gru4rec", "sr") and results["paired_tests"] == []
    assert "Test not scored" in (tmp_path / "a" / "results.md").read_text()
    assert (tmp_path / "a" / "assets" / "model_comparison.png").stat().st_size > 0
    assert "test" not in load_folder(tmp_path / "a" / "gru4rec", REGISTRY).metrics
    assert refit(monkeypatch, "--model", tmp_path / "a" / "gru4rec", "--data", data_dir, "--out", tmp_path / "r") == 0


@pytest.mark.parametrize("damage", ["best_epoch_too_large", "best_epoch_text", "no_lr"])
def test_a_folder_with_a_damaged_epoch_record_is_refused(monkeypatch, tmp_path, data_dir, capsys, damage):
    params = write(tmp_path / "gru.json", "gru4rec", GRU)
    assert train(monkeypatch, data_dir, tmp_path / "a", "gru4rec", params) == 0
    folder = tmp_path / "a" / "gru4rec"
    if damage == "no_lr":
        metrics = json.loads((folder / "metrics.json").read_text())
        del metrics["history"][0]["lr"]
        (folder / "metrics.json").write_text(json.dumps(metrics))
    else:
        config = json.loads((folder / "config.json").read_text())
        config["train"]["fit"]["best_epoch"] = 10**9 if damage == "best_epoch_too_large" else "3"
        (folder / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert refit(monkeypatch, "--model", folder, "--data", data_dir, "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "r").exists()
