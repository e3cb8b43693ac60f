"""Inference-only tables derived from the weights (recsys.models.base.DerivedTable) give the training path's
scores and follow the weights when they change."""

import numpy as np
import torch

from recsys.models import REGISTRY
from recsys.models.base import DerivedTable


def test_derived_table_rebuilds_when_a_weight_changes():
    built = []
    cache = DerivedTable()
    w = torch.ones(3, 2)

    def build(t):
        built.append(1)
        return t.T.contiguous()

    assert cache.get((w,), build) is cache.get((w,), build) and len(built) == 1
    with torch.no_grad():
        w.mul_(2)  # in place: the version moves
    assert torch.equal(cache.get((w,), build), w.T) and len(built) == 2
    assert torch.equal(cache.get((torch.zeros(3, 2),), build), torch.zeros(2, 3)) and len(built) == 3


def test_inference_logits_match_the_training_path_and_follow_the_weights():
    torch.manual_seed(0)
    for name in ("gru4rec-large", "sasrec"):
        cls = REGISTRY[name]
        model = cls(cls.Config(), 50).eval()
        sessions = [np.array([3, 4, 5]), np.array([7])]
        with torch.no_grad():
            first = model.score(sessions)
        with torch.enable_grad():
            reference = model.score(sessions).detach()
        assert torch.allclose(first, reference, atol=1e-5)
        model.init_weights()  # new weights in place: the cached output table must follow
        with torch.no_grad():
            again = model.score(sessions)
        with torch.enable_grad():
            reference = model.score(sessions).detach()
        assert torch.allclose(again, reference, atol=1e-5) and not torch.allclose(again, first)
