"""Reading any events table (CSV or Parquet), plus the checked-parsing helpers every reader shares.

Files are read as nullable strings with pyarrow and converted column by column, so that every bad value becomes
a `DataError` naming the file, the column and the line: line numbers count the header and assume no blank
lines and no quoted line breaks inside fields. Parquet rows are reported as "row N" (1-based) instead of a line.
The other readers (retailrocket, yoochoose, diginetica) build on `read_delimited` and the column parsers here.
Every text file is opened by `open_input`, which decompresses gzip, bz2, xz, zstd and lz4 files recognised by
their first bytes (whatever their name), so no reader ever parses compressed bytes as text.
"""

import codecs
import csv
import io
import lzma
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recsys.datasets.schema import EVENT_COLUMNS, DataError, canonical_events, first_line_break, plausible_times

_HEAD_BYTES = 1 << 16
# First bytes of compressed files (codec names as pyarrow spells them; xz is read with Python's lzma).
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
          (b"\x04\x22\x4d\x18", "lz4"))
_BZIP2 = b"1AY&SY"  # block magic after "BZh" and the block size digit
_NOT_TEXT = ((b"PK\x03\x04", "a zip archive; extract the table first"), (b"PAR1", "a Parquet file, not delimited text"))
DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError)
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

    def where(self, row: int) -> str:
        """'line N' (or 'row N' for Parquet) of table row `row`, for messages that quote a second row."""
        data_row = int(self.rows[row]) if self.rows is not None else int(row)
        return f"row {data_row + 1}" if self.first_line == 0 else f"line {self.first_line + data_row}"


def open_input(path) -> pa.NativeFile | io.BufferedIOBase:
    """Open a table file for reading: a binary stream of its bytes, decompressed when its first bytes are those of
    a gzip, bz2, xz, zstd or lz4 file (a gzip file not named .gz too). Every text reader opens files here."""
    path = Path(path)
    if not path.is_file():
        raise DataError("not a file" if path.exists() else "file not found", path=path)
    with open(path, "rb") as f:
        magic = f.read(10)
    codec = next((name for start, name in _MAGIC if magic.startswith(start)), None)
    if magic.startswith(b"BZh") and magic[4:10] == _BZIP2:
        codec = "bz2"
    if codec == "xz":
        return lzma.open(path, "rb")  # Arrow has no xz codec
    return pa.input_stream(str(path), compression=codec)


def _open_text(path: Path) -> io.TextIOWrapper:
    """The (decompressed) file as text, undecodable bytes replaced; for scanning lines after an error."""
    return io.TextIOWrapper(io.BufferedReader(open_input(path)), encoding="utf-8", errors="replace", newline="")


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
            with open_input(path) as stream:
                table, rows = pcsv.read_csv(stream, *options), None
        else:
            table, rows = _read_filtered(path, options, keep)
    except pa.ArrowInvalid as exc:
        raise _parse_error(path, sep, len(header), str(exc), header) from None
    except DECOMPRESS_ERRORS as exc:
        raise DataError(f"could not decompress: {exc}", path=path) from None
    if table.num_rows == 0 and (rows is None or _data_rows_seen(path, names) == 0):
        raise DataError("no data rows", path=path)
    raw = RawTable(table, path, 1 if names else 2, rows)
    for name in table.column_names:  # Arrow accepts a quote left open up to the end of the file
        row = first_line_break(table.column(name))
        if row is not None:
            line = raw.first_line + (int(rows[row]) if rows is not None else row)
            raise _unterminated_quote(path, line, line + table.column(name)[row].as_py().rstrip("\r\n").count("\n"))
    return raw


def sniff_separator(path) -> str:
    """The field separator of a text table (one of , ; tab |), guessed from its first lines."""
    path = Path(path)
    lines = _read_head(path).decode("utf-8", errors="replace").splitlines()[:20]
    lines = [line for line in lines if line.count('"') % 2 == 0] or lines  # an unterminated quote confuses Sniffer
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def required_strings(raw: RawTable, column: str) -> pa.ChunkedArray:
    """The column as strings, failing on the first null or blank value."""
    values = _as_strings(raw.column(column))
    blank = pc.or_kleene(pc.or_kleene(pc.is_null(values), pc.equal(pc.binary_length(values), 0)),
                         pc.utf8_is_space(values))  # no trimmed copy of a 33 M-row column
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
    if pa.types.is_floating(values.type):
        _fail_first(raw, pc.invert(pc.is_finite(values)), column, f"{what} is not a finite number", show=values)
    _fail_first(raw, pc.less(values, 0), column, f"negative {what}", show=values)
    return values.to_numpy()


