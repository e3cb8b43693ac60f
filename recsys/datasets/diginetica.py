"""Reader for Diginetica (CIKM Cup 2016) item views.

Files (";"-separated, with a header):
    train-item-views.csv    sessionId;userId;itemId;timeframe;eventdate   (SR-GNN's sample spells them
                            session_id;user_id;item_id;timeframe;eventdate; both are accepted)
    product-categories.csv  itemId;categoryId
The event time is eventdate (YYYY-MM-DD, taken as UTC midnight) plus timeframe milliseconds.
"""

import numpy as np
import pandas as pd

from recsys.datasets.columns import datetimes, numbers, required_strings, strings
from recsys.datasets.files import RawTable, read_delimited
from recsys.datasets.schema import DataError, canonical_events, plausible_times

# Canonical role -> accepted header names, official spelling first.
VIEW_COLUMNS = {
    "session_id": ("sessionId", "session_id"),
    "user_id": ("userId", "user_id"),
    "item_id": ("itemId", "item_id"),
    "timeframe": ("timeframe",),
    "eventdate": ("eventdate",),
}
CATEGORY_COLUMNS = {"item_id": ("itemId", "item_id"), "category_id": ("categoryId", "category_id")}
NULL_USERS = ("NA",)


def read_diginetica(views_path, categories_path=None) -> pd.DataFrame:
    """Read `train-item-views.csv` (event "view") and optionally `product-categories.csv` into the canonical table.

    userId "NA" or blank becomes a null user_id. Items missing from the categories file get a null category.
    """
    raw = read_delimited(views_path, sep=";")
    col = _resolve(raw, VIEW_COLUMNS)
    day = datetimes(raw, col["eventdate"])
    timeframe = numbers(raw, col["timeframe"], "timeframe (ms)")
    latest = plausible_times()[1]
    too_late = timeframe > (latest.value // 1000 - day.array.asi8) / 1000  # checked before it becomes a timedelta
    if too_late.any():
        row = int(np.flatnonzero(too_late)[0])
        raise raw.error(f"timeframe {timeframe[row].item()!r} ms puts the event after {latest.date()}",
                        col["timeframe"], row)
    offset = pd.to_timedelta(timeframe, unit="ms")
    frame = pd.DataFrame({
        "session_id": pd.Series(pd.array(required_strings(raw, col["session_id"]), dtype="string")),
        "user_id": strings(raw, col["user_id"], null_values=NULL_USERS),
        "item_id": pd.Series(pd.array(required_strings(raw, col["item_id"]), dtype="string")),
        "timestamp": day + offset,
    })
    frame["event"] = pd.Series("view", index=frame.index, dtype="string")
    if categories_path is not None:
        categories = _read_categories(categories_path)
        frame["category_id"] = frame["item_id"].map(categories)
    names = {role: col[role] for role in ("session_id", "user_id", "item_id")} | {"timestamp": col["timeframe"]}
    return canonical_events(frame, path=raw.path, first_line=raw.first_line, names=names)


def _read_categories(path) -> pd.Series:
    """item_id -> category_id from `product-categories.csv` (first row wins for a repeated item)."""
    raw = read_delimited(path, sep=";")
    col = _resolve(raw, CATEGORY_COLUMNS)
    items = pd.array(required_strings(raw, col["item_id"]), dtype="string")
    categories = pd.Series(pd.array(required_strings(raw, col["category_id"]), dtype="string"), index=items)
    return categories[~categories.index.duplicated()]


def _resolve(raw: RawTable, accepted: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Map each role to the header name the file uses, failing on the first role with none of its names."""
    found = raw.data.column_names
    resolved = {}
    for role, names in accepted.items():
        present = [n for n in names if n in found]
        if not present:
            raise DataError(f"missing column (also accepted: {list(names[1:])}); found {found}",
                            path=raw.path, column=names[0], line=1)
        resolved[role] = present[0]
    return resolved
