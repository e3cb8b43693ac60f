"""The canonical events table every reader returns, and the errors readers raise.

Columns (pandas dtypes):
    session_id   string, nullable   native session id; null when the source has none (sessionize later)
    user_id      string, nullable   visitor / user id
    item_id      string             raw item id, never null
    timestamp    datetime64[us, UTC]
    event        string, nullable   view, addtocart, transaction, click, purchase, ...
    category_id  string, nullable

Every reader ends in `canonical_events`, so the rules it enforces hold for every source: ids are stripped of
surrounding white space (" 12" and "12" are one item), ids holding control characters (NUL, tab, line breaks
from a broken quote, ...) are refused, and event times must lie in `plausible_times()` (1990 to a year from now):
a log in 1970 or in the year 47,000 is epoch times read in the wrong unit, or mixed units in one column.
"""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

EVENT_COLUMNS = ("session_id", "user_id", "item_id", "timestamp", "event", "category_id")
TIMESTAMP_DTYPE = "datetime64[us, UTC]"
# Event times outside [EARLIEST, now + FUTURE_SLACK] are refused: no e-commerce log predates 1990, and a time
# far ahead (or in 1970) is an epoch number read in the wrong unit. Within this window the largest and smallest
# epoch value differ by less than a factor of 3, so seconds mixed with milliseconds (x1000) always fall outside.
EARLIEST = pd.Timestamp("1990-01-01", tz="UTC")
FUTURE_SLACK = pd.Timedelta(days=366)
# Leading or trailing white space, as str.strip and Arrow's utf8_trim_whitespace see it (Unicode separators and
# the control characters VT, FS..US and NEL too).
_SPACE = r"[\s\pZ\x0b\x1c-\x1f\x{85}]"
_PADDED = f"^{_SPACE}|{_SPACE}$"
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"  # C0 and C1 control characters, DEL


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


