"""Hostile model folders: whatever config.json, items.json, the safetensors header or symbolic links say,
`recsys.load` returns a model or raises ModelFolderError naming the file, and allocates no more than the weights
file implies. Plus recommend() refusing float and bool item indices.

How "allocates no more than the weights file implies" is tested: each load runs under an address-space limit
(RLIMIT_AS, soft limit only, restored afterwards) of the process's current size plus HEADROOM. The weights files
here hold a few KB, so a load that sizes anything from an unchecked config number (dim=10**9: gigabytes) hits the
limit at once instead of thrashing; the allocator's MemoryError / "can't allocate memory" RuntimeError then
either escapes (the test fails) or is caught and turned into a ModelFolderError, whose exception chain still holds
it (`raise ... from None` hides the context from tracebacks but keeps it in __context__), and the test fails too.
An address-space limit sees every allocation (torch, numpy, Python objects) without patching anything. Linux only.
"""

import contextlib
import json
import math
import re
import resource
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import recsys
from recsys.data import Dataset
from recsys.folder import ModelFolderError, load_folder, save_folder
from recsys.models import REGISTRY, build_model, recommend
from recsys.sessions import Sessions

N = 20  # vocabulary size with padding: items 1..19
HEADROOM = 256 * 2**20  # the weights here are < 100 KB; a load needs a few MB on top of an imported torch
TEMPLATES = {  # registry key -> small config; each folder is saved once per module, then copied and broken
    "pop": None,
    "itemknn": {"k_neighbors": 3},
    "sasrec": {"dim": 16, "max_len": 8, "n_layers": 1, "n_heads": 2},
    "gru4rec": {"emb_dim": 16, "hidden": 16},
    "sknn": {"k": 5, "sample_size": 20},
}


def items_table(n=N - 1):
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(1, n + 1)], "category_id": ["c"] * n,
                         "popularity": np.ones(n, dtype=int)})


def template_model(name):
    torch.manual_seed(0)
    model = build_model(name, N, TEMPLATES[name])
    if name == "pop":
        model.counts = torch.arange(N, dtype=torch.float32)
    if name == "itemknn":
        rng = np.random.default_rng(0)
        model.neighbors = torch.from_numpy(rng.integers(1, N, (N, 3)).astype(np.int32))
        model.weights, model.popularity = torch.rand(N, 3), torch.arange(N, dtype=torch.float32)
    if name == "sknn":
        rng = np.random.default_rng(0)
        sessions = Sessions.from_lists([rng.integers(1, N, rng.integers(1, 6)) for _ in range(30)])
        model.fit(Dataset(sessions, sessions, sessions, items_table()))
    return model


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("templates")
    folders = {name: save_folder(template_model(name), root / name, items_table()) for name in TEMPLATES}
    for folder in folders.values():  # lazy one-time set-up (kernels, thread pools) happens outside the limit
        recommend(load_folder(folder, REGISTRY), [1, 2], k=3)
    return folders


def _vm_size() -> int:
    return int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


