"""Reading any events table (CSV or Parquet), plus the checked-parsing helpers every reader shares.

Files are read as nullable strings with pyarrow and converted column by column, so that every bad value becomes
a `DataError` naming the file, the column and the line: line numbers count the header and assume no blank
lines and no quoted line breaks inside fields. Parquet rows are reported as "row N" (1-based) instead of a line.
The other readers (retailrocket, yoochoose, diginetica) build on `read_delimited` and the column parsers here.
"""

import codecs
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recsys.datasets.schema import EVENT_COLUMNS, DataError, canonical_events

_HEAD_BYTES = 1 << 16
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(frozen=True)
class RawTable:
    """A table read as strings, remembering where each row came from for error messages.

    `first_line` is the file line of data row 0 (2 with a header, 1 without; 0 for Parquet, reported as rows).
    `rows`, when set, maps table rows to data rows of the file (after rows were filtered while reading).
    """

    data: pa.Table
    path: Path
    first_line: int
    rows: np.ndarray | None = None

    def column(self, name: str) -> pa.ChunkedArray:
        return self.data.column(name)

    def error(self, message: str, column: str | None = None, row: int | None = None) -> DataError:
        """A DataError for table row `row` (None: the whole column)."""
        if row is None:
            return DataError(message, path=self.path, column=column)
        data_row = int(self.rows[row]) if self.rows is not None else int(row)
        if self.first_line == 0:
            return DataError(f"{message} at row {data_row + 1}", path=self.path, column=column)
        return DataError(message, path=self.path, column=column, line=self.first_line + data_row)


def read_delimited(path, *, sep: str = ",", names: tuple[str, ...] | None = None, required: tuple[str, ...] = (),
                   keep: Callable[[pa.RecordBatch], pa.Array] | None = None) -> RawTable:
    """Read a delimited text file as nullable strings (empty fields are null).

    names: column names of a file without a header line; None reads them from the first line.
    required: columns that must be present (a clear error lists the ones found).
    keep: optional row filter applied batch by batch while streaming (bounded memory for big files).
    """
    path = Path(path)
    head = _read_head(path)
    if names is None:
        header = _header(head, sep, path)
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"missing column; found {header}", path=path, column=missing[0], line=1)
    else:
        header = list(names)
    options = (pcsv.ReadOptions(column_names=header, skip_rows=0 if names else 1, block_size=1 << 24),
               pcsv.ParseOptions(delimiter=sep),
               pcsv.ConvertOptions(column_types={c: pa.string() for c in header}, strings_can_be_null=True,
                                   null_values=[""]))
    try:
        if keep is None:
            table, rows = pcsv.read_csv(path, *options), None
        else:
            table, rows = _read_filtered(path, options, keep)
    except pa.ArrowInvalid as exc:
        raise _parse_error(path, sep, len(header), str(exc), header) from None
    if table.num_rows == 0 and (rows is None or _data_rows_seen(path, names) == 0):
        raise DataError("no data rows", path=path)
    return RawTable(table, path, 1 if names else 2, rows)


def sniff_separator(path) -> str:
    """The field separator of a text table (one of , ; tab |), guessed from its first lines."""
    path = Path(path)
    lines = _read_head(path).decode("utf-8", errors="replace").splitlines()[:20]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def required_strings(raw: RawTable, column: str) -> pa.ChunkedArray:
    """The column as strings, failing on the first null or blank value."""
    values = _as_strings(raw.column(column))
    blank = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(values), ""))
    _fail_first(raw, blank, column, "missing value")
    return values


def strings(raw: RawTable, column: str, null_values: tuple[str, ...] = ()) -> pd.Series:
    """The column as a pandas string Series, with `null_values` (e.g. "NA") turned into nulls."""
    values = _as_strings(raw.column(column))
    if null_values:
        values = pc.if_else(pc.is_in(values, pa.array(null_values)), pa.scalar(None, pa.string()), values)
    return pd.Series(pd.array(values, dtype="string"))


def numbers(raw: RawTable, column: str, what: str = "value") -> np.ndarray:
    """The column as non-negative int64 (or float64 when some values have decimals); no gaps or junk."""
    values = raw.column(column)
    _fail_first(raw, pc.is_null(values), column, f"missing {what}")
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        _fail_first(raw, pc.invert(pc.match_substring_regex(values, _NUMBER)), column, f"{what} is not a number",
                    show=values)
        try:
            values = pc.cast(values, pa.int64())
        except pa.ArrowInvalid:
            values = pc.cast(values, pa.float64())
    elif not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise raw.error(f"{what} must be numbers, got {values.type}", column)
    _fail_first(raw, pc.less(values, 0), column, f"negative {what}", show=values)
    return values.to_numpy()


