"""Known visitors: sessions (raw item ids, oldest first) by visitor id, a sample of them for the dropdown, and
the search behind the visitor box. Read from a samples file or from the test split of a processed data set.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.app.text import MAX_TOKEN_CHARS, clean_text, natural_order

log = logging.getLogger("recsys.app")

N_SAMPLE_VISITORS = 50
MAX_VISITORS = 200_000


@dataclass
class Visitors:
    """Known visitors (test-split sessions): id -> raw item ids, oldest first; `samples` for the dropdown."""

    sessions: dict[str, list[str]] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.sessions)

    def search(self, query, limit: int = 20) -> list[str]:
        """Visitor ids matching `query` (case-insensitive): prefix matches first, then substring matches."""
        query = clean_text(query, MAX_TOKEN_CHARS).lower()
        if not query:
            return list(self.samples[:limit])
        prefix, inner = [], []
        for vid in self.sessions:
            low = vid.lower()
            if low.startswith(query):
                prefix.append(vid)
                if len(prefix) >= limit:
                    break
            elif query in low and len(inner) < limit:
                inner.append(vid)
        return (prefix + inner)[:limit]

    @classmethod
    def from_mapping(cls, sessions: Mapping, source: str = "", n_samples: int = N_SAMPLE_VISITORS, seed: int = 0):
        sessions = {str(k): [str(i) for i in v] for k, v in sessions.items() if len(v) >= 1}
        usable = [k for k, v in sessions.items() if len(v) >= 3] or list(sessions)
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(usable), size=min(n_samples, len(usable)), replace=False) if usable else []
        return cls(sessions, sorted((usable[i] for i in picks), key=natural_order), source)

    @classmethod
    def from_processed(cls, path: str | Path, split: str = "test", max_visitors: int = MAX_VISITORS) -> "Visitors":
        """Sessions of one split of a processed data set folder (see recsys.data), raw item ids via items.parquet.

        Reads only the two files it needs (a large data set's train split is never loaded).
        """
        import pyarrow.parquet as pq

        path = Path(path)
        table = pq.read_table(path / f"{split}.parquet", columns=["session_id", "items"]).slice(0, max_visitors)
        item_ids = pq.read_table(path / "items.parquet", columns=["item_id"]).column("item_id").to_pylist()
        raw = np.asarray([""] + [str(i) for i in item_ids], dtype=object)
        ids = table.column("session_id").to_pylist()
        seqs = table.column("items").to_pylist()
        sessions = {str(s): raw[np.asarray(q, dtype=np.int64)].tolist() for s, q in zip(ids, seqs, strict=True)}
        return cls.from_mapping(sessions, source=str(path))

    @classmethod
    def from_json(cls, path: str | Path) -> "Visitors":
        """`{"id": [items]}` or `{"sessions": [{"session_id": .., "items": [..]}]}` or that list alone."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, dict) and "sessions" in data:
            data = data["sessions"]
        if isinstance(data, list):
            data = {str(row["session_id"]): row["items"] for row in data}
        return cls.from_mapping(data, source=str(path))


def load_visitors(data_dir: str | Path | None, samples_file: str | Path | None = None) -> Visitors:
    """The sample sessions of `samples_file` if it exists, else the test split of the processed data set."""
    if samples_file and Path(samples_file).is_file():
        try:
            return Visitors.from_json(samples_file)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("could not read sample sessions %s: %s", samples_file, err)
    if data_dir and (Path(data_dir) / "test.parquet").is_file():
        try:
            return Visitors.from_processed(data_dir)
        except Exception as err:  # a broken data folder must not stop the app from serving models
            log.warning("could not read visitors from %s: %s", data_dir, err)
    return Visitors()
