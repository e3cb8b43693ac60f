"""Sample visitors: the sessions of a processed data set's test split, as the JSON file the app reads
(`$RECSYS_SAMPLES`, default `<checkpoints>/sample_sessions.json`; see recsys/app/visitors.py).

The app can also read visitors straight from a processed data folder (`$RECSYS_DATA`), but a Space has none:
the first start writes this file beside the models it trains (recsys.pipeline.ensure_default_models), and
scripts/deploy_space.py uploads it, so a deployed Space shows the same visitors as a local `make demo`.

    {"source": "synthetic", "split": "test", "sessions": [{"session_id": "20920:7", "items": ["23583", ...]}, ...]}

Items are raw item ids (strings), oldest first. A data set with more than `max_sessions` test sessions gives an
evenly spaced subset of them, in their order, so the file stays small (5,000 sessions of 10 items: ~0.5 MB).
"""

import json
from pathlib import Path

import numpy as np

from recsys.atomic import write_text_atomic
from recsys.jsonfile import JSONFileError, read_json

SAMPLES_FILE = "sample_sessions.json"
MAX_SAMPLE_SESSIONS = 5_000
MAX_SAMPLES_BYTES = 32 * 2**20  # far above what MAX_SAMPLE_SESSIONS sessions take; a file over it is refused


class SampleFileError(ValueError):
    """A file that is not a sample sessions file: says which file and why."""


def sample_sessions(data_dir: str | Path, split: str = "test", max_sessions: int = MAX_SAMPLE_SESSIONS) -> dict:
    """The sessions of one split of a processed data set folder (raw item ids), at most `max_sessions` of them.

    Reads only that split and the item table (a large data set's train split is never loaded)."""
    import pyarrow.parquet as pq

    if max_sessions < 1:
        raise ValueError(f"max_sessions must be at least 1, not {max_sessions}")
    data_dir = Path(data_dir)
    table = pq.read_table(data_dir / f"{split}.parquet", columns=["session_id", "items"])
    item_ids = np.asarray([""] + [str(i) for i in pq.read_table(data_dir / "items.parquet", columns=["item_id"])
                                  .column("item_id").to_pylist()], dtype=object)
    rows = np.arange(table.num_rows)
    if len(rows) > max_sessions:  # evenly spaced, as the evaluator's max_cases
        rows = np.unique(np.linspace(0, len(rows) - 1, max_sessions).round().astype(np.int64))
    ids = table.column("session_id").take(rows).to_pylist()
    seqs = table.column("items").take(rows).to_pylist()
    try:
        source = read_json(data_dir / "meta.json").get("source")
    except JSONFileError:
        source = None
    return {"source": source, "split": split, "data": data_dir.name,
            "sessions": [{"session_id": str(s), "items": item_ids[np.asarray(q, dtype=np.int64)].tolist()}
                         for s, q in zip(ids, seqs, strict=True) if len(q)]}


def write_sample_sessions(data_dir: str | Path, path: str | Path, split: str = "test",
                          max_sessions: int = MAX_SAMPLE_SESSIONS) -> int:
    """Write `sample_sessions(data_dir, ...)` to `path` (replaced whole); returns the number of sessions."""
    samples = sample_sessions(data_dir, split, max_sessions)
    write_text_atomic(path, json.dumps(samples, separators=(",", ":")))
    return len(samples["sessions"])


def check_sample_file(path: str | Path) -> int:
    """The number of sessions in a sample sessions file; SampleFileError unless it is one (a JSON object with a
    "sessions" list of {"session_id", "items": [ids]}), so that nothing else is published under its name."""
    path = Path(path)
    data = read_json(path, MAX_SAMPLES_BYTES, error=SampleFileError)
    sessions = data.get("sessions")
    if not isinstance(sessions, list):
        raise SampleFileError(f"{path.name} is not a sample sessions file: no \"sessions\" list")
    for i, row in enumerate(sessions):
        if not (isinstance(row, dict) and isinstance(row.get("session_id"), str | int)
                and isinstance(row.get("items"), list) and all(isinstance(x, str | int) for x in row["items"])):
            raise SampleFileError(f"{path.name} is not a sample sessions file: session {i} is not "
                                  "{\"session_id\": id, \"items\": [item ids]}")
    return len(sessions)
