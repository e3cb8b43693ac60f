"""Batch scoring (recsys/batch.py, scripts/recommend.py): the same answers as recsys.recommend row by row, chunk
boundaries, unknown items, empty sessions, events tables, output safety and hostile input."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import recsys
from recsys.atomic import OutputFolderError
from recsys.batch import CSV_HEADER, BatchOptions, Ranker, check_output_file, score_file
from recsys.data import Dataset
from recsys.datasets.schema import DataError
from recsys.folder import save_folder
from recsys.models import REGISTRY, FitOptions
from recsys.sessions import Sessions
from recsys.topk import top_k
from tools.bench.servedata import servable

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS = 40
MODELS = tuple(REGISTRY)  # every registry model: GRU4Rec trained one epoch, the other neural ones at initial weights


def make_data(seed=0) -> Dataset:
    """Sessions walking 1 -> 2 -> ... (mod N_ITEMS) from random starts; item k is raw id "i<k>"."""
    rng = np.random.default_rng(seed)

    def split(n):
        starts, lengths = rng.integers(0, N_ITEMS, n), rng.integers(2, 9, n)
        return Sessions.from_lists([(s + np.arange(k)) % N_ITEMS + 1 for s, k in zip(starts, lengths, strict=True)])

    train, valid, test = split(300), split(40), split(40)
    items = pd.DataFrame({"item_id": pd.array([f"i{i}" for i in range(1, N_ITEMS + 1)], dtype="string"),
                          "category_id": pd.array([f"c{i % 3}" for i in range(N_ITEMS)], dtype="string"),
                          "popularity": np.bincount(train.items, minlength=N_ITEMS + 1)[1:]})
    return Dataset(train, valid, test, items, meta={"protocols": {"train": "all", "valid": "all", "test": "all"}})


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Model folders on make_data(): baselines fitted, GRU4Rec trained one epoch, the other neural models at their
    initial weights, the hybrid fitted with equal weights (its GRU4Rec part at its initial weights)."""
    from recsys.train import fit

    root = tmp_path_factory.mktemp("batch-models")
    data = make_data()
    torch.manual_seed(0)
    out = {}
    for name in MODELS:
        cls = REGISTRY[name]
        if name == "gru4rec":
            model = cls(cls.Config(emb_dim=16, hidden=32), data.n_items)
            fit(model, data, FitOptions(max_epochs=1, progress=False, accelerator="cpu", workdir=str(root / "w")))
        else:
            model, _ = servable(cls, data)
        out[name] = save_folder(model, root / name, data.items)
    return out


@pytest.fixture(scope="module")
def models(folders):
    return {name: recsys.load(path) for name, path in folders.items()}


