"""Fit and evaluate every model (or the ones named) and write the comparison.

    python scripts/train_and_eval.py                       # the embedded synthetic default, every model
    python scripts/train_and_eval.py --data data/processed/retailrocket --models pop,sknn,sasrec --out runs/rr

Writes one model folder per model (a neural one with its training_curves.png), results.json, results.md and
the comparison chart model_comparison.png into --out; `--assets DIR` writes the chart and a copy of each
model's training curves (training_curves_NAME.png) into DIR instead.
"""

import argparse
import sys
from pathlib import Path

import _path  # noqa: F401

from recsys.atomic import check_model_name, describe_os_error
from recsys.data import Dataset
from recsys.datasets.schema import DataError
from recsys.evaluate import check_objective
from recsys.models import REGISTRY
from recsys.pipeline import RunConfig, check_run_folder, load_params, run
from recsys.prepare import load_or_prepare_default
from recsys.report import NOT_SCORED, describe_selection, has_split, results_table
from recsys.sessionize import describe_truncation


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="processed data set folder (default: the synthetic one, generated if missing)")
    p.add_argument("--models", default=",".join(REGISTRY), help=f"comma separated, from: {','.join(REGISTRY)}; "
                   "KEY@VARIANT runs KEY again with the parameter file whose \"model\" is KEY@VARIANT")
    p.add_argument("--out", default="checkpoints", help="where model folders and results go")
    p.add_argument("--params", nargs="*", default=[], help="tuned parameter files from scripts/tune.py")
    p.add_argument("--max-epochs", type=int, help="passed to every model that trains in epochs")
    p.add_argument("--exclude-seen", action="store_true", help="never recommend items already in the session")
    p.add_argument("--refit", action="store_true", help="after validation, fit anew on train+valid")
    p.add_argument("--resume", action="store_true", help="neural models: continue an interrupted run from its "
                   "last checkpoint (in OUT/.work/NAME)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--assets", help="folder for model_comparison.png and training_curves_NAME.png (default: "
                   "the chart into --out; the curves stay in each model folder)")
    p.add_argument("--select", default="mrr@20", help="validation metric that chooses the best model (hr@20, "
                   "ndcg@10, ...) or the mean of several joined by + (hr@20+mrr@20); default mrr@20")
    p.add_argument("--max-valid-cases", type=int, help="validate on at most N evenly spaced cases (default: all)")
    p.add_argument("--no-test", action="store_true", help="never score the test split: fit, validate (and "
                   "refit) only, to compare variants or fit a hybrid's parts without reading test")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m.split("@")[0] not in REGISTRY]
    if unknown:
        print(f"error: unknown model(s) {unknown}; choose from {sorted(REGISTRY)}", file=sys.stderr)
        return 2
    if args.max_valid_cases is not None and args.max_valid_cases < 1:
        print(f"error: --max-valid-cases must be at least 1, not {args.max_valid_cases}", file=sys.stderr)
        return 2
    try:
        check_objective(args.select)
        for name in models:
            check_model_name(name)
        # before reading or training anything: --out and each OUT/NAME must be ours to write
        check_run_folder(args.out, models, inputs=[p for p in (args.data, *args.params) if p])
        data = Dataset.load(args.data) if args.data else load_or_prepare_default()
        config = RunConfig(models=models, out=Path(args.out), params=load_params(args.params),
                           max_epochs=args.max_epochs, exclude_seen=args.exclude_seen, n_boot=args.bootstrap,
                           seed=args.seed, progress=not args.quiet, assets=Path(args.assets or args.out),
                           refit=args.refit, resume=args.resume, select=args.select,
                           max_valid_cases=args.max_valid_cases, score_test=not args.no_test)
        results = run(data, config)
    except (DataError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder we may not write: a clear line, no traceback
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    if not results["models"]:  # another process of a data-parallel run: rank 0 reports
        return 0
    print(f"\nData: {describe_truncation(results['data'].get('truncated'))}")
    if has_split(results, "test"):
        print("Test (percent, 95% CI):\n" + results_table(results, "test"))
    else:
        print(NOT_SCORED + "\nValidation (percent, 95% CI):\n" + results_table(results, "valid"))
    print("\n" + "\n".join(describe_selection(results.get("selection"))))
    print(f"\nWrote {args.out}/results.json, {args.out}/results.md and {config.assets}/model_comparison.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
