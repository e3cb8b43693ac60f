"""One entry point from a source (a raw log, pre-split files, or the synthetic generator) to a processed folder.

Used by `scripts/prepare_data.py`, the training script's default run and the app's first start.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.atomic import check_output
from recsys.config import check_keys
from recsys.data import SPLITS, Dataset, attach_attributes
from recsys.datasets import DataError, generate_events, read_diginetica, read_retailrocket, read_table, read_yoochoose
from recsys.datasets.generic import read_item_catalogue
from recsys.datasets.presplit import read_session_files, read_user_sequences
from recsys.datasets.synthetic import generate_catalogue
from recsys.outofcore import choose_engine, prepare_streaming
from recsys.sessionize import PrepareConfig, build_dataset, truncate_counted

DEFAULT_DATA = Path("data/processed/synthetic")
# The synthetic log spans four weeks; one day of test would be thin, so it holds out three days each.
SYNTHETIC_SPLIT = {"test_days": 3.0, "valid_days": 3.0}
UNCUT = 2**62  # a pre-split reader's max_length that keeps every item


@dataclass(frozen=True)
class Source:
    """How one source is read: `read(inputs, options)` gives its canonical events table (recsys.datasets.schema),
    or a whole Dataset when the source comes already split (`presplit`: its own train/valid/test)."""

    read: Callable[[list[str], dict], pd.DataFrame | Dataset]
    inputs: str = ""  # what --input takes, for the error when fewer than `needs` files are given
    needs: int = 0
    presplit: bool = False
    max_length: int | None = None  # a pre-split source: keep each sequence's most recent items (--max-length)


def _retailrocket(inputs: list[str], options: dict) -> pd.DataFrame:
    props = [p for p in inputs[1:] if "propert" in Path(p).name]
    tree = next((p for p in inputs[1:] if "category_tree" in Path(p).name), None)
    return read_retailrocket(inputs[0], props, tree, events=options.get("events_filter"))


def _csv(inputs: list[str], options: dict) -> pd.DataFrame:
    if not options.get("columns"):
        raise DataError("--source csv needs --columns, e.g. user_id=customer,item_id=sku,timestamp=date")
    return read_table(inputs[0], options["columns"], timestamp_unit=options.get("timestamp_unit"))


def _second(inputs: list[str]) -> str | None:
    return inputs[1] if len(inputs) > 1 else None


SOURCES: dict[str, Source] = {
    "synthetic": Source(lambda _, options: generate_events(**(options.get("synthetic") or {}))),
    "retailrocket": Source(_retailrocket, "events.csv [item_properties_part1.csv item_properties_part2.csv "
                                          "[category_tree.csv]]", needs=1),
    "yoochoose": Source(lambda inputs, _: read_yoochoose(inputs[0], _second(inputs)),
                        "yoochoose-clicks.dat [yoochoose-buys.dat]", needs=1),
    "diginetica": Source(lambda inputs, _: read_diginetica(inputs[0], _second(inputs)),
                         "train-item-views.csv [product-categories.csv]", needs=1),
    "csv": Source(_csv, "FILE (.csv or .parquet)", needs=1),
    # Pre-split readers keep whole sequences (UNCUT); `prepare` cuts them to `max_length` and counts what it cut.
    "sessions": Source(lambda inputs, options: read_session_files(inputs[0], inputs[1], max_length=UNCUT,
                                                                  **options.get("presplit", {})),
                       "train_sessions.txt test_pairs.tsv", needs=2, presplit=True, max_length=50),
    "sequences": Source(lambda inputs, _: read_user_sequences(inputs[0], max_length=UNCUT), "sequences.txt",
                        needs=1, presplit=True, max_length=200),
}


def _read(name: str, inputs: list[str], options: dict) -> pd.DataFrame | Dataset:
    """What source `name` reads from `inputs`, after checking that it is a source and has its files."""
    if name not in SOURCES:
        raise DataError(f"unknown source {name!r}; choose one of {tuple(SOURCES)}")
    source = SOURCES[name]
    if len(inputs) < source.needs:
        raise DataError(f"--source {name} needs --input {source.inputs}")
    return source.read(inputs, options)


def load_events(source: str, inputs: list[str], *, columns: dict[str, str] | None = None,
                events_filter: tuple[str, ...] | None = None, timestamp_unit: str | None = None,
                synthetic: dict | None = None) -> pd.DataFrame:
    """The canonical events table of a raw source (see recsys.datasets.schema), keeping only the event types of
    `events_filter` (None: all). Every source filters the same way (the retailrocket reader also checks the names);
    a filter on a table without event types, or one that keeps nothing, is refused rather than ignored."""
    if source in SOURCES and SOURCES[source].presplit:
        raise DataError(f"--source {source} comes split into train and test: it has no event log to read")
    events = _read(source, inputs, {"columns": columns, "events_filter": events_filter,
                                    "timestamp_unit": timestamp_unit, "synthetic": synthetic})
    if not events_filter:
        return events
    if "event" not in events.columns or events["event"].isna().all():
        hint = " (map the event type column with --columns event=COLUMN)" if source == "csv" else ""
        raise DataError(f"--events {','.join(events_filter)}: the {source} events have no event type{hint}")
    kept = events[events["event"].isin(events_filter)]
    if kept.empty:
        found = sorted(str(e) for e in events["event"].dropna().unique()[:20])
        raise DataError(f"--events {','.join(events_filter)} keeps no event; the log's event types: {', '.join(found)}")
    return kept


def prepare(source: str, inputs: list[str] | None = None, out: str | Path | None = None,
            config: PrepareConfig | None = None, **options) -> Dataset:
    """Read a source, build the processed data set and (if `out`) write it atomically.

    `out` is checked before anything is read: only a previous processed folder (or a new or empty one) is
    replaced, never a folder holding the inputs or anything else (recsys.atomic.check_output).
    options `items` (a catalogue file), `item_columns` ({"item_id": column, "name": column, ...}; None: the
    file's columns of those names) and `items_sep` join readable item attributes onto the item table
    (recsys.data.attach_attributes) for any source; the synthetic source has its own catalogue
    (recsys.datasets.synthetic.generate_catalogue) unless `items` is given. meta["catalogue"] says what matched.
    option `engine`: "pandas" (in memory), "streaming" (out of core, recsys.outofcore: the same data set from a log
    larger than memory; `scratch` names the folder for its temporary files) or "auto" (the default: streaming
    when the log would need more than half the machine's memory in memory; meta["engine"] says when it streamed).
    """
    inputs = [str(p) for p in inputs or []]
    items_file = options.get("items")
    if out is not None:
        check_output(out, "dataset", inputs + ([str(items_file)] if items_file else []))
    engine = choose_engine(source, inputs, options.get("engine") or "auto")
    if source in SOURCES and SOURCES[source].presplit:
        data = _cut_presplit(_read(source, inputs, options), options.get("max_length") or SOURCES[source].max_length)
    else:
        if config is None:
            config = PrepareConfig(**(SYNTHETIC_SPLIT if source == "synthetic" else {}))
        if engine == "streaming":
            data = prepare_streaming(source, inputs, config, columns=options.get("columns"),
                                     events_filter=options.get("events_filter"),
                                     timestamp_unit=options.get("timestamp_unit"), scratch=options.get("scratch"))
            data.meta["engine"] = "streaming"
        else:
            events = load_events(source, inputs, columns=options.get("columns"),
                                 events_filter=options.get("events_filter"),
                                 timestamp_unit=options.get("timestamp_unit"), synthetic=options.get("synthetic"))
            data = build_dataset(events, config, source=source)
        data.meta["inputs"] = inputs
        if source == "synthetic":
            data.meta["synthetic"] = options.get("synthetic") or {}
    data = _with_catalogue(data, source, options)
    if out is not None:
        data.save(out)
    return data


def _with_catalogue(data: Dataset, source: str, options: dict) -> Dataset:
    """The data set with the catalogue's attributes joined onto its items (see `prepare`), if there is one."""
    if options.get("items"):
        catalogue, read = read_item_catalogue(options["items"], options.get("item_columns"), options.get("items_sep"))
        where = {"file": str(options["items"]), **read}
    elif options.get("item_columns"):
        raise DataError("--item-columns needs --items FILE (the catalogue to read)")
    elif source == "synthetic":
        catalogue, where = generate_catalogue(**(options.get("synthetic") or {})), {"file": "synthetic"}
    else:
        return data
    items, counts = attach_attributes(data.items, catalogue)
    meta = {**data.meta, "catalogue": {**where, **counts}}
    if options.get("items"):
        meta["inputs"] = [*meta.get("inputs", []), str(options["items"])]
    return Dataset(data.train, data.valid, data.test, items, meta, data.info)


def _cut_presplit(data: Dataset, max_length: int) -> Dataset:
    """Keep the most recent `max_length` items of each training sequence and of each evaluation prefix (its
    target kept: `max_length` + 1 items), recording what was cut in meta "truncated" as build_dataset does."""
    cut = {"max_length": max_length}
    splits = {}
    for name in SPLITS:
        protocol = None if name == "train" else data.protocol(name)
        keep = max_length + (protocol == "last")
        splits[name], cut[name] = truncate_counted(data.split(name), keep, protocol)
    items = data.items.copy()
    items["popularity"] = np.bincount(splits["train"].items, minlength=data.n_items)[1:].astype(np.int64)
    meta = {**data.meta, "config": {**data.meta.get("config", {}), "max_length": max_length}, "truncated": cut}
    return Dataset(splits["train"], splits["valid"], splits["test"], items, meta, data.info)


def load_or_prepare_default(path: str | Path = DEFAULT_DATA, progress=print, **synthetic) -> Dataset:
    """The embedded default: the processed synthetic data set, generated on first use."""
    path = Path(path)
    if (path / "meta.json").is_file():
        data = Dataset.load(path)
        if data.meta.get("source") == "synthetic" and "name" not in data.items.columns:
            # prepared before the synthetic catalogue existed: the same events, so the same names join on
            data = _with_catalogue(data, "synthetic", {"synthetic": data.meta.get("synthetic") or {}})
        return data
    progress(f"Generating the synthetic event log and preparing {path} ...")
    return prepare("synthetic", out=path, synthetic=synthetic or None)


def config_from_options(**options) -> PrepareConfig:
    """PrepareConfig from CLI options (None: the default), failing loudly on unknown names."""
    check_keys(PrepareConfig, options, "preparation options")
    return PrepareConfig(**{k: v for k, v in options.items() if v is not None})