def epoch_timestamps(raw: RawTable, column: str, unit: str, *, unit_option: bool = True) -> pd.Series:
    """Parse numeric epoch times in `unit` ("s", "ms" or "us") into UTC datetimes; no negatives or gaps.

    Every time must be plausible (`plausible_times`), checked on the numbers before they are scaled (a huge
    value would overflow int64 microseconds): a value that is plausible in another unit is reported as a unit
    mix-up, naming a line that fits `unit` when there is one (mixed units in one column). unit_option: the unit
    is the caller's choice (say so: --timestamp-unit), not the source's fixed format.
    """
    if unit not in _UNIT_US:
        raise ValueError(f"timestamp_unit must be one of {sorted(_UNIT_US)}, got {unit!r}")
    values = numbers(raw, column, f"timestamp (epoch {unit})")
    low, high = _epoch_window(unit)
    plausible = (values >= low) & (values <= high)  # NaN is neither
    if not plausible.all():
        raise raw.error(_implausible_epoch(raw, values, plausible, unit, unit_option), column,
                        int(np.flatnonzero(~plausible)[0]))
    return _utc_series(np.round(values * _UNIT_US[unit]).astype(np.int64))


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
    earliest, latest = plausible_times()
    _fail_first(raw, pa.array(micros < earliest.value // 1000), column, f"timestamp before {earliest.date()}",
                show=values)
    _fail_first(raw, pa.array(micros > latest.value // 1000), column,
                f"timestamp after {latest.date()} (more than a year from now)", show=values)
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
    return canonical_events(pd.DataFrame(frame), path=raw.path, first_line=raw.first_line, names=columns)


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
    if path.suffix.lower() in (".parquet", ".pq") or _starts_with(path, b"PAR1"):
        return _read_parquet(path, required)
    return read_delimited(path, sep=sep or sniff_separator(path), required=required)


def _starts_with(path: Path, magic: bytes) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


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
        if pa.types.is_dictionary(col.type):  # e.g. a pandas categorical
            col = col.cast(col.type.value_type)
        if pa.types.is_nested(col.type):  # list, struct, map, union: several values in one cell
            raise DataError(f"holds {col.type} values; expected one string, number or date-time per row",
                            path=path, column=name)
        keep_type = pa.types.is_timestamp(col.type) or pa.types.is_date(col.type) or pa.types.is_integer(col.type) \
            or pa.types.is_floating(col.type)
        if not keep_type:
            try:
                col = pc.cast(col, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"cannot read {col.type} values as text: {exc}", path=path, column=name) from None
        columns[name] = col
    return RawTable(pa.table(columns), path, 0)


def _read_head(path: Path) -> bytes:
    """The first (decompressed) bytes of a text file, checked to exist, be non-empty and decode as UTF-8."""
    try:
        with open_input(path) as f:
            head = f.read(_HEAD_BYTES)
    except DECOMPRESS_ERRORS as exc:
        raise DataError(f"could not decompress: {exc}", path=path) from None
    if not head.strip():
        raise DataError("empty file", path=path)
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            raise DataError(what, path=path)
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
    with open_input(path) as stream, pcsv.open_csv(stream, *options) as reader:
        for batch in reader:
            mask = pc.fill_null(keep(batch), False)
            batches.append(batch.filter(mask))
            rows.append(np.flatnonzero(mask.to_numpy(zero_copy_only=False)) + seen)
            seen += batch.num_rows
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table, np.concatenate(rows) if rows else np.zeros(0, np.int64)


def _data_rows_seen(path: Path, names) -> int:
    """Number of non-empty data lines (only used to tell an empty file from an all-filtered one)."""
    with io.BufferedReader(open_input(path)) as f:
        count = sum(1 for line in f if line.strip())
    return count - (0 if names else 1)


def _parse_error(path: Path, sep: str, n_columns: int, message: str, header: list[str]) -> DataError:
    """Turn a pyarrow CSV error into a DataError, scanning the file for the offending line."""
    if "UTF8" in message or "UTF-8" in message:
        with io.BufferedReader(open_input(path)) as f:
            for number, line in enumerate(f, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return DataError("not UTF-8 text (a binary file or another encoding?)", path=path, line=number)
        return DataError("not UTF-8 text", path=path)
    if "columns" in message:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=sep)
            start = 1  # the line a record starts on (reader.line_num is the line it ends on)
            for fields in reader:
                if any("\n" in field or "\r" in field for field in fields):
                    return _unterminated_quote(path, start, reader.line_num)
                if fields and len(fields) != n_columns:
                    return DataError(f"expected {n_columns} fields {header} separated by {sep!r}, got {len(fields)}",
                                     path=path, line=start)
                start = reader.line_num + 1
    return DataError(f"could not parse as CSV: {message}", path=path)


def _unterminated_quote(path: Path, start: int, end: int) -> DataError:
    runs = f"runs on to line {end}" if end > start else "runs to the end of the file"
    return DataError(f"unterminated quote: the quoted value opened on line {start} {runs} (line breaks inside "
                     "quoted values are not supported)", path=path, line=start)


def _epoch_window(unit: str) -> tuple[float, float]:
    """The plausible times (`plausible_times`) as epoch numbers in `unit`."""
    return tuple(t.value / 1000 / _UNIT_US[unit] for t in plausible_times())


def _implausible_epoch(raw: RawTable, values: np.ndarray, plausible: np.ndarray, unit: str, unit_option: bool) -> str:
    """Why the first implausible epoch number is refused, and which unit it would fit."""
    row = int(np.flatnonzero(~plausible)[0])
    value = values[row].item()
    earliest, latest = plausible_times()
    seconds = value * _UNIT_US[unit] / 1e6
    when = str(np.datetime64(int(seconds), "s")) if np.isfinite(seconds) and abs(seconds) < 1e15 else "no date"
    message = (f"implausible timestamp {value!r}: as epoch {unit} it is {when}, outside "
               f"{earliest.date()} .. {latest.date()}")
    fits = [u for u in _UNIT_US if _epoch_window(u)[0] <= value <= _epoch_window(u)[1]]
    if fits and plausible.any():
        good = int(np.flatnonzero(plausible)[0])
        return (f"{message}, while {values[good].item()!r} on {raw.where(good)} fits epoch {unit}: mixed units "
                f"({unit} and {fits[0]}) in one column; convert them to one unit")
    if fits:
        advice = f"give --timestamp-unit {fits[0]}" if unit_option else f"this source's times must be epoch {unit}"
        return f"{message}; it looks like epoch {fits[0]}: {advice}"
    return f"{message}; not an epoch time in {', '.join(_UNIT_US)} either"


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