def sessions_frame(n=50, seed=1) -> pd.DataFrame:
    """Sessions of known ids, some with unknown ids mixed in, one all unknown, one empty."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        items = [f"i{(int(rng.integers(0, N_ITEMS)) + t) % N_ITEMS + 1}" for t in range(int(rng.integers(1, 7)))]
        if s % 7 == 3:
            items.insert(1, f"nope-{s}")
        rows.append((f"s{s}", items))
    rows += [("cold", ["zzz", "yyy"]), ("empty", [])]
    return pd.DataFrame({"session_id": [r[0] for r in rows], "items": [r[1] for r in rows]})


def write_parquet(frame: pd.DataFrame, path: Path, row_group_size=None) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return path


def write_csv(frame: pd.DataFrame, path: Path, sep=",") -> Path:
    text = frame.assign(items=[" ".join(x) for x in frame["items"]])
    text.to_csv(path, index=False, sep=sep)
    return path


def expected(model, items: list[str], k: int, exclude_seen: bool):
    """What recsys.recommend gives for one session, the unknown ids skipped; None for a popularity fallback."""
    known = model.vocab.encode(items, strict=False)
    if not known:
        return None
    ids, scores = recsys.recommend(model, np.asarray(known), k=k, exclude_seen=exclude_seen)
    return model.vocab.decode(ids), scores


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_every_row_equals_recommend(models, tmp_path, name, exclude_seen):
    model = models[name]
    frame = sessions_frame()
    src = write_parquet(frame, tmp_path / "in.parquet")
    report = score_file(model, src, tmp_path / "out.parquet", BatchOptions(k=7, exclude_seen=exclude_seen,
                                                                            batch_size=8, chunk_rows=13))
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["session_id", "rank", "item_id", "score", "fallback"]
    pop = model.item_info["popularity"]
    for sid, items in zip(frame["session_id"], frame["items"], strict=True):
        got = out[out["session_id"] == sid]
        assert got["rank"].tolist() == list(range(1, len(got) + 1))
        want = expected(model, items, 7, exclude_seen)
        if want is None:  # popularity: the most seen items, their counts as scores
            assert got["fallback"].all() and len(got) == 7
            counts = [pop[model.vocab.encode([i])[0] - 1] for i in got["item_id"]]
            assert got["score"].tolist() == counts and counts == sorted(pop, reverse=True)[:7]
            continue
        assert not got["fallback"].any()
        np.testing.assert_allclose(got["score"].to_numpy(), want[1], rtol=1e-5, atol=1e-6)
        same = np.array(got["item_id"].tolist()) == np.array(want[0])
        # a batch may order near-equal scores differently from a single call: only ties may swap
        assert same.all() or np.allclose(got["score"].to_numpy()[~same], want[1][~same], rtol=1e-5, atol=1e-6)
    assert report.sessions == len(frame) and report.fallback == 2 and report.empty == 1
    assert report.unknown_items == sum(x.startswith("nope") for x in frame["items"].sum()) + 2
    assert report.fallback_examples == ["cold", "empty"] and "zzz" in report.unknown_examples
    assert report.rows == len(out)


@pytest.mark.parametrize("chunk_rows,batch_size,row_group", [(1, 1, None), (5, 3, 4), (52, 256, 7), (1000, 2, 1)])
def test_chunk_and_batch_boundaries_change_nothing(models, tmp_path, chunk_rows, batch_size, row_group):
    frame = sessions_frame()
    src = write_parquet(frame, tmp_path / "in.parquet", row_group_size=row_group)
    score_file(models["vsknn"], src, tmp_path / "ref.parquet", BatchOptions(k=5))
    score_file(models["vsknn"], src, tmp_path / "out.parquet",
               BatchOptions(k=5, chunk_rows=chunk_rows, batch_size=batch_size))
    ref, out = pd.read_parquet(tmp_path / "ref.parquet"), pd.read_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(ref, out)
    assert out["session_id"].drop_duplicates().tolist() == frame["session_id"].tolist()  # input order


def test_csv_and_tsv_inputs_and_csv_output_agree_with_parquet(models, tmp_path):
    frame = sessions_frame()
    score_file(models["sr"], write_parquet(frame, tmp_path / "in.parquet"), tmp_path / "ref.parquet",
               BatchOptions(k=4))
    ref = pd.read_parquet(tmp_path / "ref.parquet")
    csv_in = write_csv(frame, tmp_path / "in.csv")
    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(gzip.compress(csv_in.read_bytes()))
    for src in (csv_in, write_csv(frame, tmp_path / "in.tsv", sep="\t"), gz):
        score_file(models["sr"], src, tmp_path / "out.csv", BatchOptions(k=4, chunk_rows=9))
        assert (tmp_path / "out.csv").read_text().splitlines()[0] == CSV_HEADER
        out = pd.read_csv(tmp_path / "out.csv", dtype={"session_id": str, "item_id": str})
        pd.testing.assert_frame_equal(out, ref, check_dtype=False)


def test_integer_ids_in_parquet_lists_and_a_separator(tmp_path):
    data = make_data()
    data.items["item_id"] = pd.array([str(i) for i in range(1, N_ITEMS + 1)], dtype="string")
    model, _ = servable(REGISTRY["sr"], data)
    model = recsys.load(save_folder(model, tmp_path / "sr", data.items))
    table = pa.table({"session_id": ["a", "b"], "items": pa.array([[1, 2, 3], [5]], pa.list_(pa.int64()))})
    pq.write_table(table, tmp_path / "in.parquet")
    score_file(model, tmp_path / "in.parquet", tmp_path / "out.parquet", BatchOptions(k=3))
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out[out["session_id"] == "a"]["item_id"].tolist() == model.vocab.decode(
        recsys.recommend(model, np.array([1, 2, 3]), k=3)[0])
    (tmp_path / "in.csv").write_text("session_id,items\nb,5|6\n")
    score_file(model, tmp_path / "in.csv", tmp_path / "out2.parquet", BatchOptions(k=3, items_sep="|"))
    assert pd.read_parquet(tmp_path / "out2.parquet")["item_id"].tolist() == model.vocab.decode(
        recsys.recommend(model, np.array([5, 6]), k=3)[0])


def test_an_events_table_is_cut_into_sessions_as_prepare_data_cuts_them(models, tmp_path):
    model = models["sr"]
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [("u1", "i1", 0), ("u1", "i2", 1), ("u1", "i3", 2),  # u1's first session
            ("u1", "i9", 120), ("u1", "i10", 121),  # two hours later: a second one
            ("u2", "i20", 5), ("u2", "nope", 6), ("u3", "nope", 7)]
    events = pd.DataFrame({"visitor": [r[0] for r in rows], "sku": [r[1] for r in rows],
                           "time": [(t0 + pd.Timedelta(minutes=r[2])).isoformat() for r in rows]})
    events.sample(frac=1, random_state=0).to_csv(tmp_path / "events.csv", index=False)  # any row order
    opts = BatchOptions(k=3, events={"user_id": "visitor", "item_id": "sku", "timestamp": "time"})
    report = score_file(model, tmp_path / "events.csv", tmp_path / "out.parquet", opts)
    out = pd.read_parquet(tmp_path / "out.parquet")
    order = out["session_id"].drop_duplicates().tolist()  # by visitor (first seen in the file), then time
    assert sorted(order) == ["u1:0", "u1:1", "u2:0", "u3:0"] and order.index("u1:0") + 1 == order.index("u1:1")
    for sid, items in (("u1:0", ["i1", "i2", "i3"]), ("u1:1", ["i9", "i10"]), ("u2:0", ["i20"])):
        assert out[out["session_id"] == sid]["item_id"].tolist() == expected(model, items, 3, False)[0]
    assert out[out["session_id"] == "u3:0"]["fallback"].all()
    assert report.sessions == 4 and report.fallback == 1 and report.unknown_items == 2


def test_workers_give_the_same_file(models, tmp_path):
    src = write_parquet(sessions_frame(80), tmp_path / "in.parquet")
    score_file(models["gru4rec"], src, tmp_path / "one.parquet", BatchOptions(k=5, batch_size=8))
    score_file(models["gru4rec"], src, tmp_path / "two.parquet", BatchOptions(k=5, batch_size=8, workers=2))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "two.parquet"))


def test_long_sessions_are_cut_to_their_most_recent_items(models, tmp_path):
    model = models["gru4rec"]
    items = [f"i{t % N_ITEMS + 1}" for t in range(30)]
    src = write_parquet(pd.DataFrame({"session_id": ["long"], "items": [items]}), tmp_path / "in.parquet")
    report = score_file(model, src, tmp_path / "out.parquet", BatchOptions(k=5, max_items=4))
    assert report.cut == 1
    assert pd.read_parquet(tmp_path / "out.parquet")["item_id"].tolist() == expected(model, items[-4:], 5, False)[0]


def test_exclude_seen_on_a_session_holding_the_whole_catalogue(models, tmp_path):
    everything = [f"i{i}" for i in range(1, N_ITEMS + 1)]
    src = write_parquet(pd.DataFrame({"session_id": ["all", "one"], "items": [everything, ["i1"]]}),
                        tmp_path / "in.parquet")
    report = score_file(models["sr"], src, tmp_path / "out.parquet", BatchOptions(k=5, exclude_seen=True))
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert report.nothing_left == 1 and set(out["session_id"]) == {"one"} and "i1" not in set(out["item_id"])


@pytest.mark.parametrize("n", [43_098, 40_000, 4_096, 1_000, 25])
def test_top_k_is_torch_topk(n):
    gen = torch.Generator().manual_seed(n)
    scores = torch.randn(64, n, generator=gen)
    scores[:, 0] = -torch.inf
    scores[3, :] = -torch.inf  # a row with one item left
    scores[3, n // 2] = 1.0
    scores[4, : n // 3] = 7.0  # many ties at the top
    scores[5] = torch.round(scores[5])  # ties everywhere
    for k in sorted({x for x in (1, 5, 20, 100) if x < n} | {n - 1}):
        want_values, want_index = torch.topk(scores, k, dim=1)
        values, index = top_k(scores, k)
        assert torch.equal(values, want_values)
        assert torch.equal(torch.gather(scores, 1, index), values)  # the indices hold those values
        assert all(len(set(row.tolist())) == k for row in index)  # each item once
        rows = ~torch.isinf(want_values).any(dim=1) & (torch.arange(64) > 5)
        assert torch.equal(index[rows], want_index[rows])  # distinct scores: the same items in the same order


def test_ranker_rank_one_is_recommend_with_a_popularity_fallback(models):
    model = models["vsknn"]
    ranker = Ranker(model)
    got = ranker.rank_one(["i3", "bad", "i4", "bad"], k=5)
    ids, scores = recsys.recommend(model, np.array(model.vocab.encode(["i3", "i4"])), k=5)
    assert got.items == model.vocab.decode(ids) and np.allclose(got.scores, scores)
    assert got.fallback == "none" and got.unknown_items == ["bad"]
    cold = ranker.rank_one(["bad"], k=3)
    assert cold.fallback == "popularity" and len(cold.items) == 3 and cold.unknown_items == ["bad"]
    assert ranker.rank_one([], k=3).fallback == "popularity"


# ---------------------------------------------------------------------------------------------------------------
# output safety


def test_output_is_refused_unless_it_is_new_or_an_earlier_output(models, tmp_path):
    src = write_parquet(sessions_frame(5), tmp_path / "in.parquet")
    model = models["pop"]
    theirs = tmp_path / "theirs.parquet"
    pq.write_table(pa.table({"x": [1]}), theirs)
    theirs_csv = tmp_path / "theirs.csv"
    theirs_csv.write_text("name,value\na,1\n")
    link = tmp_path / "link.parquet"
    link.symlink_to(tmp_path / "target.parquet")
    (tmp_path / "folder.parquet").mkdir()
    for bad, why in ((theirs, "not written by recsys"), (theirs_csv, "not written by recsys"),
                     (link, "symbolic link"), (tmp_path / "folder.parquet", "not a file"),
                     (src, "is the input"), (tmp_path / "out.json", ".parquet or .csv")):
        with pytest.raises(OutputFolderError, match=why):
            score_file(model, src, bad, BatchOptions(k=2))
    assert pq.read_table(theirs).column_names == ["x"] and theirs_csv.read_text() == "name,value\na,1\n"
    assert not (tmp_path / "target.parquet").exists()
    for out in (tmp_path / "new" / "out.parquet", tmp_path / "out.csv"):
        score_file(model, src, out, BatchOptions(k=2))
        score_file(model, src, out, BatchOptions(k=3))  # an earlier output of ours is replaced
        assert check_output_file(out) == out
    assert len(pd.read_csv(tmp_path / "out.csv")) == 7 * 3  # 5 sessions, a cold one and an empty one


def test_a_failure_leaves_no_output_and_no_temporary_file(models, tmp_path):
    frame = sessions_frame(30)
    frame.loc[20, "session_id"] = None  # found only in a later chunk
    src = write_parquet(frame, tmp_path / "in.parquet")
    score_file(models["pop"], write_parquet(sessions_frame(3), tmp_path / "ok.parquet"), tmp_path / "out.parquet",
               BatchOptions(k=2))
    before = (tmp_path / "out.parquet").read_bytes()
    with pytest.raises(DataError, match="session id is missing"):
        score_file(models["pop"], src, tmp_path / "out.parquet", BatchOptions(k=2, chunk_rows=4))
    assert (tmp_path / "out.parquet").read_bytes() == before  # the earlier output is kept whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "ok.parquet", "out.parquet"]


# ---------------------------------------------------------------------------------------------------------------
# hostile input


@pytest.mark.parametrize("content,message", [
    ("user,things\na,i1\n", "needs the columns"),
    ("", "empty"),
    (b"\xff\xfe\x00binary\x00", "UTF-8"),
    ("session_id,items\n\"a,i1 i2\n", "could not parse|quote"),
])
def test_bad_text_input_gets_one_line(models, tmp_path, content, message):
    src = tmp_path / "in.csv"
    src.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        score_file(models["pop"], src, tmp_path / "out.parquet", BatchOptions(k=2))
    assert not (tmp_path / "out.parquet").exists()


def test_bad_parquet_input_gets_one_line(models, tmp_path):
    cases = {
        "missing": pa.table({"sid": ["a"], "items": [["i1"]]}),
        "floats": pa.table({"session_id": ["a"], "items": pa.array([[1.5]], pa.list_(pa.float64()))}),
        "numbers": pa.table({"session_id": ["a"], "items": [3.5]}),
        "struct": pa.table({"session_id": ["a"], "items": [[{"x": 1}]]}),
    }
    messages = {"missing": "missing column", "floats": "must be text or integers", "numbers": "holds double",
                "struct": "must be text or integers"}
    for name, table in cases.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
        with pytest.raises(DataError, match=messages[name]):
            score_file(models["pop"], tmp_path / f"{name}.parquet", tmp_path / "out.parquet", BatchOptions(k=2))
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet"):
        score_file(models["pop"], tmp_path / "fake.parquet", tmp_path / "out.parquet", BatchOptions(k=2))
    with pytest.raises(DataError, match="file not found"):
        score_file(models["pop"], tmp_path / "nothing.csv", tmp_path / "out.parquet", BatchOptions(k=2))


def test_huge_fields_are_refused_or_cut_without_reading_them_whole(models, tmp_path, monkeypatch):
    import recsys.batch

    monkeypatch.setattr(recsys.batch, "BLOCK_BYTES", 1 << 16)
    src = tmp_path / "in.csv"
    src.write_text("session_id,items\na,i1 i2\nb," + "i3 " * 40_000 + "\n")  # a 120 KB row
    with pytest.raises(DataError, match="longer than 65,536 bytes"):
        score_file(models["pop"], src, tmp_path / "out.parquet", BatchOptions(k=2))
    # a huge id and a huge session that fit a block: the id is unknown (shown shortened), the session cut
    src.write_text("session_id,items\na," + "x" * 20_000 + " i1\nb," + "i3 " * 5_000 + "\n")
    report = score_file(models["gru4rec"], src, tmp_path / "out.parquet", BatchOptions(k=2))
    assert report.unknown_items == 1 and len(report.unknown_examples[0]) <= 121 and report.cut == 1
    assert report.personalised == 2


def test_bad_options_are_refused():
    for bad in ({"k": 0}, {"k": True}, {"batch_size": 0}, {"workers": 1.5}, {"items_sep": ""}, {"max_items": -1}):
        with pytest.raises(ValueError):
            BatchOptions(**bad)


# ---------------------------------------------------------------------------------------------------------------
# the script


def run_script(*args, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "recommend.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def script_main(argv) -> int:
    """scripts/recommend.py's main, in this process."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("recommend_script", ROOT / "scripts" / "recommend.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return module.main(argv)