@contextlib.contextmanager
def address_space_limit(extra: int):
    """Lower this process's soft RLIMIT_AS to its current size + `extra` (an unprivileged process may raise a soft
    limit back up to the hard one, so the rest of the test session is unaffected)."""
    if not sys.platform.startswith("linux"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _chain(err: BaseException) -> list[BaseException]:
    out = []
    while err is not None and err not in out:
        out.append(err)
        err = err.__cause__ or err.__context__
    return out


def attempt(folder: Path):
    """recsys.load under the address-space limit: the model, or the ModelFolderError. Anything else fails the
    test, and so does a ModelFolderError that was an allocation failure underneath."""
    with address_space_limit(HEADROOM):
        try:
            return recsys.load(str(folder))
        except ModelFolderError as err:
            failed = [e for e in _chain(err) if isinstance(e, MemoryError) or "allocate" in str(e)]
            assert not failed, f"load tried to allocate beyond the weights file: {failed!r}"
            return err


def copy_of(templates, name, into: Path) -> Path:
    return Path(shutil.copytree(templates[name], into / name))


def edit_json(path: Path, fn):
    if not path.is_file():  # e.g. a link to /dev/zero left by an earlier change
        raise FileNotFoundError(path)
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def set_config(**values):
    return lambda f: edit_json(f / "config.json", lambda c: c["config"].update(values))


def set_top(**values):
    return lambda f: edit_json(f / "config.json", lambda c: c.update(values))


def replace_config_text(old: str, new: str):
    def breaker(f):
        text = json.dumps(json.loads((f / "config.json").read_text()))  # compact, so `old` is predictable
        assert old in text
        (f / "config.json").write_text(text.replace(old, new))
    return breaker


def write_safetensors(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def huge_tensor_small_file(f):
    """A header that declares a 4 TB tensor over 80 bytes of data."""
    write_safetensors(f / "model.safetensors", {"counts": {"dtype": "F32", "shape": [10**12],
                                                           "data_offsets": [0, 4 * 10**12]}}, b"\0" * 80)


def lying_offsets(f):
    """Shape and offsets disagree: 10**12 floats said to fit in 80 bytes."""
    write_safetensors(f / "model.safetensors", {"counts": {"dtype": "F32", "shape": [10**12],
                                                           "data_offsets": [0, 80]}}, b"\0" * 80)


def retensor(key, tensor):
    def breaker(f):
        tensors = load_file(f / "model.safetensors")
        tensors[key] = tensor
        save_file(tensors, f / "model.safetensors")
    return breaker


def deep_config(f):
    edit_json(f / "config.json", lambda c: c.update(config="@"))
    text = (f / "config.json").read_text().replace('"@"', "[" * 100_000 + "]" * 100_000)
    (f / "config.json").write_text(text)


# (case, template, how to break the folder, what the message must name)
HOSTILE = [
    ("sasrec dim=10**9", "sasrec", set_config(dim=10**9), "config field dim"),
    ("sasrec max_len=10**9", "sasrec", set_config(max_len=10**9), "config field max_len"),
    ("sasrec dim=10**10 (overflows a shape)", "sasrec", set_config(dim=10**10), "config field dim"),
    ("sasrec n_heads=0", "sasrec", set_config(n_heads=0), "SASRecConfig.n_heads must be at least 1"),
    ("sasrec n_heads does not divide dim", "sasrec", set_config(n_heads=3), "divisible by n_heads"),
    ("sasrec n_layers=10**6", "sasrec", set_config(n_layers=10**6), "SASRecConfig.n_layers must be between"),
    ("sasrec dim as bool", "sasrec", set_config(dim=True), "SASRecConfig.dim must be an integer, got True"),
    ("sasrec dim negative", "sasrec", set_config(dim=-16), "SASRecConfig.dim must be at least 1"),
    ("sasrec dim as string", "sasrec", set_config(dim="16"), "SASRecConfig.dim must be an integer, got '16'"),
    ("sasrec dim as float", "sasrec", set_config(dim=16.0), "SASRecConfig.dim must be an integer"),
    ("sasrec dim beyond 64 bits", "sasrec", set_config(dim=10**30), "SASRecConfig.dim is out of the 64-bit"),
    ("sasrec dropout NaN", "sasrec", set_config(dropout=math.nan), "SASRecConfig.dropout must be a finite number"),
    ("sasrec dropout 1e400", "sasrec", replace_config_text('"dropout": 0.2', '"dropout": 1e400'),
     "SASRecConfig.dropout must be a finite number"),
    ("gru4rec emb_dim=10**9", "gru4rec", set_config(emb_dim=10**9), "config field emb_dim"),
    ("gru4rec hidden=10**9", "gru4rec", set_config(hidden=10**9), "config field hidden"),
    ("gru4rec n_layers=0", "gru4rec", set_config(n_layers=0), "RNNConfig.n_layers must be between 1 and 64"),
    ("gru4rec cell unknown", "gru4rec", set_config(cell="transformer"), "cell must be 'gru' or 'lstm'"),
    ("itemknn k_neighbors as list", "itemknn", set_config(k_neighbors=[3]), "ItemKNNConfig.k_neighbors"),
    ("n_items=10**10", "pop", set_top(n_items=10**10), "items.json lists 19 items .* do not match"),
    ("n_items 1e400", "pop", replace_config_text('"n_items": 20', '"n_items": 1e400'),
     "field n_items must be an integer, got inf"),
    ("n_items as bool", "pop", set_top(n_items=True), "field n_items must be an integer, got True"),
    ("n_items missing", "pop", lambda f: edit_json(f / "config.json", lambda c: c.pop("n_items")),
     "field n_items must be an integer, got None"),
    ("n_items with 5000 digits", "pop", replace_config_text('"n_items": 20', '"n_items": ' + "9" * 5000),
     "config.json is not valid JSON"),
    ("config null", "sasrec", set_top(config=None), "field config must be a JSON object .* got None"),
    ("config a list", "sasrec", set_top(config=[16]), "field config must be a JSON object"),
    ("config nested 100k deep", "sasrec", deep_config, "config.json is nested too deeply"),
    ("config.json of 2 MB", "pop", set_top(train={"padding": "x" * 2_000_000}), "config.json is over"),
    ("model name a list", "pop", set_top(model=["pop"]), "names model .* not one of"),
    ("format_version true", "pop", set_top(format_version=True), "format_version True"),
    ("header declares a 4 TB tensor in 80 bytes", "pop", huge_tensor_small_file, "model.safetensors is corrupt"),
    ("header offsets lie about the shape", "pop", lying_offsets, "model.safetensors is corrupt"),
    ("weights of a bigger model", "pop", retensor("counts", torch.zeros(5000)),
     r"model.safetensors holds counts as \(5000,\)"),
    ("weights with an extra dimension", "pop", retensor("counts", torch.zeros(N, 2)), "holds counts as"),
    ("neighbour table with another item count", "itemknn", retensor("neighbors", torch.zeros(N + 1, 3,
                                                                                             dtype=torch.int32)),
     "holds neighbors as"),
    ("weights of an unsupported dtype", "pop", retensor("counts", torch.zeros(N, dtype=torch.complex64)),
     "unsupported dtype|corrupt"),
    ("neighbour id beyond the catalogue", "itemknn",
     retensor("neighbors", torch.full((N, 3), 10**6, dtype=torch.int32)), "neighbors holds values outside 0..19"),
    ("negative neighbour id", "itemknn", retensor("neighbors", torch.full((N, 3), -3, dtype=torch.int32)),
     "neighbors holds values outside"),
    ("neighbour ids as floats", "itemknn", retensor("neighbors", torch.ones(N, 3)), "neighbors must hold integers"),
    ("session offsets that do not rise", "sknn", retensor("session_offsets", torch.zeros(31, dtype=torch.int64)),
     "session_offsets must rise from 0"),
    ("stored session pointing past the sessions", "sknn",
     lambda f: retensor("item_sessions", load_file(f / "model.safetensors")["item_sessions"] + 1000)(f),
     "item_sessions holds values outside"),
    ("duplicate item id", "pop", lambda f: edit_json(f / "items.json", lambda v: v["item_ids"].__setitem__(5, "i1")),
     "items.json field item_ids: duplicate item ids in vocabulary: 'i1' appears 2 times"),
    ("item id as a list", "pop", lambda f: edit_json(f / "items.json", lambda v: v["item_ids"].__setitem__(0, [1])),
     "items.json field item_ids must hold an id"),
    ("popularity of another length", "pop", lambda f: edit_json(f / "items.json", lambda v: v["popularity"].pop()),
     "items.json field popularity must list one entry per item"),
    ("popularity as strings", "pop",
     lambda f: edit_json(f / "items.json", lambda v: v["popularity"].__setitem__(3, "many")),
     "items.json field popularity must hold a count"),
    ("negative popularity", "pop", lambda f: edit_json(f / "items.json", lambda v: v["popularity"].__setitem__(3, -1)),
     "items.json field popularity"),
    ("category ids not a list", "pop", lambda f: edit_json(f / "items.json", lambda v: v.update(category_ids=7)),
     "items.json field category_ids must list one entry per item"),
    ("category id as a dict", "pop",
     lambda f: edit_json(f / "items.json", lambda v: v["category_ids"].__setitem__(0, {})),
     "items.json field category_ids must hold"),
    ("descriptions a list", "pop", lambda f: edit_json(f / "items.json", lambda v: v.update(descriptions=["x"])),
     "items.json field descriptions"),
    ("items.json nested 100k deep", "pop",
     lambda f: (f / "items.json").write_text('{"item_ids": ' + "[" * 100_000 + "]" * 100_000 + "}"),
     "items.json is nested too deeply"),
]


@pytest.mark.parametrize("case,template,breaker,message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_folder_gives_model_folder_error(templates, tmp_path, case, template, breaker, message):
    folder = copy_of(templates, template, tmp_path)
    breaker(folder)
    result = attempt(folder)
    assert isinstance(result, ModelFolderError), f"{case}: loaded"
    assert re.search(message, str(result)), str(result)


def test_the_limit_catches_an_allocation_from_a_config_number(templates, tmp_path):
    """The guard itself: inside the limit, allocating what dim=10**9 asks for fails at once."""
    with address_space_limit(HEADROOM), pytest.raises(RuntimeError, match="allocate"):
        torch.nn.Embedding(N, 10**9)


def test_data_sized_dimensions_come_from_the_weights(templates, tmp_path):
    """A dimension registered empty (neighbours per item) is sized by the file; the others follow the config."""
    folder = copy_of(templates, "itemknn", tmp_path)
    retensor("neighbors", torch.ones(N, 7, dtype=torch.int32))(folder)
    retensor("weights", torch.rand(N, 7))(folder)
    model = attempt(folder)
    assert not isinstance(model, ModelFolderError), model
    assert model.neighbors.shape == (N, 7)


# --- symbolic links ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "items.json", "metrics.json"])
def test_link_to_a_file_outside_the_folder_is_refused(templates, tmp_path, name):
    folder = copy_of(templates, "pop", tmp_path)
    outside = tmp_path / "elsewhere" / name
    outside.parent.mkdir()
    (folder / name).rename(outside)
    (folder / name).symlink_to(outside)
    with pytest.raises(ModelFolderError, match=f"{re.escape(name)} is a symbolic link to .*outside the model"):
        load_folder(folder, REGISTRY)


def test_link_inside_the_folder_loads(templates, tmp_path):
    folder = copy_of(templates, "pop", tmp_path)
    (folder / "store").mkdir()
    (folder / "items.json").rename(folder / "store" / "items.json")
    (folder / "items.json").symlink_to(Path("store") / "items.json")
    assert load_folder(folder, REGISTRY).n_items == N


@pytest.mark.parametrize("target", ["dangling", "loop", "folder", "/dev/zero"])
def test_link_to_nothing_readable_is_refused(templates, tmp_path, target):
    folder = copy_of(templates, "pop", tmp_path)
    link = folder / "items.json"
    link.unlink()
    link.symlink_to({"dangling": folder / "gone.json", "loop": link, "folder": folder}.get(target, Path(target)))
    with pytest.raises(ModelFolderError, match="missing"):
        load_folder(folder, REGISTRY)


def test_hub_cache_links_into_its_blobs_are_allowed(templates, tmp_path, monkeypatch):
    """The Hub cache keeps files as links from snapshots/<commit>/ into blobs/: recsys.load accepts those."""
    repo = tmp_path / "cache" / "models--user--repo"
    snapshot = repo / "snapshots" / ("0" * 40) / "pop"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in templates["pop"].iterdir():
        blob = repo / "blobs" / f"blob-{file.name}"
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(Path("../../..") / "blobs" / blob.name)
    import recsys.hub

    monkeypatch.setattr(recsys.hub, "download", lambda repo_id, revision=None: snapshot)
    assert recsys.load("user/repo/pop").n_items == N
    with pytest.raises(ModelFolderError, match="outside the model folder"):
        load_folder(snapshot, REGISTRY)  # without the Hub's blobs/ as an allowed place


# --- recommend(): only integers are item indices ----------------------------------------------------------------

@pytest.fixture(scope="module")
def pop_model(templates):
    return load_folder(templates["pop"], REGISTRY)


BAD_INDICES = [
    ("float list", [1.0, 2.0]),
    ("fractional float", [1.7]),
    ("mixed int and float", [1, 2.5]),
    ("numpy float array", np.array([1.0, 2.0])),
    ("numpy float32 array", np.array([3], dtype=np.float32)),
    ("bool list", [True, False]),
    ("int and bool", [1, True]),
    ("numpy bool array", np.array([True, True])),
    ("strings", ["1", "2"]),
    ("None", [1, None]),
    ("batch with a float session", [[1, 2], [3.0]]),
    ("batch of numpy float arrays", [np.array([1.0]), np.array([2.0])]),
    ("batch with a bool array", [np.array([1, 2]), np.array([True])]),
    ("batch with bools", [[1], [True]]),
]


@pytest.mark.parametrize("case,history", BAD_INDICES, ids=[c[0] for c in BAD_INDICES])
def test_recommend_refuses_non_integer_indices(pop_model, case, history):
    with pytest.raises(TypeError, match="item indices must be integers"):
        recommend(pop_model, history, k=3)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_recommend_takes_any_integer_dtype(pop_model, dtype):
    expected = recommend(pop_model, [1, 2], k=3)[0]
    assert recommend(pop_model, np.array([1, 2], dtype=dtype), k=3)[0].tolist() == expected.tolist()
    assert recommend(pop_model, [np.array([1, 2], dtype=dtype), [3]], k=3)[0][0].tolist() == expected.tolist()
    assert recommend(pop_model, [dtype(1), dtype(2)], k=3)[0].tolist() == expected.tolist()


def test_recommend_refuses_indices_beyond_64_bits(pop_model):
    with pytest.raises(ValueError, match="out of range"):
        recommend(pop_model, [1, 10**30], k=3)
    with pytest.raises(ValueError, match="out of range"):
        recommend(pop_model, np.array([2**64 - 1], dtype=np.uint64), k=3)


def test_recommend_refuses_bool_k(pop_model):
    with pytest.raises(ValueError, match="positive integer"):
        recommend(pop_model, [1], k=True)


# --- the property: random folders load or raise ModelFolderError, within the limit ------------------------------

HOSTILE_VALUES = st.one_of(
    st.sampled_from([0, 1, -1, 2, 3, 8, 16, 64, 10**9, 10**10, 2**63, -(2**63) - 1, 10**30, True, False, None,
                     0.5, 16.0, math.inf, -math.inf, math.nan, "16", "", "gru", "div", [], {}, [16], {"a": 1}]),
    st.integers(), st.floats(), st.text(max_size=4),
    st.lists(st.integers(-2, 30), max_size=3),
)
SHAPES = st.lists(st.sampled_from([0, 1, 2, 3, 8, 16, N - 1, N, N + 1, 48]), max_size=3).map(tuple)
DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
                          torch.int8, torch.uint8, torch.bool])
RAW_CONFIGS = st.sampled_from([
    "", "{", "null", "[]", '{"format_version": 1e400}', '{"n_items": ' + "9" * 5000 + "}",
    '{"config": ' + "[" * 50_000 + "]" * 50_000 + "}", '{"format_version": NaN}', "\ufeff{}",
])


@st.composite
def mutations(draw, template: str):
    """One way to break a folder, as (kind, details) for the failure report, and a function applying it."""
    kind = draw(st.sampled_from(["config field", "config top", "config text", "weights", "raw header", "items",
                                 "symlink"]))
    if kind == "config field":
        key = draw(st.sampled_from(sorted(REGISTRY[template].Config.__dataclass_fields__) + ["unknown_key"]))
        value = draw(HOSTILE_VALUES)
        return (kind, key, value), set_config(**{key: value})
    if kind == "config top":
        key = draw(st.sampled_from(["n_items", "config", "model", "format_version", "train"]))
        if draw(st.booleans()):
            return (kind, "delete", key), lambda f: edit_json(f / "config.json", lambda c: c.pop(key, None))
        value = draw(st.one_of(HOSTILE_VALUES, st.sampled_from(list(REGISTRY))))
        return (kind, key, value), set_top(**{key: value})
    if kind == "config text":
        text = draw(RAW_CONFIGS)
        return (kind, text[:40]), lambda f: (f / "config.json").write_text(text)
    if kind == "weights":
        action = draw(st.sampled_from(["drop", "add", "reshape"]))
        shape, dtype, pick = draw(SHAPES), draw(DTYPES), draw(st.integers(0, 100))
        value = draw(st.sampled_from(["zeros", "ones", "random"]))
        seed = draw(st.integers(0, 2**16))

        def fill():  # integers from -3 to 2 N: in range for some tables, not for others
            if value == "random":
                return torch.randint(-3, 2 * N, shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
            return (torch.zeros if value == "zeros" else torch.ones)(shape, dtype=dtype)

        def breaker(f):
            if not (f / "model.safetensors").is_file():
                raise FileNotFoundError(f / "model.safetensors")
            tensors = load_file(f / "model.safetensors")
            key = sorted(tensors)[pick % len(tensors)]
            if action == "drop" and len(tensors) > 1:
                del tensors[key]
            elif action == "add":
                tensors["extra.weight"] = fill()
            else:
                tensors[key] = fill()
            save_file(tensors, f / "model.safetensors")
        return (kind, action, pick, shape, dtype, value), breaker
    if kind == "raw header":
        shape = draw(st.lists(st.sampled_from([0, 1, N, 10**6, 10**12, 2**62]), min_size=1, max_size=3))
        data = draw(st.integers(0, 200))
        key = draw(st.sampled_from(["counts", "item_emb.weight", "neighbors", "x"]))
        end = draw(st.sampled_from([data, 4 * math.prod(shape)]))
        header = {key: {"dtype": draw(st.sampled_from(["F32", "I64", "BOOL", "F8_E4M3"])), "shape": shape,
                        "data_offsets": [0, end]}}
        return (kind, header, data), lambda f: write_safetensors(f / "model.safetensors", header, b"\0" * data)
    if kind == "items":
        key = draw(st.sampled_from(["item_ids", "category_ids", "popularity", "descriptions"]))
        how = draw(st.sampled_from(["whole", "one", "duplicate", "drop"]))
        value, at = draw(HOSTILE_VALUES), draw(st.integers(0, N - 2))

        def change(v):
            if how == "whole":
                v[key] = value
            elif how == "drop":
                v.pop(key, None)
            elif how == "duplicate" and isinstance(v.get(key), list):
                v[key][at] = v[key][0]
            elif isinstance(v.get(key), list):
                v[key][at] = value
        return (kind, key, how, value, at), lambda f: edit_json(f / "items.json", change)
    name = draw(st.sampled_from(["config.json", "model.safetensors", "items.json", "metrics.json"]))
    target = draw(st.sampled_from(["outside", "inside", "dangling", "loop", "folder", "/dev/zero"]))

    def relink(f):
        link = f / name
        if target in ("outside", "inside"):
            place = (f.parent / "outside" if target == "outside" else f / "inside") / name
            place.parent.mkdir(exist_ok=True)
            link.rename(place)
        else:
            place = {"dangling": f / "gone", "loop": link, "folder": f}.get(target, Path(target))
            link.unlink(missing_ok=True)
        link.symlink_to(place)
    return (kind, name, target), relink


REASONS = ("symbolic link", "not a model folder", "config.json", "items.json", "model.safetensors", "metrics.json")


@st.composite
def hostile_folders(draw):
    template = draw(st.sampled_from(sorted(TEMPLATES)))
    return template, draw(st.lists(mutations(template), min_size=1, max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hostile_folders())
def test_random_folders_load_or_raise_model_folder_error(templates, case):
    template, changes = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = copy_of(templates, template, Path(tmp))
        for _, apply in changes:
            # an earlier change may leave nothing to change (a dangling link, a corrupt file): keep it as it is
            with contextlib.suppress(OSError, ValueError, LookupError, TypeError, AttributeError, RecursionError,
                                     SafetensorError):
                apply(folder)
        result = attempt(folder)
        event("loaded" if not isinstance(result, ModelFolderError) else "refused: " + next(
            (w for w in REASONS if w in str(result)), "other"))
        if not isinstance(result, ModelFolderError):  # it loaded: then it serves every item, and a long session
            ids, _ = recommend(result, [[i] for i in range(1, N)] + [list(range(1, N)) * 3], k=3)
            assert ids.shape[0] == N and 0 not in ids
