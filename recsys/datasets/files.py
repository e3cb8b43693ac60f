"""Reading table files as text: decompression by first bytes, and delimited text read as nullable strings.

Every text file is opened by `open_input`, which decompresses gzip, bz2, xz, zstd and lz4 files recognised by
their first bytes (whatever their name), so no reader ever parses compressed bytes as text. `read_delimited`
reads a delimited file with pyarrow into a `RawTable` of strings, after checking that it exists, is not empty,
is UTF-8 text and has a usable header; a file Arrow cannot parse, and a quote left open, become a `DataError`
naming the file and the line. Line numbers count the header and assume no blank lines and no quoted line
breaks inside fields. The column parsers (recsys.datasets.columns) turn a RawTable's columns into values.
"""

import codecs
import csv
import io
import lzma
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from recsys.datasets.schema import DataError, first_line_break

_HEAD_BYTES = 1 << 16
# First bytes of compressed files (codec names as pyarrow spells them; xz is read with Python's lzma).
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
          (b"\x04\x22\x4d\x18", "lz4"))
_BZIP2 = b"1AY&SY"  # block magic after "BZh" and the block size digit
_NOT_TEXT = ((b"PK\x03\x04", "a zip archive; extract the table first"), (b"PAR1", "a Parquet file, not delimited text"))
DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError)


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
