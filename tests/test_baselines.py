"""The non-neural baselines (itemknn, sr, sknn, vsknn, als) on tiny generated data."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import Dataset
from recsys.evaluate import evaluate
from recsys.folder import load_folder, save_folder
from recsys.models import REGISTRY, FitOptions
from recsys.models.knn import evidence_then_popularity
from recsys.sessions import Sessions

BASELINES = ["itemknn", "sr", "sknn", "vsknn", "stan", "als"]
SEQUENTIAL = ["itemknn", "sr", "sknn", "vsknn", "stan"]


def make_dataset(seqs, n_items, n_valid, n_test, protocol="all") -> Dataset:
    """Train, valid, test = the sessions in that order (train first, so older)."""
    n_train = len(seqs) - n_valid - n_test
    items = pd.DataFrame({"item_id": pd.array([f"i{i}" for i in range(1, n_items)], dtype="string"),
                          "category_id": pd.array([None] * (n_items - 1), dtype="string"),
                          "popularity": np.bincount(np.concatenate(seqs[:n_train]), minlength=n_items)[1:]})
    return Dataset(Sessions.from_lists(seqs[:n_train]), Sessions.from_lists(seqs[n_train : n_train + n_valid]),
                   Sessions.from_lists(seqs[n_train + n_valid :]), items,
                   {"protocols": {"train": "all", "valid": protocol, "test": protocol}})


def cycle_dataset(n=12, n_sessions=300, length=8, seed=0) -> Dataset:
    """Sessions are windows of the cycle 1 -> 2 -> ... -> n -> 1, starting anywhere."""
    starts = np.random.default_rng(seed).integers(0, n, size=n_sessions)
    return make_dataset([[(s + t) % n + 1 for t in range(length)] for s in starts], n + 1, 30, 30)


def graph_dataset(n_items=80, n_sessions=2000, seed=0) -> Dataset:
    """Random walks on a sparse transition graph: each item has 3 successors, taken with p = .6, .3, .1."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(1, n_items, size=(n_items, 3))
    seqs = []
    for length in rng.integers(2, 9, size=n_sessions):
        s = [int(rng.integers(1, n_items))]
        for choice in rng.choice(3, size=length - 1, p=[0.6, 0.3, 0.1]):
            s.append(int(successors[s[-1], choice]))
        seqs.append(s)
    return make_dataset(seqs, n_items, n_sessions // 10, n_sessions // 10)


def fitted(name, data, **config):
    cls = REGISTRY[name]
    model = cls(cls.Config(**config), data.n_items)
    model.fit(data, FitOptions(progress=False, seed=0))
    return model


@pytest.fixture(scope="module")
def graph():
    return graph_dataset()


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_sequential_baselines_rank_the_next_item_of_a_cycle_first_for_every_prefix(name):
    data = cycle_dataset()
    result = evaluate(fitted(name, data), data.test, "all", ks=(1,), exclude_seen=True)
    assert np.all(result.ranks == 1), f"{name}: ranks {np.bincount(result.ranks)}"


def test_session_knn_beats_popularity_by_a_wide_margin(graph):
    hr = {name: evaluate(fitted(name, graph), graph.test, "all", ks=(10,)).metrics()["hr@10"]
          for name in ["pop", "sknn", "vsknn", "sr"]}
    assert hr["sknn"] > hr["pop"] + 0.3 and hr["vsknn"] > hr["pop"] + 0.3 and hr["sr"] > hr["pop"] + 0.3, hr


@pytest.mark.parametrize("name", BASELINES)
def test_save_load_gives_identical_scores(graph, tmp_path, name):
    model = fitted(name, graph)
    loaded = load_folder(save_folder(model, tmp_path / name, graph.items), REGISTRY)
    sessions = [graph.test[0], graph.test[1], np.array([5]), np.array([3, 3, 7, 3])]
    with torch.no_grad():
        assert torch.equal(model.score(sessions), loaded.score(sessions))
    assert model.explain(sessions[0]) == loaded.explain(sessions[0])


@pytest.mark.parametrize("name", ["sknn", "vsknn", "stan"])
def test_batched_scores_equal_one_session_at_a_time(graph, name):
    model = fitted(name, graph, k=20, sample_size=50)
    sessions = list(graph.test)[:40]
    together = model.score(sessions)
    for row, s in enumerate(sessions):
        assert torch.allclose(together[row], model.score([s])[0], rtol=1e-6, atol=0), row


def reference_vsknn_scores(model, train: list[list[int]], session, n_items) -> np.ndarray:
    """V-SKNN / SKNN written out loop by loop, as the module docstring states it (recency = index)."""
    c, vsknn = model.config, model.name == "vsknn"
    events = np.bincount(np.concatenate(train), minlength=n_items)
    idf = np.log(len(train) / np.maximum(events, 1))
    sets = [list(dict.fromkeys(t)) for t in train]
    last_pos = {item: p for p, item in enumerate(session, 1)}
    n = len(session)
    candidates = sorted(i for i, t in enumerate(sets) if set(t) & set(session))[-c.sample_size :]
    sims = {}
    for i in candidates:
        shared = set(sets[i]) & set(session)
        if vsknn:
            sims[i] = sum(last_pos[j] / n for j in shared) / len(set(session))  # weighting "div"
        else:
            sims[i] = len(shared) / np.sqrt(len(set(session)) * len(sets[i]))
    neighbours = sorted(candidates, key=lambda i: (-sims[i], -i))[: c.k]
    scores = np.zeros(n_items)
    for i in neighbours:
        anchor_item = max(set(sets[i]) & set(session), key=lambda j: last_pos[j])
        step = n - last_pos[anchor_item] + 1
        weight = sims[i] / step if vsknn else sims[i]  # weighting_score "div"
        anchor = sets[i].index(anchor_item)
        for p, j in enumerate(sets[i]):
            boost = 1 + c.idf_weighting * idf[j] if vsknn else 1.0
            scores[j] += weight * (c.backward if p < anchor else 1.0) * boost
    return scores


@pytest.mark.parametrize("name, config", [("sknn", {}), ("sknn", {"k": 3, "sample_size": 7, "backward": 0.2}),
                                          ("vsknn", {}), ("vsknn", {"k": 3, "sample_size": 7, "idf_weighting": 2.0})])
def test_session_knn_matches_a_loop_by_loop_reference(graph, name, config):
    assert_matches_reference(fitted(name, graph, **config), graph, reference_vsknn_scores)


def assert_matches_reference(model, graph, reference) -> None:
    """The model's scores of 25 test sessions and a session with a repeat equal `reference`'s, then popularity."""
    sessions = list(graph.test)[:25] + [np.array([4, 9, 4, 11])]
    got = model.score(sessions)
    pop = torch.from_numpy(np.bincount(graph.train.items, minlength=graph.n_items).astype(np.float32))
    train = graph.train.to_lists()
    for row, s in enumerate(sessions):
        want = torch.from_numpy(reference(model, train, s.tolist(), graph.n_items).astype(np.float32))
        want = evidence_then_popularity(want[None], pop)[0]
        assert torch.allclose(got[row], want, rtol=1e-5, atol=1e-9), row


def reference_stan_scores(model, train: list[list[int]], session, n_items) -> np.ndarray:
    """STAN written out loop by loop, as recsys.models.sknn.STAN's docstring states it (age = share of newer
    training sessions; places in the neighbour's distinct items)."""
    c = model.config
    sets = [list(dict.fromkeys(t)) for t in train]
    last_pos = {item: p for p, item in enumerate(session, 1)}
    n, n_sessions = len(session), len(train)
    weight = {j: np.exp((last_pos[j] - n) / c.lambda_spw) for j in last_pos}
    norm = np.sqrt(sum(w * w for w in weight.values()))
    candidates = sorted(i for i, t in enumerate(sets) if set(t) & set(session))[-c.sample_size :]
    sims = {}
    for i in candidates:
        shared = set(sets[i]) & set(session)
        age = (n_sessions - 1 - i) / n_sessions
        sims[i] = sum(weight[j] for j in shared) / (norm * np.sqrt(len(sets[i]))) * np.exp(-age / c.lambda_snh)
    neighbours = sorted(candidates, key=lambda i: (-sims[i], -i))[: c.k]
    scores = np.zeros(n_items)
    for i in neighbours:
        anchor = sets[i].index(max(set(sets[i]) & set(session), key=lambda j: last_pos[j]))
        last_shared = max(p for p, j in enumerate(sets[i]) if j in last_pos)
        for p, j in enumerate(sets[i]):
            scores[j] += sims[i] * np.exp(-abs(p - last_shared) / c.lambda_inh) * (c.backward if p < anchor else 1.0)
    return scores


@pytest.mark.parametrize("config", [{}, {"k": 3, "sample_size": 7, "lambda_spw": 0.5, "lambda_snh": 0.01,
                                         "lambda_inh": 4.0, "backward": 0.3}])
def test_stan_matches_a_loop_by_loop_reference(graph, config):
    assert_matches_reference(fitted("stan", graph, **config), graph, reference_stan_scores)


def test_stan_recency_prefers_the_newer_of_two_equal_neighbours():
    data = make_dataset([[1, 2], [1, 3]], 4, 0, 0)  # [1, 3] is the more recent session
    scores = fitted("stan", data, lambda_snh=0.1).score([np.array([1])])[0]
    assert scores[3] > scores[2] > 0


def test_sknn_neighbours_are_the_most_recent_sessions_by_end_time():
    data = make_dataset([[1, 2], [1, 3], [1, 4], [5, 6]], 7, 0, 0)
    data.info = {"train": pd.DataFrame({"end": pd.to_datetime([3, 2, 1, 0], unit="s", utc=True)})}
    model = fitted("sknn", data, sample_size=1)  # the one most recent session holding item 1 is [1, 2]
    assert model.explain(np.array([1]))["neighbours"][0]["items"] == [1, 2]
    scores = model.score([np.array([1])])[0]
    assert scores[2] > scores[3] and scores[2] > scores[4]


def test_sequential_rules_weights_by_hand():
    data = make_dataset([[1, 2, 3], [2, 1]], 4, 0, 0)
    model = fitted("sr", data, steps=2, weighting="quadratic")
    rules = {(i, int(j)): float(w) for i in range(4)
             for j, w in zip(model.neighbors[i], model.weights[i], strict=True) if w > 0}
    assert rules == {(1, 2): 1.0, (1, 3): 0.25, (2, 3): 1.0, (2, 1): 1.0}


def test_itemknn_is_cosine_of_session_co_occurrence_when_order_is_ignored():
    seqs = [[1, 2], [2, 1, 3], [3, 4], [1, 4, 2]]
    model = fitted("itemknn", make_dataset(seqs, 5, 0, 0), backward=1.0)
    x = np.zeros((4, 5))
    for r, s in enumerate(seqs):
        x[r, s] = 1
    co = x.T @ x
    cos = co / np.sqrt(np.outer(np.diag(co), np.diag(co)) + 1e-12)
    np.fill_diagonal(cos, 0)
    dense = np.zeros((5, 5), dtype=np.float32)
    for i in range(5):
        dense[i, model.neighbors[i].long()] = model.weights[i]
    dense[:, 0] = 0
    assert np.allclose(dense, cos, atol=1e-6)


def test_als_fold_in_solves_the_same_least_squares_as_implicit(graph):
    from implicit.cpu.als import AlternatingLeastSquares
    from scipy import sparse

    model = fitted("als", graph, factors=8, iterations=3, alpha=2.0, regularization=0.1)
    reference = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=2.0)
    reference.item_factors = model.item_factors.numpy()
    sessions = [np.array([3, 3, 7]), np.array([5]), graph.test[0]]
    rows = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
    counts = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(sessions))),
                               shape=(len(sessions), graph.n_items))
    counts.sum_duplicates()
    x = reference.recalculate_user(np.arange(len(sessions)), counts)
    want = torch.from_numpy(x @ reference.item_factors.T)
    assert torch.allclose(model.score(sessions), want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["itemknn", "sr", "sknn", "vsknn"])
