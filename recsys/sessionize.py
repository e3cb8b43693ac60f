"""Canonical events -> processed data set: sessions cut, filtered, split in time (or leave-one-out) and indexed.

`build_dataset` turns a canonical events table (recsys.datasets.schema) into a `recsys.data.Dataset`;
`session_keys` gives the sessions it cuts, for analyses of the raw log (recsys.eda).
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data import SPLITS, Dataset
from recsys.datasets.schema import DataError
from recsys.sessions import Sessions

US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class PrepareConfig:
    """Options for turning an events table into a processed data set. Defaults follow GRU4Rec / SR-GNN."""

    split: str = "temporal"  # "temporal" (last days) or "loo" (leave-one-out per user)
    session_gap_minutes: float = 30.0  # split a visitor's stream at this inactivity gap when there is no session id
    collapse_repeats: bool = False  # merge consecutive views of the same item
    min_item_support: int = 5  # drop items seen fewer times (iteratively, with short sessions)
    min_session_length: int = 2
    max_session_length: int | None = None  # drop sessions longer than this (one seed kept 3..28)
    iqr_outliers: bool = False  # drop sessions whose length is an IQR outlier (above Q3 + 1.5 IQR)
    max_length: int = 50  # keep only the most recent items of longer sessions
    test_days: float = 1.0
    valid_days: float = 1.0

    def __post_init__(self):
        if self.split not in ("temporal", "loo"):
            raise ValueError(f"split must be 'temporal' or 'loo', got {self.split!r}")
        if self.min_session_length < 2:
            raise ValueError("min_session_length must be at least 2 (a session needs a next item)")


def build_dataset(events: pd.DataFrame, config: PrepareConfig = PrepareConfig(), source: str = "events") -> Dataset:
    """Sessionize, filter, split and index a canonical events table (see recsys.datasets.schema)."""
    if len(events) == 0:
        raise DataError("the events table is empty")
    item_codes, item_ids = pd.factorize(events["item_id"])
    n_raw_items = len(item_ids)
    ts = _micros(events)  # read only
    cat = _latest_category(events, item_codes, ts)
    user_codes, user_ids = pd.factorize(events["user_id"], use_na_sentinel=True)
    if config.split == "loo":
        if (user_codes < 0).all():
            raise DataError("leave-one-out needs user ids", column="user_id")
        order = _order_by(user_codes, ts)
        key, item, ts = user_codes[order].astype(np.int64), item_codes[order].astype(np.int64), ts[order]
        session_labels = _labels(user_ids)
    else:
        key, order, session_labels = _sessionize(events, ts, user_codes, user_ids, config.session_gap_minutes)
        key, item, ts = key[order], item_codes[order].astype(np.int64), ts[order]
        del order
    del item_codes, user_codes  # the (key, ts)-sorted copies are all that is needed from here on
    n_raw = len(item)
    if config.collapse_repeats:
        keep = np.ones(len(item), dtype=bool)
        keep[1:] = (item[1:] != item[:-1]) | (key[1:] != key[:-1])
        key, item, ts = key[keep], item[keep], ts[keep]
    key, item, ts = _iterative_filter(key, item, ts, config)
    if len(item) == 0:
        raise DataError(
            f"no sessions left after filtering (min_item_support={config.min_item_support}, "
            f"min_session_length={config.min_session_length}); lower them or use more data")
    # one row per session: boundaries in the (key, ts)-sorted arrays
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    bounds = np.r_[starts, len(key)]
    s_start, s_end = ts[starts], np.maximum.reduceat(ts, starts)
    s_key = key[starts]
    if config.split == "loo":
        parts, counts = _split_loo(item, bounds)
    else:
        parts, counts = _split_temporal(item, bounds, s_start, s_end, config)
    split_parts = {name: SplitPart(flat, offsets, session_labels.take(pa.array(s_key[rows])), s_start[rows],
                                   s_end[rows]) for name, (rows, flat, offsets) in parts.items()}
    del parts
    return finish_dataset(split_parts, counts, item_ids, cat,
                          lambda vocab_raw: _item_times(item, ts, vocab_raw, n_raw_items), config, source, n_raw,
                          int(len(item)))


@dataclass(frozen=True)
class SplitPart:
    """One split before indexing: its sessions' raw item codes (flat, with offsets), labels and start/end times
    (int64 microseconds), sessions in their final order. Built in memory by `build_dataset`, out of core by
    recsys.outofcore; `finish_dataset` makes the same Dataset from either."""

    flat: np.ndarray
    offsets: np.ndarray
    labels: pa.Array
    start: np.ndarray
    end: np.ndarray


def finish_dataset(parts: dict[str, SplitPart], counts: dict, item_ids, cat: np.ndarray, item_times,
                   config: PrepareConfig, source: str, n_raw: int, n_after_filter: int) -> Dataset:
    """Index the splits: the vocabulary, unknown items dropped from valid/test, sessions cut to max_length, the item
    table and meta. `item_ids`/`cat` label the raw item codes; `item_times(vocab_raw)` gives the first and last
    time (int64 microseconds) each vocabulary item was seen in the filtered events."""
    # Vocabulary: items that occur in training, ordered by first appearance in training. Leave-one-out keeps
    # every item of the users' sequences (the standard SASRec protocol ranks the whole catalogue).
    n_raw_items = len(item_ids)
    # in order of first appearance, by hashing (np.unique's sort of a 300 M-event split would hold 20 bytes an event)
    vocab_raw = pl.Series(parts["test" if config.split == "loo" else "train"].flat).unique(maintain_order=True)
    vocab_raw = vocab_raw.to_numpy().astype(np.int64, copy=False)
    remap = np.zeros(n_raw_items, dtype=np.int32)
    remap[vocab_raw] = np.arange(1, len(vocab_raw) + 1, dtype=np.int32)
    protocols = {"train": "all", "valid": "last", "test": "last"} if config.split == "loo" else \
        {"train": "all", "valid": "all", "test": "all"}
    splits, info, dropped, cut = {}, {}, {}, {"max_length": config.max_length}
    for name in SPLITS:
        part = parts.pop(name)  # consumed: a big split's raw codes are freed once mapped
        mapped = remap[part.flat]
        offsets, labels, start, end = part.offsets, part.labels, part.start, part.end
        del part
        unknown = mapped == 0
        dropped[name] = int(unknown.sum())
        seqs = Sessions(mapped, offsets)
        if unknown.any():  # drop test items never seen in training, then too-short sessions
            seqs = Sessions(mapped[~unknown], _recount(offsets, ~unknown))
        del mapped, unknown
        keep = seqs.lengths >= 2
        dropped[f"{name}_sessions"] = int((~keep).sum())
        everything = bool(keep.all())  # no copies of what is all kept (a whole training split, usually)
        splits[name], cut[name] = truncate_counted(seqs if everything else seqs.select(keep), config.max_length,
                                                   None if name == "train" else protocols[name])
        del seqs
        info[name] = pd.DataFrame({
            "session_id": pd.array(labels if everything else labels.filter(pa.array(keep)), dtype="string"),
            "start": pd.to_datetime(start if everything else start[keep], unit="us", utc=True),
            "end": pd.to_datetime(end if everything else end[keep], unit="us", utc=True)})
        del labels, start, end
    pop = np.bincount(splits["train"].items, minlength=len(vocab_raw) + 1)[1:]
    first_seen, last_seen = item_times(vocab_raw)
    items = pd.DataFrame({
        "item_id": pd.array(np.asarray(item_ids, dtype=object)[vocab_raw].astype(str), dtype="string"),
        "category_id": pd.array(cat[vocab_raw], dtype="string"),
        "popularity": pop.astype(np.int64),
        "first_seen": pd.to_datetime(first_seen, unit="us", utc=True),
        "last_seen": pd.to_datetime(last_seen, unit="us", utc=True)})
    meta = {"source": source, "config": asdict(config), "protocols": protocols, "raw_events": n_raw,
            "events_after_filter": n_after_filter, "dropped_unknown_items": dropped, "split_counts": counts,
            "truncated": cut}
    return Dataset(splits["train"], splits["valid"], splits["test"], items, meta, info)


def truncate_counted(seqs: Sessions, keep: int, protocol: str | None = None) -> tuple[Sessions, dict]:
    """Keep each session's most recent `keep` items, and count what that cut (meta.json "truncated").

    Counts the sessions shortened and the events dropped; for an evaluation split (`protocol` "all" or "last")
    also the cases it costs: under "all" every dropped position was a case of its own ("cases_dropped") and each
    kept case of a cut session predicts from a shortened prefix; under "last" the one case keeps its target and
    loses the start of its prefix ("prefixes_cut").
    """
    lengths = seqs.lengths
    over = lengths > keep
    events = int((lengths[over] - keep).sum())
    counts = {"sessions": int(over.sum()), "events": events}
    if protocol == "all":
        counts.update(cases_dropped=events, prefixes_cut=int(over.sum()) * (keep - 1))
    elif protocol == "last":
        counts.update(cases_dropped=0, prefixes_cut=int(over.sum()))
    if not over.any():
        return seqs, counts
    # Sessions.truncate's cut, by a mask that drops the oldest items of the few sessions that are over: 5 bytes an
    # event instead of truncate's 28 (its int64 gather positions), which matters for a split of 300 M events
    first = seqs.offsets[:-1][over]
    drop = lengths[over] - keep
    mask = np.ones(len(seqs.items), dtype=bool)
    mask[np.repeat(first, drop) + (np.arange(int(drop.sum())) - np.repeat(np.cumsum(drop) - drop, drop))] = False
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, keep), out=offsets[1:])
    return Sessions(seqs.items[mask], offsets), counts


def describe_truncation(cut: dict | None) -> str:
    """One line saying what keeping the most recent `max_length` items cut, split by split."""
    if not cut:
        return "sessions cut to their most recent items: not recorded (prepared before this was counted)"
    parts = []
    for name in SPLITS:
        c = cut.get(name) or {}
        if c.get("sessions"):
            cases = [f"{c[k]:,} {what}" for k, what in (("cases_dropped", "evaluation cases dropped"),
                                                        ("prefixes_cut", "prefixes shortened")) if c.get(k)]
            parts.append(f"{name} {c['sessions']:,} sessions / {c['events']:,} events"
                         + (f" ({', '.join(cases)})" if cases else ""))
    if not parts:
        return f"no session longer than {cut.get('max_length')} items: nothing cut (--max-length)"
    return f"cut to the most recent {cut.get('max_length')} items (--max-length): " + "; ".join(parts)


def session_keys(events: pd.DataFrame, gap_minutes: float = PrepareConfig.session_gap_minutes) -> np.ndarray:
    """The session of every row of a canonical events table, as `build_dataset` cuts them (an int64 key per
    row): native session ids where given, else each visitor's events cut after `gap_minutes` of inactivity."""
    user_codes, user_ids = pd.factorize(events["user_id"], use_na_sentinel=True)
    return _sessionize(events, _micros(events), user_codes, user_ids, gap_minutes)[0]


