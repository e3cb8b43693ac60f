"""Incremental updates (recsys/update.py, scripts/update.py): exactness against a full refit where the model keeps
sufficient statistics, vocabulary growth, a neural warm start, hostile event files and --out safety."""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import recsys
from recsys.folder import load_folder, save_folder
from recsys.models import REGISTRY, build_model
from recsys.sessions import Sessions
from recsys.update import UpdateConfig, UpdateError, grow_neural, update_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # for their `import _path`
spec = importlib.util.spec_from_file_location("update_script", ROOT / "scripts" / "update.py")
update_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_script)

N_OLD = 40  # item indices 1..39, raw ids i1..i39
COLUMNS = "session_id=sid,item_id=item,timestamp=time,category_id=cat"


def random_sessions(n, n_items, seed, repeats=True):
    rng = np.random.default_rng(seed)
    out = []
    for length in rng.integers(2, 9, size=n):
        if repeats:
            out.append(rng.integers(1, n_items, size=length).tolist())
        else:
            out.append(rng.choice(np.arange(1, n_items), size=min(length, n_items - 1), replace=False).tolist())
    return out


def concat(a: Sessions, b: Sessions) -> Sessions:
    return Sessions(np.r_[a.items, b.items].astype(np.int32), np.r_[a.offsets, b.offsets[1:] + a.offsets[-1]])


def items_table(n_items, cats=None):
    return pd.DataFrame({"item_id": pd.array([f"i{i}" for i in range(1, n_items)], dtype="string"),
                         "category_id": pd.array(cats or [f"c{i % 3}" for i in range(1, n_items)], dtype="string"),
                         "popularity": np.zeros(n_items - 1, dtype=np.int64)})


def fitted(name, train: Sessions, n_items, **config):
    model = build_model(name, n_items, config)
    model.fit(SimpleNamespace(train=train, info={}))
    return model


def queries(n_items, seed=5):
    return [np.asarray(s) for s in random_sessions(60, n_items, seed)]


# ---------------------------------------------------------------- exactness (model level)

EXACT = [("pop", {}), ("spop", {}), ("spop", {"exclude_session": True}), ("sknn", {"k": 20, "sample_size": 50}),
         ("vsknn", {"k": 20, "sample_size": 50, "idf_weighting": 1.0, "weighting": "quadratic"})]


@pytest.mark.parametrize("name,config", EXACT)
def test_update_equals_a_full_refit_for_models_with_sufficient_statistics(name, config):
    a = Sessions.from_lists(random_sessions(300, N_OLD, 0))
    n_items = N_OLD + 6  # B brings six new items
    b = Sessions.from_lists(random_sessions(200, n_items, 1))
    updated, info = update_model(fitted(name, a, N_OLD, **config), b, items_table(n_items))
    refit = fitted(name, concat(a, b), n_items, **config)
    assert info["method"].startswith("exact")
    assert updated.n_items == n_items
    assert torch.equal(updated.score(queries(n_items)), refit.score(queries(n_items)))
    for key, value in refit.state_dict().items():
        assert torch.equal(updated.state_dict()[key], value), key


@pytest.mark.parametrize("name", ["sr", "itemknn"])
def test_pruned_neighbour_models_equal_a_refit_where_nothing_was_pruned(name):
    """With lists long enough to hold every neighbour (and for itemknn sessions without repeats, so event counts
    are session supports) the update equals a refit up to float32 rounding; with short lists it does not."""
    a = Sessions.from_lists(random_sessions(300, N_OLD, 0, repeats=False))
    b = Sessions.from_lists(random_sessions(200, N_OLD + 4, 1, repeats=False))
    n_items = N_OLD + 4
    for k, close in ((1000, True), (3, False)):
        updated, info = update_model(fitted(name, a, N_OLD, k_neighbors=k), b, items_table(n_items))
        refit = fitted(name, concat(a, b), n_items, k_neighbors=k)
        diff = float((updated.score(queries(n_items)) - refit.score(queries(n_items))).abs().max())
        assert (diff < 1e-5) == close, (k, diff)
        assert (info["items_with_pruned_lists"] == 0) == close


