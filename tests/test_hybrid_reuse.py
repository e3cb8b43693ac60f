"""A hybrid takes already-trained parts (this run's rows, or model folders of the same data set) as they are
and fits only its weights; a folder of another data set is refused."""

import json

import numpy as np
import pytest
import torch
from test_contract import cycling_dataset
from test_hybrid_params import load_script, write

from recsys.folder import load_folder
from recsys.models import REGISTRY, FitOptions, build_model
from recsys.models.knn import SequentialRules as SR
from recsys.train import fit


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("reuse") / "data"
    cycling_dataset().save(path)
    return path


def cli(monkeypatch, data_dir, out, models, *params):
    script = load_script("train_and_eval", monkeypatch)
    return script.main(["--data", str(data_dir), "--models", models, "--out", str(out), "--assets",
                        str(out / "assets"), "--bootstrap", "20", "--quiet", "--params", *params])


def test_reuse_fits_each_part_once_and_scores_as_the_same_parts_do(monkeypatch, tmp_path, data_dir, capsys):
    calls = []
    original = SR.fit
    monkeypatch.setattr(SR, "fit", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw))
    params = write(tmp_path / "hybrid.json", "hybrid", {"components": ["sr", "spop"], "grid_step": 0.5,
                                                        "reuse": True})
    assert cli(monkeypatch, data_dir, tmp_path / "run", "hybrid,sr,spop", params) == 0
    assert len(calls) == 1  # sr fitted for its own row only
    log = capsys.readouterr().out
    assert "part sr: reused" in log and "part spop: reused" in log
    entry = json.loads((tmp_path / "run" / "results.json").read_text())["models"]["hybrid"]
    assert "this run's sr row" in entry["fit"]["components"]["sr"]["reused"]
    assert "reused" in entry["fit"]["components"]["spop"]["params_from"]

    hybrid = load_folder(tmp_path / "run" / "hybrid", REGISTRY)
    same = build_model("hybrid", hybrid.n_items, {"components": ["sr", "spop"],
                                                  "weights": list(hybrid.config.weights)})
    for part in ("sr", "spop"):
        same.use_part(part, load_folder(tmp_path / "run" / part, REGISTRY), "test")
    sessions = [np.array(s[:-1], dtype=np.int64) for s in cycling_dataset().test.to_lists()[:20]]
    torch.testing.assert_close(hybrid.score(sessions), same.score(sessions))

    # a later run names the folder of a trained row by path: nothing but the weights is fitted
    calls.clear()
    params = write(tmp_path / "h2.json", "hybrid", {"components": ["sr", "pop"], "grid_step": 0.5,
                                                    "folders": {"sr": str(tmp_path / "run" / "sr")}})
    assert cli(monkeypatch, data_dir, tmp_path / "run2", "hybrid", params) == 0
    assert calls == []


def test_a_part_from_another_data_set_is_refused(monkeypatch, tmp_path, data_dir, capsys):
    other = cycling_dataset()
    other.items["item_id"] = other.items["item_id"].str.replace("item", "x")
    other.save(tmp_path / "other")
    assert cli(monkeypatch, tmp_path / "other", tmp_path / "a", "sr") == 0
    params = write(tmp_path / "hybrid.json", "hybrid", {"components": ["sr", "pop"], "grid_step": 0.5,
                                                        "folders": {"sr": str(tmp_path / "a" / "sr")}})
    capsys.readouterr()
    assert cli(monkeypatch, data_dir, tmp_path / "b", "hybrid", params) == 2
    err = capsys.readouterr()
    assert "another data set" in err.out + err.err


def test_use_part_keeps_the_part_unfitted():
    data = cycling_dataset()
    sr = build_model("sr", data.n_items)
    fit(sr, data)
    hybrid = build_model("hybrid", data.n_items, {"components": ["sr", "pop"], "grid_step": 0.5})
    hybrid.use_part("sr", sr, "memory")
    info = fit(hybrid, data, FitOptions(progress=False))
    assert hybrid.part("sr") is sr and info["components"]["sr"] == {"reused": "memory"}


def test_under_refit_a_reused_part_is_its_rows_refitted_model(monkeypatch, tmp_path, data_dir):
    params = write(tmp_path / "hybrid.json", "hybrid", {"components": ["sr", "pop"], "grid_step": 0.5,
                                                        "reuse": True})
    script = load_script("train_and_eval", monkeypatch)
    assert script.main(["--data", str(data_dir), "--models", "sr,hybrid", "--out", str(tmp_path / "run"),
                        "--assets", str(tmp_path / "assets"), "--bootstrap", "20", "--quiet", "--refit",
                        "--params", params]) == 0
    entry = json.loads((tmp_path / "run" / "results.json").read_text())["models"]["hybrid"]
    assert "refitted on train+valid" in entry["refit"]["components"]["sr"]["reused"]
    assert "reused" not in entry["fit"]["components"]["pop"]  # no pop row nor folder: fitted as usual


def test_a_part_trained_on_validation_never_chooses_the_weights(monkeypatch, tmp_path, data_dir, capsys):
    """A folder refitted on train+valid (--refit) would let validation pick weights for a part it trained: with
    `reuse` the part is fitted anew, named in `folders` the folder is refused; with the weights given it is fine."""
    script = load_script("train_and_eval", monkeypatch)
    run = tmp_path / "run"
    assert script.main(["--data", str(data_dir), "--models", "sr", "--out", str(run), "--assets",
                        str(tmp_path / "assets"), "--bootstrap", "20", "--quiet", "--refit"]) == 0
    calls = []
    original = SR.fit
    monkeypatch.setattr(SR, "fit", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw))
    reuse = write(tmp_path / "reuse.json", "hybrid", {"components": ["sr", "pop"], "grid_step": 0.5, "reuse": True})
    capsys.readouterr()
    assert cli(monkeypatch, data_dir, run, "hybrid", reuse) == 0
    assert calls and "part sr: reused" not in capsys.readouterr().out  # fitted anew on train
    named = write(tmp_path / "named.json", "hybrid", {"components": ["sr", "pop"], "grid_step": 0.5,
                                                      "folders": {"sr": str(run / "sr")}})
    assert cli(monkeypatch, data_dir, tmp_path / "b", "hybrid", named) == 2
    err = capsys.readouterr()
    assert "fitted on train+valid" in err.out + err.err
    weighted = write(tmp_path / "weighted.json", "hybrid", {"components": ["sr", "pop"], "weights": [0.5, 0.5],
                                                            "folders": {"sr": str(run / "sr")}})
    assert cli(monkeypatch, data_dir, tmp_path / "c", "hybrid", weighted) == 0