def test_explain_names_neighbours(graph, name):
    model = fitted(name, graph)
    session = graph.test[0]
    out = model.explain(session, top=3)
    if name in ("sknn", "vsknn"):
        assert 0 < len(out["neighbours"]) <= 3
        assert all(set(n["items"]) & set(session.tolist()) for n in out["neighbours"])
        sims = [n["similarity"] for n in out["neighbours"]]
        assert sims == sorted(sims, reverse=True)
    else:
        assert out["items"][0]["item"] == int(session[-1]) and out["items"][0]["neighbours"]


@pytest.mark.parametrize("name, bad", [("itemknn", {"decay": "nope"}), ("sr", {"weighting": "nope"}),
                                       ("vsknn", {"weighting": "nope"}), ("sknn", {"k": 0})])
def test_bad_config_fails_at_construction(name, bad):
    cls = REGISTRY[name]
    with pytest.raises(ValueError):
        cls(cls.Config(**bad), 10)


def test_als_cached_gram_follows_the_item_factors(graph):
    model = fitted("als", graph, factors=8, iterations=3, alpha=2.0, regularization=0.1)
    sessions = [np.array([3, 3, 7]), graph.test[0]]
    before = model.score(sessions)
    with torch.no_grad():
        model.item_factors.mul_(2.0)  # in place, as loading weights into the buffer does
    fresh = REGISTRY["als"](model.config, model.n_items)
    fresh.item_factors = model.item_factors.clone()
    assert torch.allclose(model.score(sessions), fresh.score(sessions))
    assert not torch.allclose(model.score(sessions), before)


