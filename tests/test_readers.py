"""Source readers: good files give the canonical table, bad files give a DataError naming file, column, line."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.datasets import (
    EVENT_COLUMNS,
    DataError,
    read_category_tree,
    read_diginetica,
    read_item_descriptions,
    read_retailrocket,
    read_table,
    read_yoochoose,
)
from recsys.datasets.retailrocket import attach_categories
from recsys.prepare import SOURCES

SHARED = Path("/work/shared/data")
RR_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"
YC_CLICKS = ("1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,S\n"
             "2,2014-04-06T01:00:00Z,214662742,3\n")
DG_HEADER = "sessionId;userId;itemId;timeframe;eventdate\n"
T_MS = 1_431_000_000_000  # 2015-05-07 in epoch ms, as RetailRocket's times (a log in 1970 is refused)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def assert_canonical(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == EVENT_COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[us, UTC]"
    assert all(str(df[c].dtype) == "string" for c in EVENT_COLUMNS if c != "timestamp")


def test_retailrocket_reads_events_and_time_varying_categories(tmp_path):
    events = write(tmp_path, "events.csv", RR_HEADER + "\n".join([
        f"{T_MS + 1000},7,view,100,",
        f"{T_MS + 5000},7,addtocart,100,",
        f"{T_MS + 9000},7,transaction,100,42",
        f"{T_MS + 9000},7,transaction,100,42",  # exact duplicate: dropped
        f"{T_MS + 2000},8,view,200,",
        f"{T_MS + 3000},8,view,300,",
    ]) + "\n")
    part1 = write(tmp_path, "item_properties_part1.csv", "timestamp,itemid,property,value\n"
                  f"{T_MS + 2000},100,categoryid,1\n{T_MS + 2000},100,available,1\n")
    part2 = write(tmp_path, "item_properties_part2.csv", "timestamp,itemid,property,value\n"
                  f"{T_MS + 8000},100,categoryid,2\n{T_MS + 2500},200,categoryid,5\n")
    tree = write(tmp_path, "category_tree.csv", "categoryid,parentid\n1,9\n2,9\n5,9\n9,\n")
    df = read_retailrocket(events, (part1, part2), tree)
    assert_canonical(df)
    assert len(df) == 5 and df["session_id"].isna().all()
    got = {(r.user_id, r.item_id, r.timestamp.value // 10**6 - T_MS, r.event): r.category_id
           for r in df.itertuples()}
    assert got == {
        ("7", "100", 1000, "view"): "1",  # before the first snapshot: earliest known value
        ("7", "100", 5000, "addtocart"): "1",  # latest at or before the event
        ("7", "100", 9000, "transaction"): "2",  # after the category changed
        ("8", "200", 2000, "view"): "5",
        ("8", "300", 3000, "view"): pd.NA,  # no categoryid known
    }
    buys = read_retailrocket(events, events=("addtocart", "transaction"))
    assert set(buys["event"]) == {"addtocart", "transaction"} and buys["category_id"].isna().all()
    assert read_category_tree(tree)["parent_id"].isna().sum() == 1


def test_attach_categories_matches_a_row_by_row_as_of_lookup():
    """Latest snapshot at or before the event (last file row among equal times), else the item's earliest."""
    rng = np.random.default_rng(3)
    t = pd.Timestamp("2015-05-03", tz="UTC")
    history = pd.DataFrame({"item_id": pd.array(rng.choice(["a", "b", "c", "d"], 60), dtype="string"),
                            "timestamp": t + pd.to_timedelta(rng.integers(0, 8, 60) * 10, unit="s"),
                            "category_id": pd.array([f"c{i}" for i in range(60)], dtype="string")})
    history = history[~((history["item_id"] == "d") & (history["timestamp"] < t + pd.Timedelta(seconds=40)))]
    events = pd.DataFrame({"item_id": pd.array(rng.choice(["a", "b", "c", "d", "e"], 300), dtype="string"),
                           "timestamp": t + pd.to_timedelta(rng.integers(-5, 90, 300), unit="s")})
    got = attach_categories(events, history)["category_id"]
    for item, ts, cat in zip(events["item_id"], events["timestamp"], got, strict=True):
        rows = history[history["item_id"] == item]
        if len(rows) == 0:
            assert pd.isna(cat)
            continue
        at = rows["timestamp"] <= ts
        when = rows["timestamp"][at].max() if at.any() else rows["timestamp"].min()
        assert cat == rows["category_id"][rows["timestamp"] == when].iloc[-1]


