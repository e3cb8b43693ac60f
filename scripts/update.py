"""Fold new events into a trained model folder and write the updated model to a new folder.

    python scripts/update.py --model checkpoints/vsknn --events new_events.csv --out checkpoints/vsknn-0601 \
        --columns session_id=session,item_id=item,timestamp=time
    python scripts/update.py --model checkpoints/gru4rec --events day.csv --source diginetica --out DIR --epochs 2

Count models (pop, spop, sknn, vsknn) come out as a refit on old + new sessions would; sr and itemknn keep only
pruned neighbour lists, so theirs is close, not equal; neural models train a few epochs from their weights on
the new sessions (recsys/update.py says what each keeps). The input folder is never written.
"""

import argparse
import sys

import _path  # noqa: F401
from prepare_data import parse_columns

from recsys.atomic import describe_os_error
from recsys.datasets.schema import DataError
from recsys.prepare import SOURCES
from recsys.update import UpdateConfig, update_folder

READ_SOURCES = [name for name, s in SOURCES.items() if not s.presplit and name != "synthetic"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained model folder")
    p.add_argument("--events", required=True, help="file of new events")
    p.add_argument("--out", required=True, help="new model folder to write (never the --model folder)")
    p.add_argument("--source", choices=READ_SOURCES, default="csv", help="format of --events (as prepare_data)")
    p.add_argument("--columns", help="csv source: canonical=file column pairs, comma separated")
    p.add_argument("--timestamp-unit", choices=("s", "ms"), help="csv source: numeric epoch timestamps")
    p.add_argument("--event-types", help="keep only these event types, comma separated (prepare_data's --events)")
    p.add_argument("--session-gap-minutes", type=float)
    p.add_argument("--collapse-repeats", action="store_true", default=None)
    p.add_argument("--min-item-support", type=int, help="events a new item needs to join the vocabulary (default 5)")
    p.add_argument("--min-session-length", type=int)
    p.add_argument("--max-session-length", type=int)
    p.add_argument("--max-length", type=int, help="most recent items kept per session (default: the folder's)")
    p.add_argument("--epochs", type=int, default=UpdateConfig.epochs, help="neural models: epochs on the new events")
    p.add_argument("--lr", type=float, help="neural models: learning rate (default: a tenth of the training rate)")
    p.add_argument("--batch-size", type=int, help="neural models (default: the training batch size)")
    p.add_argument("--seed", type=int, default=UpdateConfig.seed)
    args = p.parse_args(argv)
    options = {k: getattr(args, k) for k in ("session_gap_minutes", "collapse_repeats", "min_item_support",
                                             "min_session_length", "max_session_length", "max_length")}
    try:
        config = UpdateConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
        record = update_folder(args.model, args.events, args.out, source=args.source,
                               columns=parse_columns(args.columns), timestamp_unit=args.timestamp_unit,
                               events_filter=tuple(args.event_types.split(",")) if args.event_types else None,
                               prepare={k: v for k, v in options.items() if v is not None},
                               config=config)
    except (DataError, ValueError) as err:  # bad events, a folder that is not ours, a model that cannot update
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {record['sessions_added']:,} sessions / {record['events_added']:,} events added, "
          f"{record['new_items']:,} new items ({record['n_items']:,} in all); {record['method']}")
    dropped = {k: v for k, v in record.items() if k.endswith("_dropped") and v}
    if dropped:
        print("dropped: " + ", ".join(f"{k.removesuffix('_dropped').replace('_', ' ')} {v:,}"
                                      for k, v in dropped.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
