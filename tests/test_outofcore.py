"""Out-of-core preparation (recsys.outofcore, --engine streaming) gives exactly the in-memory path's data set:
the same sessions in the same order, the same items, labels, times, splits and meta, whatever the bucket count."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.data import SPLITS, Dataset
from recsys.datasets.schema import DataError
from recsys.datasets.synthetic import generate_events, generate_retailrocket_log
from recsys.outofcore import choose_engine, prepare_streaming
from recsys.prepare import prepare
from recsys.sessionize import PrepareConfig, build_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data")
YC_SAMPLE = SHARED / "yoochoose/rsc15_100k_sessionrec/yoochoose-clicks-100k_test.txt"
T_MS = 1_431_000_000_000


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in SPLITS:
        assert np.array_equal(a.split(name).items, b.split(name).items), name
        assert np.array_equal(a.split(name).offsets, b.split(name).offsets), name
        pd.testing.assert_frame_equal(a.info[name], b.info[name])
    pd.testing.assert_frame_equal(a.items, b.items)
    skip = ("inputs", "engine")
    assert {k: v for k, v in a.meta.items() if k not in skip} == {k: v for k, v in b.meta.items() if k not in skip}


@pytest.fixture(scope="module")
def rr_log(tmp_path_factory):
    paths = generate_retailrocket_log(tmp_path_factory.mktemp("rr"), n_events=30_000, n_items=800, seed=3)
    return [str(paths[k]) for k in ("events", "item_properties_part1", "item_properties_part2", "category_tree")]


@pytest.mark.parametrize("buckets", [1, 4])
@pytest.mark.parametrize("config, events", [
    (PrepareConfig(), None),
    (PrepareConfig(collapse_repeats=True, iqr_outliers=True, max_session_length=20, min_item_support=8,
                   max_length=6, session_gap_minutes=10), None),
    (PrepareConfig(test_days=2, valid_days=1), ("view",)),
])
def test_synthetic_retailrocket_log_prepares_the_same_out_of_core(rr_log, buckets, config, events):
    memory = prepare("retailrocket", rr_log, config=config, events_filter=events, engine="pandas")
    streamed = prepare_streaming("retailrocket", rr_log, config, events_filter=events, buckets=buckets)
    assert len(memory.train) > 500 and memory.items["category_id"].notna().all()
    assert streamed.meta["raw_events"] == memory.meta["raw_events"]
    assert_same(memory, streamed)


def test_parquet_with_native_sessions_categories_and_iso_times(tmp_path):
    """A csv-source table in Parquet: session ids on every row, a category column (latest wins), repeated rows."""
    events = generate_events(n_events=20_000, n_items=500, seed=5)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "sess": events["user_id"].astype(str) + "-" + (events["timestamp"].dt.day // 3).astype(str),
        "sku": events["item_id"], "when": events["timestamp"],
        "cat": np.where(rng.random(len(events)) < 0.2, None, events["category_id"].astype(object))})
    frame = pd.concat([frame, frame.iloc[::97]]).sample(frac=1.0, random_state=0)  # duplicates, shuffled rows
    path = tmp_path / "log.parquet"
    frame.to_parquet(path, index=False)
    columns = {"session_id": "sess", "item_id": "sku", "timestamp": "when", "category_id": "cat"}
    config = PrepareConfig(test_days=3, valid_days=3)
    memory = prepare("csv", [path], config=config, columns=columns, engine="pandas")
    assert memory.info["train"]["session_id"].str.contains("-").all()
    for buckets in (1, 3):
        assert_same(memory, prepare_streaming("csv", [str(path)], config, columns=columns, buckets=buckets))


@pytest.mark.parametrize("minutes", [False, True])
def test_csv_of_visitors_with_epoch_seconds_and_an_event_column(tmp_path, minutes):
    """Fractional seconds; or whole minutes, where many sessions start at once and events of a session tie: the
    order among equals (file order of the visitor, then time, then row) must be the in-memory one."""
    events = generate_events(n_events=15_000, n_items=400, seed=9)
    path = tmp_path / "log.tsv"
    seconds = events["timestamp"].astype("int64") / 1e6  # fractional seconds
    if minutes:
        seconds = (seconds // 600) * 600  # ten-minute steps: ties everywhere
        assert pd.Series(seconds).duplicated().mean() > 0.8
    pd.DataFrame({"who": " " + events["user_id"], "what": events["item_id"], "t": seconds,
                  "kind": events["event"]}).to_csv(path, sep="\t", index=False)
    columns = {"user_id": "who", "item_id": "what", "timestamp": "t", "event": "kind"}
    config = PrepareConfig(test_days=3, valid_days=3)
    for events_filter in (None, ("view",)):
        memory = prepare("csv", [path], config=config, columns=columns, timestamp_unit="s",
                         events_filter=events_filter, engine="pandas")
        streamed = prepare_streaming("csv", [str(path)], config, columns=columns, timestamp_unit="s",
                                     events_filter=events_filter, buckets=5)
        assert_same(memory, streamed)


@pytest.mark.skipif(not YC_SAMPLE.exists(), reason="shared YooChoose sample not present")
def test_shared_yoochoose_sample_prepares_the_same(tmp_path):
    columns = {"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"}
    config = PrepareConfig(min_item_support=2, test_days=0.1, valid_days=0.1)  # the sample spans ~9 hours
    memory = prepare("csv", [YC_SAMPLE], config=config, columns=columns, timestamp_unit="s", engine="pandas")
    assert len(memory.train) > 100
    assert_same(memory, prepare_streaming("csv", [str(YC_SAMPLE)], config, columns=columns, timestamp_unit="s",
                                          buckets=3))


def test_bad_rows_are_named_by_line_as_in_memory(tmp_path):
    header = "timestamp,visitorid,event,itemid,transactionid\n"
    rows = [f"{T_MS + i * 1000},{i % 7},view,{i % 11}," for i in range(200)]
    for broken, message in (("soon,3,view,5,", "timestamp"), (f"{T_MS},3,click,5,", "unknown event"),
                            (f"{T_MS},3,view,,", "missing value"), ("1431000000,3,view,5,", "implausible")):
        path = tmp_path / "events.csv"
        path.write_text(header + "\n".join(rows[:150] + [broken] + rows[150:] + [broken]) + "\n")
        with pytest.raises(DataError, match=message) as info:
            prepare_streaming("retailrocket", [str(path)], PrepareConfig(), buckets=3)
        assert "line 152" in str(info.value), str(info.value)
        with pytest.raises(DataError, match="line 152"):
            prepare("retailrocket", [path], engine="pandas")


def test_what_streaming_does_not_cover_is_refused_in_one_line(tmp_path, rr_log):
    with pytest.raises(DataError, match="leave-one-out"):
        prepare_streaming("retailrocket", rr_log, PrepareConfig(split="loo"))
    with pytest.raises(DataError, match="--engine pandas"):
        prepare("synthetic", engine="streaming")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("s,u,i,t\n" + "".join(f"{'a' if k % 2 else ''},{k % 5},{k % 9},{T_MS // 1000 + k}\n"
                                           for k in range(300)))
    columns = {"session_id": "s", "user_id": "u", "item_id": "i", "timestamp": "t"}
    with pytest.raises(DataError, match="session id on every row or on none"):
        prepare_streaming("csv", [str(mixed)], PrepareConfig(min_item_support=1), columns=columns,
                          timestamp_unit="s")
    gz = tmp_path / "events.csv.gz"
    gz.write_bytes(b"")
    with pytest.raises(DataError, match="decompress"):
        prepare_streaming("retailrocket", [str(gz)], PrepareConfig())


def test_auto_engine_streams_only_what_would_not_fit(rr_log):
    assert choose_engine("retailrocket", rr_log) == "pandas"  # a 30,000-event log on any machine
    assert choose_engine("retailrocket", rr_log, memory_bytes=2**20) == "streaming"
    assert choose_engine("synthetic", [], memory_bytes=1) == "pandas"
    assert choose_engine("sessions", rr_log, memory_bytes=1) == "pandas"
    with pytest.raises(DataError, match="streaming reads"):
        choose_engine("yoochoose", rr_log, "streaming")


def test_prepare_data_script_with_engine_streaming_writes_the_same_folder(tmp_path, rr_log):
    for engine in ("pandas", "streaming"):
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_data.py"), "--source", "retailrocket",
                               "--input", *rr_log, "--out", str(tmp_path / engine), "--engine", engine,
                               "--scratch", str(tmp_path)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert ("out of core" in proc.stdout) == (engine == "streaming")
    streamed = Dataset.load(tmp_path / "streaming")
    assert streamed.meta["engine"] == "streaming"
    assert_same(Dataset.load(tmp_path / "pandas"), streamed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pandas", "streaming"]  # scratch files removed


def test_build_dataset_is_unchanged_by_the_shared_tail():
    """finish_dataset is the tail both paths share: the in-memory result on a synthetic log still holds together."""
    data = build_dataset(generate_events(n_events=5_000, n_items=200), dataclasses.replace(
        PrepareConfig(), test_days=3, valid_days=3))
    assert data.items["popularity"].sum() == len(data.train.items)
    assert list(data.info["train"].columns) == ["session_id", "start", "end"]


def test_truncation_by_mask_equals_sessions_truncate():
    """truncate_counted cuts by a mask over the sessions that are over (less memory); the cut is Sessions.truncate's."""
    from recsys.sessionize import truncate_counted
    from recsys.sessions import Sessions

    rng = np.random.default_rng(0)
    for _ in range(200):
        seqs = Sessions.from_lists([rng.integers(1, 100, rng.integers(1, 30)) for _ in range(rng.integers(1, 50))])
        keep = int(rng.integers(1, 20))
        cut, counts = truncate_counted(seqs, keep, "all")
        expected = seqs.truncate(keep)
        assert np.array_equal(cut.items, expected.items) and np.array_equal(cut.offsets, expected.offsets)
        assert counts["events"] == len(seqs.items) - len(expected.items)
