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


# --- the serving benchmark's sizes and its floor table (tools/bench) ---------------------------------------------

import pytest  # noqa: E402

from tools.bench.render import render_serving, render_summary  # noqa: E402
from tools.bench.servedata import parse_items, serving_sizes, size_label  # noqa: E402
from tools.bench.serving import FLOOR_TARGET, floor_call, floor_checks  # noqa: E402


def test_items_option_reads_sizes_and_refuses_bad_ones():
    assert parse_items("40k,1M") == (40_000, 1_000_000)
    assert parse_items(" 2500 , 10K,") == (2_500, 10_000)
    assert [size_label(n) for n in (40_000, 1_000_000, 2_500, 2_000_000)] == ["40k", "1M", "2500", "2M"]
    assert serving_sizes((1_000_000, 40_000, 40_000), quick=False) == {"40k": 40_000, "1M": 1_000_000}
    assert serving_sizes(None, quick=True) == {"1k": 1_000}
    for bad, reason in [("40x", "whole numbers"), ("-5", "whole numbers"), ("1.5M", "whole numbers"),
                        ("²", "whole numbers"), ("50", "100 to"), ("9M", "100 to"), (",", "no catalogue size")]:
        with pytest.raises(ValueError, match=reason):
            parse_items(bad)


def test_floor_is_the_models_own_table_times_a_query_then_the_top_k():
    model = REGISTRY["gru4rec"](REGISTRY["gru4rec"].Config(), 500).eval()
    call, dim = floor_call(model)
    values, indices = call()
    table, _ = model.serving_table()
    assert dim == table.shape[0] == model.config.emb_dim and values.shape == indices.shape == (1, 20)
    assert table is model.serving_table()[0]  # the cached table recommend() reads, not a copy


def _entry(p50, floor_p50=None):
    entry = {"single": {"p50_ms": p50, "p99_ms": 2 * p50, "cpu_ms_per_call": p50, "load_before": [0.1, 0.1, 0.1]},
             "batch": {"sessions_per_s": 100.0}}
    if floor_p50:
        entry.update(floor={"p50_ms": floor_p50, "cpu_ms_per_call": floor_p50, "dim": 64},
                     floor_ratio=round(p50 / floor_p50, 3))
    return entry


def test_floor_table_and_summary_line():
    sizes = {"40k": {"n_items": 40_000, "batch_size": 256,
                     "models": {"pop": _entry(0.2), "sasrec": _entry(0.9, 0.6), "lstm": _entry(1.2, 0.6)}},
             "1M": {"n_items": 1_000_000, "batch_size": 67, "models": {"sasrec": _entry(30.0, 29.0)}}}
    checks = [c for lab, s in sizes.items() for c in floor_checks(lab, s["models"])]
    assert [(c["measured"], c["met"]) for c in checks] == [(1.5, True), (2.0, False), (1.034, True)]
    r = {"timestamp": "t", "command": "python scripts/benchmark.py serving", "timing": {"wall_s": 1.0},
         "sizes": sizes, "n_single": 200, "call": "recommend", "session_lengths": "5-20", "weights": "random",
         "floor": "one product", "floor_target": FLOOR_TARGET, "floor_sizes": ["40k", "1M"], "checks": checks,
         "app": {"skipped": "not requested"}}
    sizes["40k"]["models"]["pop"]["single_default_threads"] = {"p50_ms": 20.0, "threads": 2}
    sizes["40k"]["models"]["sasrec"]["single_default_threads"] = {"p50_ms": 0.9, "threads": 1}  # OMP_NUM_THREADS=1
    text = render_serving(r)
    assert "| 40k | pop | 0.20 | 20.00 (2 threads) | 100.0x |" in text and "| 40k | sasrec | 0.90 |" not in text
    assert "Not compared: sasrec (measured where torch's default was one thread" in text
    assert "| sasrec | 64 | 0.90 / 0.60 | 30.00 / 29.00 | 1.50x ✓ | 1.03x ✓ |" in text
    assert "| lstm | 64 | 1.20 / 0.60 | – | 2.00x ✗ | – |" in text
    floor_table = text.split("Against the floor")[1].split("One torch thread")[0]
    assert "| pop |" in text.split("Against the floor")[0] and "| pop |" not in floor_table
    summary = render_summary({"serving": r})
    assert "met by 1 of 2 models | **not met** by lstm | lstm: 2.00x at 40k" in summary
    assert summary.count("recommend() / floor") == 0  # one line for them all, not one per check