def test_script_writes_recommendations_and_a_summary(folders, tmp_path):
    src = write_csv(sessions_frame(20), tmp_path / "in.csv")
    done = run_script("--model", folders["sr"], "--input", src, "--k", 3, "--out", tmp_path / "recs.parquet")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sessions"] == 22 and summary["fallback"] == 2 and summary["rows"] == 22 * 3
    assert "scored 22 sessions" in done.stderr
    assert len(pd.read_parquet(tmp_path / "recs.parquet")) == 22 * 3


@pytest.mark.parametrize("args,message", [
    (["--k", "0"], "k must be"),
    (["--out", "{tmp}/in.csv"], "is the input"),
    (["--model", "{tmp}/no-such-model"], "no model folder"),
    (["--input", "{tmp}/missing.csv"], "file not found"),
    (["--events", "user_id"], "--events must look like"),
    (["--events", "user_id=a,item_id=b,timestamp=c"], "missing column"),
])
def test_script_bad_input_exits_2_with_one_line(folders, tmp_path, args, message, capsys):
    src = write_csv(sessions_frame(3), tmp_path / "in.csv")
    given = {"--model": str(folders["pop"]), "--input": str(src), "--out": str(tmp_path / "recs.parquet")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        given[flag] = value.format(tmp=tmp_path)
    code = script_main([x for pair in given.items() for x in pair])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
