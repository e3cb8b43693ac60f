"""Reader for YooChoose (RecSys Challenge 2015) click and buy logs.

Files have no header line:
    yoochoose-clicks.dat   session_id,timestamp,item_id,category        (ISO 8601, e.g. 2014-04-07T10:51:09.277Z)
    yoochoose-buys.dat     session_id,timestamp,item_id,price,quantity
`category` is "0" when unknown (made null here), "S" for a special offer, 1-12 for a category, or a brand id.
"""

import pandas as pd

from recsys.datasets.columns import datetimes, required_strings, strings
from recsys.datasets.files import read_delimited
from recsys.datasets.schema import canonical_events

CLICK_COLUMNS = ("session_id", "timestamp", "item_id", "category")
BUY_COLUMNS = ("session_id", "timestamp", "item_id", "price", "quantity")


def read_yoochoose(clicks_path, buys_path=None) -> pd.DataFrame:
    """Read the clicks (event "click") and, optionally, the buys (event "purchase") into the canonical table.

    session_id is the native session id; user_id is null (YooChoose has no users).
    """
    clicks = _read(clicks_path, CLICK_COLUMNS, "click")
    if buys_path is None:
        return clicks
    # Each file is checked on its own (errors name its lines); no click repeats a purchase, so the two
    # canonical tables concatenate into a canonical table.
    return pd.concat([clicks, _read(buys_path, BUY_COLUMNS, "purchase")], ignore_index=True)


def _read(path, names: tuple[str, ...], event: str) -> pd.DataFrame:
    raw = read_delimited(path, names=names)
    frame = pd.DataFrame({
        "session_id": pd.Series(pd.array(required_strings(raw, "session_id"), dtype="string")),
        "item_id": pd.Series(pd.array(required_strings(raw, "item_id"), dtype="string")),
        "timestamp": datetimes(raw, "timestamp"),
    })
    frame["event"] = pd.Series(event, index=frame.index, dtype="string")
    if "category" in names:
        frame["category_id"] = strings(raw, "category", null_values=("0",))  # stripped by canonical_events
    return canonical_events(frame, path=raw.path, first_line=raw.first_line, names={"category_id": "category"})