def test_retailrocket_rejects_unknown_event_filter(tmp_path):
    events = write(tmp_path, "events.csv", RR_HEADER + "1000,7,view,100,\n")
    with pytest.raises(ValueError, match="unknown events"):
        read_retailrocket(events, events=("click",))


def test_yoochoose_reads_clicks_and_buys(tmp_path):
    clicks = write(tmp_path, "yoochoose-clicks.dat", YC_CLICKS + YC_CLICKS.splitlines()[0] + "\n")
    buys = write(tmp_path, "yoochoose-buys.dat", "1,2014-04-07T11:00:00.000Z,214536502,1200,2\n")
    df = read_yoochoose(clicks, buys)
    assert_canonical(df)
    assert len(df) == 4  # the repeated click is dropped
    assert df["event"].value_counts().to_dict() == {"click": 3, "purchase": 1}
    assert df["user_id"].isna().all() and set(df["session_id"]) == {"1", "2"}
    cats = df.set_index("item_id")["category_id"]
    assert pd.isna(cats["214536502"].iloc[0]) and cats["214536500"] == "S" and cats["214662742"] == "3"
    assert df["timestamp"].min() == pd.Timestamp("2014-04-06T01:00:00Z")


@pytest.mark.parametrize("header", [DG_HEADER, "session_id;user_id;item_id;timeframe;eventdate\n"])
def test_diginetica_reads_views_and_categories(tmp_path, header):
    rows = "1;NA;81766;526309;2016-05-09\n1;;31331;1031018;2016-05-09\n2;5;9654;75848;2016-05-10\n"
    views = write(tmp_path, "train-item-views.csv", header + rows)
    cats = write(tmp_path, "product-categories.csv", "itemId;categoryId\n81766;1096\n9654;7\n")
    df = read_diginetica(views, cats)
    assert_canonical(df)
    first = df.iloc[0]
    assert first["timestamp"] == pd.Timestamp("2016-05-09", tz="UTC") + pd.Timedelta(milliseconds=526309)
    assert df["user_id"].isna().sum() == 2 and (df["event"] == "view").all()
    assert df.set_index("item_id")["category_id"].fillna("-").to_dict() == {"81766": "1096", "31331": "-", "9654": "7"}


def test_generic_csv_sniffs_separator_and_parses_iso_or_epoch(tmp_path):
    iso = write(tmp_path, "rentals.csv", "contract;tenant;object;start\nc1;u1;flat-3;2024-01-05 10:00\n"
                "c1;u1;flat-4;2024-01-05T10:05:00+01:00\n")
    df = read_table(iso, {"session_id": "contract", "user_id": "tenant", "item_id": "object", "timestamp": "start"},
                    event="rent")
    assert_canonical(df)
    assert sorted(df["timestamp"]) == [pd.Timestamp("2024-01-05T09:05Z"), pd.Timestamp("2024-01-05T10:00Z")]
    assert (df["event"] == "rent").all()
    epoch = write(tmp_path, "clicks.tsv", "SessionId\tItemId\tTime\n1\t10\t1396321357.5\n1\t11\t1396321400\n")
    df = read_table(epoch, {"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"}, timestamp_unit="s")
    assert df["timestamp"].iloc[0] == pd.Timestamp(1396321357.5, unit="s", tz="UTC")


