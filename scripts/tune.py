"""Tune a baseline's hyperparameters on the validation split of a processed data set.

    python scripts/tune.py --model vsknn --data data/processed/diginetica --trials 30

Writes {"model", "params", "metric", "value", "trials", "history"}; pass it to
`scripts/train_and_eval.py --params FILE`. The test split is never read. On a terminal it shows Optuna's
progress bar; into a file or a pipe, one line per trial (its score, the best so far, its parameters).
"""

import argparse
import json
import sys
from pathlib import Path

import _path  # noqa: F401

from recsys.atomic import describe_os_error
from recsys.data import Dataset
from recsys.tune import tune, write_result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registry key, e.g. itemknn, sr, sknn, vsknn, als")
    parser.add_argument("--data", required=True, help="processed data set folder (Dataset.load)")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--metric", default="mrr@20", help="validation metric to maximise (default mrr@20)")
    parser.add_argument("--max-cases", type=int, default=None, help="evaluate an evenly spaced subset of cases")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed", default=None, help='JSON of Config fields to hold fixed, e.g. \'{"k": 200}\'')
    parser.add_argument("--out", default=None, help="JSON file to write (default checkpoints/<model>.params.json)")
    args = parser.parse_args(argv)
    data = Dataset.load(args.data)
    result = tune(args.model, data, args.trials, metric=args.metric, seed=args.seed, max_cases=args.max_cases,
                  fixed=json.loads(args.fixed) if args.fixed else None, timeout=args.timeout, progress=True)
    result["data"] = str(args.data)
    try:
        out = write_result(result, args.out or Path("checkpoints") / f"{args.model}.params.json")
    except OSError as err:  # a full disk after the trials: say so, and keep what they found on the screen
        print(f"error: {describe_os_error(err)}\nbest parameters (not written): "
              f"{json.dumps({'model': args.model, 'params': result['params']})}", file=sys.stderr)
        return 2
    print(f"best {result['metric']} {result['value']:.4f} with {result['params']} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
