"""Batch scoring: top-k recommendations for every session of a file (recsys.batch).

    python scripts/recommend.py --model checkpoints/gru4rec --input sessions.parquet --k 20 --out recs.parquet
    python scripts/recommend.py --model user/recsys-diginetica/vsknn --input prefixes.tsv --out recs.csv
    python scripts/recommend.py --model checkpoints/sknn --input events.csv \
        --events user_id=visitor,item_id=sku,timestamp=time --out recs.parquet

Input: a sessions table (columns session_id and items: a list of ids in Parquet, ids joined by spaces in CSV/TSV),
or with --events an events table cut into sessions as prepare_data.py cuts them. Output (by suffix, .parquet or
.csv): session_id, rank, item_id, score, fallback. Progress goes to stderr, the summary (a JSON object: sessions,
popularity fallbacks, unknown item ids, ...) to stdout, on one line. Exits 2 with a one-line message on bad input.
"""

import argparse
import json
import sys

import _path  # noqa: F401

from recsys.atomic import OutputFolderError, describe_os_error
from recsys.datasets.schema import DataError
from recsys.folder import ModelFolderError


def parse_columns(text: str) -> dict:
    pairs = [p.split("=", 1) for p in text.split(",")]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise DataError("--events must look like user_id=visitor,item_id=sku,timestamp=time")
    return {k.strip(): v.strip() for k, v in pairs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder, or a Hub id user/repo/model")
    p.add_argument("--input", required=True, help="sessions (.parquet, .csv, .tsv) or, with --events, events")
    p.add_argument("--out", required=True, help="recommendations to write: .parquet or .csv")
    p.add_argument("--k", type=int, default=20, help="recommendations per session (default 20)")
    p.add_argument("--exclude-seen", action="store_true", help="never recommend an item already in the session")
    p.add_argument("--session-column", default="session_id")
    p.add_argument("--items-column", default="items")
    p.add_argument("--items-sep", help="what joins the ids of a text items value (default: white space)")
    p.add_argument("--events", help="the input is an events table: canonical=file column pairs, comma separated "
                                    "(item_id, timestamp, and session_id and/or user_id)")
    p.add_argument("--timestamp-unit", choices=("s", "ms", "us"), help="--events: numeric epoch timestamps")
    p.add_argument("--session-gap-minutes", type=float, default=30.0,
                   help="--events without session ids: inactivity that starts a new session (default 30)")
    p.add_argument("--max-items", type=int, default=200, help="most recent items of a session used (default 200)")
    p.add_argument("--batch-size", type=int, default=64, help="sessions per scoring call (default 64)")
    p.add_argument("--chunk-rows", type=int, default=8192, help="rows read at a time (default 8192)")
    p.add_argument("--workers", type=int, default=1, help="processes scoring batches (default 1)")
    p.add_argument("--threads", type=int, help="torch threads in this process (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    try:
        import torch

        import recsys
        from recsys.batch import BatchOptions, check_output_file, main_progress, score_file

        opts = BatchOptions(k=args.k, exclude_seen=args.exclude_seen, batch_size=args.batch_size,
                            chunk_rows=args.chunk_rows, max_items=args.max_items, workers=args.workers,
                            session_column=args.session_column, items_column=args.items_column,
                            items_sep=args.items_sep, events=parse_columns(args.events) if args.events else None,
                            timestamp_unit=args.timestamp_unit, session_gap_minutes=args.session_gap_minutes)
        check_output_file(args.out, [args.input])  # before the model loads
        if args.threads:
            torch.set_num_threads(args.threads)
        model = recsys.load(args.model)
        report = score_file(model, args.input, args.out, opts, progress=None if args.quiet else main_progress)
    except (DataError, ModelFolderError, OutputFolderError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    print(json.dumps({"model": args.model, "input": args.input, "out": args.out, "k": args.k, **report.as_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
