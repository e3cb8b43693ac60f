"""The canonical events table every reader returns, and the errors readers raise.

Columns (pandas dtypes):
    session_id   string, nullable   native session id; null when the source has none (sessionize later)
    user_id      string, nullable   visitor / user id
    item_id      string             raw item id, never null
    timestamp    datetime64[us, UTC]
    event        string, nullable   view, addtocart, transaction, click, purchase, ...
    category_id  string, nullable
"""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

EVENT_COLUMNS = ("session_id", "user_id", "item_id", "timestamp", "event", "category_id")
TIMESTAMP_DTYPE = "datetime64[us, UTC]"


class DataError(ValueError):
    """Bad input data: names the file, the column and, where known, the line."""

    def __init__(self, message: str, *, path=None, column: str | None = None, line: int | None = None):
        where = []
        if path is not None:
            where.append(f"file {path}")
        if column is not None:
            where.append(f"column '{column}'")
        if line is not None:
            where.append(f"line {line}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.path, self.column, self.line = path, column, line


def canonical_events(df: pd.DataFrame, *, path=None) -> pd.DataFrame:
    """Coerce a frame that has (some of) EVENT_COLUMNS into the canonical table.

    Missing optional columns are added as nulls; `item_id` and `timestamp` are required.
    Exact duplicate rows are dropped; row order is kept.
    """
    if len(df) == 0:
        raise DataError("the events table is empty", path=path)
    for required in ("item_id", "timestamp"):
        if required not in df.columns:
            raise DataError(f"missing required column; found {list(df.columns)}", path=path, column=required)
    out = pd.DataFrame(index=df.index)
    for col in ("session_id", "user_id", "item_id", "event", "category_id"):
        out[col] = df[col].astype("string") if col in df.columns else pd.Series(pd.NA, index=df.index, dtype="string")
    ts = df["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise DataError(f"timestamp must be timezone-aware datetimes, got {ts.dtype}", path=path, column="timestamp")
    out["timestamp"] = ts.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    items = pa.array(out["item_id"].array)
    missing_item = pc.or_kleene(pc.or_kleene(pc.is_null(items), pc.equal(pc.binary_length(items), 0)),
                                pc.utf8_is_space(items))  # no trimmed copy of a 33 M-row column
    if pc.any(missing_item).as_py():
        raise DataError("empty item id", path=path, column="item_id", line=_line_of(missing_item))
    missing_ts = out["timestamp"].isna()
    if missing_ts.any():
        raise DataError("missing or unparseable timestamp", path=path, column="timestamp", line=_line_of(missing_ts))
    if out["session_id"].isna().all() and out["user_id"].isna().all():
        raise DataError("need a session_id or a user_id column to build sessions", path=path, column="session_id")
    # Sorting into sessions happens once, in recsys.data.build_dataset.
    first = _first_of_duplicates(out)
    if first is not None:
        out = out[first]
    return out.reset_index(drop=True)[list(EVENT_COLUMNS)]


def _first_of_duplicates(events: pd.DataFrame) -> np.ndarray | None:
    """Mask keeping the first of each group of exactly equal rows, or None when no row repeats.

    Each row gets a 64-bit hash, combined column by column (hashing a 33 M-row log as polars rows would hold
    every string column converted at once, several GiB); only rows whose hash repeats are compared exactly.
    """
    hashes = np.zeros(len(events), dtype=np.uint64)
    for col in EVENT_COLUMNS:
        values = events[col]
        if col == "timestamp":
            column = pl.Series(values.array.asi8)
        elif values.isna().all():
            continue  # a constant column tells no rows apart
        else:
            column = pl.from_arrow(pa.array(values.array))
        hashes = hashes * np.uint64(0x9E3779B97F4A7C15) ^ column.hash(seed=0).to_numpy()
        del column
    ordered = pl.Series(hashes).sort().to_numpy()
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    if len(repeated) == 0:
        return None
    suspect = repeated[np.minimum(np.searchsorted(repeated, hashes), len(repeated) - 1)] == hashes
    rows = np.flatnonzero(suspect)
    first = np.ones(len(events), dtype=bool)
    exact = pl.from_pandas(events.iloc[rows].reset_index(drop=True))
    first[rows] = exact.select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
    return None if first.all() else first


def _line_of(mask) -> int:
    """1-based file line of the first flagged row, assuming a header line and a default RangeIndex."""
    flagged = mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.ChunkedArray | pa.Array) else mask.to_numpy()
    return int(np.flatnonzero(flagged)[0]) + 2
