"""Suite "eval": evaluator throughput, 60,000 prefixes x 43,000 items through recsys.evaluate."""

import gc
from dataclasses import dataclass

import numpy as np

from tools.bench.common import MIB, Options, Timer, check, rss_mib, run_child, worker_argv

# suite: evaluation throughput

EVAL = dict(n_items=43_000, n_cases=60_000, dim=64, batch_sizes=(1024, 4096))
EVAL_QUICK = dict(n_items=2_000, n_cases=3_000, dim=16, batch_sizes=(256, 1024))
EVAL_TARGET_S = 30.0
SHARDED = dict(items=40_000, sessions=8_000, repeats=5)  # untrained GRU4Rec, 2 gloo processes (issue 19)
SHARDED_QUICK = dict(items=2_000, sessions=400, repeats=1)
SHARDED_TARGET = 0.6


def _dot_model(n_items: int, dim: int):
    """A Recommender whose scoring is one matrix product: last item's embedding @ every item embedding."""
    import torch
    from torch import nn

    from recsys.models.base import Recommender

    @dataclass(frozen=True)
    class DotConfig:
        dim: int = 64

    class LastItemDot(Recommender):
        name, Config = "bench-dot", DotConfig

        def __init__(self, config, n_items):
            super().__init__(config, n_items)
            self.emb = nn.Embedding(n_items, config.dim)

        def score(self, sessions):
            last = torch.tensor([int(s[-1]) for s in sessions])
            return self.emb(last) @ self.emb.weight.T  # (B, n_items)

    torch.manual_seed(0)
    return LastItemDot(DotConfig(dim), n_items)


def suite_eval(opts: Options) -> dict:
    spec = EVAL_QUICK if opts.quick else EVAL
    runs, checks = [], []
    for bs in spec["batch_sizes"]:
        params = {k: spec[k] for k in ("n_items", "n_cases", "dim")} | {"batch_size": bs}
        child = run_child(worker_argv("eval", params))
        if child.get("error"):
            raise RuntimeError(f"eval worker failed: {child['error']}")
        result = child.pop("result")
        run = {**params, **child, **result,
               "score_chunk_mib": round(bs * (spec["n_items"] + 1) * 4 / MIB, 1)}
        runs.append(run)
        print(f"[eval] batch {bs}: evaluate {result['evaluate_wall_s']:.1f} s wall / {result['evaluate_cpu_s']:.1f} s "
              f"CPU, peak RSS {child['peak_rss_mib']:.0f} MiB (before evaluate {result['rss_before_mib']:.0f}), "
              f"load {child['load_before']}", flush=True)
    default = next((r for r in runs if r["batch_size"] == 1024), runs[0])
    sharded = _sharded(SHARDED_QUICK if opts.quick else SHARDED)
    if not opts.quick:
        checks.append(check(f"evaluate {spec['n_cases']:,} prefixes x {spec['n_items']:,} items (batch "
                            f"{default['batch_size']})", default["evaluate_wall_s"], EVAL_TARGET_S, "s",
                            note=f"{default['evaluate_cpu_s']:.1f} s CPU on 2 threads; load "
                                 f"{default['load_before'][0]}"))
        checks.append(check("DDP evaluation on 2 processes: sharded wall time / rank 0 alone", sharded["ratio"],
                            SHARDED_TARGET, "x", note=f"{sharded['sharded_wall_s']} s against "
                            f"{sharded['rank0_only_wall_s']} s (median of {sharded['repeats']}); same metrics: "
                            f"{sharded['same_mrr20']}; load {sharded['load_before'][0]}"))
    return {"spec": {k: v for k, v in spec.items() if k != "batch_sizes"}, "runs": runs, "checks": checks,
            "sharded": sharded,
            "model": f"embedding of the last item @ all item embeddings (random weights), dim {spec['dim']}",
            "call": "recsys.evaluate.evaluate(model, sessions, 'last', batch_size=B)"}


def _sharded(size: dict) -> dict:
    """Sharded evaluation under torch.distributed (tools.bench.scale eval): 2 gloo processes evaluate the same
    cases, rank 0 alone and sharded in turn; it needs two otherwise idle cores to show the split."""
    from tools.bench.scale import bench_eval

    result = bench_eval(size["items"], size["sessions"], size["repeats"])
    result.pop("runs", None)
    print(f"[eval] sharded on 2 processes: {result['sharded_wall_s']} s against {result['rank0_only_wall_s']} s "
          f"rank 0 alone ({result['ratio']}x), load {result['load_before']}", flush=True)
    return {**result, "repeats": size["repeats"]}


def worker_eval(params: dict) -> dict:
    import torch

    from recsys.evaluate import evaluate
    from recsys.sessions import Sessions

    rng = np.random.default_rng(0)
    n_items, n_cases = params["n_items"], params["n_cases"]
    lengths = rng.integers(2, 21, n_cases)  # prefix 1..19 items + the target
    offsets = np.zeros(n_cases + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    sessions = Sessions(rng.integers(1, n_items + 1, offsets[-1]).astype(np.int32), offsets)
    model = _dot_model(n_items + 1, params["dim"])
    gc.collect()
    before, hwm_before = rss_mib(), rss_mib("VmHWM")
    with Timer() as t:
        result = evaluate(model, sessions, "last", batch_size=params["batch_size"])
    metrics = result.metrics()
    return {"evaluate_wall_s": round(t.wall, 3), "evaluate_cpu_s": round(t.cpu, 3), "cases": int(metrics["cases"]),
            "cases_per_s": round(metrics["cases"] / t.wall, 1), "rss_before_mib": before,
            "hwm_before_mib": hwm_before, "hwm_after_mib": rss_mib("VmHWM"), "torch_threads": torch.get_num_threads(),
            "hr@20": round(metrics["hr@20"], 5), "load_before": t.load_before, "load_after": t.load_after}
