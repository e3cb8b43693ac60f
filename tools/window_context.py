"""How many training targets read less context than they could, with windows side by side or overlapping
(issue 15, "every target sees its context"; docs/BENCHMARKS.md, "Default training recipe").

    python -m tools.window_context [--max-len 50] [--want 25] [--datasets beauty,ml-1m,...] [--work-dir DIR]

A causal model trains windows of up to max_len items (recsys.datamodule.position_windows); a target j items into
its window reads those j items, while its sequence may hold more before the window. A target is "short" when it
reads fewer than min(want, items before it in its sequence) earlier items. Reads the accuracy suite's prepared
training sequences (benchmarks/work, or --work-dir); trains nothing.
"""

import argparse
from pathlib import Path

import numpy as np

from recsys.datamodule import position_windows
from recsys.sessions import Sessions


def short_context_share(sessions: Sessions, max_len: int, min_context: int, want: int) -> tuple[int, int]:
    """(short targets, all targets) of one epoch of position_windows(sessions, max_len, min_context).

    In a window that starts at its sequence's start a target reads everything before it. In any other window
    the target j items in reads j items, fewer than want while j < want; it trains the window's targets after
    its first `context` items, so the short ones are j = context + 1 .. min(length, want - 1).
    """
    starts, lengths, context = position_windows(sessions, max_len, min_context)
    at_start = np.isin(starts, sessions.offsets[:-1])
    short = np.maximum(np.minimum(lengths, want - 1) - context, 0)
    return int(short[~at_start].sum()), int((lengths - context).sum())


def main(argv=None) -> None:
    from tools.bench import WORK_DIR, Options
    from tools.bench.accuracy import ACCURACY_DATASETS, _prepared_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--want", type=int, default=25, help="the context a target should read where it has it")
    ap.add_argument("--datasets", default=",".join(ACCURACY_DATASETS))
    ap.add_argument("--work-dir", type=Path, default=WORK_DIR)
    args = ap.parse_args(argv)
    print("| data set | training sequences | mean length | longer than max_len + 1 | targets "
          "| short, windows side by side | short, windows overlapping by `want` |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        train = _prepared_data(Options(work_dir=args.work_dir), name, ACCURACY_DATASETS[name]).train
        side, total = short_context_share(train, args.max_len, 0, args.want)
        overlap, _ = short_context_share(train, args.max_len, min(args.want, args.max_len - 1), args.want)
        print(f"| {name} | {len(train):,} | {train.lengths.mean():.1f} | "
              f"{(train.lengths > args.max_len + 1).mean():.1%} | {total:,} | {side / total:.1%} | "
              f"{overlap / total:.1%} |", flush=True)


if __name__ == "__main__":
    main()