def test_generic_parquet_and_item_descriptions(tmp_path):
    frame = pd.DataFrame({"user": [1, 1, 2], "item": [10, 11, 10],
                          "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
                          "title": ["Flat", "House", "Flat"], "notes": ["2 rooms", None, "2 rooms"]})
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    df = read_table(path, {"user_id": "user", "item_id": "item", "timestamp": "when"})
    assert_canonical(df)
    assert list(df["item_id"]) == ["10", "11", "10"] and df["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    items = read_item_descriptions(path, "item", ["title", "notes"])
    assert items.to_dict("list") == {"item_id": ["10", "11"], "description": ["Flat | 2 rooms", "House"]}
    with pytest.raises(DataError, match="row 2") as info:
        frame.assign(when=["2024-01-01", "soon", "2024-01-03"]).to_parquet(path)
        read_table(path, {"user_id": "user", "item_id": "item", "timestamp": "when"})
    assert "column 'when'" in str(info.value)


def test_sources_table_names_every_source():
    assert list(SOURCES) == ["synthetic", "retailrocket", "yoochoose", "diginetica", "csv", "sessions", "sequences"]
    assert [name for name, source in SOURCES.items() if source.presplit] == ["sessions", "sequences"]


# Bad inputs: (case id, file name, content, reader call, column named in the error, line named in the error).
def _rr(path):
    return read_retailrocket(path)


def _yc(path):
    return read_yoochoose(path)


def _dg(path):
    return read_diginetica(path)


def _csv(path):
    return read_table(path, {"user_id": "user", "item_id": "item", "timestamp": "ts"}, timestamp_unit="ms")


BAD = [
    ("rr-misnamed", "events.csv", RR_HEADER.replace("visitorid", "visitor_id") + "1,2,view,3,\n", _rr, "visitorid", 1),
    ("rr-text-time", "events.csv", RR_HEADER + "1,2,view,3,\nnoon,2,view,3,\n", _rr, "timestamp", 3),
    ("rr-negative", "events.csv", RR_HEADER + "1,2,view,3,\n-5,2,view,3,\n", _rr, "timestamp", 3),
    ("rr-no-time", "events.csv", RR_HEADER + "1,2,view,3,\n,2,view,3,\n", _rr, "timestamp", 3),
    ("rr-no-item", "events.csv", RR_HEADER + "1,2,view,3,\n1,2,view,,\n", _rr, "itemid", 3),
    ("rr-bad-event", "events.csv", RR_HEADER + "1,2,view,3,\n1,2,click,3,\n", _rr, "event", 3),
    ("rr-short-row", "events.csv", RR_HEADER + "1,2,view,3,\n1,2,view\n", _rr, None, 3),
    ("rr-latin1", "events.csv", (RR_HEADER + "1,2,view,3,\n1,2,view,caf\xe9,\n").encode("latin-1"), _rr, None, 3),
    ("yc-text-time", "clicks.dat", YC_CLICKS + "3,yesterday,5,0\n", _yc, "timestamp", 4),
    ("yc-no-time", "clicks.dat", YC_CLICKS + "3,,5,0\n", _yc, "timestamp", 4),
    ("yc-pre-1970", "clicks.dat", YC_CLICKS + "3,1960-01-01T00:00:00Z,5,0\n", _yc, "timestamp", 4),
    ("yc-no-session", "clicks.dat", ",2014-04-07T10:51:09.277Z,5,0\n", _yc, "session_id", 1),
    ("yc-extra-field", "clicks.dat", YC_CLICKS + "3,2014-04-07T10:51:09.277Z,5,0,9\n", _yc, None, 4),
    ("dg-misnamed", "views.csv", DG_HEADER.replace("sessionId", "sid") + "1;NA;2;3;2016-05-09\n", _dg, "sessionId", 1),
    ("dg-text-frame", "views.csv", DG_HEADER + "1;NA;2;3;2016-05-09\n1;NA;2;x;2016-05-09\n", _dg, "timeframe", 3),
    ("dg-negative", "views.csv", DG_HEADER + "1;NA;2;-3;2016-05-09\n", _dg, "timeframe", 2),
    ("dg-bad-date", "views.csv", DG_HEADER + "1;NA;2;3;2016-05-09\n1;NA;2;3;09/05/2016\n", _dg, "eventdate", 3),
    ("dg-no-date", "views.csv", DG_HEADER + "1;NA;2;3;\n", _dg, "eventdate", 2),
    ("csv-text-time", "t.csv", "user,item,ts\n1,2,3\n1,2,three\n", _csv, "ts", 3),
    ("csv-missing-col", "t.csv", "user,item,time\n1,2,3\n", _csv, "ts", 1),
    ("csv-binary", "t.csv", bytes(range(256)) * 4, _csv, None, 2),  # bytes 0-9, newline, then 0x0b.. 0x80 on line 2
]


@pytest.mark.parametrize(("name", "content", "call", "column", "line"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_raises_data_error_naming_file_column_line(tmp_path, name, content, call, column, line):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        call(path)
    message = str(info.value)
    assert str(path) in message
    if column is not None:
        assert f"column '{column}'" in message
    assert f"line {line}" in message


EMPTY = [
    ("rr-empty", _rr, ""), ("rr-blank", _rr, "\n \n"), ("rr-header-only", _rr, RR_HEADER),
    ("yc-empty", _yc, ""), ("yc-blank", _yc, "\n"),
    ("dg-empty", _dg, ""), ("dg-header-only", _dg, DG_HEADER),
    ("csv-empty", _csv, ""), ("csv-header-only", _csv, "user,item,ts\n"),
]


@pytest.mark.parametrize(("call", "content"), [c[1:] for c in EMPTY], ids=[c[0] for c in EMPTY])
def test_empty_files_raise_data_error(tmp_path, call, content):
    path = write(tmp_path, "data.csv", content)
    with pytest.raises(DataError, match="empty file|no data rows") as info:
        call(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_retailrocket(tmp_path / "nope.csv")


def test_item_properties_errors_count_filtered_lines(tmp_path):
    events = write(tmp_path, "events.csv", RR_HEADER + f"{T_MS},7,view,100,\n")
    props = write(tmp_path, "props.csv", "timestamp,itemid,property,value\n"
                  f"{T_MS},100,available,1\n{T_MS},100,categoryid,\n")
    with pytest.raises(DataError, match=r"column 'value', line 3"):
        read_retailrocket(events, (props,))


@pytest.mark.skipif(not (SHARED / "diginetica/sample_srgnn/sample_train-item-views.csv").exists(),
                    reason="shared Diginetica sample not present")
def test_reads_shared_diginetica_sample():
    df = read_diginetica(SHARED / "diginetica/sample_srgnn/sample_train-item-views.csv")
    assert_canonical(df)
    assert len(df) > 1000 and df["session_id"].nunique() > 100 and df["user_id"].isna().mean() > 0.5


@pytest.mark.skipif(not (SHARED / "yoochoose/rsc15_100k_sessionrec/yoochoose-clicks-100k_test.txt").exists(),
                    reason="shared YooChoose sample not present")
def test_reads_shared_session_rec_sample_as_generic_table():
    path = SHARED / "yoochoose/rsc15_100k_sessionrec/yoochoose-clicks-100k_test.txt"
    df = read_table(path, {"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"}, timestamp_unit="s")
    assert len(df) == 13_568 and df["session_id"].nunique() == 3_416
    assert df["timestamp"].min() >= pd.Timestamp("2014-04-07", tz="UTC")


def test_every_source_filters_event_types_or_says_why_not(tmp_path):
    """--events used to be applied by the retailrocket reader only: a csv log kept every event type silently."""
    from recsys.prepare import load_events

    log = tmp_path / "log.csv"
    log.write_text("visitor,sku,ts,kind\n" + "".join(
        f"u{i % 3},i{i % 5},{1_600_000_000 + 60 * i},{'view' if i % 4 else 'cart'}\n" for i in range(40)))
    columns = {"user_id": "visitor", "item_id": "sku", "timestamp": "ts", "event": "kind"}
    views = load_events("csv", [str(log)], columns=columns, timestamp_unit="s", events_filter=("view",))
    assert len(views) == 30 and set(views["event"]) == {"view"}
    assert len(load_events("csv", [str(log)], columns=columns, timestamp_unit="s")) == 40
    with pytest.raises(DataError, match="keeps no event; the log's event types: cart, view"):
        load_events("csv", [str(log)], columns=columns, timestamp_unit="s", events_filter=("purchase",))
    no_kind = {k: v for k, v in columns.items() if k != "event"}
    with pytest.raises(DataError, match="have no event type .*--columns event=COLUMN"):
        load_events("csv", [str(log)], columns=no_kind, timestamp_unit="s", events_filter=("view",))
