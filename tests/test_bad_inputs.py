"""The bad-input catalogue for model folders, recommend() and the command lines.

Each case gets a clear message that names what is wrong, and nothing is half-written. Reader cases live in
tests/test_readers.py and tests/test_data.py, app fields in tests/test_app_logic.py; the README's
"Reliability" section lists the whole catalogue.
"""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recsys
from recsys.folder import ModelFolderError, load_folder, save_folder
from recsys.models import REGISTRY, recommend
from recsys.models.pop import Pop, PopConfig

ROOT = Path(__file__).resolve().parents[1]
N = 20


def items_table(n=N - 1):
    return pd.DataFrame({"item_id": pd.array([f"i{i}" for i in range(1, n + 1)], dtype="string"),
                         "category_id": pd.array(["c"] * n, dtype="string"), "popularity": np.ones(n, dtype=int)})


@pytest.fixture
def folder(tmp_path):
    model = Pop(PopConfig(), N)
    model.counts = torch.arange(N, dtype=torch.float32)
    return save_folder(model, tmp_path / "pop", items_table())


def edit_json(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


# (case id, how to break the folder, expected message fragment)
FOLDER_CASES = [
    ("missing weights", lambda f: (f / "model.safetensors").unlink(), "missing"),
    ("missing config", lambda f: (f / "config.json").unlink(), "missing"),
    ("missing vocabulary", lambda f: (f / "items.json").unlink(), "missing"),
    ("truncated weights", lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:40]),
     "corrupt"),
    ("random bytes as weights", lambda f: (f / "model.safetensors").write_bytes(b"\x00\xffgarbage" * 10), "corrupt"),
    ("empty weights file", lambda f: (f / "model.safetensors").write_bytes(b""), "corrupt"),
    ("pickle instead of safetensors",
     lambda f: (f / "model.safetensors").write_bytes(pickle.dumps({"counts": [1, 2, 3]})), "corrupt"),
    ("config is not JSON", lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
    ("config is a JSON list", lambda f: (f / "config.json").write_text("[1, 2]"), "JSON object"),
    ("config from another model", lambda f: edit_json(f / "config.json", lambda c: c.update(model="sasrec_xyz")),
     "not one of"),
    ("config with unknown keys", lambda f: edit_json(f / "config.json", lambda c: c["config"].update(n_layers=2)),
     "does not know"),
    ("future format version", lambda f: edit_json(f / "config.json", lambda c: c.update(format_version=99)),
     "format_version"),
    ("vocabulary shorter than weights",
     lambda f: edit_json(f / "items.json", lambda v: v.update(item_ids=v["item_ids"][:-3])), "do not match"),
    ("vocabulary not a list", lambda f: edit_json(f / "items.json", lambda v: v.update(item_ids="abc")),
     "do not match"),
    ("n_items disagrees with weights", lambda f: edit_json(f / "config.json", lambda c: c.update(n_items=5)),
     "do not match"),
    ("items.json not UTF-8", lambda f: (f / "items.json").write_bytes(b"\xff\xfe\x00"), "not valid JSON"),
]


@pytest.mark.parametrize("case,breaker,message", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_broken_model_folder_gives_clear_error(folder, case, breaker, message):
    breaker(folder)
    with pytest.raises(ModelFolderError, match=message):
        load_folder(folder, REGISTRY)


def test_folder_holding_a_pickle_is_never_unpickled(folder, monkeypatch):
    (folder / "model.pkl").write_bytes(pickle.dumps(object()))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    model = load_folder(folder, REGISTRY)
    assert recommend(model, [1, 2], k=3)[0].tolist() == [19, 18, 17]


def test_weights_of_another_shape_are_rejected(folder, tmp_path):
    other = Pop(PopConfig(), N + 5)
    save_folder(other, tmp_path / "other", items_table(N + 4))
    shutil.copyfile(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ModelFolderError):
        load_folder(folder, REGISTRY)


@pytest.mark.parametrize("path", ["./no/such/folder", "/abs/missing", "not-a-repo-id", "a/b/c/d"])
def test_load_of_a_missing_path_says_so(path):
    with pytest.raises(ModelFolderError, match="no model folder"):
        recsys.load(path)


def test_save_refuses_mismatched_vocabulary(tmp_path):
    with pytest.raises(ModelFolderError, match="item table"):
        save_folder(Pop(PopConfig(), N), tmp_path / "x", items_table(3))
    assert not (tmp_path / "x").exists()


RECOMMEND_CASES = [
    ("empty session", [], 5, "empty"),
    ("negative k", [1], -3, "positive"),
    ("zero k", [1], 0, "positive"),
    ("float k", [1], 2.5, "positive"),
    ("string k", [1], "10", "positive"),
    ("padding index", [0], 5, "out of range"),
    ("index past the catalogue", [N + 100], 5, "out of range"),
    ("negative index", [-1], 5, "out of range"),
    ("one empty session in a batch", [[1], []], 5, "empty"),
]


@pytest.mark.parametrize("case,history,k,message", RECOMMEND_CASES, ids=[c[0] for c in RECOMMEND_CASES])
def test_recommend_bad_requests(folder, case, history, k, message):
    model = load_folder(folder, REGISTRY)
    with pytest.raises(ValueError, match=message):
        recommend(model, history, k=k)


def test_huge_session_and_k_above_catalogue_are_fine(folder):
    model = load_folder(folder, REGISTRY)
    ids, _ = recommend(model, list(np.random.default_rng(0).integers(1, N, 10_000)), k=10_000)
    assert len(ids) == N - 1


def run_script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, timeout=300)


CLI_CASES = [
    ("prepare: unknown source", ("prepare_data.py", "--source", "nope", "--out", "{tmp}/o"), "invalid choice"),
    ("prepare: no input", ("prepare_data.py", "--source", "retailrocket", "--out", "{tmp}/o"), "needs --input"),
    ("prepare: missing file", ("prepare_data.py", "--source", "yoochoose", "--input", "{tmp}/none.dat",
                               "--out", "{tmp}/o"), "none.dat"),
    ("prepare: csv without mapping", ("prepare_data.py", "--source", "csv", "--input", "{tmp}/x.csv",
                                      "--out", "{tmp}/o"), "--columns"),
    ("prepare: bad column mapping", ("prepare_data.py", "--source", "csv", "--input", "{tmp}/x.csv",
                                     "--columns", "garbage", "--out", "{tmp}/o"), "--columns"),
    ("train: data folder missing", ("train_and_eval.py", "--data", "{tmp}/nothing", "--models", "pop",
                                    "--out", "{tmp}/o"), "not a processed data set"),
    ("train: unknown model", ("train_and_eval.py", "--data", "{tmp}/nothing", "--models", "sasrecc",
                              "--out", "{tmp}/o"), "unknown model"),
]


@pytest.mark.parametrize("case,argv,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(tmp_path, case, argv, message):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    proc = run_script(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
