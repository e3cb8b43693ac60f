"""Scores that mean the same thing for every model, and the held-out check.

Each model's raw scores are turned into its **next-item distribution over every item it could recommend**, the
same definition the hybrid mixes its parts with (recsys.models.blend): a softmax of a neural model's logits;
counts, similarity sums and other non-negative weights divided by their total (negative scores count as 0).
So "12%" is the model's own probability that this item comes next, comparable from Pop to SASRec.

The held-out check ranks a visitor's true next item exactly as the evaluator did for the model's metrics
(recsys.evaluate.rank_targets: full ranking, pessimistic ties, seen items hidden or not as in the run).
"""

import numpy as np
import torch

from recsys.evaluate import rank_targets
from recsys.models.base import mask_scores

LEGEND = ("**Score** = the model's probability that the item is viewed next: its share of the model's scores over "
          "every item it could recommend (a softmax for neural models). Same meaning for every model.")


def probabilities(values, logits: bool) -> np.ndarray:
    """Scores of every recommendable item (any order) -> their probabilities, in the same order (`distributions`
    on one row)."""
    v = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if not len(v):
        return np.zeros(0)
    return distributions(torch.cat([torch.zeros(1, dtype=v.dtype), v])[None], logits)[0, 1:].numpy()


def percent(p: float) -> str:
    """A probability for people: "12.3%", "0.04%", "<0.01%"."""
    if p >= 0.095:
        return f"{100 * p:.0f}%" if p >= 0.995 else f"{100 * p:.1f}%"
    if p >= 0.0001:
        return f"{100 * p:.2g}%"
    return "<0.01%" if p > 0 else "0%"


def target_rank(ids: np.ndarray, values: np.ndarray, n_items: int, history: np.ndarray, target: int,
                exclude_seen: bool) -> int | None:
    """The evaluator's rank of `target` given every item's score (`ids`, `values`: the unmasked ranking), with
    the session's items hidden or not; None when it cannot be recommended (a seen item under exclude_seen)."""
    full = torch.full((1, n_items), -torch.inf)
    full[0, torch.as_tensor(np.asarray(ids, dtype=np.int64))] = torch.as_tensor(np.asarray(values, np.float32))
    mask_scores(full, [np.asarray(history, dtype=np.int64)], exclude_seen)
    rank = int(rank_targets(full, torch.tensor([int(target)]))[0])
    return None if torch.isneginf(full[0, int(target)]) else rank


def distributions(scores: torch.Tensor, logits: bool) -> torch.Tensor:
    """(B, n_items) raw scores -> each row's next-item distribution as `probabilities` defines it; padding
    (column 0) and masked items (-inf) get 0."""
    scores = scores.double().clone()
    scores[:, 0] = -torch.inf
    if logits:
        return torch.softmax(scores, dim=1)
    finite = torch.isfinite(scores)
    p = torch.where(finite, scores, 0.0).clamp_min(0.0)
    total = p.sum(dim=1, keepdim=True)
    uniform = finite.double() / finite.sum(dim=1, keepdim=True).clamp_min(1)
    return torch.where(total > 0, p / total.clamp_min(1e-300), uniform)
