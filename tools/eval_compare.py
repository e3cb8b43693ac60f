"""Time recsys.evaluate per model on a processed data set's validation split, optionally against a reference copy
of the evaluator (another evaluate.py: an older commit's) on the same fitted models, checking identical results.

    git show ae7907a^:recsys/evaluate.py > /tmp/evaluate_before.py
    python tools/eval_compare.py --data data/processed/diginetica --models pop,spop,sr,itemknn,vsknn,gru4rec \
        --threads 1 --reference /tmp/evaluate_before.py --repeats 2

Each model is fitted once (neural models keep their random initial weights: evaluation costs the same), then
each evaluator runs `repeats` times in turn (reference, ours, reference, ours, ...). One line per run: wall and
CPU seconds (this process) and the 1-minute load average before and after; then per model the medians and
whether ranks, top-k and every metric are identical. Exit status 1 if any result differs.
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
from recsys.evaluate import evaluate
from recsys.models import FitOptions, build_model


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="processed data set folder")
    p.add_argument("--models", default="pop,spop,sr,itemknn,vsknn,gru4rec", help="comma separated registry keys")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--reference", type=Path, help="another evaluate.py to compare with (results and time)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--max-cases", type=int, help="evaluate an evenly spaced subset of the validation cases")
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
