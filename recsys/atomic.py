"""Write a folder atomically: fill a temporary sibling, then rename it into place.

A crash or an error while writing leaves the previous folder (or nothing) at the target, never a
half-written one that a later step would load.
"""

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}") if out.exists() else None
    if old is not None:
        out.rename(old)  # the old folder stays whole until the new one is in place
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
