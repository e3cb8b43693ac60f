import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from recsys.evaluate import EvalResult, evaluate, paired_test, rank_targets
from recsys.models.base import Recommender, recommend
from recsys.sessions import Sessions


@dataclass(frozen=True)
class FixedConfig:
    pass


class Fixed(Recommender):
    """Scores every session with one fixed vector (set by the test)."""

    name = "fixed"
    Config = FixedConfig

    def __init__(self, config, n_items, vector=None):
        super().__init__(config, n_items)
        self.vector = torch.as_tensor(vector, dtype=torch.float32)

    def score(self, sessions):
        return self.vector.expand(len(sessions), -1).clone()


def test_pessimistic_ties_rank_target_behind_equal_scores():
    scores = torch.tensor([[-1e9, 0.5, 0.5, 0.5, 0.1]])
    assert rank_targets(scores, torch.tensor([2])).item() == 3  # two other items tie with it
    assert rank_targets(scores, torch.tensor([4])).item() == 4


def test_metrics_against_hand_computed_values():
    # item scores: 1 > 2 > 3 = 4 > 5 ; targets placed at ranks 1, 2, 4 (tie with 3 -> pessimistic), 5
    model = Fixed(FixedConfig(), 6, [0.0, 5, 4, 3, 3, 1])
    sessions = Sessions.from_lists([[5, 1], [5, 2], [5, 3], [5, 5]])
    result = evaluate(model, sessions, "last", ks=(1, 2, 5))
    assert result.ranks.tolist() == [1, 2, 4, 5]
    m = result.metrics()
    assert m["hr@1"] == pytest.approx(1 / 4)
    assert m["hr@2"] == pytest.approx(2 / 4)
    assert m["hr@5"] == pytest.approx(1.0)
    assert m["precision@2"] == pytest.approx(2 / 4 / 2)
    assert m["mrr@2"] == pytest.approx((1 + 1 / 2) / 4)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 5) / 4)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5) + 1 / math.log2(6)) / 4)
    assert m["coverage@1"] == pytest.approx(1 / 5)  # only item 1 is ever recommended first


def test_k_larger_than_catalogue_and_padding_never_ranked():
    model = Fixed(FixedConfig(), 4, [100.0, 1, 2, 3])  # padding has the highest raw score
    result = evaluate(model, Sessions.from_lists([[1, 3], [1, 1]]), "last", ks=(5, 10))
    assert result.ranks.tolist() == [1, 3]  # padding does not count ahead of the target
    assert 0 not in result.topk
    assert result.metrics()["hr@10"] == 1.0
    ids, _ = recommend(model, [1], k=50)
    assert sorted(ids.tolist()) == [1, 2, 3]


def test_exclude_seen_turns_repeats_into_misses():
    model = Fixed(FixedConfig(), 5, [0.0, 4, 3, 2, 1])
    sessions = Sessions.from_lists([[1, 1], [1, 2]])
    assert evaluate(model, sessions, "last").ranks.tolist() == [1, 2]
    ranks = evaluate(model, sessions, "last", exclude_seen=True).ranks
    assert ranks[0] > 20 and ranks[1] == 1


def test_chunked_evaluation_equals_one_batch():
    rng = np.random.default_rng(0)
    model = Fixed(FixedConfig(), 50, rng.random(50))
    sessions = Sessions.from_lists([rng.integers(1, 50, size=rng.integers(2, 8)) for _ in range(40)])
    a = evaluate(model, sessions, batch_size=7)
    b = evaluate(model, sessions, batch_size=1000)
    assert np.array_equal(a.ranks, b.ranks) and np.array_equal(a.topk, b.topk)


def test_confidence_intervals_cover_the_mean_and_paired_test():
    ranks = np.tile([1, 3, 30, 2], 100)
    a = EvalResult(ranks, np.ones((400, 20), dtype=np.int64), 100, (5, 10, 20), None)
    b = EvalResult(ranks + 1, np.ones((400, 20), dtype=np.int64), 100, (5, 10, 20), None)
    lo, hi = a.confidence_intervals()["mrr@20"]
    assert lo < a.metrics()["mrr@20"] < hi and hi - lo < 0.15
    test = paired_test(a, b, "mrr@20")
    assert test["mean_diff"] > 0 and test["ci95"][0] > 0 and test["p_value"] < 0.01
    assert paired_test(a, a, "mrr@20")["p_value"] == 1.0
    report = a.report(n_boot=100)
    assert set(report["hr@10"]) == {"value", "ci95"}


def test_recommend_rejects_bad_requests():
    model = Fixed(FixedConfig(), 4, [0.0, 1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        recommend(model, [], k=3)
    with pytest.raises(ValueError, match="positive"):
        recommend(model, [1], k=0)
    with pytest.raises(ValueError, match="out of range"):
        recommend(model, [7], k=2)
    ids, scores = recommend(model, [[1], [2, 3]], k=2)
    assert ids.shape == (2, 2) and scores.shape == (2, 2)
