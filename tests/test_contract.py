"""The contract every registry entry keeps (like implicit's RecommenderBaseTestMixin): one test, every model."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import Dataset
from recsys.evaluate import evaluate
from recsys.folder import load_folder, save_folder
from recsys.models import REGISTRY, FitOptions, build_model, recommend
from recsys.sessions import Sessions
from recsys.train import fit

N = 12  # items 1..N, sessions cycle 1 -> 2 -> ... -> N -> 1
NON_SEQUENTIAL = {"random", "pop", "spop", "als"}  # scores ignore order, so they cannot follow a cycle
NON_SEQUENTIAL |= {"recent"}  # only ever recommends the session's own items, never the next one of a cycle


def cycling_dataset(n_sessions=300, length=8, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N, size=n_sessions)
    seqs = [[(s + t) % N + 1 for t in range(length)] for s in starts]
    items = pd.DataFrame({"item_id": pd.array([f"item{i}" for i in range(1, N + 1)], dtype="string"),
                          "category_id": pd.array([f"c{i % 3}" for i in range(1, N + 1)], dtype="string"),
                          "popularity": np.bincount(np.concatenate(seqs), minlength=N + 1)[1:]})
    return Dataset(Sessions.from_lists(seqs[:240]), Sessions.from_lists(seqs[240:270]),
                   Sessions.from_lists(seqs[270:]), items, {"protocols": {"valid": "all", "test": "all"}})


@pytest.fixture(scope="module")
def data():
    return cycling_dataset()


def small(cls) -> dict | None:
    """Small neural configurations (the contract does not depend on size) and a brisk schedule; a hybrid gets
    them for its neural parts."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if "components" in fields:
        parts = cls.Config().components
        return {"params": {p: small(REGISTRY[p]) for p in parts if REGISTRY[p].trains_in_epochs}}
    if not cls.trains_in_epochs:
        return None
    params = {k: 32 for k in ("dim", "emb_dim", "hidden") if k in fields}
    return {**params, "train": {"lr": 1e-2, "batch_size": 64, "patience": 3, "val_max_cases": 100}}


@pytest.fixture(scope="module")
def fitted(data):
    """Every registry model fitted once on the cycling data (neural ones for enough epochs to learn it)."""
    out = {}
    for name, cls in REGISTRY.items():
        torch.manual_seed(0)
        model = build_model(name, data.n_items, small(cls))
        fit(model, data, FitOptions(max_epochs=30 if small(cls) else None, progress=False, seed=0))
        out[name] = model
    return out


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scores_have_catalogue_width_and_recommend_works(fitted, name):
    model = fitted[name]
    ids, scores = recommend(model, [1, 2, 3], k=5)
    assert ids.shape == (5,) and 0 not in ids and np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - NON_SEQUENTIAL))
def test_sequential_models_rank_the_true_next_item_first(fitted, data, name):
    result = evaluate(fitted[name], data.test, "all", ks=(1,), exclude_seen=True)
    assert result.metrics()["hr@1"] >= 0.95, f"{name} ranks the next item of a cycle first in too few cases"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_save_load_gives_identical_scores(fitted, data, tmp_path, name):
    model = fitted[name]
    folder = save_folder(model, tmp_path / name, data.items, metrics={"test": {}})
    loaded = load_folder(folder, REGISTRY)
    sessions = [np.array([1, 2, 3]), np.array([5]), np.array([7, 8, 9, 10, 11, 12, 1])]
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.score(sessions), loaded.score(sessions))
    assert loaded.vocab.decode([1]) == ["item1"]
