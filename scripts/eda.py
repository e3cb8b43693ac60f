"""Exploratory plots and headline statistics of an event log.

    python scripts/eda.py --data synthetic [--n-events 150000] [--out assets]
    python scripts/eda.py --data events.parquet                  # a canonical events table
    python scripts/eda.py --data DIR --source retailrocket       # raw files with their usual names in DIR
"""

import argparse
import json
import sys
from pathlib import Path

import _path  # noqa: F401
import pandas as pd

from recsys.datasets import STANDARD_FILES, DataError, canonical_events, generate_events
from recsys.eda import SESSION_GAP, run_eda
from recsys.prepare import load_events


def read_events(args) -> pd.DataFrame:
    if args.data == "synthetic":
        return generate_events(n_events=args.n_events, seed=args.seed)
    path = Path(args.data)
    if path.suffix == ".parquet":
        return canonical_events(pd.read_parquet(path), path=path)
    if not path.is_dir() or args.source not in STANDARD_FILES:
        raise DataError("--data needs 'synthetic', a .parquet file, or a folder with --source one of "
                        f"{sorted(STANDARD_FILES)}")
    names = STANDARD_FILES[args.source]
    inputs = [str(path / n) for n in names if (path / n).exists() or n == names[0]]
    return load_events(args.source, inputs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic",
                   help="'synthetic', a canonical .parquet table, or a folder of raw files")
    p.add_argument("--events-parquet", help="same as --data PATH.parquet")
    p.add_argument("--source", choices=sorted(STANDARD_FILES), help="raw source in the --data folder")
    p.add_argument("--n-events", type=int, default=150_000, help="synthetic log size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gap-minutes", type=float, default=SESSION_GAP.total_seconds() / 60,
                   help="inactivity gap that ends a session when the source has no session ids")
    p.add_argument("--out", default="assets", help="folder for the PNG plots")
    args = p.parse_args(argv)
    if args.events_parquet:
        args.data = args.events_parquet
    try:
        events = read_events(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats, paths = run_eda(events, args.out, pd.Timedelta(minutes=args.gap_minutes))
    print(json.dumps(stats, indent=2))
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
