"""Runs behind the default training recipe (recsys.recipe): one model on ml-100k (or another `user i1 i2 ...`
file) with the recipe under given rules, every epoch's validation and test recorded, appended to
benchmarks/results/recipe_runs.json. The rules are chosen on validation only; test is recorded for the report.

    python -m tools.bench.recipe_runs sasrec '{"lr": 0.002}' [--seq-file F] [--label L] [--params JSON]
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tools.bench.common import RESULTS_DIR, Options, run_child, update_json, worker_argv
from tools.bench.train import _ml100k_sequences


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("rules", nargs="?", default="{}", help="recsys.recipe.Rules fields to change, JSON")
    p.add_argument("--params", default="{}", help="model config fields, JSON")
    p.add_argument("--seq-file", type=Path, help="default: ml-100k as the train suite builds it")
    p.add_argument("--label", default="")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    seq_file = args.seq_file or _ml100k_sequences(Options())[0]
    params = {"seq_file": str(seq_file), "model": args.model, "params": json.loads(args.params), "train": None,
              "rules": json.loads(args.rules) or None, "threads": args.threads, "probe_test": True}
    child = run_child(worker_argv("train", params), timeout=6 * 3600)
    if child.get("error"):
        print(child["error"], file=sys.stderr)
        return 1
    result = child.pop("result")
    ran = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(["python -m "
           "tools.bench.recipe_runs", *(json.dumps(a) if " " in a else a for a in argv)]), "label": args.label,
           "seq_file": str(seq_file), "model": args.model, "rules": params["rules"], "params": params["params"]}
    update_json(RESULTS_DIR / "recipe_runs.json", lambda d: {**d, "runs": [*d.get("runs", []),
                                                                           {**ran, **result, "process": child}]})
    best = result["final"]
    print(json.dumps({"label": args.label, "model": args.model, "rules": params["rules"],
                      "recipe": result["recipe"]["line"] if result.get("recipe") else None,
                      "epochs": result["epochs"], "best_epoch": result["best_epoch"],
                      "valid_ndcg@10": best["valid_ndcg@10"], "test": [best["test_hr@10"], best["test_ndcg@10"]],
                      "fit_cpu_s": result["fit_cpu_s_without_probes"], "fit_wall_s": result["fit_wall_s"],
                      "load": [result["load_before"], result["load_after"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
