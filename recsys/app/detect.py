"""An uploaded event log's first rows and a guess of which column is which (session or user id, item id, time,
event type, category), for the "Your data" tab to show and the user to correct.

The head is read with the project's hardened readers (recsys.datasets.files: decompression by first bytes, UTF-8
and header checks, the separator sniffed), so a bad file gets the same message here as from prepare_data.py.
The guess looks at names first (e.g. `visitorid` -> user id, `sku` -> item id), then at values for the time
column (dates, or epoch numbers whose size says s or ms).
"""

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recsys.datasets.files import DECOMPRESS_ERRORS, open_input, sniff_separator
from recsys.datasets.schema import DataError

PREVIEW_ROWS = 8
HEAD_ROWS = 200  # rows the guess looks at
HEAD_BYTES = 1 << 20
ROLES = ("session_id", "user_id", "item_id", "timestamp", "event", "category_id")
# normalised header names (lower case, letters and digits only) -> the canonical column they usually hold
ALIASES = {
    "session_id": ("sessionid", "session", "sessid", "sid", "visitid"),
    "user_id": ("userid", "user", "visitorid", "visitor", "customerid", "customer", "clientid", "uid", "memberid",
                "fullvisitorid", "accountid"),
    "item_id": ("itemid", "item", "productid", "product", "sku", "articleid", "article", "movieid", "asin", "iid",
                "offerid", "contentid", "pid"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "eventtime", "eventdate", "createdat",
                  "eventtimestamp", "timestampms", "clicktime", "unixtime"),
    "event": ("event", "eventtype", "action", "type", "behavior", "behaviour", "interaction", "eventname"),
    "category_id": ("categoryid", "category", "cat", "catid", "categoryname", "productcategory", "itemcategory"),
}
RETAILROCKET_COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
RETAILROCKET_MAPPING = {"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp", "event": "event"}
# epoch numbers in 1990 .. 2100: seconds have 9-10 digits, milliseconds 12-13
_EPOCH = {"s": (6.3e8, 4.2e9), "ms": (6.3e11, 4.2e12)}


@dataclass(frozen=True)
class Head:
    """The first rows of an upload (as text) and the guess made from them."""

    kind: str  # "parquet", "csv" (any separator), "tsv"
    columns: tuple[str, ...]
    rows: pd.DataFrame  # up to HEAD_ROWS rows, every value as text
    guess: dict[str, str] = field(default_factory=dict)  # canonical role -> file column
    timestamp_unit: str | None = None  # None: ISO dates; "s" / "ms": epoch numbers
    retailrocket: bool = False  # the RetailRocket events.csv layout (prepare's retailrocket source reads it)

    @property
    def preview(self) -> pd.DataFrame:
        return self.rows.head(PREVIEW_ROWS)

    def events(self) -> list[str]:
        """The event types seen in the head (for the event filter), most frequent first."""
        column = self.guess.get("event")
        if not column:
            return []
        return self.rows[column].dropna().value_counts().index.astype(str).tolist()[:20]


def read_head(path) -> Head:
    """The first rows of a CSV / TSV / Parquet file (compressed text too) and the column guess; DataError if it is
    none of those, is empty or has an unusable header."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path.name)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        try:
            reader = pq.ParquetFile(path)
            batch = next(reader.iter_batches(batch_size=HEAD_ROWS), None)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"not a readable Parquet file: {err}", path=path.name) from None
        if batch is None or batch.num_rows == 0:
            raise DataError("no data rows", path=path.name)
        table, kind = pa.Table.from_batches([batch]), "parquet"
    else:
        sep = sniff_separator(path)  # checks: exists, not empty, UTF-8 text, not a zip or Parquet file
        try:
            with open_input(path) as stream:
                head = stream.read(HEAD_BYTES)
        except DECOMPRESS_ERRORS as err:
            raise DataError(f"could not decompress: {err}", path=path.name) from None
        if len(head) == HEAD_BYTES and b"\n" in head:
            head = head[: head.rindex(b"\n") + 1]  # whole lines only
        try:
            table = pcsv.read_csv(io.BytesIO(head), pcsv.ReadOptions(block_size=HEAD_BYTES + 1),
                                  pcsv.ParseOptions(delimiter=sep),
                                  pcsv.ConvertOptions(strings_can_be_null=True, null_values=[""],
                                                      auto_dict_encode=False))
        except pa.ArrowInvalid as err:
            raise DataError(f"could not read as a table separated by {sep!r}: {str(err).splitlines()[0]}",
                            path=path.name) from None
        if table.num_rows == 0:
            raise DataError("no data rows (only a header)", path=path.name)
        kind = "tsv" if sep == "\t" else "csv"
    columns = tuple(str(c) for c in table.column_names)
    if len(set(columns)) != len(columns) or any(not c.strip() for c in columns):
        raise DataError(f"blank or repeated column names in the header {list(columns)}", path=path.name)
    rows = pd.DataFrame({c: [None if v is None else str(v) for v in table.column(c).to_pylist()[:HEAD_ROWS]]
                         for c in columns})
    guess = guess_columns(rows)
    unit = guess_timestamp_unit(rows[guess["timestamp"]]) if "timestamp" in guess else None
    rr = tuple(c.lower() for c in columns) == RETAILROCKET_COLUMNS
    return Head(kind, columns, rows, guess, unit, rr)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def guess_columns(rows: pd.DataFrame) -> dict[str, str]:
    """Canonical role -> file column, each column used once: exact alias matches first, then names that contain
    an alias (`product_sku`), then a time column found by its values."""
    taken: set[str] = set()
    guess: dict[str, str] = {}
    norm = {c: _norm(c) for c in rows.columns}
    for exact in (True, False):
        for role in ROLES:
            if role in guess:
                continue
            for alias in ALIASES[role]:
                hit = next((c for c in rows.columns if c not in taken and (
                    norm[c] == alias if exact else len(alias) > 3 and alias in norm[c])), None)
                if hit is not None:
                    guess[role] = hit
                    taken.add(hit)
                    break
    if "timestamp" not in guess:
        hit = next((c for c in rows.columns if c not in taken and _looks_like_time(rows[c])), None)
        if hit is not None:
            guess["timestamp"] = hit
    return guess


def _looks_like_time(values: pd.Series) -> bool:
    values = values.dropna()
    if values.empty:
        return False
    if guess_timestamp_unit(values) is not None:
        return True
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    return bool(parsed.notna().all()) and not values.str.fullmatch(r"\d+").any()


def guess_timestamp_unit(values: pd.Series) -> str | None:
    """"s" or "ms" when every value is an epoch number of that size; None otherwise (read as ISO dates)."""
    numbers = pd.to_numeric(values.dropna(), errors="coerce")
    if numbers.empty or numbers.isna().any():
        return None
    for unit, (low, high) in _EPOCH.items():
        if ((numbers >= low) & (numbers <= high)).all():
            return unit
    return None
