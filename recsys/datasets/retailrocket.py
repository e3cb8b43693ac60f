"""Reader for the RetailRocket e-commerce dataset (Kaggle "retailrocket/ecommerce-dataset").

Files:
    events.csv                    timestamp,visitorid,event,itemid,transactionid   (unix ms; view/addtocart/transaction)
    item_properties_part{1,2}.csv timestamp,itemid,property,value                  (weekly snapshots; only
                                  `categoryid` is used here)
    category_tree.csv             categoryid,parentid                              (empty parent for roots)
"""

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.datasets.columns import epoch_timestamps, required_strings, strings
from recsys.datasets.files import read_delimited
from recsys.datasets.schema import canonical_events

EVENT_NAMES = ("view", "addtocart", "transaction")
FILE_NAMES = {"user_id": "visitorid", "item_id": "itemid"}  # events.csv's names of canonical columns
# Relative strength of each event as implicit feedback (a purchase says more than a view). Used to weight
# training targets or interaction counts; views stay at 1 so unweighted and weighted counts agree on views.
EVENT_WEIGHTS = {"view": 1.0, "addtocart": 2.0, "transaction": 3.0}


def read_retailrocket(events_path, item_properties_paths=(), category_tree_path=None,
                      events: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read RetailRocket `events.csv` into the canonical events table.

    item_properties_paths: the `item_properties_part*.csv` files; when given, each event gets the item's
        `categoryid` valid at the event time: the latest value with a snapshot timestamp at or before the event,
        falling back to the item's earliest known value for events before its first snapshot (the snapshots
        start after the first events). Items without any categoryid get a null category.
    category_tree_path: optional `category_tree.csv`; it is read (so a broken file fails here) and category ids
        missing from it are reported with a warning.
    events: None keeps every event type, or a tuple such as ("view",) or ("addtocart", "transaction").
    session_id is null (RetailRocket has none; sessionize by inactivity gap later); user_id is the visitorid.
    """
    if events is not None and not set(events) <= set(EVENT_NAMES):
        raise ValueError(f"unknown events {sorted(set(events) - set(EVENT_NAMES))}; choose from {EVENT_NAMES}")
    raw = read_delimited(events_path, required=("timestamp", "visitorid", "event", "itemid"))
    kinds = required_strings(raw, "event")
    unknown = pc.invert(pc.is_in(kinds, pa.array(EVENT_NAMES)))
    if pc.any(unknown).as_py():
        row = pc.index(unknown, True).as_py()
        raise raw.error(f"unknown event {kinds[row].as_py()!r}; expected one of {EVENT_NAMES}", "event", row)
    frame = pd.DataFrame({
        "user_id": pd.Series(pd.array(required_strings(raw, "visitorid"), dtype="string")),
        "item_id": pd.Series(pd.array(required_strings(raw, "itemid"), dtype="string")),
        "timestamp": epoch_timestamps(raw, "timestamp", "ms", unit_option=False),
        "event": strings(raw, "event"),
    })
    if events is not None:
        frame = frame[frame["event"].isin(events)]  # keeps the row labels, so errors still name file lines
    if item_properties_paths:
        categories = pd.concat([_read_categories(p) for p in item_properties_paths], ignore_index=True)
        frame = attach_categories(frame, categories)
        if category_tree_path is not None:
            _check_tree(frame, read_category_tree(category_tree_path), category_tree_path)
    elif category_tree_path is not None:
        read_category_tree(category_tree_path)
    return canonical_events(frame, path=raw.path, first_line=raw.first_line, names=FILE_NAMES)


def read_category_tree(path) -> pd.DataFrame:
    """DataFrame(category_id, parent_id) from `category_tree.csv`; parent_id is null for root categories."""
    raw = read_delimited(path, required=("categoryid", "parentid"))
    tree = pd.DataFrame({
        "category_id": pd.Series(pd.array(required_strings(raw, "categoryid"), dtype="string")),
        "parent_id": strings(raw, "parentid"),
    })
    repeated = tree["category_id"].duplicated()
    if repeated.any():
        row = int(repeated.to_numpy().nonzero()[0][0])
        raise raw.error(f"category {tree['category_id'][row]!r} listed twice", "categoryid", row)
    return tree


def attach_categories(events: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """Add `category_id` to events(item_id, timestamp, ...) from categories(item_id, timestamp, category_id).

    Each event gets the item's latest category at or before its timestamp (of several rows with the same item
    and timestamp, the last one in file order), else (an event before the item's first snapshot) the item's
    earliest known category; row order of `events` is kept.

    An as-of join without sorting the events (which may be 33 M rows): item ids become integer codes and
    timestamps their rank among the snapshot times, so (item, rank) packs into one sortable int64 and one
    `searchsorted` into the sorted snapshots finds every event's snapshot.
    """
    vocab = pc.unique(_arrow(categories["item_id"]))
    h_item = pc.index_in(_arrow(categories["item_id"]), value_set=vocab).to_numpy().astype(np.int64)
    h_ts = _micros(categories["timestamp"])
    times = np.unique(h_ts)
    step = len(times) + 1  # rank 0: before every snapshot
    h_key = h_item * step + np.searchsorted(times, h_ts) + 1
    order = np.argsort(h_key, kind="stable")  # by (item, time), file order among equals
    h_key = h_key[order]
    e_item = pc.fill_null(pc.index_in(_arrow(events["item_id"]), value_set=vocab), -1).to_numpy()
    known = e_item >= 0
    e_item = e_item[known].astype(np.int64)
    e_key = e_item * step + np.searchsorted(times, _micros(events["timestamp"])[known], side="right")
    found = np.searchsorted(h_key, e_key, side="right") - 1  # last snapshot at or before the event ...
    before_first = (found < 0) | (h_key[np.maximum(found, 0)] // step != e_item)
    first_key = h_key[np.searchsorted(h_key, np.arange(len(vocab), dtype=np.int64) * step)]  # earliest of an item
    earliest = np.searchsorted(h_key, first_key, side="right") - 1  # ... else its last row at the earliest time
    found = np.where(before_first, earliest[e_item], found)
    row = np.full(len(events), -1, dtype=np.int64)
    row[known] = order[found]
    labels = _arrow(categories["category_id"]).take(pa.array(row, mask=row < 0))
    return events.assign(category_id=pd.Series(pd.array(labels, dtype="string"), index=events.index))


def _arrow(values: pd.Series) -> pa.ChunkedArray:
    """The pandas string column as an Arrow array (no copy for Arrow-backed strings)."""
    return pa.chunked_array(pa.array(values.astype("string").array))


def _micros(values: pd.Series) -> np.ndarray:
    return values.astype("datetime64[us, UTC]").array.asi8


def _read_categories(path) -> pd.DataFrame:
    """The `categoryid` rows of an item-properties file as (item_id, timestamp, category_id)."""
    raw = read_delimited(path, required=("timestamp", "itemid", "property", "value"),
                         keep=lambda batch: pc.equal(batch.column("property"), "categoryid"))
    return pd.DataFrame({
        "item_id": pd.Series(pd.array(required_strings(raw, "itemid"), dtype="string")),
        "timestamp": epoch_timestamps(raw, "timestamp", "ms", unit_option=False),
        "category_id": pd.Series(pd.array(required_strings(raw, "value"), dtype="string")),
    })


def _check_tree(frame: pd.DataFrame, tree: pd.DataFrame, path) -> None:
    used = pd.Series(frame["category_id"].dropna().unique())
    missing = used[~used.isin(tree["category_id"])]
    if len(missing):
        warnings.warn(f"{len(missing)} item categories are not in the category tree {path}, "
                      f"e.g. {list(missing[:5])}", stacklevel=3)

