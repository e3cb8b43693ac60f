"""The processed data set (the folder every step after preparation reads) and its item vocabulary.

`recsys.sessionize.build_dataset` makes a `Dataset` from canonical events; the pre-split readers
(recsys.datasets.presplit) make one directly.

Processed folder layout (see README "Processed data set format"):
    train.parquet, valid.parquet, test.parquet
        one row per session: session_id, start, end, items (list<int32> of item indices)
    items.parquet
        one row per item index 1..n: item_id, category_id, popularity, first_seen, last_seen, and optionally
        readable attributes (recsys.iteminfo.ATTRIBUTES: name, category, price, brand, colour, description;
        text or null) joined from a catalogue by `attach_attributes`
    meta.json
        source, options, per-split protocol, statistics, format version
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.atomic import atomic_folder
from recsys.datasets.schema import DataError
from recsys.iteminfo import ATTRIBUTES
from recsys.sessions import Sessions

FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")


class ItemVocab:
    """Raw item id <-> index. Index 0 is padding; real items are 1..n."""

    def __init__(self, item_ids):
        self.item_ids = [str(i) for i in item_ids]
        self._index = {item: i + 1 for i, item in enumerate(self.item_ids)}
        if len(self._index) != len(self.item_ids):
            dup, count = next((i, n) for i, n in Counter(self.item_ids).items() if n > 1)
            raise ValueError(f"duplicate item ids in vocabulary: {dup[:80]!r} appears {count} times "
                             f"({len(self.item_ids) - len(self._index)} repeats in all)")

    def __len__(self) -> int:
        """Vocabulary size including padding."""
        return len(self.item_ids) + 1

    def __contains__(self, item_id) -> bool:
        return str(item_id) in self._index

    def encode(self, item_ids, *, strict: bool = True) -> list[int]:
        """Raw ids -> indices; unknown ids raise KeyError when strict, else are skipped."""
        if strict:
            unknown = [i for i in item_ids if str(i) not in self._index]
            if unknown:
                raise KeyError(f"unknown item ids: {unknown[:10]}")
        return [self._index[str(i)] for i in item_ids if str(i) in self._index]

    def decode(self, indices) -> list[str]:
        return [self.item_ids[int(i) - 1] for i in indices]


@dataclass
class Dataset:
    train: Sessions
    valid: Sessions
    test: Sessions
    items: pd.DataFrame  # row i describes item index i + 1
    meta: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # split -> DataFrame(session_id, user_id, start, end)

    @property
    def n_items(self) -> int:
        """Vocabulary size including the padding index 0 (the width of every score matrix)."""
        return len(self.items) + 1

    @property
    def vocab(self) -> ItemVocab:
        return ItemVocab(self.items["item_id"])

    def split(self, name: str) -> Sessions:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def protocol(self, name: str) -> str:
        return self.meta.get("protocols", {}).get(name, "all")

    def with_valid_in_train(self) -> "Dataset":
        """The data set for a final refit after model selection: validation data joins training.

        Session splits: train + valid sessions. Leave-one-out: the validation sequences (each user's items up
        to the second to last). Valid is kept as it was (neural models still need a stopping signal; the
        refit trains for the epoch count selected on the first fit). Test is untouched.
        """
        if self.protocol("valid") == "last" and self.protocol("test") == "last" and len(self.valid) == len(self.test):
            train = self.valid
        else:
            train = Sessions(np.concatenate([self.train.items, self.valid.items]),
                             np.concatenate([self.train.offsets, self.valid.offsets[1:] + self.train.offsets[-1]]))
        items = self.items.copy()
        items["popularity"] = np.bincount(train.items, minlength=self.n_items)[1:].astype(np.int64)
        meta = {**self.meta, "refit": "train+valid"}
        return Dataset(train, self.valid, self.test, items, meta, self.info)

    def item_categories(self) -> np.ndarray:
        """(n_items,) int64 category index per item index (0 for padding and unknown categories)."""
        codes, _ = pd.factorize(self.items["category_id"])
        return np.concatenate([[0], np.where(codes >= 0, codes + 1, 0)]).astype(np.int64)

    def popularity(self) -> np.ndarray:
        """(n_items,) training counts per item index, 0 for padding."""
        return np.concatenate([[0], self.items["popularity"].to_numpy(np.int64)])

    def save(self, out: str | Path) -> Path:
        """Write the processed folder atomically: a temporary sibling folder renamed into place."""
        with atomic_folder(out, kind="dataset", inputs=self.meta.get("inputs") or ()) as tmp:
            for name in SPLITS:
                _write_split(tmp / f"{name}.parquet", self.split(name), self.info.get(name))
            self.items.to_parquet(tmp / "items.parquet", index=False)
            meta = {**self.meta, "format_version": FORMAT_VERSION, "stats": self.stats()}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        return Path(out)

    @classmethod
    def load(cls, path: str | Path) -> "Dataset":
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise DataError("not a processed data set folder (no meta.json); run scripts/prepare_data.py", path=path)
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"unsupported format_version {meta.get('format_version')}", path=path / "meta.json")
        splits, info = {}, {}
        for name in SPLITS:
            table = pq.read_table(path / f"{name}.parquet")
            col = table.column("items").combine_chunks()
            splits[name] = Sessions(
                col.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
                col.offsets.to_numpy().astype(np.int64),
            )
            info[name] = table.drop_columns(["items"]).to_pandas()
        items = pd.read_parquet(path / "items.parquet")
        return cls(splits["train"], splits["valid"], splits["test"], items, meta, info)

    def stats(self) -> dict:
        out = {"n_items": len(self.items)}
        for name in SPLITS:
            s = self.split(name)
            out[name] = {"sessions": len(s), "events": int(len(s.items)),
                         "mean_length": round(float(s.lengths.mean()), 3) if len(s) else 0.0}
        return out


def attach_attributes(items: pd.DataFrame, catalogue: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The item table with the catalogue's attributes (columns among ATTRIBUTES) joined on the raw item id.

    `catalogue` holds item_id and attribute columns, one row per id (recsys.datasets.read_item_catalogue).
    An attribute the catalogue has replaces the item table's column of that name; items it lacks get null.
    counts: {"items", "matched" (items with a catalogue row), "unmatched_rows" (catalogue rows naming no item of
    the data set), and per attribute the number of items with a value}.
    """
    attributes = [c for c in ATTRIBUTES if c in catalogue.columns]
    table = catalogue.assign(item_id=catalogue["item_id"].astype(str)).drop_duplicates("item_id").set_index("item_id")
    ids = items["item_id"].astype(str)
    found = ids.isin(table.index)
    joined = table.reindex(ids.to_numpy())
    out = items.copy()
    counts = {"items": len(items), "matched": int(found.sum()),
              "unmatched_rows": int((~table.index.isin(ids)).sum())}
    for name in attributes:
        out[name] = pd.array(joined[name].to_numpy(), dtype="string")
        counts[name] = int(out[name].notna().sum())
    return out, counts


def _write_split(path: Path, sessions: Sessions, info: pd.DataFrame | None) -> None:
    items = pa.ListArray.from_arrays(pa.array(sessions.offsets.astype(np.int32)), pa.array(sessions.items))
    if info is None or len(info) != len(sessions):
        table = pa.table({"items": items})
    else:
        table = pa.Table.from_pandas(info.reset_index(drop=True), preserve_index=False).append_column("items", items)
    pq.write_table(table, path)

