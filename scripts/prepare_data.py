"""Turn a raw event log (or pre-split files, or the synthetic generator) into a processed data set folder.

    python scripts/prepare_data.py --source synthetic --out data/processed/synthetic
    python scripts/prepare_data.py --source retailrocket --input events.csv item_properties_part1.csv \
        item_properties_part2.csv category_tree.csv --events view --out data/processed/retailrocket
    python scripts/prepare_data.py --source sessions --input train_sessions.txt test_pairs.tsv --out DIR

A log larger than memory (retailrocket or csv source, CSV or Parquet) is prepared out of core with the same result:
    --engine streaming [--scratch DIR]   (--engine auto, the default, streams when the log needs it)

Any source takes a catalogue of readable item attributes, joined on the raw item id:
    --items products.csv --item-columns item_id=sku,name=title,category=category_path,price=price
"""

import argparse
import sys

import _path  # noqa: F401

from recsys.atomic import describe_os_error
from recsys.datasets.schema import DataError
from recsys.iteminfo import ATTRIBUTES, MAX_CHARS
from recsys.prepare import SOURCES, SYNTHETIC_SPLIT, config_from_options, prepare
from recsys.sessionize import describe_truncation


def parse_columns(text: str | None, option: str = "--columns",
                  example: str = "user_id=customer,item_id=sku,timestamp=date") -> dict | None:
    if not text:
        return None
    pairs = [p.split("=", 1) for p in text.split(",")]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise DataError(f"{option} must look like {example}")
    columns = {k.strip(): v.strip() for k, v in pairs}
    if len(columns) != len(pairs):
        raise DataError(f"{option} names a canonical column twice: {text}")
    return columns


def describe_catalogue(info: dict | None) -> str | None:
    """One line on the joined catalogue: how many items got a name (or other attribute), how many rows matched none."""
    if not info:
        return None
    values = ", ".join(f"{a} {info[a]:,}" for a in ATTRIBUTES if a in info)
    line = (f"item catalogue {info['file']}: {info.get('name', 0):,} of {info['items']:,} items have a name "
            f"(values per attribute: {values})")
    if info["file"] != "synthetic":
        line += (f"; {info['unmatched_rows']:,} of {info['rows'] - info['duplicates']:,} catalogue rows matched no "
                 f"item of the data set")
        if info["duplicates"]:
            line += f"; {info['duplicates']:,} repeated ids (first row kept)"
        if info["cut"]:
            line += f"; {info['cut']:,} values cut to {MAX_CHARS:,} characters"
    return line


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=SOURCES, required=True)
    p.add_argument("--input", nargs="*", default=[], help="input file(s) of the source")
    p.add_argument("--out", required=True, help="processed data set folder to write")
    p.add_argument("--columns", help="csv source: canonical=file column pairs, comma separated")
    p.add_argument("--items", help="catalogue file (CSV, TSV or Parquet, may be compressed) of readable item "
                   "attributes, joined on the raw item id; any source")
    p.add_argument("--item-columns", help="--items: attribute=file column pairs, comma separated: item_id and some "
                   f"of {','.join(ATTRIBUTES)} (default: the file's columns of those names)")
    p.add_argument("--timestamp-unit", choices=("s", "ms"), help="csv source: numeric epoch timestamps")
    p.add_argument("--events", help="keep only these event types, comma separated (e.g. view or addtocart,transaction)")
    p.add_argument("--split", choices=("temporal", "loo"))
    p.add_argument("--session-gap-minutes", type=float)
    p.add_argument("--collapse-repeats", action="store_true", default=None)
    p.add_argument("--min-item-support", type=int)
    p.add_argument("--min-session-length", type=int)
    p.add_argument("--max-session-length", type=int)
    p.add_argument("--iqr-outliers", action="store_true", default=None)
    p.add_argument("--max-length", type=int, help="keep only each session's most recent items (default 50; "
                   "200 for --source sequences); what is cut is printed and kept in meta.json")
    p.add_argument("--test-days", type=float)
    p.add_argument("--valid-days", type=float)
    p.add_argument("--n-events", type=int, help="synthetic: number of events (default 150,000)")
    p.add_argument("--seed", type=int, help="synthetic: seed")
    p.add_argument("--engine", choices=("auto", "pandas", "streaming"), default="auto",
                   help="pandas: in memory; streaming: out of core with polars (retailrocket and csv sources, temporal "
                   "split), the same result; auto (default): streaming when the log would fill half the memory")
    p.add_argument("--scratch", help="--engine streaming: folder for its temporary bucket files (default: the "
                   "system's temporary folder); removed afterwards")
    args = p.parse_args(argv)
    opts = {k: getattr(args, k) for k in ("split", "session_gap_minutes", "collapse_repeats", "min_item_support",
                                          "min_session_length", "max_session_length", "iqr_outliers",
                                          "max_length", "test_days", "valid_days")}
    if args.source == "synthetic":
        opts = {**SYNTHETIC_SPLIT, **{k: v for k, v in opts.items() if v is not None}}
    synthetic = {k: v for k, v in (("n_events", args.n_events), ("seed", args.seed)) if v is not None}
    try:
        data = prepare(args.source, args.input, args.out, config_from_options(**opts),
                       columns=parse_columns(args.columns), timestamp_unit=args.timestamp_unit,
                       events_filter=tuple(args.events.split(",")) if args.events else None, synthetic=synthetic,
                       max_length=args.max_length, items=args.items,
                       item_columns=parse_columns(args.item_columns, "--item-columns", "item_id=sku,name=title"),
                       engine=args.engine, scratch=args.scratch)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder we may not write: a clear line, no traceback
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    stats = data.stats()
    if data.meta.get("engine") == "streaming":
        print("prepared out of core (--engine streaming)")
    print(f"wrote {args.out}: {stats['n_items']:,} items; " + ", ".join(
        f"{s} {stats[s]['sessions']:,} sessions / {stats[s]['events']:,} events" for s in ("train", "valid", "test")))
    dropped = data.meta.get("dropped_unknown_items")
    if dropped:
        print(f"dropped (unknown in training): {dropped}")
    catalogue = describe_catalogue(data.meta.get("catalogue"))
    if catalogue:
        print(catalogue)
    print(describe_truncation(data.meta.get("truncated")))  # last, where the user looks (issue 16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
