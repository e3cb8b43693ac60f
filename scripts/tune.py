"""Tune a model's hyperparameters on the validation split of a processed data set (the test split is never read).

Baselines: a number of trials of Optuna's TPE over the model's declared search space.

    python scripts/tune.py --model vsknn --data data/processed/diginetica --trials 30

Neural models (sasrec, gru4rec, lstm, ...): learning rate, dropout, embedding size and, where the catalogue uses
the sampled softmax, the number of negatives, around the default training recipe, within a wall-clock budget;
successive halving over epochs gives many settings a few epochs and the best the whole epoch budget
(recsys/tune_neural.py).

    python scripts/tune.py --model sasrec --data data/processed/ml-100k --budget-minutes 10 --threads 1

Writes {"model", "params", "metric", "value", "trials", "history"} (neural models: and "search"); pass it to
`scripts/train_and_eval.py --params FILE`. A neural model's file holds its Config fields and
{"recipe": {changed rules}}: training runs the default recipe under those rules, and the model card says which.
On a terminal a baseline search shows Optuna's progress bar; otherwise, and always for neural models, one line
per trial (its score, the best so far, its parameters).
"""

import argparse
import json
import sys
from pathlib import Path

import _path  # noqa: F401

from recsys.atomic import describe_os_error
from recsys.data import Dataset
from recsys.models import REGISTRY
from recsys.tune import check_result_path, tune, write_result


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of minutes, not {text}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registry key, e.g. itemknn, sr, vsknn, als, sasrec, gru4rec")
    parser.add_argument("--data", required=True, help="processed data set folder (Dataset.load)")
    parser.add_argument("--trials", type=_positive_int, default=None,
                        help="baselines: trials to run (default 30); neural models: at most this many")
    parser.add_argument("--budget-minutes", type=_minutes, default=None,
                        help="neural models (required): wall-clock minutes for the whole search")
    parser.add_argument("--max-epochs", type=_positive_int, default=None,
                        help="neural models: each trial's epoch budget (default: the recipe's, from the data)")
    parser.add_argument("--min-epochs", type=_positive_int, default=None,
                        help="neural models: epochs before the first pruning (default: about 1/27 of the budget)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--metric", default=None, help="validation metric to maximise (baselines: default "
                        "mrr@20; neural models: ndcg@10, the one their training selects epochs by)")
    parser.add_argument("--max-cases", type=_positive_int, default=None,
                        help="evaluate an evenly spaced subset of validation cases")
    parser.add_argument("--timeout", type=float, default=None,
                        help="baselines: stop starting trials after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed", default=None, help='JSON of Config fields to hold fixed, e.g. \'{"k": 200}\'; '
                        'for neural models also lr, dropout, dim or n_negatives')
    parser.add_argument("--out", default=None, help="JSON file to write (default checkpoints/<model>.params.json)")
    args = parser.parse_args(argv)
    if args.model not in REGISTRY:
        return _fail(f"unknown model {args.model!r}; choose one of {sorted(REGISTRY)}")
    neural = REGISTRY[args.model].trains_in_epochs
    try:
        fixed = json.loads(args.fixed) if args.fixed else None
    except json.JSONDecodeError as err:
        return _fail(f"--fixed is not valid JSON ({err})")
    if fixed is not None and not isinstance(fixed, dict):
        return _fail('--fixed must be a JSON object, e.g. \'{"k": 200}\'')
    if neural and args.budget_minutes is None:
        return _fail(f"{args.model} is a neural model: give the search a wall-clock budget, e.g. --budget-minutes 10")
    wrong = [flag for flag, given in (("--budget-minutes", args.budget_minutes), ("--max-epochs", args.max_epochs),
                                      ("--min-epochs", args.min_epochs)) if given is not None]
    if not neural and wrong:
        return _fail(f"only neural models take {', '.join(wrong)}; {args.model} is tuned with --trials")
    if neural and args.timeout is not None:
        return _fail("--timeout is for baselines; a neural search stops at --budget-minutes")
    out = Path(args.out) if args.out else Path("checkpoints") / f"{args.model}.params.json"
    try:
        check_result_path(out)  # before any trial: a bad --out loses no work
        data = Dataset.load(args.data)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if neural:
            from recsys.tune_neural import MONITOR, tune_neural

            result = tune_neural(args.model, data, args.budget_minutes, metric=args.metric or MONITOR,
                                 seed=args.seed, fixed=fixed, max_epochs=args.max_epochs, min_epochs=args.min_epochs,
                                 max_trials=args.trials, max_cases=args.max_cases, progress=True)
        else:
            result = tune(args.model, data, args.trials or 30, metric=args.metric or "mrr@20", seed=args.seed,
                          max_cases=args.max_cases, fixed=fixed, timeout=args.timeout, progress=True)
    except (ValueError, KeyError) as err:  # DataError, unknown model or metric, bad fixed fields, no valid cases
        return _fail(str(err).strip('"'))
    except OSError as err:
        return _fail(describe_os_error(err))
    result["data"] = str(args.data)
    try:
        out = write_result(result, out)
    except (OSError, ValueError) as err:  # a full disk after the trials: say so, and keep what they found on screen
        why = describe_os_error(err) if isinstance(err, OSError) else str(err)
        print(f"error: {why}\nbest parameters (not written): "
              f"{json.dumps({'model': args.model, 'params': result['params']})}", file=sys.stderr)
        return 2
    if neural:
        search = result["search"]
        print(f"chose {search['line']}; {search['wall_seconds']:.0f} s wall, {search['cpu_seconds']:.0f} s CPU "
              f"-> {out}")
    else:
        print(f"best {result['metric']} {result['value']:.4f} with {result['params']} -> {out}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