def plausible_times() -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window of event times accepted: EARLIEST to a year (FUTURE_SLACK) from now, UTC."""
    return EARLIEST, pd.Timestamp.now(tz="UTC").floor("D") + FUTURE_SLACK


def canonical_events(df: pd.DataFrame, *, path=None, first_line: int = 2,
                     names: dict[str, str] | None = None) -> pd.DataFrame:
    """Coerce a frame that has (some of) EVENT_COLUMNS into the canonical table.

    Missing optional columns are added as nulls; `item_id` and `timestamp` are required. Ids are stripped
    (blank optional ids become null) and must hold no control characters; times must be plausible (see
    `plausible_times`). Exact duplicate rows are dropped; row order is kept.
    first_line: the file line of the row labelled 0 (2 with a header line, 1 without; 0 for Parquet, reported
        as "row N"). Errors name line `first_line + label`, so a reader that filtered rows keeps their labels.
    names: the file's name of each canonical column, for messages (e.g. {"item_id": "sku"}).
    """
    if len(df) == 0:
        raise DataError("the events table is empty", path=path)
    for required in ("item_id", "timestamp"):
        if required not in df.columns:
            raise DataError(f"missing required column; found {list(df.columns)}", path=path, column=required)
    where = _Where(df.index, path, first_line, names or {})
    out = pd.DataFrame(index=df.index)
    for col in ("session_id", "user_id", "item_id", "event", "category_id"):
        if col in df.columns:
            out[col] = _clean_ids(df[col].astype("string"), col, where)
        else:
            out[col] = pd.Series(pd.NA, index=df.index, dtype="string")
    ts = df["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise DataError(f"timestamp must be timezone-aware datetimes, got {ts.dtype}", path=path, column="timestamp")
    out["timestamp"] = ts.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    items = pa.array(out["item_id"].array)
    missing_item = pc.or_kleene(pc.is_null(items), pc.equal(pc.binary_length(items), 0))
    if pc.any(missing_item).as_py():
        raise where.error("empty item id", "item_id", _first(missing_item))
    missing_ts = out["timestamp"].isna().to_numpy()
    if missing_ts.any():
        raise where.error("missing or unparseable timestamp", "timestamp", _first(missing_ts))
    _check_times(out["timestamp"], where)
    if out["session_id"].isna().all() and out["user_id"].isna().all():
        raise DataError("need a session_id or a user_id column to build sessions", path=path, column="session_id")
    # Sorting into sessions happens once, in recsys.sessionize.build_dataset.
    first = _first_of_duplicates(out)
    if first is not None:
        out = out[first]
    return out.reset_index(drop=True)[list(EVENT_COLUMNS)]


class _Where:
    """Turns a row position of the frame given to canonical_events into a DataError naming its file line."""

    def __init__(self, index: pd.Index, path, first_line: int, names: dict[str, str]):
        self.index, self.path, self.first_line, self.names = index, path, first_line, names

    def error(self, message: str, column: str, position: int) -> DataError:
        label = self.index[position]
        row = int(label) if isinstance(label, int | np.integer) else position
        column = self.names.get(column, column)
        if self.first_line == 0:
            return DataError(f"{message} at row {row + 1}", path=self.path, column=column)
        return DataError(message, path=self.path, column=column, line=self.first_line + row)


def _clean_ids(values: pd.Series, column: str, where: _Where) -> pd.Series:
    """Strip surrounding white space (only when some value has any: no copy of a clean 33 M-row column),
    turn values left blank into nulls (item_id keeps them, to be reported as empty) and refuse control characters.
    """
    ids = pa.array(values.array)
    may_pad, may_control = _screen(ids)
    if may_pad and pc.any(pc.match_substring_regex(ids, _PADDED)).as_py():
        ids = pc.utf8_trim_whitespace(ids)
        if column != "item_id":
            ids = pc.if_else(pc.equal(pc.binary_length(ids), 0), pa.scalar(None, ids.type), ids)
        values = pd.Series(pd.array(ids, dtype="string"), index=values.index)
    control = pc.match_substring_regex(ids, _CONTROL) if may_control else None
    if control is not None and pc.any(control).as_py():
        row = _first(control)
        raise where.error(f"control character in id {ids[row].as_py()!r} (a NUL byte, a tab or a line break "
                          "inside a value, e.g. from an unterminated quote?)", column, row)
    return values


# Bytes that may start or end white space in UTF-8: ASCII white space, and lead (or any continuation) bytes of
# the Unicode separators U+0085, U+00A0, U+1680, U+2000-U+205F and U+3000.
_EDGE_FIRST = np.zeros(256, dtype=bool)
_EDGE_FIRST[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0xC2, 0xE1, 0xE2, 0xE3]] = True
_EDGE_LAST = np.zeros(256, dtype=bool)
_EDGE_LAST[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
_EDGE_LAST[0x80:] = True


def _screen(ids: pa.Array | pa.ChunkedArray, pad: bool = True) -> tuple[bool, bool]:
    """(may hold padded values, may hold control characters), from the raw UTF-8 bytes without copying them.

    A regex over a 33 M-row column takes seconds; these numpy passes over the bytes take a tenth of that, and
    only a positive screen (also a false one, e.g. an id ending in "é") pays for the exact regex check.
    pad=False skips the padding screen (reported as False).
    """
    may_pad = may_control = False
    for chunk in ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]:
        if len(chunk) == 0:
            continue
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return pad, True  # another layout: let the exact checks decide
        _, offsets, data = chunk.buffers()
        if data is None or data.size == 0:
            continue
        offsets = np.frombuffer(offsets, np.int64 if pa.types.is_large_string(chunk.type) else np.int32)
        offsets = offsets[chunk.offset: chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data, np.uint8)
        body = data[offsets[0]: offsets[-1]]
        if body.size == 0:
            continue
        # C0 controls are bytes below 0x20, DEL is 0x7F, C1 controls are 0xC2 0x80..0x9F (no 0xC2 in ASCII ids).
        may_control = may_control or bool(body.min() < 0x20 or (body == 0x7F).any()) or (
            bool((body == 0xC2).any()) and bool(((body[:-1] == 0xC2) & (body[1:] <= 0x9F)).any()))
        if pad and not may_pad:
            filled = offsets[1:] > offsets[:-1]
            may_pad = bool(_EDGE_FIRST[data[offsets[:-1][filled]]].any() or
                           _EDGE_LAST[data[offsets[1:][filled] - 1]].any())
    return may_pad, may_control


def first_line_break(values: pa.Array | pa.ChunkedArray) -> int | None:
    """Position of the first string holding a CR or LF, or None; the exact check runs only after the byte screen."""
    if not _screen(values, pad=False)[1]:
        return None
    broken = pc.match_substring_regex(values, r"[\r\n]")
    return _first(broken) if pc.any(broken).as_py() else None


def _check_times(ts: pd.Series, where: _Where) -> None:
    earliest, latest = plausible_times()
    micros = ts.array.asi8
    early = micros < earliest.value // 1000
    late = micros > latest.value // 1000
    if early.any() or late.any():
        row = _first(early | late)
        side = f"before {earliest.date()}" if early[row] else f"after {latest.date()} (a year from now)"
        raise where.error(f"implausible timestamp {ts.iloc[row]}, {side}: epoch times in the wrong unit, or mixed "
                          "units (s and ms) in one column? (give the unit with --timestamp-unit)", "timestamp", row)


def _first(mask) -> int:
    """Position of the first true value of a boolean numpy or Arrow mask (nulls count as false)."""
    if isinstance(mask, pa.ChunkedArray | pa.Array):
        return int(pc.index(pc.fill_null(mask, False), True).as_py())
    return int(np.flatnonzero(mask)[0])


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


