"""The canonical events table every reader returns, and the errors readers raise.

Columns (pandas dtypes):
    session_id   string, nullable   native session id; null when the source has none (sessionize later)
    user_id      string, nullable   visitor / user id
    item_id      string             raw item id, never null
    timestamp    datetime64[us, UTC]
    event        string, nullable   view, addtocart, transaction, click, purchase, ...
    category_id  string, nullable
"""

import pandas as pd
import polars as pl

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
    missing_item = out["item_id"].isna() | (out["item_id"].str.strip() == "")
    if missing_item.any():
        raise DataError("empty item id", path=path, column="item_id", line=_line_of(missing_item))
    missing_ts = out["timestamp"].isna()
    if missing_ts.any():
        raise DataError("missing or unparseable timestamp", path=path, column="timestamp", line=_line_of(missing_ts))
    if out["session_id"].isna().all() and out["user_id"].isna().all():
        raise DataError("need a session_id or a user_id column to build sessions", path=path, column="session_id")
    # Exact duplicate rows are dropped (polars hashes rows ~5x faster than DataFrame.duplicated). Sorting into
    # sessions happens once, in recsys.data.build_dataset.
    first = pl.from_pandas(out).select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
    if not first.all():
        out = out[first]
    return out.reset_index(drop=True)[list(EVENT_COLUMNS)]


def _line_of(mask: pd.Series) -> int:
    """1-based file line of the first flagged row, assuming a header line and a default RangeIndex."""
    return int(mask.to_numpy().nonzero()[0][0]) + 2