def _micros(events: pd.DataFrame) -> np.ndarray:
    """The timestamps as int64 microseconds since the epoch."""
    return events["timestamp"].astype("datetime64[us, UTC]").array.asi8


def _sessionize(events, ts, user_codes, user_ids, gap_minutes):
    """Cut events into sessions: native session ids where given, else a visitor's stream cut at inactivity gaps.

    Returns the session key of every row, the row order that sorts them by (key, timestamp), and the label of
    every key (an Arrow string array). Sessions cut from a visitor stream are labelled "<user_id>:<n>" (n counts that
    visitor's sessions from 0). Native sessions take keys 0..S-1 and cut ones S.., so the sorted order is the
    native rows sorted by (session, time) followed by the visitor rows sorted by (visitor, time): two sorts
    of disjoint rows, never one over the whole log.
    """
    if events["session_id"].isna().all():  # factorizing 33 M nulls takes seconds
        sid_codes, sid_labels = np.full(len(events), -1, dtype=np.int64), pd.Index([], dtype="string")
    else:
        sid_codes, sid_labels = pd.factorize(events["session_id"], use_na_sentinel=True)
    key = sid_codes.astype(np.int64, copy=False)
    labels = [_labels(sid_labels)]
    has_sid = key >= 0
    orders = []
    if has_sid.all():
        orders.append(_order_by(key, ts))
    elif has_sid.any():
        rows = np.flatnonzero(has_sid)
        orders.append(rows[_order_by(key[rows], ts[rows])])
    rows = np.flatnonzero(~has_sid)
    del has_sid
    if len(rows):
        if (user_codes[rows] < 0).any():
            line = int(rows[user_codes[rows] < 0][0]) + 2
            raise DataError("row has neither session_id nor user_id", column="session_id", line=line)
        whole = len(rows) == len(key)  # no native ids at all: no need to gather the rows first
        rows = _order_by(user_codes, ts) if whole else rows[_order_by(user_codes[rows], ts[rows])]
        user = user_codes[rows]
        first_of_user = np.r_[True, user[1:] != user[:-1]]
        new = first_of_user | np.r_[True, np.diff(ts[rows]) > int(gap_minutes * 60 * 1_000_000)]
        starts = np.flatnonzero(new)
        key[rows] = len(sid_labels) + np.cumsum(new) - 1
        del new
        session = np.arange(len(starts))  # the n-th session of a visitor: sessions since the visitor's first
        counter = session - np.maximum.accumulate(np.where(first_of_user[starts], session, 0))
        names = _labels(user_ids).take(pa.array(user[starts]))
        labels.append(pc.binary_join_element_wise(names, pc.cast(pa.array(counter), pa.large_string()),
                                                    pa.scalar(":", pa.large_string())))
        orders.append(rows)
    order = np.concatenate(orders) if len(orders) > 1 else orders[0]
    return key, order, pa.concat_arrays(labels)