def test_itemknn_counts_pairs_a_chunk_of_sessions_at_a_time_with_the_same_result(monkeypatch):
    """Long sequences (ML-1M: ~380 M item pairs) are counted in chunks; the weights do not depend on the chunk."""
    from recsys.models import knn

    rng = np.random.default_rng(0)
    train = Sessions.from_lists([rng.integers(1, 30, rng.integers(1, 15)) for _ in range(300)])
    model = knn.ItemKNN(knn.ItemKNNConfig(backward=0.3), 30)
    whole = model.item_weights(train)
    monkeypatch.setattr(knn, "PAIRS_PER_CHUNK", 7)
    assert len(knn._chunks_by_pairs(train.lengths, 7)) > 10
    assert abs(model.item_weights(train) - whole).max() == 0 and whole.nnz > 500


def test_recent_ranks_the_sessions_own_items_by_recency():
    """decay**(steps before the last item) per occurrence, summed, normalised over the session; nothing else."""
    from recsys.models import build_model

    model = build_model("recent", 7, {"decay": 0.5})
    scores = model.score([np.array([3, 1, 3, 2]), np.array([6]), np.array([4, 4])])
    # session 1: item 3 at 3 and 1 steps back (0.125 + 0.5), item 1 at 2 (0.25), item 2 last (1); sum 1.875
    expected = torch.zeros(3, 7)
    expected[0, [1, 2, 3]] = torch.tensor([0.25, 1.0, 0.625]) / 1.875
    expected[1, 6] = 1.0
    expected[2, 4] = 1.0
    assert torch.allclose(scores, expected)
    counts = build_model("recent", 7, {"decay": 1.0}).score([np.array([3, 1, 3, 2])])[0]
    assert torch.allclose(counts[[1, 2, 3]], torch.tensor([0.25, 0.25, 0.5]))  # decay 1: plain counts
    with pytest.raises(ValueError, match="decay"):
        build_model("recent", 7, {"decay": 0.0})
    with pytest.raises(ValueError, match="decay"):
        build_model("recent", 7, {"decay": 1.5})
