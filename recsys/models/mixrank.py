"""The rank of each target under every weighting of a hybrid's grid, from each part's top items only.

Ranking a mixture sum_i w_i p_i over the whole catalogue for every grid weighting costs one pass over the
catalogue per weighting and case: with four parts (286 weightings at step 0.1) that was 14 s a batch of 256
Diginetica cases, 18 minutes for 20,000 cases. Only the top of the ranking matters (a rank beyond the largest
cutoff `k` of the selection metrics is a miss), so each case is ranked among its candidates: the union of every
part's `top_m` items. An item outside them has p_i at most tau_i (part i's top_m-th probability) in every part,
so its mixed score is at most sum_i w_i tau_i. When the target scores above that bound, nothing outside can
reach it and its rank is 1 + the candidates scoring at least as much (pessimistic ties, as
recsys.evaluate.rank_targets); when k candidates already score at least as much it is a miss either way. The
few (case, weighting) pairs the candidates cannot decide are ranked again over the whole catalogue, as before.
Masked items (padding; the session's own under `exclude_seen`) are never candidates, and a masked target is a
miss, as recsys.models.base.mask_scores and rank_targets make them.
"""

from collections.abc import Sequence

import numpy as np
import torch

from recsys.models.base import mask_scores

TOP_M = 100  # candidates per part; at least k
MARGIN = 1e-5  # relative slack on the bound, so float rounding of the mixed scores cannot decide a pair wrongly


def mix(dists: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """sum_i w_i p_i, the parts weighted 0 left out (Blend.mix)."""
    out = torch.zeros_like(next(p for p in dists if p is not None))
    for w, p in zip(weights, dists):
        if w:
            out.add_(p, alpha=float(w))
    return out


def grid_ranks(dists: Sequence[torch.Tensor], prefixes: Sequence[np.ndarray], targets: torch.Tensor,
               grid: np.ndarray, k: int, exclude_seen: bool = False, top_m: int = TOP_M) -> tuple[np.ndarray, int]:
    """(G, B) int64 ranks of `targets` under each weighting (row of `grid`) of the (B, n_items) part
    distributions `dists` (non-negative; column 0 padding), exact up to `k`; a rank beyond k, and a masked
    target, is MISS_RANK. Also returns how many (weighting, case) pairs were ranked over the whole catalogue."""
    from recsys.evaluate import MISS_RANK, rank_targets

    n_rows, n_items = dists[0].shape
    top = [d.topk(min(max(top_m, k), n_items), dim=1) for d in dists]
    idx = torch.cat([t.indices for t in top], dim=1).sort(dim=1).values
    drop = torch.zeros_like(idx, dtype=torch.bool)
    drop[:, 1:] = idx[:, 1:] == idx[:, :-1]  # each candidate once
    drop |= (idx == targets[:, None]) | (idx == 0)  # the target is counted on its own; padding never
    masked_target = targets == 0
    if exclude_seen:
        seen = torch.zeros(n_rows, n_items, dtype=torch.bool)
        rows = np.repeat(np.arange(n_rows), [len(s) for s in prefixes])
        seen[torch.from_numpy(rows), torch.from_numpy(np.concatenate(prefixes).astype(np.int64))] = True
        drop |= seen.gather(1, idx)
        masked_target |= seen[torch.arange(n_rows), targets]
    probs = [d.gather(1, idx).masked_fill_(drop, -1.0) for d in dists]  # dropped: below any mixed score
    at_target = [d.gather(1, targets[:, None])[:, 0] for d in dists]
    tau = [t.values[:, -1].clamp_min(0) for t in top]
    ranks = np.empty((len(grid), n_rows), dtype=np.int64)
    fallback = 0
    for g, weights in enumerate(grid):
        scores, target = mix(probs, weights), mix(at_target, weights)
        bound = mix(tau, weights) * (1 + MARGIN)
        r = (scores >= target[:, None]).sum(dim=1) + 1
        undecided = ((target <= bound) & (r <= k)).nonzero()[:, 0]
        r[r > k] = MISS_RANK
        if len(undecided):  # the whole catalogue for these cases, as an unpruned ranking would
            fallback += len(undecided)
            cols = undecided.numpy()
            full = mask_scores(mix([d[undecided] for d in dists], weights), [prefixes[c] for c in cols],
                               exclude_seen)
            r[undecided] = rank_targets(full, targets[undecided])
        r[masked_target] = MISS_RANK
        ranks[g] = r.numpy()
    return ranks, fallback