def _labels(uniques) -> pa.Array:
    """pd.factorize's uniques as one Arrow large_string array (the session labels of `Dataset.info`)."""
    values = pa.array(pd.array(uniques, dtype="string"))
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.cast(pa.large_string())


def _order_by(key: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Stable permutation sorting by (key, ts); polars' multi-threaded sort is ~10x np.lexsort here."""
    frame = pl.DataFrame({"key": key, "ts": ts})
    return frame.select(pl.arg_sort_by(["key", "ts"], maintain_order=True)).to_series().to_numpy()


def _iterative_filter(key, item, ts, config):
    """Drop rare items and short (or outlier-long) sessions until nothing changes. `key` is sorted."""
    while True:
        n = len(item)
        if n == 0:
            return key, item, ts
        keep = np.bincount(item)[item] >= config.min_item_support
        key, item, ts = key[keep], item[keep], ts[keep]
        if len(key) == 0:
            return key, item, ts
        new = np.r_[True, key[1:] != key[:-1]]
        lengths = np.diff(np.r_[np.flatnonzero(new), len(key)])
        ok = lengths >= config.min_session_length
        if config.max_session_length is not None:
            ok &= lengths <= config.max_session_length
        if config.iqr_outliers:
            q1, q3 = np.percentile(lengths, [25, 75])
            ok &= lengths <= q3 + 1.5 * (q3 - q1)
        keep = ok[np.cumsum(new) - 1]
        key, item, ts = key[keep], item[keep], ts[keep]
        if len(item) == n:
            return key, item, ts


def _split_temporal(item, bounds, s_start, s_end, config):
    """Sessions ending in the last `test_days` are test, the `valid_days` before that valid, the rest train.

    Training sessions end before the validation window starts, so nothing in train is later than the
    start of validation/test (the leakage guarantee tested in tests/test_data.py).
    """
    t_max = s_end.max()
    test_cut = t_max - int(config.test_days * US_PER_DAY)
    valid_cut = test_cut - int(config.valid_days * US_PER_DAY)
    which = np.where(s_end > test_cut, 2, np.where(s_end > valid_cut, 1, 0))
    # valid/test sessions that started before their window would leak into train-time; they stay in their window
    parts, counts = {}, {}
    for code, name in enumerate(SPLITS):
        rows = np.flatnonzero(which == code)
        rows = rows[np.argsort(s_start[rows], kind="stable")]  # sessions in time order
        parts[name] = _gather(item, bounds, rows)
        counts[name] = len(rows)
    if counts["train"] == 0 or counts["test"] == 0:
        raise DataError(f"temporal split left an empty split {counts}; adjust test_days/valid_days")
    return parts, counts


def _split_loo(item, bounds):
    """Leave-one-out per user: train = all but the last two items, valid = all but the last, test = everything."""
    rows = np.arange(len(bounds) - 1)
    lengths = np.diff(bounds)
    rows = rows[lengths >= 3]
    parts = {}
    for name, cut in (("train", 2), ("valid", 1), ("test", 0)):
        b = bounds[:-1][rows], bounds[1:][rows] - cut
        parts[name] = _gather_ranges(item, rows, *b)
    return parts, {name: len(rows) for name in SPLITS}


def _gather(item, bounds, rows):
    return _gather_ranges(item, rows, bounds[:-1][rows], bounds[1:][rows])


def _gather_ranges(item, rows, begin, end):
    lengths = end - begin
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pos = np.arange(offsets[-1], dtype=np.int64) + np.repeat(begin - offsets[:-1], lengths)
    return rows, item[pos], offsets


def _recount(offsets, keep_mask):
    kept = np.r_[0, np.cumsum(keep_mask)]
    return kept[offsets].astype(np.int64)


def _latest_category(events, item_codes, ts):
    """Category per raw item code: the latest non-null category seen for it (documented in the README).

    Of several rows at the item's latest time, the last one wins. Found with two scatter-max passes, no sort.
    """
    out = np.full(int(item_codes.max()) + 1, None, dtype=object)
    codes, labels = pd.factorize(events["category_id"], use_na_sentinel=True)
    known = np.flatnonzero(codes >= 0)
    if len(known):
        item, when = item_codes[known], ts[known]
        latest = np.full(len(out), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, item, when)
        at_latest = when == latest[item]
        row = np.full(len(out), -1, dtype=np.int64)
        np.maximum.at(row, item[at_latest], known[at_latest])
        has = row >= 0
        out[has] = np.asarray(labels, dtype=object)[codes[row[has]]]
    return out


def _item_times(item, ts, vocab_raw, n_raw):
    first = np.full(n_raw, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n_raw, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, item, ts)
    np.maximum.at(last, item, ts)
    return first[vocab_raw], last[vocab_raw]
