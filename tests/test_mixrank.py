"""grid_ranks (recsys/models/mixrank.py) ranks each target among the parts' top items only: its ranks must be those
of ranking the whole mixed, masked catalogue, for every weighting, up to the cutoff k."""

import numpy as np
import pytest
import torch

from recsys.evaluate import MISS_RANK, rank_targets
from recsys.models.base import mask_scores
from recsys.models.blend import simplex_grid
from recsys.models.mixrank import grid_ranks, mix


def _parts(rng, n_rows, n_items):
    """A softmax-like part, a sparse kNN-like part (most items 0, ties), a part on the session's items only."""
    dense = torch.softmax(torch.from_numpy(rng.normal(0, 2, (n_rows, n_items))).float(), dim=1)
    sparse = torch.from_numpy(rng.integers(0, 4, (n_rows, n_items)) * (rng.random((n_rows, n_items)) < 0.05))
    sparse = sparse.float() / sparse.float().sum(1, keepdim=True).clamp_min(1e-30)
    prefixes = [rng.integers(1, n_items, rng.integers(1, 8)) for _ in range(n_rows)]
    repeat = torch.zeros(n_rows, n_items)
    for i, s in enumerate(prefixes):
        repeat[i, torch.from_numpy(s)] = 1.0 / len(s)
    dists = [dense, sparse, repeat]
    for d in dists:
        d[:, 0] = 0  # padding
    return dists, prefixes


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("top_m,k", [(5, 5), (25, 20)])  # 5: many pairs the candidates cannot decide
def test_pruned_ranks_equal_full_ranking(exclude_seen, top_m, k):
    rng = np.random.default_rng(7)
    n_rows, n_items = 64, 400
    dists, prefixes = _parts(rng, n_rows, n_items)
    targets = torch.from_numpy(rng.integers(1, n_items, n_rows))
    targets[:8] = torch.from_numpy(np.array([s[-1] for s in prefixes[:8]]))  # targets the session already has
    grid = simplex_grid(len(dists), 0.25)
    ranks, fallback = grid_ranks(dists, prefixes, targets, grid, k, exclude_seen, top_m=top_m)
    for g, weights in enumerate(grid):
        full = rank_targets(mask_scores(mix(dists, weights), prefixes, exclude_seen), targets).numpy()
        expected = np.where(full <= k, full, MISS_RANK)
        got = np.where(ranks[g] <= k, ranks[g], MISS_RANK)
        assert np.array_equal(got, expected), (weights, got, expected)
    if exclude_seen:
        assert (ranks[:, :8] == MISS_RANK).all()  # a seen target cannot be recommended
    if top_m == 5:
        assert fallback > 0  # the full-catalogue path ran and agreed


def test_blend_choose_weights_is_unchanged_by_pruning():
    """Blend.choose_weights picks, from the pruned ranks, the weighting the full ranking picks."""
    from recsys.evaluate import rank_metric

    rng = np.random.default_rng(3)
    dists, prefixes = _parts(rng, 200, 300)
    targets = torch.from_numpy(rng.integers(1, 300, 200))
    grid = simplex_grid(3, 0.1)
    ranks, _ = grid_ranks(dists, prefixes, targets, grid, 20)
    full = np.stack([rank_targets(mask_scores(mix(dists, w), prefixes, False), targets).numpy() for w in grid])
    for metric in ("mrr@20", "hr@20", "ndcg@10"):
        assert int(np.argmax([rank_metric(r, metric) for r in ranks])) == \
            int(np.argmax([rank_metric(r, metric) for r in full]))
