"""Out-of-core preparation: the processed data set `recsys.sessionize.build_dataset` makes, from a log that need
not fit in memory (`scripts/prepare_data.py --engine streaming`; chosen by `--engine auto` for big logs).

The engine is polars (a dependency already: its streaming engine reads CSV and Parquet in batches and writes
partitioned Parquet); numpy does the per-bucket work the in-memory path does on the whole log:

1. scan: the events file is read lazily, its columns cleaned (ids stripped, times in microseconds) and written as
   Parquet in buckets by a hash of the session id, or of the visitor where the log has no session ids, so every
   row of a session (and of a visitor whose stream is cut into sessions) lands in one bucket.
2. sessionise, one bucket at a time: exact duplicate rows dropped, sessions cut as the in-memory path cuts them,
   each session keyed as that path orders them (first row of its session id or visitor, then its number).
3. filter to a fixed point: one pass over the buckets per round, with the item counts of the whole log.
4. split and gather: sessions split by time, ordered (start time, then the in-memory order) and their items
   gathered into each split's flat array; `recsys.sessionize.finish_dataset` indexes them, as in memory.

Memory is bounded by one bucket plus the per-session tables of the whole log (start, end, order key, label)
and the processed data set itself; the buckets live in a scratch folder removed afterwards. The result equals
the in-memory path's (tests/test_outofcore.py). Not covered (DataError naming --engine pandas): the
leave-one-out split, logs where only some rows carry a session id, compressed CSV, and sources other than
`retailrocket` and `csv`.
"""

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from recsys.datasets.files import sniff_separator
from recsys.datasets.retailrocket import EVENT_NAMES, _read_categories, attach_categories, read_category_tree
from recsys.datasets.schema import EVENT_COLUMNS, DataError, plausible_times
from recsys.sessionize import US_PER_DAY, PrepareConfig, SplitPart, finish_dataset

STREAMING_SOURCES = ("retailrocket", "csv")
BUCKET_EVENTS = 4_000_000  # rows per bucket aimed at: one bucket's work fits in well under 1 GiB
CSV_BYTES_PER_EVENT = 35  # a RetailRocket-layout row ("1433221332117,257597,view,355908,")
# The in-memory path's peak per event: 5.6 GiB for the 33 M events of a YooChoose-size log (docs/BENCHMARKS.md).
PANDAS_BYTES_PER_EVENT = 180
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def estimated_events(path) -> int:
    """Rows of an events file: Parquet's own count, else the CSV size over a typical row's bytes."""
    path = Path(path)
    if not path.is_file():
        return 0
    if _is_parquet(path):
        try:
            return pl.scan_parquet(path).select(pl.len()).collect().item()
        except (pl.exceptions.PolarsError, OSError):
            return 0
    return path.stat().st_size // CSV_BYTES_PER_EVENT


def choose_engine(source: str, inputs: list[str], engine: str = "auto", memory_bytes: int | None = None) -> str:
    """"pandas" or "streaming": as asked, or for "auto" streaming when the in-memory path would need more than half
    the machine's memory (PANDAS_BYTES_PER_EVENT per event) and the source can stream."""
    if engine not in ("auto", "pandas", "streaming"):
        raise DataError(f"unknown engine {engine!r}; choose auto, pandas or streaming")
    if engine == "streaming" and source not in STREAMING_SOURCES:
        raise DataError(f"--engine streaming reads the {' and '.join(STREAMING_SOURCES)} sources, not {source}; "
                        "use --engine pandas")
    if engine != "auto":
        return engine
    if source not in STREAMING_SOURCES or not inputs:
        return "pandas"
    memory = memory_bytes or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return "streaming" if estimated_events(inputs[0]) * PANDAS_BYTES_PER_EVENT > memory // 2 else "pandas"


@dataclass(frozen=True)
class _Scan:
    """The events file and how its columns become the canonical ones."""

    path: Path
    columns: dict[str, str]  # canonical name -> file column
    timestamp_unit: str | None  # None: ISO strings or Parquet date-times
    first_line: int  # the file line of row 0 (2 below a CSV header; 0: Parquet, reported as "row N")
    events: tuple[str, ...] | None  # the event types the source allows (retailrocket), for the check


