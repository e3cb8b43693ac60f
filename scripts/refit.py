"""Refit a model folder fitted on train only on train + valid, as `train_and_eval.py --refit` would have.

    python scripts/refit.py --model runs/x/gru4rec --data data/diginetica --out runs/x-refit/gru4rec --threads 1

A neural model trains anew for the epoch count validation selected, replaying each epoch's learning rate; a
baseline keeps its parameters. --data must be the data set the folder was trained on (its items are checked).
The new folder says it was fitted on train + valid; the input folder is never written.
"""

import argparse
import sys

import _path  # noqa: F401

from recsys.atomic import describe_os_error
from recsys.data import Dataset
from recsys.datasets.schema import DataError
from recsys.folder import ModelFolderError
from recsys.refit_folder import refit_folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder fitted on train only")
    p.add_argument("--data", required=True, help="the prepared data set folder it was trained on")
    p.add_argument("--out", required=True, help="new model folder to write (never the --model folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        data = Dataset.load(args.data)
        info = refit_folder(args.model, data, args.out, seed=args.seed, progress=not args.quiet)
    except (DataError, ModelFolderError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    epochs = f", {info['epochs']} epochs" if "epochs" in info else ""
    print(f"refitted on {info['data']}{epochs} in {info['seconds']:.0f} s: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
