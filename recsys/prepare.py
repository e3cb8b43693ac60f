"""One entry point from a source (a raw log, pre-split files, or the synthetic generator) to a processed folder.

Used by `scripts/prepare_data.py`, the training script's default run and the app's first start.
"""

import tempfile
from pathlib import Path

from recsys.atomic import check_output
from recsys.config import check_keys
from recsys.data import Dataset, PrepareConfig, build_dataset
from recsys.datasets.schema import DataError

SOURCES = ("synthetic", "retailrocket", "yoochoose", "diginetica", "csv", "sessions", "sequences")
DEFAULT_DATA = Path("data/processed/synthetic")
# The synthetic log spans four weeks; one day of test would be thin, so it holds out three days each.
SYNTHETIC_SPLIT = {"test_days": 3.0, "valid_days": 3.0}


def _need(inputs: list[str], n: int, source: str, what: str) -> None:
    if len(inputs) < n:
        raise DataError(f"--source {source} needs --input {what}")


def load_events(source: str, inputs: list[str], *, columns: dict[str, str] | None = None,
                events_filter: tuple[str, ...] | None = None, timestamp_unit: str | None = None,
                synthetic: dict | None = None):
    """The canonical events table of a raw source (see recsys.datasets.schema)."""
    if source == "synthetic":
        from recsys.datasets.synthetic import generate_events

        return generate_events(**(synthetic or {}))
    if source == "retailrocket":
        from recsys.datasets.retailrocket import read_retailrocket

        _need(inputs, 1, source, "events.csv [item_properties_part1.csv item_properties_part2.csv [category_tree.csv]]")
        props = [p for p in inputs[1:] if "propert" in Path(p).name]
        tree = next((p for p in inputs[1:] if "category_tree" in Path(p).name), None)
        return read_retailrocket(inputs[0], props, tree, events=events_filter)
    if source == "yoochoose":
        from recsys.datasets.yoochoose import read_yoochoose

        _need(inputs, 1, source, "yoochoose-clicks.dat [yoochoose-buys.dat]")
        return read_yoochoose(inputs[0], inputs[1] if len(inputs) > 1 else None)
    if source == "diginetica":
        from recsys.datasets.diginetica import read_diginetica

        _need(inputs, 1, source, "train-item-views.csv [product-categories.csv]")
        return read_diginetica(inputs[0], inputs[1] if len(inputs) > 1 else None)
    if source == "csv":
        from recsys.datasets.generic import read_table

        _need(inputs, 1, source, "FILE (.csv or .parquet)")
        if not columns:
            raise DataError("--source csv needs --columns, e.g. user_id=customer,item_id=sku,timestamp=date")
        return read_table(inputs[0], columns, timestamp_unit=timestamp_unit)
    raise DataError(f"unknown source {source!r}; choose one of {SOURCES}")


def prepare(source: str, inputs: list[str] | None = None, out: str | Path | None = None,
            config: PrepareConfig | None = None, **options) -> Dataset:
    """Read a source, build the processed data set and (if `out`) write it atomically.

    `out` is checked before anything is read: only a previous processed folder (or a new or empty one) is
    replaced, never a folder holding the inputs or anything else (recsys.atomic.check_output).
    """
    inputs = [str(p) for p in inputs or []]
    if out is not None:
        check_output(out, "dataset", inputs)
    if source == "sessions":
        from recsys.datasets.presplit import read_session_files

        _need(inputs, 2, source, "train_sessions.txt test_pairs.tsv")
        data = read_session_files(inputs[0], inputs[1], **options.get("presplit", {}))
    elif source == "sequences":
        from recsys.datasets.presplit import read_user_sequences

        _need(inputs, 1, source, "sequences.txt")
        data = read_user_sequences(inputs[0])
    else:
        if config is None:
            config = PrepareConfig(**(SYNTHETIC_SPLIT if source == "synthetic" else {}))
        events = load_events(source, inputs, columns=options.get("columns"),
                             events_filter=options.get("events_filter"),
                             timestamp_unit=options.get("timestamp_unit"), synthetic=options.get("synthetic"))
        data = build_dataset(events, config, source=source)
        data.meta["inputs"] = inputs
        if source == "synthetic":
            data.meta["synthetic"] = options.get("synthetic") or {}
    if out is not None:
        data.save(out)
    return data


def load_or_prepare_default(path: str | Path = DEFAULT_DATA, progress=print, **synthetic) -> Dataset:
    """The embedded default: the processed synthetic data set, generated on first use."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return Dataset.load(path)
    progress(f"Generating the synthetic event log and preparing {path} ...")
    return prepare("synthetic", out=path, synthetic=synthetic or None)


def config_from_options(**options) -> PrepareConfig:
    """PrepareConfig from CLI options (None: the default), failing loudly on unknown names."""
    check_keys(PrepareConfig, options, "preparation options")
    return PrepareConfig(**{k: v for k, v in options.items() if v is not None})


def temporary_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="recsys-"))
