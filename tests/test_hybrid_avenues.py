"""tools/hybrid_avenues.py: its ranks equal the full-catalogue ranking, and the fold choice is held out."""

import numpy as np
import torch

from recsys.evaluate import rank_targets
from recsys.models.base import mask_scores
from recsys.models.blend import simplex_grid
from recsys.models.mixrank import mix
from tools.hybrid_avenues import MISS, Objectives, held_out, ranks_under, repeat_distribution


def _dists(rng, b=64, n=300):
    """A softmax-like part, a sparse kNN-like part (most items 0, some rows all 0, ties) and a repeat part."""
    logits = torch.from_numpy(rng.normal(size=(b, n)) * 3).float()
    soft = torch.softmax(logits, dim=1)
    sparse = torch.from_numpy(rng.integers(0, 4, size=(b, n)) * (rng.random((b, n)) < 0.05)).float()
    sparse[:5] = 0  # no neighbours at all
    sparse /= sparse.sum(dim=1, keepdim=True).clamp_min(1e-30)
    prefixes = [rng.integers(1, n, size=rng.integers(1, 8)) for _ in range(b)]
    rep = repeat_distribution(prefixes, n, 0.5)
    out = [soft, sparse, rep]
    for d in out:
        d[:, 0] = 0  # padding
    return out, prefixes


def test_ranks_equal_full_ranking_for_every_weighting():
    rng = np.random.default_rng(0)
    dists, prefixes = _dists(rng)
    targets = torch.from_numpy(rng.integers(1, 300, size=64))
    targets[:10] = torch.tensor([int(d.argmax()) for d in dists[1][:10]]).clamp_min(1)  # some sure hits
    grid = simplex_grid(3, 0.25)
    ranks, _ = ranks_under(dists, prefixes, targets, grid)
    for g in range(len(grid)):
        full = rank_targets(mask_scores(mix(dists, grid[g]), prefixes, False), targets).numpy()
        assert np.array_equal(ranks[g], np.where(full <= 20, full, MISS)), grid[g]
    assert (ranks != MISS).any() and (ranks == MISS).any()


def test_repeat_distribution_weights_recent_items_more():
    d = repeat_distribution([np.array([3, 1, 3, 2])], 5, 0.5)[0]
    # weights 0.125 (3), 0.25 (1), 0.5 (3), 1 (2): item 3 gets 0.625, item 2 gets 1, item 1 0.25
    assert torch.allclose(d, torch.tensor([0, 0.25, 1, 0.625, 0]) / 1.875)


def test_held_out_choice_uses_the_other_fold_only():
    # two weightings; fold 0 is best under row 0, fold 1 under row 1: each fold must get the other's choice
    ranks = np.array([[1, 1, MISS, MISS], [MISS, MISS, 1, 1]], dtype=np.int32)
    fold = np.array([0, 0, 1, 1])
    out, chosen = held_out(ranks, Objectives(ranks), np.ones(2, bool), "mrr@20", np.zeros(4, np.int64), fold)
    assert out.tolist() == [MISS, MISS, MISS, MISS]
    assert [c["grid_row"] for c in chosen] == [1, 0]


def test_clustered_difference_counts_a_session_once():
    from tools.hybrid_avenues import clustered_diff

    a = np.array([1, 1, MISS, MISS], dtype=np.int32)
    b = np.array([MISS, MISS, MISS, MISS], dtype=np.int32)
    one = clustered_diff(a, b, np.array([0, 0, 1, 1]))  # two sessions: differences 2 and 0 (mean 0.5 a case)
    assert one["mrr@20"]["diff"] == 0.5 and one["hr@20"]["diff"] == 0.5
    # cluster sums minus their share of the mean: 2 - 1 = 1 and 0 - 1 = -1; sqrt(2/1 * 2) / 4 = 0.5
    assert np.isclose(one["mrr@20"]["se"], 0.5)
    apart = clustered_diff(a, b, np.array([0, 1, 2, 3]))  # four independent cases: a smaller error
    assert apart["mrr@20"]["se"] < one["mrr@20"]["se"]
