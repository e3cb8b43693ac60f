"""Does removing a user's earlier items change the accuracy suite's Beauty protocol (issue 15)?

    python -m tools.beauty_probe [--models pop,sr,itemknn] [--out DIR]

Counts, on S3Rec's Beauty.txt as the suite reads it (ACCURACY_DATASETS["beauty"]): users, items, repeated
user-item pairs, validation and test targets that repeat an item of the user's earlier sequence, and targets no
training sequence holds (the eSASRec code drops those users from its test; we count them as misses). Then runs
each model the way the suite does (recsys.pipeline.run: the suite's parameter files, refitted on train + valid,
the one evaluator) twice, ranking the user's earlier items and removing them, and prints test HR@10 / NDCG@10 /
MRR@10 with bootstrap CIs (200 resamples).
Only models that fit in seconds belong here; a neural model would train (twice).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from recsys.data import Dataset
from recsys.pipeline import RunConfig, run
from recsys.prepare import prepare
from recsys.sessions import make_cases
from tools.bench.accuracy import ACCURACY_DATASETS, _dataset_params
from tools.bench.common import shared_data_dir

METRICS = ("hr@10", "ndcg@10", "mrr@10")


def raw_counts(path: Path) -> dict:
    """Counts on the file itself: one user a line, `user item item ...`, oldest first."""
    seqs = [[int(t) for t in line.split()[1:]] for line in path.read_text().splitlines() if line.strip()]
    train_items = {i for s in seqs for i in s[:-2]}  # what a model fitted on train has seen
    refit_items = {i for s in seqs for i in s[:-1]}  # ... and after the refit on train + valid
    return {
        "users": len(seqs), "items": len({i for s in seqs for i in s}), "interactions": sum(map(len, seqs)),
        "repeated_events": sum(len(s) - len(set(s)) for s in seqs),  # an item the user already had, again
        "users_with_a_repeat": sum(len(s) != len(set(s)) for s in seqs),
        "valid_target_in_history": sum(s[-2] in s[:-2] for s in seqs),
        "test_target_in_history": sum(s[-1] in s[:-1] for s in seqs),
        "valid_target_in_no_training_sequence": sum(s[-2] not in train_items for s in seqs),
        "test_target_in_no_training_sequence": sum(s[-1] not in refit_items for s in seqs),
    }


def case_repeats(data: Dataset) -> dict:
    """The same question on the cases the evaluator ranks (prefixes as prepared, cut to its max_length)."""
    out = {}
    for split in ("valid", "test"):
        cases = make_cases(data.split(split), data.protocol(split))
        prefixes = cases.prefixes(np.arange(len(cases)))
        out[split] = {"cases": len(cases),
                      "target_in_prefix": int(sum(t in p for t, p in zip(cases.targets.tolist(), prefixes)))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="pop,sr,itemknn")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/work/beauty_probe"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = ACCURACY_DATASETS["beauty"]
    inputs = [shared_data_dir() / p for p in spec.inputs]
    print(json.dumps({"raw": raw_counts(inputs[0])}))
    cache = args.out / "data"
    data = Dataset.load(cache) if (cache / "meta.json").is_file() else prepare(spec.source, [str(p) for p in inputs],
                                                                                cache)
    print(json.dumps({"cases": case_repeats(data)}))
    for model in args.models.split(","):
        params = _dataset_params("beauty", model)
        row = {"model": model}
        for excl in (False, True):
            config = RunConfig(models=(model,), out=args.out / ("excl" if excl else "ranked"), params=params,
                               n_boot=200, progress=False, assets=None, refit=spec.refit, exclude_seen=excl)
            r = run(data, config, log=lambda *a: None)["models"][model]
            row["excluded" if excl else "ranked"] = {m: round(100 * r["test"][m]["value"], 2) for m in METRICS}
            row["ci95_excluded" if excl else "ci95_ranked"] = {
                m: [round(100 * c, 2) for c in r["test"][m]["ci95"]] for m in METRICS if "ci95" in r["test"][m]}
        row["delta"] = {m: round(row["excluded"][m] - row["ranked"][m], 2) for m in METRICS}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