def prepare_streaming(source: str, inputs: list[str], config: PrepareConfig, *, columns: dict | None = None,
                      events_filter: tuple[str, ...] | None = None, timestamp_unit: str | None = None,
                      scratch: str | Path | None = None, buckets: int | None = None):
    """The Dataset `build_dataset(load_events(source, inputs, ...), config)` gives, prepared out of core.

    `scratch`: the folder for the bucket files (a temporary folder inside it, removed afterwards; default the
    system's temporary folder). `buckets`: how many (default: about BUCKET_EVENTS rows each)."""
    if config.split != "temporal":
        raise DataError("--engine streaming builds the temporal split; use --engine pandas for leave-one-out")
    scan, categories = _plan(source, inputs, columns, events_filter, timestamp_unit)
    if buckets is None:
        buckets = max(1, math.ceil(estimated_events(scan.path) / BUCKET_EVENTS))
    with tempfile.TemporaryDirectory(prefix="recsys-outofcore-", dir=scratch) as tmp:
        work = Path(tmp)
        _write_buckets(scan, work / "rows", buckets)
        state = _sessionize(scan, work, buckets, config, events_filter)
        if categories is not None:  # retailrocket: the as-of category at each item's latest event
            state.cat = _asof_categories(state, categories)
        n_after = _filter(work, state, config)
        parts, counts = _split(work, state, config)
        first, last = state.first_seen, state.last_seen
        return finish_dataset(parts, counts, state.item_ids, state.cat,
                              lambda vocab_raw: (first[vocab_raw], last[vocab_raw]), config, source, state.n_raw,
                              n_after)


