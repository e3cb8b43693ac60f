"""Progress of a long loop that reads well on a terminal and in a log file alike (used by the evaluator and the
hybrid's weight selection)."""

import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm


def progress_lines(batches: Iterable, total: int, desc: str, enabled: bool) -> Iterator:
    """`batches` as they are, with progress: a tqdm bar on a terminal; otherwise (a log file, a pipe) one line
    to stderr after about every tenth of them, so logs stay readable line by line."""
    if not enabled:
        yield from batches
        return
    if sys.stderr.isatty():
        yield from tqdm(batches, total=total, desc=desc, leave=False)
        return
    start, every = time.perf_counter(), max(1, total // 10)
    for i, batch in enumerate(batches, 1):
        yield batch  # resumed once the caller is done with it
        if i % every == 0 or i == total:
            print(f"{desc}: batch {i:,}/{total:,} ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
                  flush=True)
