"""Readers for data that arrives already split or already sequenced; they return a processed `Dataset`.

- Session files as in the SR-GNN conversions (`train_sessions.txt`: one session per line, space-separated
  item ids; `test_pairs.tsv`: `prefix<TAB>label` with a header). Validation is the last `valid_fraction`
  of the training sessions (the file is in time order); each test pair becomes the sequence prefix + [label]
  evaluated on its last item, which is exactly "every prefix of a test session predicts its next item".
  The catalogue is every item of `train_sessions.txt`; test pairs whose label is outside it are dropped and
  counted in `meta["dropped_unknown_items"]` (the benchmark counts them as misses to compare with papers).
- User sequences (`user i1 i2 ...` per line, as in S3-Rec's Beauty.txt, or `user item` per line in order):
  leave-one-out per user: train = all but the last two items, valid predicts the second to last, test the last.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import Dataset
from recsys.datasets.files import DECOMPRESS_ERRORS, open_input
from recsys.datasets.schema import DataError
from recsys.sessions import Sessions


def _read_lines(path: Path) -> list[str]:
    path = Path(path)
    try:
        with open_input(path) as f:  # decompresses gzip, bz2, xz, zstd, lz4 files
            text = f.read().decode("utf-8")
    except DECOMPRESS_ERRORS as err:
        raise DataError(f"could not decompress: {err}", path=path) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason} at byte {err.start})", path=path) from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError("file is empty", path=path)
    return lines


def _tokens(line: str, path: Path, lineno: int) -> list[str]:
    toks = line.split()
    for tok in toks:
        if not tok.isprintable():
            raise DataError(f"unprintable characters in item id {tok!r}", path=path, line=lineno)
    return toks


def _item_table(item_ids: list[str], train: Sessions) -> pd.DataFrame:
    pop = np.bincount(train.items, minlength=len(item_ids) + 1)[1:]
    return pd.DataFrame({
        "item_id": pd.array(item_ids, dtype="string"),
        "category_id": pd.array([pd.NA] * len(item_ids), dtype="string"),
        "popularity": pop.astype(np.int64),
        "first_seen": pd.Series(pd.NaT, index=range(len(item_ids)), dtype="datetime64[us, UTC]"),
        "last_seen": pd.Series(pd.NaT, index=range(len(item_ids)), dtype="datetime64[us, UTC]"),
    })


def read_session_files(train_path, test_pairs_path, valid_fraction: float = 0.1, max_length: int = 50) -> Dataset:
    train_path, test_pairs_path = Path(train_path), Path(test_pairs_path)
    raw_train = [_tokens(line, train_path, n) for n, line in enumerate(_read_lines(train_path), 1) if line.strip()]
    vocab: dict[str, int] = {}
    for seq in raw_train:
        for tok in seq:
            vocab.setdefault(tok, len(vocab) + 1)
    lines = _read_lines(test_pairs_path)
    start = 1 if lines[0].strip().lower().startswith("prefix") else 0
    test, dropped_labels, dropped_prefix_items = [], 0, 0
    for n, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError("expected 'prefix<TAB>label'", path=test_pairs_path, line=n)
        prefix, label = _tokens(parts[0], test_pairs_path, n), parts[1].strip()
        if label not in vocab:
            dropped_labels += 1
            continue
        known = [vocab[t] for t in prefix if t in vocab]
        dropped_prefix_items += len(prefix) - len(known)
        if known:
            test.append(known[-(max_length):] + [vocab[label]])
        else:
            dropped_labels += 1
    seqs = [[vocab[t] for t in s][-max_length:] for s in raw_train if len(s) >= 2]
    n_valid = int(round(len(seqs) * valid_fraction))
    if n_valid == 0 or n_valid == len(seqs):
        raise DataError(f"cannot hold out {valid_fraction:.0%} of {len(seqs)} sessions for validation", path=train_path)
    train = Sessions.from_lists(seqs[:-n_valid])
    valid = Sessions.from_lists(seqs[-n_valid:])
    if not test:
        raise DataError("no usable test pairs", path=test_pairs_path)
    meta = {
        "source": "sessions", "inputs": [str(train_path), str(test_pairs_path)],
        "protocols": {"train": "all", "valid": "all", "test": "last"},
        "config": {"valid_fraction": valid_fraction, "max_length": max_length},
        "dropped_unknown_items": {"test_pairs": dropped_labels, "test_prefix_items": dropped_prefix_items},
        "test_pairs_total": dropped_labels + len(test),
    }
    return Dataset(train, valid, Sessions.from_lists(test), _item_table(list(vocab), train), meta)


def read_user_sequences(path, max_length: int = 200) -> Dataset:
    """Leave-one-out data set from `user i1 i2 ...` lines (or `user item` lines, grouped in file order)."""
    path = Path(path)
    per_user: dict[str, list[str]] = {}
    for n, line in enumerate(_read_lines(path), 1):
        toks = _tokens(line, path, n)
        if not toks:
            continue
        if len(toks) < 2:
            raise DataError("expected 'user item [item ...]'", path=path, line=n)
        per_user.setdefault(toks[0], []).extend(toks[1:])
    vocab: dict[str, int] = {}
    seqs = []
    for items in per_user.values():
        if len(items) >= 3:
            seqs.append([vocab.setdefault(t, len(vocab) + 1) for t in items])
    if not seqs:
        raise DataError("no user has 3 or more items (leave-one-out needs train, valid and test items)", path=path)
    test = Sessions.from_lists([s[-(max_length + 1):] for s in seqs])
    valid = Sessions.from_lists([s[:-1][-(max_length + 1):] for s in seqs])
    train = Sessions.from_lists([s[:-2][-max_length:] for s in seqs])
    meta = {"source": "sequences", "inputs": [str(path)],
            "protocols": {"train": "all", "valid": "last", "test": "last"},
            "config": {"max_length": max_length, "split": "loo"}, "dropped_unknown_items": {},
            "users": len(seqs)}
    info = {name: pd.DataFrame({"session_id": pd.array(list(k for k, v in per_user.items() if len(v) >= 3),
                                                        dtype="string")}) for name in ("train", "valid", "test")}
    return Dataset(train, valid, test, _item_table(list(vocab), train), meta, info)
