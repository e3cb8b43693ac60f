"""The CPU training loss computed a block of rows at a time equals the plain full-softmax cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from recsys.models import chunked_softmax
from recsys.models.chunked_softmax import chunked_cross_entropy


def plain(query, rows, bias, targets):
    logits = query @ rows.T if bias is None else query @ rows.T + bias
    logits[:, 0] = -torch.inf
    return F.cross_entropy(logits, targets)


def grads(fn, query, rows, bias, targets, scale=1.0):
    leaves = [t.detach().clone().requires_grad_() for t in (query, rows) + (() if bias is None else (bias,))]
    loss = fn(leaves[0], leaves[1], leaves[2] if bias is not None else None, targets)
    (loss * scale).backward()
    return loss.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("block", [1, 7, 64, None])
def test_value_and_gradients_equal_plain_cross_entropy(with_bias, block):
    g = torch.Generator().manual_seed(0)
    n, n_items, dim = 50, 37, 8
    query, rows = torch.randn(n, dim, generator=g), torch.randn(n_items, dim, generator=g)
    bias = torch.randn(n_items, generator=g) if with_bias else None
    targets = torch.randint(1, n_items, (n,), generator=g)
    want, want_grads = grads(plain, query, rows, bias, targets, scale=3.0)
    got, got_grads = grads(lambda q, r, b, t: chunked_cross_entropy(q, r, b, t, block=block),
                           query, rows, bias, targets, scale=3.0)
    torch.testing.assert_close(got, want)
    assert len(got_grads) == len(want_grads)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(got_grads[1][0], torch.zeros(dim))  # padding's logit is -inf: no gradient


def test_default_block_keeps_each_block_under_the_byte_budget(monkeypatch):
    seen = []
    real = chunked_softmax._forward

    def spy(query, rows, bias, targets, block):
        seen.append(block)
        return real(query, rows, bias, targets, block)

    monkeypatch.setattr(chunked_softmax, "_forward", spy)
    monkeypatch.setattr(chunked_softmax, "BLOCK_BYTES", 4 * 37 * 5)  # five rows of 37 float32 logits
    query, rows = torch.randn(12, 4), torch.randn(37, 4)
    chunked_cross_entropy(query, rows, None, torch.randint(1, 37, (12,)))
    assert seen == [5]


def test_cpu_training_loss_uses_the_chunked_path_with_the_same_value(monkeypatch):
    import numpy as np

    from recsys.models import build_model
    from recsys.sessions import Sessions
    from recsys.train import LitRecommender
    from recsys.trainconfig import TrainConfig

    calls = []
    for cls in (chunked_softmax._ChunkedCE, chunked_softmax._ChunkedCEBias):
        monkeypatch.setattr(cls, "apply", (lambda real: lambda *a: calls.append(1) or real(*a))(cls.apply))
    valid = Sessions.from_lists([np.array([1, 2, 3])])
    for name, params in [("sasrec", {"dim": 16, "n_layers": 1, "max_len": 8}),  # tied rows, no bias
                         ("gru4rec", {"cosine_scale": 16.0}),  # unit rows, no bias
                         ("gru4rec", {"cosine_scale": 0.0})]:  # dot product with the output bias
        model = build_model(name, 30, params)
        lit = LitRecommender(model, TrainConfig(), valid, "last")
        h = torch.randn(20, model.final_state(torch.tensor([[1, 2]]), torch.tensor([2])).shape[-1])
        targets = torch.randint(1, 30, (20,))
        calls.clear()
        got = lit.loss(h, targets)
        assert calls, (name, params)
        with torch.no_grad():
            rows, bias = model.output_rows()
            want = plain(model.query(h), rows, bias, targets)
        torch.testing.assert_close(got.detach(), want)
