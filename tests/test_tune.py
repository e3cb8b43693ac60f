"""Hyperparameter search: validation only, a JSON the training script reads, search spaces that fit the Configs."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
from test_baselines import graph_dataset

from recsys.models import REGISTRY
from recsys.pipeline import load_params
from recsys.tune import search_space, tune, write_result

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


class Untouchable:
    """Stands in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was touched (.{name})")

    def __len__(self):
        raise AssertionError("the test split was touched (len)")

    def __iter__(self):
        raise AssertionError("the test split was touched (iter)")


@pytest.fixture(scope="module")
def data():
    data = graph_dataset(n_items=40, n_sessions=600)
    data.test = Untouchable()
    return data


def test_two_trials_write_params_the_training_script_reads(data, tmp_path):
    result = tune("sr", data, n_trials=2, metric="hr@10", seed=0, max_cases=100)
    assert result["model"] == "sr" and result["metric"] == "hr@10" and result["trials"] == 2
    assert 0.0 <= result["value"] <= 1.0 and result["value"] == max(t["value"] for t in result["history"])
    assert result["history"][0]["params"]["steps"] == 10  # the defaults are always tried first
    cls = REGISTRY["sr"]
    cls.Config(**result["params"])  # a valid config
    out = write_result(result, tmp_path / "sr.json")
    assert json.loads(out.read_text())["params"] == result["params"]
    assert load_params([out]) == {"sr": result["params"]}


def test_fixed_fields_stay_fixed(data):
    result = tune("vsknn", data, n_trials=2, seed=1, max_cases=50, fixed={"k": 7})
    assert result["params"]["k"] == 7 and all(t["params"].get("k", 7) == 7 for t in result["history"])


def test_the_search_is_seeded(data):
    a = tune("itemknn", data, n_trials=3, seed=3, max_cases=50)
    b = tune("itemknn", data, n_trials=3, seed=3, max_cases=50)
    assert [t["params"] for t in a["history"]] == [t["params"] for t in b["history"]]


@pytest.mark.parametrize("name", sorted(n for n, cls in REGISTRY.items() if getattr(cls, "search_space", None)))
def test_search_spaces_name_config_fields_and_contain_the_defaults(name):
    space, defaults = search_space(name), dataclasses.asdict(REGISTRY[name].Config())
    for field, spec in space.items():
        if spec[0] == "cat":
            assert defaults[field] in spec[1], field
        else:
            assert spec[1] <= defaults[field] <= spec[2], field


def test_unknown_model_and_metric_fail_clearly(data):
    with pytest.raises(ValueError, match="unknown model"):
        search_space("nope")
    with pytest.raises(ValueError, match="unknown metric"):
        tune("sr", data, n_trials=1, metric="auc", max_cases=20)


def test_script_reads_a_processed_folder(tmp_path, monkeypatch):
    graph_dataset(n_items=30, n_sessions=300).save(tmp_path / "data")
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("tune_script", SCRIPTS / "tune.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "itemknn.params.json"
    assert script.main(["--model", "itemknn", "--data", str(tmp_path / "data"), "--trials", "2",
                        "--max-cases", "50", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "itemknn" and result["trials"] == 2 and set(result["params"]) >= {"k_neighbors"}
