"""Time recsys.evaluate per model on a processed data set's validation split, optionally against a reference copy
of the evaluator (another evaluate.py: an older commit's) on the same fitted models, checking identical results.

    git show ae7907a^:recsys/evaluate.py > /tmp/evaluate_before.py
    python tools/eval_compare.py --data data/processed/diginetica --models pop,spop,sr,itemknn,vsknn,gru4rec \
        --threads 1 --reference /tmp/evaluate_before.py --repeats 2

Each model is fitted once (neural models keep their random initial weights: evaluation costs the same), then
each evaluator runs `repeats` times in turn (reference, ours, reference, ours, ...). One line per run: wall and
CPU seconds (this process) and the 1-minute load average before and after; then per model the medians and
whether ranks, top-k and every metric are identical. Exit status 1 if any result differs.

`--phases` instead splits one pass over the cases into its steps, CPU seconds each, at `--batch-size` cases a
chunk (default: the evaluator's own chunk): scoring (the model, with padding masked), our rank count and top
items, and the reference's (torch's compare-and-sum, torch.topk) on the same scores. CPU time is only
attributable to a step at 1 thread: at 2, OpenMP's waiting threads bill their spinning to the step after.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recsys.data import Dataset
from recsys.evaluate import case_batches, chunk_cases, evaluate, rank_targets, top_items
from recsys.models import FitOptions, build_model
from recsys.models.base import mask_scores, score_batch
from recsys.sessions import make_cases


def load_reference(path: Path):
    """The `evaluate` function of another evaluate.py, imported as a module of its own."""
    spec = importlib.util.spec_from_file_location("evaluate_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate


def timed(fn, *args, **kwargs):
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu, (load, os.getloadavg()[0])


def phases(model, data, batch_size: int | None, max_cases: int | None) -> dict[str, float]:
    """CPU seconds of each step of one pass over the validation cases (see the module docstring)."""
    cases = make_cases(data.valid, data.protocol("valid"))
    kmax = min(20, model.n_items - 1)
    steps = {
        "rank": lambda scores, targets: rank_targets(scores, targets),
        "top": lambda scores, targets: top_items(scores, kmax),
        "rank_ref": lambda scores, targets: (scores >= scores.gather(1, targets[:, None])).sum(1, dtype=torch.int32),
        "top_ref": lambda scores, targets: torch.topk(scores, kmax, dim=1),
    }
    spent = dict.fromkeys(["score", *steps], 0.0)
    for _, prefixes, targets in case_batches(cases, max_cases, chunk_cases(model, batch_size)):
        start = time.process_time()
        scores = mask_scores(score_batch(model, prefixes), prefixes, False)
        spent["score"] += time.process_time() - start
        for name, step in steps.items():
            start = time.process_time()
            step(scores, targets)
            spent[name] += time.process_time() - start
    return spent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="processed data set folder")
    p.add_argument("--models", default="pop,spop,sr,itemknn,vsknn,gru4rec", help="comma separated registry keys")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--reference", type=Path, help="another evaluate.py to compare with (results and time)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--max-cases", type=int, help="evaluate an evenly spaced subset of the validation cases")
    p.add_argument("--phases", action="store_true", help="CPU seconds per step instead (see above)")
    p.add_argument("--batch-size", type=int, help="--phases: cases per chunk (default: the evaluator's own)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Dataset.load(args.data)
    evaluators = {"ours": evaluate}
    if args.reference:
        evaluators = {"reference": load_reference(args.reference), **evaluators}
    protocol, popularity = data.protocol("valid"), data.popularity()
    print(f"{args.data}: validation {len(data.valid):,} sessions, {data.n_items - 1:,} items; torch threads "
          f"{torch.get_num_threads()}; load {os.getloadavg()}", flush=True)
    differs = False
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, data.n_items)
        if not model.trains_in_epochs:
            model.fit(data, FitOptions(progress=False))
        if args.phases:
            spent = phases(model, data, args.batch_size, args.max_cases)
            print(f"{name}: chunk {chunk_cases(model, args.batch_size)} cases; CPU s " +
                  ", ".join(f"{k} {v:.2f}" for k, v in spent.items()) + f"; load {os.getloadavg()[0]:.2f}", flush=True)
            continue
        times = {key: [] for key in evaluators}
        results = {}
        for _ in range(args.repeats):
            for key, fn in evaluators.items():
                result, wall, cpu, load = timed(fn, model, data.valid, protocol, popularity=popularity,
                                                max_cases=args.max_cases)
                times[key].append((wall, cpu))
                results[key] = result
                print(f"  {name:10s} {key:9s} {result.metrics()['cases']:,} cases: wall {wall:6.2f} s, CPU "
                      f"{cpu:6.2f} s, load {load[0]:.2f} -> {load[1]:.2f}", flush=True)
        line = "  ".join(f"{key} wall {statistics.median(w for w, _ in t):.2f} s CPU "
                         f"{statistics.median(c for _, c in t):.2f} s" for key, t in times.items())
        if args.reference:
            a, b = results["reference"], results["ours"]
            same = (np.array_equal(a.ranks, b.ranks) and np.array_equal(a.topk, b.topk)
                    and a.metrics() == b.metrics())
            differs |= not same
            line += "  results " + ("identical" if same else "DIFFER")
        print(f"{name}: median {line}", flush=True)
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