def _plan(source, inputs, columns, events_filter, timestamp_unit) -> tuple[_Scan, pd.DataFrame | None]:
    if source not in STREAMING_SOURCES:
        raise DataError(f"--engine streaming reads the {' and '.join(STREAMING_SOURCES)} sources, not {source}")
    if not inputs:
        raise DataError(f"--source {source} needs --input")
    path = Path(inputs[0])
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.suffix.lower() in _COMPRESSED:
        raise DataError("--engine streaming reads plain CSV or Parquet; decompress it or use --engine pandas",
                        path=path)
    if source == "retailrocket":
        if events_filter is not None and not set(events_filter) <= set(EVENT_NAMES):
            raise ValueError(f"unknown events {sorted(set(events_filter) - set(EVENT_NAMES))}; "
                             f"choose from {EVENT_NAMES}")
        scan = _Scan(path, {"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp", "event": "event"},
                     "ms", 2, EVENT_NAMES)
        props = [p for p in inputs[1:] if "propert" in Path(p).name]
        tree = next((p for p in inputs[1:] if "category_tree" in Path(p).name), None)
        categories = pd.concat([_read_categories(p) for p in props], ignore_index=True) if props else None
        if tree is not None:
            read_category_tree(tree)  # a broken tree fails here, as in memory
        return scan, categories
    if not columns:
        raise DataError("--source csv needs --columns, e.g. user_id=customer,item_id=sku,timestamp=date")
    unknown = set(columns) - set(EVENT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown canonical columns {sorted(unknown)}; expected some of {EVENT_COLUMNS}")
    if timestamp_unit is not None and timestamp_unit not in _UNIT_US:
        raise ValueError(f"timestamp_unit must be one of {sorted(_UNIT_US)}, got {timestamp_unit!r}")
    for required in ("item_id", "timestamp"):
        if required not in columns:
            raise DataError(f"--columns needs {required}=COLUMN")
    return _Scan(path, dict(columns), timestamp_unit, 0 if _is_parquet(path) else 2, None), None


def _lazy(scan: _Scan) -> pl.LazyFrame:
    """The file as a lazy frame: row (file order), sid, user, item, ts (int64 microseconds or null when it does not
    parse), event, cat; every id a stripped string, blank -> null."""
    if _is_parquet(scan.path):
        lf = pl.scan_parquet(scan.path).with_row_index("row")
    else:
        lf = pl.scan_csv(scan.path, separator=sniff_separator(scan.path), infer_schema=False, row_index_name="row",
                         quote_char='"', missing_columns="raise")
    names = lf.collect_schema().names()
    missing = [c for c in scan.columns.values() if c not in names]
    if missing:
        raise DataError(f"missing column; found {[n for n in names if n != 'row']}", path=scan.path, column=missing[0])
    schema = lf.collect_schema()

    def ids(canonical: str) -> pl.Expr:
        if canonical not in scan.columns:
            return pl.lit(None, pl.String)
        text = pl.col(scan.columns[canonical]).cast(pl.String).str.strip_chars()
        return pl.when(text.str.len_bytes() > 0).then(text)

    ts_col = scan.columns["timestamp"]
    ts_type = schema[ts_col]
    if scan.timestamp_unit is not None:
        unit = _UNIT_US[scan.timestamp_unit]
        text = pl.col(ts_col).cast(pl.String).str.strip_chars()
        ts = pl.coalesce(text.cast(pl.Int64, strict=False) * unit,
                         (text.cast(pl.Float64, strict=False) * unit).round().cast(pl.Int64, strict=False))
    elif isinstance(ts_type, pl.Datetime):
        col = pl.col(ts_col)
        col = col if ts_type.time_zone else col.dt.replace_time_zone("UTC")
        ts = col.dt.convert_time_zone("UTC").dt.cast_time_unit("us").dt.epoch("us")
    elif isinstance(ts_type, pl.Date):
        ts = pl.col(ts_col).cast(pl.Datetime("us")).dt.epoch("us")
    else:
        ts = (pl.col(ts_col).cast(pl.String).str.strip_chars()
              .str.to_datetime(time_unit="us", time_zone="UTC", strict=False).dt.epoch("us"))
    return lf.select(pl.col("row").cast(pl.Int64), ids("session_id").alias("sid"), ids("user_id").alias("user"),
                     ids("item_id").alias("item"), ts.alias("ts"), ids("event").alias("event"),
                     ids("category_id").alias("cat"))


def _write_buckets(scan: _Scan, folder: Path, buckets: int) -> None:
    """Pass 1 (streaming engine): the cleaned rows, partitioned by a hash of the session id, else the visitor."""
    group = pl.coalesce(pl.col("sid"), pl.col("user"))
    lf = _lazy(scan).with_columns(bucket=(group.hash(seed=0) % buckets).cast(pl.UInt32).fill_null(0))
    try:
        lf.sink_parquet(pl.PartitionBy(folder, key="bucket", include_key=False), engine="streaming", mkdir=True)
    except pl.exceptions.ComputeError as exc:
        raise DataError(f"cannot read the events file: {str(exc).splitlines()[0]}", path=scan.path) from None


class _State:
    """What the passes carry between buckets: the item dictionary, counts, per-item times and categories."""

    def __init__(self, item_ids: np.ndarray):
        self.item_ids = item_ids
        n = len(item_ids)
        self.counts = np.zeros(n, dtype=np.int64)
        self.cat = np.full(n, None, dtype=object)
        self.latest = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)  # each item's latest event time
        self.first_seen = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        self.last_seen = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self.n_raw = 0
        self.t_max = np.iinfo(np.int64).min
        self.buckets: list[int] = []  # the buckets that hold rows


def _bucket_frame(folder: Path, b: int) -> pl.DataFrame | None:
    where = folder / f"bucket={b}"
    files = sorted(where.glob("*.parquet")) if where.is_dir() else []
    return pl.read_parquet(files) if files else None