def epoch_timestamps(raw: RawTable, column: str, unit: str) -> pd.Series:
    """Parse numeric epoch times in `unit` ("s", "ms" or "us") into UTC datetimes; no negatives or gaps."""
    if unit not in _UNIT_US:
        raise ValueError(f"timestamp_unit must be one of {sorted(_UNIT_US)}, got {unit!r}")
    seconds_or_less = numbers(raw, column, f"timestamp (epoch {unit})")
    return _utc_series(np.round(seconds_or_less * _UNIT_US[unit]).astype(np.int64))


def datetimes(raw: RawTable, column: str) -> pd.Series:
    """Parse ISO 8601 date-times or dates (no zone means UTC) into UTC datetimes; no gaps or pre-1970 times."""
    values = raw.column(column)
    _fail_first(raw, pc.is_null(values), column, "missing timestamp")
    if pa.types.is_timestamp(values.type):
        parsed = values if values.type.tz else values.cast(pa.timestamp(values.type.unit, "UTC"))
        micros = pc.cast(parsed, pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
    elif pa.types.is_date(values.type):
        micros = pc.cast(pc.cast(values, pa.timestamp("us")), pa.int64()).to_numpy()
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        micros = _parse_iso(raw, column, values)
    else:
        raise raw.error(f"timestamp must be date-times or ISO 8601 strings, got {values.type} "
                        "(give timestamp_unit for epoch numbers)", column)
    _fail_first(raw, pa.array(micros < 0), column, "timestamp before 1970", show=values)
    return _utc_series(micros)


def read_table(path, columns: dict[str, str], timestamp_unit: str | None = None, sep: str | None = None,
               event: str | None = None) -> pd.DataFrame:
    """Read a CSV (any separator; sniffed when `sep` is None) or Parquet events table into the canonical table.

    columns: canonical name -> column name in the file; needs `item_id`, `timestamp` and `session_id` and/or
        `user_id`, optionally `event` and `category_id`. Other file columns are ignored.
    timestamp_unit: None parses ISO 8601 strings or dates (no zone = UTC) or Parquet date-times;
        "s" / "ms" / "us" parse numeric epoch times.
    event: a constant event name for every row, for files without an event column.
    """
    unknown = set(columns) - set(EVENT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown canonical columns {sorted(unknown)}; expected some of {EVENT_COLUMNS}")
    if event is not None and "event" in columns:
        raise ValueError("give either an event column or a constant event, not both")
    raw = _read_any(path, tuple(columns.values()), sep)
    frame = {name: strings(raw, src) for name, src in columns.items() if name not in ("item_id", "timestamp")}
    if "item_id" in columns:
        frame["item_id"] = pd.Series(pd.array(required_strings(raw, columns["item_id"]), dtype="string"))
    if "timestamp" in columns:
        ts_col = columns["timestamp"]
        frame["timestamp"] = (datetimes(raw, ts_col) if timestamp_unit is None
                              else epoch_timestamps(raw, ts_col, timestamp_unit))
    if event is not None:
        frame["event"] = pd.Series(event, index=range(raw.data.num_rows), dtype="string")
    return canonical_events(pd.DataFrame(frame), path=raw.path)


def read_item_descriptions(path, item_col: str, text_cols: list[str] | tuple[str, ...],
                           sep: str | None = None) -> pd.DataFrame:
    """DataFrame(item_id, description) from a CSV or Parquet table of item attributes.

    The description joins the non-empty `text_cols` values with " | " (e.g. title | type | conditions).
    The first row wins when an item id repeats.
    """
    raw = _read_any(path, (item_col, *text_cols), sep)
    items = pd.Series(pd.array(required_strings(raw, item_col), dtype="string"))
    texts = pd.DataFrame({c: strings(raw, c).str.strip() for c in text_cols}).replace("", pd.NA)
    description = texts.apply(lambda row: " | ".join(row.dropna()), axis=1) if len(text_cols) else ""
    out = pd.DataFrame({"item_id": items, "description": pd.Series(description, dtype="string")})
    return out.drop_duplicates("item_id").reset_index(drop=True)


def _read_any(path, required: tuple[str, ...], sep: str | None) -> RawTable:
    """CSV or Parquet (by suffix) as a RawTable holding `required` columns, all as strings except times."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, required)
    return read_delimited(path, sep=sep or sniff_separator(path), required=required)


def _read_parquet(path: Path, required: tuple[str, ...]) -> RawTable:
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", path=path) from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(f"missing column; found {table.column_names}", path=path, column=missing[0])
    if table.num_rows == 0:
        raise DataError("no data rows", path=path)
    columns = {}
    for name in dict.fromkeys(required):
        col = table.column(name)
        keep_type = pa.types.is_timestamp(col.type) or pa.types.is_date(col.type) or pa.types.is_integer(col.type) \
            or pa.types.is_floating(col.type)
        columns[name] = col if keep_type else pc.cast(col, pa.string())
    return RawTable(pa.table(columns), path, 0)


def _read_head(path: Path) -> bytes:
    """The first bytes of a text file, checked to exist, be non-empty and decode as UTF-8."""
    if not path.is_file():
        raise DataError("not a file" if path.exists() else "file not found", path=path)
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if not head.strip():
        raise DataError("empty file", path=path)
    if path.suffix.lower() in _COMPRESSED:
        return head
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _HEAD_BYTES)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise DataError("not UTF-8 text (a binary file or another encoding?)", path=path, line=line) from None
    return head


def _header(head: bytes, sep: str, path: Path) -> list[str]:
    first = head.decode("utf-8-sig", errors="replace").splitlines()[0]
    names = [name.strip() for name in next(csv.reader([first], delimiter=sep))]
    if len(set(names)) != len(names) or "" in names:
        raise DataError(f"blank or repeated column names in header {names}", path=path, line=1)
    return names


def _read_filtered(path: Path, options, keep) -> tuple[pa.Table, np.ndarray]:
    """Stream the file, keeping rows where keep(batch) is true, and their data-row numbers."""
    batches, rows, seen = [], [], 0
    with pcsv.open_csv(path, *options) as reader:
        for batch in reader:
            mask = pc.fill_null(keep(batch), False)
            batches.append(batch.filter(mask))
            rows.append(np.flatnonzero(mask.to_numpy(zero_copy_only=False)) + seen)
            seen += batch.num_rows
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table, np.concatenate(rows) if rows else np.zeros(0, np.int64)


def _data_rows_seen(path: Path, names) -> int:
    """Number of non-empty data lines (only used to tell an empty file from an all-filtered one)."""
    with open(path, "rb") as f:
        count = sum(1 for line in f if line.strip())
    return count - (0 if names else 1)


def _parse_error(path: Path, sep: str, n_columns: int, message: str, header: list[str]) -> DataError:
    """Turn a pyarrow CSV error into a DataError, scanning the file for the offending line."""
    if "UTF8" in message or "UTF-8" in message:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return DataError("not UTF-8 text (a binary file or another encoding?)", path=path, line=number)
        return DataError("not UTF-8 text", path=path)
    if "columns" in message:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.reader(f, delimiter=sep)
            for fields in reader:
                if fields and len(fields) != n_columns:
                    return DataError(f"expected {n_columns} fields {header} separated by {sep!r}, got {len(fields)}",
                                     path=path, line=reader.line_num)
    return DataError(f"could not parse as CSV: {message}", path=path)


def _parse_iso(raw: RawTable, column: str, values: pa.ChunkedArray) -> np.ndarray:
    """ISO 8601 strings -> int64 microseconds UTC: fast pyarrow casts first, pandas for mixed forms."""
    for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
        try:
            return pc.cast(values, target).cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
    parsed = pd.to_datetime(pd.Series(pd.array(values, dtype="string")), utc=True, format="ISO8601", errors="coerce")
    _fail_first(raw, pa.array(parsed.isna().to_numpy()), column,
                "not an ISO 8601 date-time (for epoch numbers give timestamp_unit)", show=values)
    return parsed.dt.as_unit("us").astype("int64").to_numpy()


def _fail_first(raw: RawTable, mask, column: str, message: str, show=None) -> None:
    """Raise raw.error for the first row where `mask` is true (nulls count as false), quoting its value."""
    if not pc.any(pc.fill_null(mask, False)).as_py():
        return
    row = int(pc.index(pc.fill_null(mask, False), True).as_py())
    if show is not None:
        message = f"{message}: {show[row].as_py()!r}"
    raise raw.error(message, column, row)


def _as_strings(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Ids stored as numbers (Parquet) become their decimal strings."""
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def _utc_series(micros: np.ndarray) -> pd.Series:
    return pd.Series(micros.view("datetime64[us]")).dt.tz_localize("UTC")