def test_hybrid_of_exact_parts_updates_exactly_and_keeps_its_weights():
    a = Sessions.from_lists(random_sessions(300, N_OLD, 0))
    b = Sessions.from_lists(random_sessions(100, N_OLD + 2, 1))
    params = {"components": ["pop", "sknn"], "weights": [0.3, 0.7]}
    old = build_model("hybrid", N_OLD, params)
    for part in old.parts:
        part.fit(SimpleNamespace(train=a, info={}))
    updated, info = update_model(old, b, items_table(N_OLD + 2))
    refit = build_model("hybrid", N_OLD + 2, params)
    for part in refit.parts:
        part.fit(SimpleNamespace(train=concat(a, b), info={}))
    assert updated.config.weights == (0.3, 0.7) and set(info["parts"]) == {"pop", "sknn"}
    assert torch.equal(updated.score(queries(N_OLD + 2)), refit.score(queries(N_OLD + 2)))


def test_models_without_an_update_rule_are_refused_with_the_reason():
    with pytest.raises(UpdateError, match="als keeps only item factors"):
        update_model(build_model("als", N_OLD), Sessions.from_lists([[1, 2]]), items_table(N_OLD))
    hybrid = build_model("hybrid", N_OLD, {"components": ["pop", "als"], "weights": [0.5, 0.5]})
    with pytest.raises(UpdateError, match="hybrid part als"):
        update_model(hybrid, Sessions.from_lists([[1, 2]]), items_table(N_OLD))


# ---------------------------------------------------------------- neural warm start


@pytest.mark.parametrize("name,config", [("gru4rec", {"emb_dim": 8, "hidden": 12, "tied": False}),
                                         ("lstm-cat", {"emb_dim": 8, "hidden": 12, "category_dim": 4}),
                                         ("sasrec", {"dim": 8, "n_heads": 2, "n_layers": 1})])
def test_grown_neural_model_keeps_old_rows_and_scores_old_items_as_before(name, config):
    torch.manual_seed(0)
    model = build_model(name, N_OLD, config)
    items = items_table(N_OLD + 3, [f"c{i % 3}" for i in range(1, N_OLD)] + ["c1", "new-cat", None])
    model.initialize(SimpleNamespace(item_categories=lambda: _categories(items_table(N_OLD))), seed=0)
    grown = grow_neural(model, items, noise=0.1, generator=torch.Generator().manual_seed(0))
    old_state, new_state = model.state_dict(), grown.state_dict()
    grew = [k for k in old_state if old_state[k].shape != new_state[k].shape]
    assert grew and all(new_state[k].shape[0] == N_OLD + 3 for k in grew)
    for key, value in old_state.items():
        assert torch.equal(new_state[key][: len(value)], value), key
    rows = [k for k in grew if k.endswith("emb.weight") or k.endswith("out.weight")]
    for key in rows:  # new rows: near the category's mean (c1: items 1, 4, ...) or the global mean, not equal
        table = new_state[key]
        c1 = table[[i for i in range(1, N_OLD) if i % 3 == 1]].mean(0)
        assert torch.linalg.norm(table[N_OLD] - c1) < torch.linalg.norm(table[1:N_OLD] - c1, dim=1).mean()
        assert not torch.equal(table[N_OLD + 1], table[N_OLD + 2])
    if len(model.item_category):  # c1 keeps its category index, an unseen category and none map to 0
        assert grown.item_category[N_OLD].item() == model.item_category[1].item() != 0
        assert grown.item_category[N_OLD + 1:].tolist() == [0, 0]
    model.eval(), grown.eval()
    q = queries(N_OLD)
    assert torch.allclose(grown.score(q)[:, :N_OLD], model.score(q), atol=1e-5)


def _categories(items):
    codes, _ = pd.factorize(items["category_id"])
    return np.r_[0, codes + 1]


def test_neural_warm_start_trains_on_the_new_sessions_and_keeps_shapes():
    torch.manual_seed(0)
    model = build_model("gru4rec", N_OLD, {"emb_dim": 8, "hidden": 12})
    b = Sessions.from_lists(random_sessions(64, N_OLD + 2, 1))
    updated, info = update_model(model, b, items_table(N_OLD + 2), UpdateConfig(epochs=2, batch_size=16), log=None)
    assert updated.n_items == N_OLD + 2 and info["epochs"] == 2 and len(info["train_loss"]) == 2
    assert updated.item_emb.weight.shape == (N_OLD + 2, 8) and updated.out_bias.shape == (N_OLD + 2,)
    assert not torch.equal(updated.item_emb.weight[1:N_OLD], model.item_emb.weight[1:N_OLD])  # it trained
    assert torch.isfinite(updated.score(queries(N_OLD + 2))).all()


# ---------------------------------------------------------------- folders and the script