class _Bad:
    """The first bad row seen in any bucket (the lowest file row), reported once all buckets are read."""

    def __init__(self, scan: _Scan):
        self.scan, self.row, self.message, self.column = scan, None, "", ""

    def check(self, frame: pl.DataFrame, mask: pl.Expr, message: str, canonical: str, show: str | None = None):
        hit = frame.filter(mask).select("row", *([show] if show else [])).top_k(1, by="row", reverse=True)
        if len(hit) and (self.row is None or hit["row"][0] < self.row):
            self.row = int(hit["row"][0])
            self.message = f"{message}: {hit[show][0]!r}" if show else message
            self.column = self.scan.columns.get(canonical, canonical)

    def raise_first(self):
        if self.row is None:
            return
        if self.scan.first_line == 0:
            raise DataError(f"{self.message} at row {self.row + 1}", path=self.scan.path, column=self.column)
        raise DataError(self.message, path=self.scan.path, column=self.column, line=self.scan.first_line + self.row)


def _sessionize(scan: _Scan, work: Path, buckets: int, config: PrepareConfig, events_filter) -> _State:
    """Pass 2: per bucket, checked rows, duplicates dropped, sessions cut and keyed; arrays written to disk."""
    rows = work / "rows"
    items = (pl.scan_parquet(rows / "**" / "*.parquet", hive_partitioning=False).select("item").drop_nulls()
             .unique().sort("item").collect(engine="streaming")["item"])
    state = _State(items.to_numpy().astype(object))
    code_of = pl.DataFrame({"item": items, "code": np.arange(len(items), dtype=np.int32)})
    earliest, latest = (int(t.value // 1000) for t in plausible_times())
    gap = int(config.session_gap_minutes * 60 * 1_000_000)
    bad = _Bad(scan)
    kinds = {"native": 0, "visitor": 0}
    has_cat, has_event = "category_id" in scan.columns, "event" in scan.columns
    best_cat = None  # csv: per item, the category of its latest row that has one (ts, row, cat)
    for b in range(buckets):
        frame = _bucket_frame(rows, b)
        if frame is None:
            continue
        bad.check(frame, pl.col("item").is_null(), "missing value" if scan.events else "empty item id", "item_id")
        bad.check(frame, pl.col("ts").is_null(), "missing or unparseable timestamp", "timestamp")
        bad.check(frame, (pl.col("ts") < earliest) | (pl.col("ts") > latest),
                  "implausible timestamp (epoch times in the wrong unit?)", "timestamp")
        for canonical, col in (("session_id", "sid"), ("user_id", "user"), ("item_id", "item")):
            bad.check(frame, pl.col(col).str.contains(r"[\x00-\x1f\x7f-\x9f]"), "control character in id", canonical,
                      show=col)
        bad.check(frame, pl.col("sid").is_null() & pl.col("user").is_null(), "row has neither session_id nor user_id",
                  "session_id")
        if scan.events is not None:
            bad.check(frame, pl.col("user").is_null(), "missing value", "user_id")
            bad.check(frame, pl.col("event").is_null(), "missing value", "event")
            bad.check(frame, ~pl.col("event").is_in(scan.events), f"unknown event; expected one of {scan.events}",
                      "event", show="event")
        if bad.row is not None:
            continue  # only the first bad row is reported; no use building sessions
        if events_filter:
            frame = frame.filter(pl.col("event").is_in(events_filter))
            if frame.is_empty():
                continue
        native = frame["sid"].is_not_null()
        kinds["native"] += int(native.sum())
        kinds["visitor"] += len(frame) - int(native.sum())
        frame = _sorted_unique(frame, code_of)
        _sessions_of_bucket(frame, gap, config, work / f"b{b}", state)
        if has_cat:
            best_cat = _latest_categories(frame, best_cat)
        state.buckets.append(b)
    bad.raise_first()
    shutil.rmtree(rows)
    if kinds["native"] and kinds["visitor"]:
        raise DataError("--engine streaming needs a session id on every row or on none (this log mixes rows with and "
                        "without); use --engine pandas", path=scan.path)
    if state.n_raw == 0:
        if events_filter:
            raise DataError(f"--events {','.join(events_filter)} keeps no event", path=scan.path)
        raise DataError("the events table is empty", path=scan.path)
    if events_filter and not has_event:
        raise DataError(f"--events {','.join(events_filter)}: the events have no event type (map the event type "
                        "column with --columns event=COLUMN)")
    if best_cat is not None and len(best_cat):
        state.cat[best_cat["code"].to_numpy()] = best_cat["cat"].to_numpy().astype(object)
    return state


def _sorted_unique(frame: pl.DataFrame, code_of: pl.DataFrame) -> pl.DataFrame:
    """One bucket's rows with their item code and `first` (the first file row of their session id, or of their
    visitor without one), sorted by (first, time, row), exact duplicates dropped (the first in the file kept).

    Equal rows share `first` and the time, so after the sort they sit in one run of equal (first, time); only rows
    in such runs (few: times are in milliseconds or finer) are compared in full."""
    group = "sid" if frame["sid"][0] is not None else "user"
    frame = (frame.join(code_of, on="item", how="left").with_columns(first=pl.col("row").min().over(group))
             .sort(["first", "ts", "row"]))
    first, ts = frame["first"].to_numpy(), frame["ts"].to_numpy()
    same = (first[1:] == first[:-1]) & (ts[1:] == ts[:-1])
    tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
    if len(tied):
        rows = frame[tied].select(pl.struct("first", "ts", "item", "event", "cat", "sid", "user").is_first_distinct())
        drop = tied[~rows.to_series().to_numpy()]
        if len(drop):
            keep = np.ones(len(frame), dtype=bool)
            keep[drop] = False
            frame = frame.filter(pl.Series(keep))
    return frame


def _sessions_of_bucket(frame: pl.DataFrame, gap: int, config: PrepareConfig, out: Path, state: _State) -> None:
    """Cut one bucket's rows (`_sorted_unique`) into sessions as recsys.sessionize._sessionize does and write its
    arrays: per event its session (local number), item code and time, sorted by session then time; per session its
    order key (first file row of its session id or visitor, its number among the visitor's sessions) and label."""
    native = frame["sid"][0] is not None
    first = frame["first"].to_numpy()
    ts = frame["ts"].to_numpy()
    item = frame["code"].to_numpy().astype(np.int32)
    state.n_raw += len(item)
    new_group = np.r_[True, first[1:] != first[:-1]]
    new = new_group if native else new_group | np.r_[True, np.diff(ts) > gap]
    session = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    number = np.arange(len(starts))  # a visitor's n-th session (0 for a native session)
    number = number - np.maximum.accumulate(np.where(new_group[starts], number, 0))
    if native:
        labels = frame["sid"].gather(starts)
    else:
        labels = frame["user"].gather(starts) + ":" + pl.Series(number).cast(pl.String)
    if config.collapse_repeats:
        keep = np.ones(len(item), dtype=bool)
        keep[1:] = (item[1:] != item[:-1]) | (session[1:] != session[:-1])
        session, item, ts = session[keep], item[keep], ts[keep]
    out.mkdir()
    np.save(out / "session.npy", session.astype(np.int32 if len(starts) < 2**31 else np.int64))
    np.save(out / "item.npy", item)
    np.save(out / "ts.npy", ts)
    np.save(out / "key.npy", np.stack([first[starts], number]).astype(np.int64))
    pl.DataFrame({"label": labels}).write_parquet(out / "labels.parquet")
    state.counts += np.bincount(item, minlength=len(state.counts))
    per_item = pl.DataFrame({"i": item, "t": ts}).group_by("i").agg(pl.col("t").max())
    idx = per_item["i"].to_numpy()
    state.latest[idx] = np.maximum(state.latest[idx], per_item["t"].to_numpy())


def _latest_categories(frame: pl.DataFrame, best: pl.DataFrame | None) -> pl.DataFrame:
    """Per item code, its category at its latest row having one (of rows at that time, the last in the file):
    recsys.sessionize._latest_category's rule, merged bucket by bucket."""
    rows = frame.filter(pl.col("cat").is_not_null()).select("code", "ts", "row", "cat")
    if best is not None:
        rows = pl.concat([best, rows])
    return rows.sort(["code", "ts", "row"]).group_by("code", maintain_order=True).last()


def _asof_categories(state: _State, categories: pd.DataFrame) -> np.ndarray:
    """RetailRocket: every event of an item at its latest time gets the same as-of category (the item and time
    decide it), so the latest category of the in-memory path is the as-of category at the item's latest time."""
    seen = np.flatnonzero(state.latest > np.iinfo(np.int64).min)
    events = pd.DataFrame({"item_id": pd.array(state.item_ids[seen].astype(str), dtype="string"),
                           "timestamp": pd.to_datetime(state.latest[seen], unit="us", utc=True)})
    cat = np.full(len(state.item_ids), None, dtype=object)
    found = attach_categories(events, categories)["category_id"]
    cat[seen] = np.asarray(found.astype(object).where(found.notna(), None))
    return cat


def _load(work: Path, b: int, name: str) -> np.ndarray:
    return np.load(work / f"b{b}" / f"{name}.npy", mmap_mode="r")


def _filter(work: Path, state: _State, config: PrepareConfig) -> int:
    """Pass 3: drop rare items and short (or outlier-long) sessions until nothing changes, as
    recsys.sessionize._iterative_filter, one pass over the buckets per round with the whole log's item counts.
    Each bucket keeps the positions of its surviving events (alive.npy)."""
    counts = state.counts
    total = state.n_raw if not config.collapse_repeats else int(counts.sum())
    for b in state.buckets:
        np.save(work / f"b{b}" / "alive.npy", np.arange(len(_load(work, b, "item")), dtype=np.int64))
    while True:
        before, total, new_counts = total, 0, np.zeros_like(counts)
        lengths_all = []
        for b in state.buckets:  # the item filter (and, for the IQR rule, every session's length after it)
            alive = np.load(work / f"b{b}" / "alive.npy")
            item = _load(work, b, "item")[alive]
            alive = alive[counts[item] >= config.min_item_support]
            np.save(work / f"b{b}" / "alive.npy", alive)
            if config.iqr_outliers and len(alive):
                session = _load(work, b, "session")[alive]
                lengths_all.append(np.diff(np.r_[np.flatnonzero(np.r_[True, session[1:] != session[:-1]]),
                                                 len(session)]))
        limit = None
        if config.iqr_outliers and lengths_all:
            q1, q3 = np.percentile(np.concatenate(lengths_all), [25, 75])
            limit = q3 + 1.5 * (q3 - q1)
        del lengths_all
        for b in state.buckets:  # the session filter
            alive = np.load(work / f"b{b}" / "alive.npy")
            if len(alive) == 0:
                continue
            session = _load(work, b, "session")[alive]
            new = np.r_[True, session[1:] != session[:-1]]
            lengths = np.diff(np.r_[np.flatnonzero(new), len(session)])
            ok = lengths >= config.min_session_length
            if config.max_session_length is not None:
                ok &= lengths <= config.max_session_length
            if limit is not None:
                ok &= lengths <= limit
            alive = alive[ok[np.cumsum(new) - 1]]
            np.save(work / f"b{b}" / "alive.npy", alive)
            new_counts += np.bincount(_load(work, b, "item")[alive], minlength=len(counts))
            total += len(alive)
        counts = new_counts
        if total == 0:
            raise DataError(
                f"no sessions left after filtering (min_item_support={config.min_item_support}, "
                f"min_session_length={config.min_session_length}); lower them or use more data")
        if total == before:
            return total


def _split(work: Path, state: _State, config: PrepareConfig) -> tuple[dict[str, SplitPart], dict]:
    """Pass 4: every surviving session's start, end and order key; the temporal split of
    recsys.sessionize._split_temporal; each split's sessions ordered by start time (ties: the in-memory order) and
    their raw item codes gathered into one flat array."""
    names = ("bucket", "local", "start", "end", "first_row", "number", "length")
    table = {name: [] for name in names}  # per session; the order key and sizes in the narrowest types that hold them
    for b in state.buckets:
        alive = np.load(work / f"b{b}" / "alive.npy")
        if len(alive) == 0:
            continue
        session, ts, item = (_load(work, b, n)[alive] for n in ("session", "ts", "item"))
        starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
        local = session[starts].astype(np.int64)
        key = _load(work, b, "key")[:, local]
        for name, values in zip(names, (np.full(len(starts), b, dtype=np.int16), local.astype(np.int32),
                                        ts[starts], np.maximum.reduceat(ts, starts), key[0],
                                        key[1].astype(np.int32), np.diff(np.r_[starts, len(session)]).astype(np.int32)),
                                strict=True):
            table[name].append(values)
        per_item = pl.DataFrame({"i": item, "t": ts}).group_by("i").agg(lo=pl.col("t").min(), hi=pl.col("t").max())
        idx = per_item["i"].to_numpy()
        state.first_seen[idx] = np.minimum(state.first_seen[idx], per_item["lo"].to_numpy())
        state.last_seen[idx] = np.maximum(state.last_seen[idx], per_item["hi"].to_numpy())
        del session, ts, item, alive
    columns = {}
    for name in names:  # one column at a time, so the per-bucket pieces and the whole never all coexist
        columns[name] = np.concatenate(table.pop(name))
    bucket, local, s_start, s_end, first_row, number, length = (columns.pop(n) for n in names)
    t_max = s_end.max()
    test_cut = t_max - int(config.test_days * US_PER_DAY)
    valid_cut = test_cut - int(config.valid_days * US_PER_DAY)
    which = np.where(s_end > test_cut, 2, np.where(s_end > valid_cut, 1, 0))
    orders = {}  # each split's sessions: by start time, then as the in-memory path orders them
    for code, name in enumerate(("train", "valid", "test")):
        rows = np.flatnonzero(which == code)
        orders[name] = rows[np.lexsort((number[rows], first_row[rows], s_start[rows]))]
    del which, first_row, number
    times = {name: (s_start[rows], s_end[rows]) for name, rows in orders.items()}
    del s_start, s_end
    parts, counts = {}, {}
    for name in ("train", "valid", "test"):
        rows = orders.pop(name)
        counts[name] = len(rows)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(length[rows], out=offsets[1:])
        flat = np.empty(offsets[-1], dtype=np.int32)
        by_bucket = np.argsort(bucket[rows], kind="stable")  # positions in this split's order, bucket by bucket
        buckets, firsts = np.unique(bucket[rows][by_bucket], return_index=True)
        label_chunks = []
        for b, lo, hi in zip(buckets, firsts, np.r_[firsts[1:], len(rows)], strict=True):
            mine = by_bucket[lo:hi]
            sel = rows[mine]
            lens = length[sel]
            within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
            alive = np.load(work / f"b{b}" / "alive.npy")
            session = _load(work, b, "session")[alive]
            starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
            start_of = np.zeros(int(session[-1]) + 1, dtype=np.int64)  # a bucket's session -> its first alive event
            start_of[session[starts]] = starts
            src = alive[np.repeat(start_of[local[sel]], lens) + within]
            del session, starts, start_of, alive
            flat[np.repeat(offsets[mine], lens) + within] = _load(work, b, "item")[src]
            names = pl.read_parquet(work / f"b{b}" / "labels.parquet")["label"].to_arrow()
            label_chunks.append(names.take(pa.array(local[sel])).cast(pa.large_string()))
            del mine, sel, lens, within, src, names
        if label_chunks:
            merged = pa.concat_arrays(label_chunks)
            del label_chunks
            inverse = np.empty(len(rows), dtype=np.int64)
            inverse[by_bucket] = np.arange(len(rows))
            labels = merged.take(pa.array(inverse))
            del merged, inverse
        else:
            labels = pa.array([], pa.large_string())
        parts[name] = SplitPart(flat, offsets, labels, *times.pop(name))
        del rows, by_bucket
    if counts["train"] == 0 or counts["test"] == 0:
        raise DataError(f"temporal split left an empty split {counts}; adjust test_days/valid_days")
    return parts, counts
