"""Reading any events table (CSV or Parquet), or a catalogue of item attributes, by naming its columns.

CSV files (any separator; sniffed when not given) are read by `recsys.datasets.files.read_delimited`, Parquet
files (recognised by suffix or first bytes) with pyarrow; both become a `RawTable` whose columns the checked
parsers of `recsys.datasets.columns` convert, so that every bad value becomes a `DataError` naming the file,
the column and the line (Parquet rows are reported as "row N", 1-based).
"""

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsys.datasets.columns import datetimes, epoch_timestamps, required_strings, strings
from recsys.datasets.files import RawTable, read_delimited, sniff_separator
from recsys.datasets.schema import EVENT_COLUMNS, DataError, canonical_events
from recsys.iteminfo import ATTRIBUTES, MAX_CHARS

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # line breaks, tabs, escapes: become one space


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


def read_item_catalogue(path, columns: dict[str, str] | None = None,
                        sep: str | None = None) -> tuple[pd.DataFrame, dict]:
    """(DataFrame(item_id, <attribute>...), counts) from a CSV (any separator) or Parquet table of item attributes.

    columns: "item_id" and some of ATTRIBUTES (name, category, price, brand, colour, description) -> the file's
        column; e.g. {"item_id": "sku", "name": "title"}. An unknown attribute or a column the file lacks is a
        DataError naming it. None: the file's columns named item_id and any of ATTRIBUTES.
    Values are text: control characters (line breaks, tabs, escapes) become spaces, runs of spaces one space,
    blank values null, and values over MAX_CHARS characters are cut there (ending in "…"). Ids are stripped; a
    blank id is an error naming the line. The first row wins when an id repeats.
    counts: {"rows", "duplicates" (rows dropped as repeats), "cut" (values shortened)}.
    """
    if columns is None:
        columns = {k: k for k in _column_names(path, sep) if k == "item_id" or k in ATTRIBUTES}
    unknown = [k for k in columns if k != "item_id" and k not in ATTRIBUTES]
    if unknown:
        raise DataError(f"unknown item attribute {unknown[0]!r} in the item columns; use item_id and some of "
                        f"{', '.join(ATTRIBUTES)}")
    if "item_id" not in columns:
        raise DataError("the item columns must name the id column, e.g. item_id=sku", path=path)
    attributes = [k for k in ATTRIBUTES if k in columns]
    if not attributes:
        raise DataError(f"the item columns name no attribute; give some of {', '.join(ATTRIBUTES)}", path=path)
    raw = _read_any(path, tuple(columns[k] for k in ("item_id", *attributes)), sep)
    ids = pd.Series(pd.array(required_strings(raw, columns["item_id"]), dtype="string")).str.strip()
    out, cut = pd.DataFrame({"item_id": ids}), 0
    for name in attributes:
        text = strings(raw, columns[name]).str.replace(_CONTROL, " ", regex=True)
        text = text.str.replace(r"\s+", " ", regex=True).str.strip().replace("", pd.NA)
        long = text.str.len() > MAX_CHARS
        cut += int(long.sum())
        out[name] = text.where(~long, text.str.slice(0, MAX_CHARS - 1) + "…")
    unique = out.drop_duplicates("item_id").reset_index(drop=True)
    return unique, {"rows": len(out), "duplicates": len(out) - len(unique), "cut": cut}


def _column_names(path, sep: str | None) -> list[str]:
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq") or _starts_with(path, b"PAR1"):
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", path=path) from None
    return list(read_delimited(path, sep=sep or sniff_separator(path)).data.column_names)


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
