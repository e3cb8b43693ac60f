import json

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset, ItemVocab
from recsys.datasets.presplit import read_session_files, read_user_sequences
from recsys.datasets.schema import DataError, canonical_events
from recsys.sessionize import PrepareConfig, build_dataset
from recsys.sessions import Sessions, make_cases

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def events(rows):
    """rows: (session_id or None, user_id, item_id, minutes after T0)."""
    df = pd.DataFrame(rows, columns=["session_id", "user_id", "item_id", "minutes"])
    df["timestamp"] = T0 + pd.to_timedelta(df.pop("minutes"), unit="min")
    return canonical_events(df)


def random_log(n_users=300, n_items=40, days=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = rng.uniform(0, days * 1440 - 200)
        for _ in range(rng.integers(1, 4)):  # a few sessions per user, hours apart
            for _ in range(rng.integers(2, 7)):
                rows.append((None, f"u{u}", f"i{rng.integers(n_items)}", t))
                t += rng.uniform(0.5, 5)
            t += rng.uniform(60, 600)
    return events(rows)


def test_sessions_ragged_ops():
    s = Sessions.from_lists([[1, 2, 3], [4], [5, 6]])
    assert len(s) == 3 and s[0].tolist() == [1, 2, 3] and s.lengths.tolist() == [3, 1, 2]
    assert s.select(np.array([2, 0])).to_lists() == [[5, 6], [1, 2, 3]]
    assert s.select(np.array([False, True, True])).to_lists() == [[4], [5, 6]]
    assert s.truncate(2).to_lists() == [[2, 3], [4], [5, 6]]


def test_make_cases_every_prefix_and_last_item():
    s = Sessions.from_lists([[1, 2, 3], [4], [5, 6]])
    all_cases = make_cases(s, "all")
    assert [p.tolist() for p in all_cases.prefixes(slice(None))] == [[1], [1, 2], [5]]
    assert all_cases.targets.tolist() == [2, 3, 6]
    last = make_cases(s, "last")
    assert [p.tolist() for p in last.prefixes(slice(None))] == [[1, 2], [5]]
    assert last.targets.tolist() == [3, 6]
    assert [p.tolist() for p in all_cases.prefixes(slice(None), max_len=1)] == [[1], [2], [5]]


def test_sessionize_by_inactivity_gap_and_native_ids():
    ev = events([
        (None, "a", "x", 0), (None, "a", "y", 10), (None, "a", "z", 100), (None, "a", "x", 105),  # gap > 30 min
        ("s1", None, "y", 0), ("s1", None, "z", 200),  # native id: never split by time
    ])
    data = build_dataset(ev, PrepareConfig(min_item_support=1, test_days=0.0001, valid_days=0.0001))
    all_sessions = {sid for split in ("train", "valid", "test") for sid in data.info[split]["session_id"]}
    assert all_sessions == {"a:0", "a:1", "s1"}


def test_collapse_repeats_and_iterative_filter():
    ev = events([(None, "a", "x", 0), (None, "a", "x", 1), (None, "a", "y", 2)] +
                [(None, f"u{i}", it, 3 + i) for i in range(5) for it in ("x", "y")] +
                [(None, "b", "rare", 1), (None, "b", "x", 2)])
    cfg = PrepareConfig(min_item_support=2, collapse_repeats=True, test_days=0.0001, valid_days=0.0001)
    data = build_dataset(ev, cfg)
    assert "rare" not in set(data.items["item_id"])  # dropped; then session b has one item and is dropped too
    lengths = np.concatenate([data.split(s).lengths for s in ("train", "valid", "test")])
    assert lengths.min() >= 2 and data.meta["events_after_filter"] == 12


def test_temporal_split_has_no_leakage_and_counts_unknown_items():
    ev = random_log()
    late = events([(None, "late", "brand-new-item", 10 * 1440 + 5), (None, "late", "i1", 10 * 1440 + 6),
                   (None, "late", "i2", 10 * 1440 + 7)])
    data = build_dataset(pd.concat([ev, late], ignore_index=True), PrepareConfig(min_item_support=1, test_days=2,
                                                                                  valid_days=2))
    train_end = data.info["train"]["end"].max()
    for split in ("valid", "test"):
        assert len(data.split(split)) > 0
        assert train_end <= data.info[split]["start"].min() or train_end < data.info[split]["end"].min()
    assert train_end < data.info["valid"]["end"].min()
    assert data.info["valid"]["end"].max() < data.info["test"]["end"].min()
    # test data never introduces new items: unknown ones are dropped and counted
    assert "brand-new-item" not in set(data.items["item_id"])
    assert data.meta["dropped_unknown_items"]["test"] >= 1
    assert data.test.items.max() < data.n_items and data.test.items.min() >= 1


def test_train_times_precede_validation_window():
    data = build_dataset(random_log(seed=3), PrepareConfig(min_item_support=1, test_days=1, valid_days=1))
    cut = data.info["test"]["end"].max() - pd.Timedelta(days=2)
    assert (data.info["train"]["end"] <= cut).all()


def test_leave_one_out_split():
    rows = [(None, "u1", f"i{k}", k) for k in range(5)] + [(None, "u2", f"i{k}", k) for k in (3, 2, 1)]
    data = build_dataset(events(rows), PrepareConfig(split="loo", min_item_support=1))
    vocab = data.vocab
    u1 = vocab.encode([f"i{k}" for k in range(5)])
    assert data.train.to_lists()[0] == u1[:-2] and data.valid.to_lists()[0] == u1[:-1] and data.test[0].tolist() == u1
    assert data.protocol("test") == "last"


def test_save_load_roundtrip_is_atomic(tmp_path):
    data = build_dataset(random_log(), PrepareConfig(min_item_support=1, test_days=2, valid_days=2))
    out = data.save(tmp_path / "ds")
    again = Dataset.load(out)
    for split in ("train", "valid", "test"):
        assert again.split(split).to_lists() == data.split(split).to_lists()
    assert again.items["item_id"].tolist() == data.items["item_id"].tolist()
    assert json.loads((out / "meta.json").read_text())["stats"]["n_items"] == len(data.items)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    data = build_dataset(random_log(), PrepareConfig(min_item_support=1, test_days=2, valid_days=2))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        data.save(tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_filtering_to_nothing_is_a_clear_error():
    with pytest.raises(DataError, match="no sessions left"):
        build_dataset(random_log(n_users=5), PrepareConfig(min_item_support=1000))


def test_empty_and_bad_events():
    with pytest.raises(DataError, match="empty"):
        build_dataset(events([]))
    with pytest.raises(DataError, match="item_id"):
        canonical_events(pd.DataFrame({"timestamp": [T0], "user_id": ["a"]}))
    with pytest.raises(DataError, match="session_id or a user_id"):
        canonical_events(pd.DataFrame({"timestamp": [T0], "item_id": ["a"]}))


def test_vocab_encode_decode():
    v = ItemVocab(["a", "b", "c"])
    assert len(v) == 4 and v.encode(["c", "a"]) == [3, 1] and v.decode([2]) == ["b"]
    assert v.encode(["a", "zzz"], strict=False) == [1]
    with pytest.raises(KeyError, match="zzz"):
        v.encode(["zzz"])


def test_with_valid_in_train():
    data = build_dataset(random_log(), PrepareConfig(min_item_support=1, test_days=2, valid_days=2))
    full = data.with_valid_in_train()
    assert len(full.train) == len(data.train) + len(data.valid)
    assert full.items["popularity"].sum() == len(data.train.items) + len(data.valid.items)


def test_session_files_reader(tmp_path):
    (tmp_path / "train.txt").write_text("1 2 3\n2 3\n3 4 5\n1 2\n4 5\n5 1 2\n2 3 4\n3 1\n1 5\n5 4\n")
    (tmp_path / "test.tsv").write_text("prefix\tlabel\n1 2\t3\n1\t2\n9 1\t2\n1\t99\n")
    data = read_session_files(tmp_path / "train.txt", tmp_path / "test.tsv", valid_fraction=0.2)
    assert len(data.train) == 8 and len(data.valid) == 2
    vocab = data.vocab
    assert data.test.to_lists() == [vocab.encode(s) for s in (["1", "2", "3"], ["1", "2"], ["1", "2"])]
    assert data.meta["dropped_unknown_items"] == {"test_pairs": 1, "test_prefix_items": 1}
    cases = make_cases(data.test, data.protocol("test"))
    assert cases.targets.tolist() == vocab.encode(["3", "2", "2"])


def test_user_sequence_reader_leave_one_out(tmp_path):
    (tmp_path / "seq.txt").write_text("u1 10 11 12 13\nu2 11 12\nu3 12 13 10\n")
    data = read_user_sequences(tmp_path / "seq.txt")
    assert len(data.test) == 2  # u2 has too few items
    v = data.vocab
    assert data.test[0].tolist() == v.encode(["10", "11", "12", "13"])
    assert data.valid[0].tolist() == v.encode(["10", "11", "12"])
    assert data.train[0].tolist() == v.encode(["10", "11"])


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage\x80", "not UTF-8"),
    (b"1 2\n3 4\n", None),
])
def test_session_files_bad_input(tmp_path, content, match):
    (tmp_path / "train.txt").write_bytes(content)
    (tmp_path / "test.tsv").write_text("prefix\tlabel\n1\t2\n")
    if match is None:  # too few sessions to hold out validation
        with pytest.raises(DataError, match="validation"):
            read_session_files(tmp_path / "train.txt", tmp_path / "test.tsv", valid_fraction=0.1)
        return
    with pytest.raises(DataError, match=match) as err:
        read_session_files(tmp_path / "train.txt", tmp_path / "test.tsv")
    assert "train.txt" in str(err.value)


def test_test_pairs_malformed_line_is_named(tmp_path):
    (tmp_path / "train.txt").write_text("\n".join(["1 2 3"] * 20))
    (tmp_path / "test.tsv").write_text("prefix\tlabel\n1\t2\n1 2 3\n")
    with pytest.raises(DataError, match="line 3"):
        read_session_files(tmp_path / "train.txt", tmp_path / "test.tsv")