def write_events(path: Path, sessions: list[list[str]], day: int = 10, cats: dict | None = None) -> Path:
    rows = []
    for s, items in enumerate(sessions):
        start = pd.Timestamp(f"2024-03-{day:02d}", tz="UTC") + pd.Timedelta(minutes=5 * s)
        rows += [{"sid": f"s{day}-{s}", "item": i, "time": (start + pd.Timedelta(seconds=10 * t)).isoformat(),
                  "cat": (cats or {}).get(i, "")} for t, i in enumerate(items)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def save_model(model, folder: Path, train: dict | None = None) -> Path:
    metrics = {"valid": {"hr@20": 0.5}, "test": {"hr@20": 0.4},
               "data": {"source": "test", "n_items": N_OLD - 1, "truncated": {"max_length": 50}}}
    items = items_table(N_OLD).assign(name=[f"Item {i}" for i in range(1, N_OLD)])
    return save_folder(model, folder, items, metrics=metrics, train=train or {"seed": 0, "data_source": "test"},
                       card="# card\n")


def run_script(*args) -> int:
    return update_script.main([str(a) for a in args])


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def sknn_folder(tmp_path):
    a = Sessions.from_lists(random_sessions(300, N_OLD, 0))
    return save_model(fitted("vsknn", a, N_OLD, k=20, sample_size=50), tmp_path / "vsknn"), a


def test_script_grows_the_vocabulary_and_equals_a_refit_end_to_end(tmp_path, sknn_folder):
    folder, a = sknn_folder
    raw = [[f"i{i}" for i in s] for s in random_sessions(80, N_OLD, 1)]
    raw[3:8] = [["i1", "new-a", "new-b"], ["new-b", "i2"], ["new-a", "new-b"], ["i5", "new-a", "new-b"],
                ["new-a", "i7", "new-b", "new-a"]]  # new-a: 5 events, new-b: 5 events
    raw[9] = ["i3", "rare", "i4"]  # "rare": 1 event, below min_item_support, dropped
    events = write_events(tmp_path / "day.csv", raw, cats={"new-a": "c1", "new-b": "c9"})
    before = digest(folder)
    assert run_script("--model", folder, "--events", events, "--out", tmp_path / "v2", "--columns", COLUMNS) == 0
    assert digest(folder) == before  # the input folder is untouched
    model = load_folder(tmp_path / "v2", REGISTRY)
    assert model.vocab.item_ids == [f"i{i}" for i in range(1, N_OLD)] + ["new-a", "new-b"]
    assert model.item_info["category_ids"][-2:] == ["c1", "c9"]
    assert model.item_info["attributes"]["name"] == [f"Item {i}" for i in range(1, N_OLD)] + [None, None]
    # the refit, from the same sessions mapped by hand: new-a = 40, new-b = 41; "rare" dropped from its session
    index = {f"i{i}": i for i in range(1, N_OLD)} | {"new-a": N_OLD, "new-b": N_OLD + 1}
    b = Sessions.from_lists([[index[i] for i in s if i in index] for s in raw])
    refit = fitted("vsknn", concat(a, b), N_OLD + 2, k=20, sample_size=50)
    assert torch.equal(model.score(queries(N_OLD + 2)), refit.score(queries(N_OLD + 2)))
    config = json.loads((tmp_path / "v2" / "config.json").read_text())
    update = config["train"]["updates"][0]
    assert config["train"]["seed"] == 0  # the original training record is kept
    assert (update["events_file"], update["sessions_added"], update["new_items"]) == ("day.csv", 80, 2)
    assert update["events_added"] == len(b.items) and update["events_of_rare_unknown_items_dropped"] == 1
    metrics = json.loads((tmp_path / "v2" / "metrics.json").read_text())
    assert "valid" not in metrics and metrics["before_update"]["valid"] == {"hr@20": 0.5}
    card = (tmp_path / "v2" / "README.md").read_text()
    assert "## Update history" in card and "`day.csv`" in card and "| 80 |" in card
    # a second update from the first's output records both
    events2 = write_events(tmp_path / "day2.csv", [["i1", "i2"], ["new-a", "i4"]], day=11)
    assert run_script("--model", tmp_path / "v2", "--events", events2, "--out", tmp_path / "v3",
                      "--columns", COLUMNS) == 0
    history = json.loads((tmp_path / "v3" / "config.json").read_text())["train"]["updates"]
    assert [u["events_file"] for u in history] == ["day.csv", "day2.csv"]
    assert json.loads((tmp_path / "v3" / "metrics.json").read_text())["before_update"]["valid"] == {"hr@20": 0.5}


def test_neural_folder_update_writes_a_loadable_grown_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("sasrec", N_OLD, {"dim": 8, "n_heads": 2, "n_layers": 1})
    recorded = {"fit": {"train_config": {"lr": 0.002, "batch_size": 8, "n_negatives": 5, "from_a_later_version": 1}}}
    folder = save_model(model, tmp_path / "sasrec", recorded)
    raw = [[f"i{i}" for i in s] for s in random_sessions(40, N_OLD, 1)] + [["fresh", "i1"]] * 5
    events = write_events(tmp_path / "day.csv", raw)
    assert run_script("--model", folder, "--events", events, "--out", tmp_path / "v2", "--columns", COLUMNS,
                      "--epochs", "1") == 0
    grown = load_folder(tmp_path / "v2", REGISTRY)
    assert grown.n_items == N_OLD + 1 and grown.vocab.item_ids[-1] == "fresh"
    assert grown.pos_emb.weight.shape == model.pos_emb.weight.shape
    update = json.loads((tmp_path / "v2" / "config.json").read_text())["train"]["updates"][0]
    assert update["epochs"] == 1 and update["method"].startswith("warm start")
    # the folder's training settings, at a tenth of the rate (an unknown setting is ignored)
    assert (update["lr"], update["batch_size"], update["settings_from"]) == (0.0002, 8, "the folder's training record")


@pytest.mark.parametrize("content,message", [
    ("", "empty"),
    ("sid,item,time,cat\n", "no data rows"),
    ("session,product,when\ns1,i1,2024-03-10T00:00:00Z\n", "missing column"),
    ("sid,item,time,cat\ns1,i1,not a time,\n", "time"),
])
def test_hostile_event_files_fail_with_one_line_and_write_nothing(tmp_path, sknn_folder, capsys, content, message):
    folder, _ = sknn_folder
    events = tmp_path / "bad.csv"
    events.write_text(content)
    assert run_script("--model", folder, "--events", events, "--out", tmp_path / "v2", "--columns", COLUMNS) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err.lower() and "Traceback" not in err
    assert not (tmp_path / "v2").exists()


def test_all_unknown_items_become_new_items_or_fail_clearly_when_too_rare(tmp_path, sknn_folder, capsys):
    folder, _ = sknn_folder
    rare = write_events(tmp_path / "rare.csv", [["x1", "x2"], ["x3", "x4"]])
    assert run_script("--model", folder, "--events", rare, "--out", tmp_path / "v2", "--columns", COLUMNS) == 2
    err = capsys.readouterr().err
    assert "no new session left" in err and "4 items not in the model" in err
    assert run_script("--model", folder, "--events", rare, "--out", tmp_path / "v2", "--columns", COLUMNS,
                      "--min-item-support", "1") == 0
    model = load_folder(tmp_path / "v2", REGISTRY)
    assert model.vocab.item_ids[-4:] == ["x1", "x2", "x3", "x4"]
    ids, _ = recsys.recommend(model, model.vocab.encode(["x1"]), k=3, exclude_seen=True)
    assert model.vocab.decode(ids)[0] == "x2"  # the new session is a neighbour


def test_out_safety(tmp_path, sknn_folder, capsys):
    folder, _ = sknn_folder
    events = write_events(tmp_path / "day.csv", [["i1", "i2"], ["i2", "i3"]])
    before = digest(folder)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    holder = tmp_path / "holder"
    holder.mkdir()
    inner_events = write_events(holder / "day.csv", [["i1", "i2"]])
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refused = [(folder, events, "model folder"), (folder / "sub", events, "inside it"), (other, events, "not empty"),
               (holder, inner_events, "holds the input"), (tmp_path / "link", events, "symbolic link")]
    for out, ev, why in refused:
        assert run_script("--model", folder, "--events", ev, "--out", out, "--columns", COLUMNS) == 2, out
        assert why in capsys.readouterr().err
    assert digest(folder) == before and (other / "keep.txt").read_text() == "mine"
    assert not (folder / "sub").exists() and not (tmp_path / "elsewhere").exists()
    # a previous output (a model folder) is replaced whole
    out = tmp_path / "v2"
    assert run_script("--model", folder, "--events", events, "--out", out, "--columns", COLUMNS) == 0
    assert run_script("--model", folder, "--events", events, "--out", out, "--columns", COLUMNS) == 0
    assert len(json.loads((out / "config.json").read_text())["train"]["updates"]) == 1
