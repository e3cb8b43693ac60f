"""Hostile reader inputs: epoch times in the wrong or mixed units, nested Parquet cells, broken quotes, padded or
control-character ids and compressed files. Each gets a DataError naming the file, the column and the line, or
is read exactly as its plain twin is.
"""

import bz2
import gzip
import lzma
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.datasets import DataError, canonical_events, read_diginetica, read_retailrocket, read_table
from recsys.prepare import prepare
from recsys.sessionize import PrepareConfig

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
T_S = 1_431_619_200  # 2015-05-14 in epoch seconds
RR_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def log(times, items=None) -> str:
    """A user,item,ts CSV: one user, one row per time."""
    items = items or [str(10 + i) for i in range(len(times))]
    return "user,item,ts\n" + "".join(f"u1,{item},{t}\n" for item, t in zip(items, times, strict=True))


def refused(path: Path, call, *fragments: str) -> str:
    """Run `call`, expect a DataError naming `path` and every fragment; return the message."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- epoch units --------------------------------------------------------------------------------------------------

def test_mixed_seconds_and_milliseconds_are_refused_naming_file_column_and_line(tmp_path):
    path = write(tmp_path, "mixed.csv", log([T_S, T_S + 60, (T_S + 120) * 1000, T_S + 180]))
    refused(path, lambda: prepare("csv", [path], columns=COLUMNS, timestamp_unit="s"),
            "mixed units", "column 'ts'", "line 4", str((T_S + 120) * 1000))
    # Read as ms, the seconds are the odd ones out: the first line already is one.
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="ms"), "mixed units", "line 2", "1970")


def test_milliseconds_read_as_seconds_land_in_the_year_47000_and_are_refused(tmp_path):
    path = write(tmp_path, "ms.csv", log([T_S * 1000, T_S * 1000 + 60_000]))
    message = refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"),
                      "column 'ts'", "line 2", "--timestamp-unit ms")
    assert "as epoch s it is 4733" in message  # the year it would be


def test_seconds_read_as_milliseconds_land_in_1970_and_are_refused(tmp_path):
    path = write(tmp_path, "s.csv", log([T_S, T_S + 60, T_S + 120]))
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="ms"), "1970-01-17", "--timestamp-unit s",
            "line 2")
    # RetailRocket's unit is fixed (ms): the advice is about the file, not an option it does not take.
    events = write(tmp_path, "events.csv", RR_HEADER + f"{T_S},1,view,5,\n{T_S + 60},1,view,6,\n")
    message = refused(events, lambda: read_retailrocket(events), "column 'timestamp'", "line 2", "epoch ms")
    assert "--timestamp-unit" not in message


def test_mixed_units_exit_2_from_the_command_line_without_a_traceback(tmp_path):
    path = write(tmp_path, "mixed.csv", log([T_S, T_S * 1000]))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_data.py"), "--source", "csv",
                           "--input", str(path), "--columns", "user_id=user,item_id=item,timestamp=ts",
                           "--timestamp-unit", "s", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "mixed units" in proc.stderr and "line 3" in proc.stderr and "column 'ts'" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["1e30", "99999999999999999999"])
def test_epoch_numbers_too_large_for_any_unit_are_refused_not_overflowed(tmp_path, value):
    path = write(tmp_path, "huge.csv", log([T_S, value]))
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"), "implausible timestamp", "line 3")


@pytest.mark.parametrize("when", ["1985-06-01T10:00:00Z", "2199-01-01"])
def test_iso_times_before_1990_or_years_ahead_are_refused(tmp_path, when):
    path = write(tmp_path, "iso.csv", log(["2015-05-14T10:00:00Z", when]))
    refused(path, lambda: read_table(path, COLUMNS), "column 'ts'", "line 3", when)


def test_diginetica_timeframe_beyond_any_plausible_time_is_refused_not_overflowed(tmp_path):
    path = write(tmp_path, "train-item-views.csv", "sessionId;userId;itemId;timeframe;eventdate\n"
                 "1;NA;5;526309;2016-05-09\n1;NA;6;100000000000000000;2016-05-09\n")
    refused(path, lambda: read_diginetica(path), "column 'timeframe'", "line 3")


def test_implausible_parquet_date_times_are_refused_by_the_canonical_table(tmp_path):
    path = tmp_path / "old.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": ["1", "2"],
                             "ts": pa.array([0, 60], pa.timestamp("s", "UTC"))}), path)
    refused(path, lambda: read_table(path, COLUMNS), "1990-01-01", "row 1")


def test_nan_epoch_in_parquet_is_refused(tmp_path):
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": ["1", "2"], "ts": [float(T_S), float("nan")]}), path)
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"), "column 'ts'", "row 2")


# --- Parquet cells that are not one value -------------------------------------------------------------------------

def test_parquet_list_item_id_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": [[1, 2], [3]],
                             "ts": pa.array([T_S, T_S + 60], pa.timestamp("s", "UTC"))}), path)
    refused(path, lambda: read_table(path, COLUMNS), "column 'item'", "list")


def test_parquet_struct_timestamp_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "structs.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": ["1", "2"],
                             "ts": [{"seconds": T_S, "nanos": 0}, {"seconds": T_S + 60, "nanos": 0}]}), path)
    refused(path, lambda: read_table(path, COLUMNS), "column 'ts'", "struct")


# --- quotes -------------------------------------------------------------------------------------------------------

def test_unterminated_quote_names_the_line_it_opens_on(tmp_path):
    path = write(tmp_path, "quote.csv", f'user,item,ts\nu1,10,{T_S}\nu1,"11,{T_S + 60}\nu1,12,{T_S + 120}\n'
                                        f"u1,13,{T_S + 180}\n")
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"), "unterminated quote", "line 3")


def test_unterminated_quote_that_arrow_accepts_is_still_refused(tmp_path):
    """A quote left open in the last column swallows the following rows into one value without a parse error."""
    events = write(tmp_path, "events.csv", RR_HEADER + f"{T_S * 1000},1,view,5,\n")
    props = write(tmp_path, "item_properties_part1.csv", "timestamp,itemid,property,value\n"
                  f'{T_S * 1000},5,categoryid,"7\n{T_S * 1000},6,categoryid,8\n')
    refused(props, lambda: read_retailrocket(events, (props,)), "unterminated quote", "line 2")


# --- ids: white space and control characters ----------------------------------------------------------------------

def test_padded_ids_are_the_same_item_after_preparation(tmp_path):
    rows = [(f"u{u}", item, T_S + 3600 * u + 60 * i) for u in range(6)
            for i, item in enumerate([" 12", "13", "12 ", "14"] if u % 2 else ["12", "13", "\t12\u00a0", "14"])]
    path = write(tmp_path, "padded.csv", 'user,item,ts\n' + "".join(f'" {u}",{i},{t}\n' for u, i, t in rows))
    read = read_table(path, COLUMNS, timestamp_unit="s")
    assert set(read["item_id"]) == {"12", "13", "14"} and set(read["user_id"]) == {f"u{u}" for u in range(6)}
    data = prepare("csv", [path], config=PrepareConfig(split="loo", min_item_support=1), columns=COLUMNS,
                   timestamp_unit="s")
    assert sorted(data.items["item_id"]) == ["12", "13", "14"]


def test_blank_optional_ids_become_null_and_blank_item_ids_are_empty(tmp_path):
    path = write(tmp_path, "blank.csv", f"session,user,item,ts\ns1,  ,10,{T_S}\ns1,u1,11,{T_S + 60}\n")
    columns = {"session_id": "session", **COLUMNS}
    read = read_table(path, columns, timestamp_unit="s")
    assert read["user_id"].isna().tolist() == [True, False]
    path = tmp_path / "blank_item.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": ["10", " \u3000"], "ts": [T_S, T_S + 60]}), path)
    message = refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"), "column 'item'", "row 2")
    assert "missing value" in message
    with pytest.raises(DataError, match="empty item id"):
        canonical_events(pd.DataFrame({"user_id": ["u1"], "item_id": [" \t"], "timestamp": [pd.Timestamp.now("UTC")]}))


@pytest.mark.parametrize(("column", "row"), [("item", f"u1,1\x002,{T_S + 60}"), ("user", f"u\x001,12,{T_S + 60}"),
                                             ("item", f"u1,1\x1b[2J,{T_S + 60}")])
def test_control_characters_inside_ids_are_refused(tmp_path, column, row):
    path = write(tmp_path, "nul.csv", f"user,item,ts\nu1,11,{T_S}\n{row}\n")
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"), "control character", f"column '{column}'",
            "line 3")


def test_nul_inside_a_parquet_id_is_refused(tmp_path):
    path = tmp_path / "nul.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": ["11", "1\x002"], "ts": [T_S, T_S + 60]}), path)
    refused(path, lambda: read_table(path, COLUMNS, timestamp_unit="s"), "control character", "column 'item'",
            "row 2")


# --- compressed files ---------------------------------------------------------------------------------------------

def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


COMPRESSED = [("events.csv.gz", gzip.compress), ("events.csv", gzip.compress), ("events.dat", gzip.compress),
              ("events.csv.bz2", bz2.compress), ("events.csv.xz", lzma.compress), ("events.csv.zst", _zstd)]


@pytest.mark.parametrize(("name", "compress"), COMPRESSED, ids=[c[0] + "-" + c[1].__module__ for c in COMPRESSED])
def test_compressed_csv_reads_as_its_plain_twin(tmp_path, name, compress):
    text = log([T_S + 60 * i for i in range(6)], ["10", "11", "10", "12", "11", "10"]).replace(",", ";")
    plain = write(tmp_path, "plain.csv", text)
    packed = write(tmp_path, name, compress(text.encode()))
    pd.testing.assert_frame_equal(read_table(packed, COLUMNS, timestamp_unit="s"),
                                  read_table(plain, COLUMNS, timestamp_unit="s"))


def test_gzip_retailrocket_events_match_the_plain_file(tmp_path):
    text = RR_HEADER + "".join(f"{(T_S + 60 * i) * 1000},{i % 2},view,{10 + i % 3},\n" for i in range(8))
    plain = write(tmp_path, "events.csv", text)
    packed = write(tmp_path, "events.csv.gz", gzip.compress(text.encode()))
    pd.testing.assert_frame_equal(read_retailrocket(packed), read_retailrocket(plain))


def test_gzip_errors_name_decompressed_lines(tmp_path):
    packed = write(tmp_path, "bad.csv.gz", gzip.compress(log([T_S, "noon"]).encode()))
    refused(packed, lambda: read_table(packed, COLUMNS, timestamp_unit="s"), "column 'ts'", "line 3", "noon")


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress], ids=["gzip", "xz"])
def test_truncated_compressed_file_is_refused(tmp_path, compress):
    data = compress(log([T_S + i for i in range(2000)]).encode())
    packed = write(tmp_path, "cut.csv.gz", data[: len(data) // 2])
    refused(packed, lambda: read_table(packed, COLUMNS, timestamp_unit="s"), "could not decompress")


def test_gzip_user_sequences_read_as_the_plain_file(tmp_path):
    text = "".join(f"u{u} " + " ".join(str(10 + (u + i) % 7) for i in range(5)) + "\n" for u in range(8))
    plain = prepare("sequences", [write(tmp_path, "Beauty.txt", text)])
    packed = prepare("sequences", [write(tmp_path, "Beauty.txt.gz", gzip.compress(text.encode()))])
    assert packed.items["item_id"].tolist() == plain.items["item_id"].tolist()
    assert packed.split("train").items.tolist() == plain.split("train").items.tolist()


def test_parquet_named_csv_is_read_as_parquet(tmp_path):
    path = tmp_path / "events.csv"
    pq.write_table(pa.table({"user": ["u1", "u1"], "item": ["10", "11"], "ts": [T_S, T_S + 60]}), path)
    assert read_table(path, COLUMNS, timestamp_unit="s")["item_id"].tolist() == ["10", "11"]
    refused(path, lambda: read_retailrocket(path), "Parquet")
