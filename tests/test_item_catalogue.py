"""Readable item catalogues: the synthetic shop's names, `prepare_data.py --items` for every kind of source, and
items.json's "attributes" written by save_folder and checked by load_folder."""

import gzip
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import Dataset
from recsys.datasets.generic import read_item_catalogue
from recsys.datasets.schema import DataError
from recsys.datasets.synthetic import (
    SyntheticConfig,
    _World,
    generate_catalogue,
    generate_events,
    generate_retailrocket_log,
)
from recsys.datasets.synthetic_catalogue import COLOURS, DEPARTMENTS, SEP
from recsys.folder import ModelFolderError, load_folder, save_folder
from recsys.iteminfo import ATTRIBUTES, MAX_CHARS, item_attributes, item_label
from recsys.models import REGISTRY
from recsys.models.pop import Pop, PopConfig
from recsys.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_events": 4000, "n_items": 300, "n_categories": 24, "seed": 11, "chunk_events": 1500}
# Digests of the generator's output for SMALL, computed before the catalogue was added (commit f12f9ed):
# names come from their own random stream, so not one simulated event may change.
EVENTS_CSV_SHA256 = "072e1f9bee7155c2071b67bec43086a295fe0bb133b0106253b8bae83ff6da05"
RAW_FILES_SHA256 = {
    "events": "e419f76dfab339004eafe4ce4618ddba399d8d91c2625917f22be8525f113327",
    "item_properties_part1": "13410e3bebcfa9333cafa6108781dd4078096eb5c961377cb276d2a54c0c55cb",
    "item_properties_part2": "5225f07645a02485861106c337ec41512a37f5779e8b74946e3f1cf906a58403",
    "category_tree": "e7e350eec0526cd92497d9bcb7ce64e32533d24284604cc2731f035ce6e42dea",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare_main():
    """scripts/prepare_data.py's main(), run in this process."""
    spec = importlib.util.spec_from_file_location("prepare_data_script", ROOT / "scripts" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return module.main


# --- the synthetic shop ---------------------------------------------------------------------------------------

def test_events_are_exactly_what_they_were_before_the_catalogue(tmp_path):
    assert sha256(generate_events(**SMALL).to_csv(index=False).encode()) == EVENTS_CSV_SHA256
    paths = generate_retailrocket_log(tmp_path, with_items=True, **SMALL)
    assert {k: sha256(paths[k].read_bytes()) for k in RAW_FILES_SHA256} == RAW_FILES_SHA256
    written, counts = read_item_catalogue(paths["items"])  # its columns are named as the attributes
    pd.testing.assert_frame_equal(written, generate_catalogue(**SMALL), check_dtype=False)
    assert counts == {"rows": 300, "duplicates": 0, "cut": 0}


@pytest.mark.parametrize("overrides", [{}, {"n_items": 20_000, "n_categories": 300, "n_events": 1_000, "seed": 4}],
                         ids=["default", "more roots than departments"])
def test_names_unique_deterministic_and_complete(overrides):
    catalogue = generate_catalogue(**overrides)
    config = SyntheticConfig(**overrides)
    assert len(catalogue) == config.n_items and catalogue["item_id"].is_unique
    assert catalogue["name"].is_unique
    assert catalogue[["name", "category", "price", "brand"]].notna().all().all()
    assert catalogue["name"].str.len().max() < 100 and not catalogue["name"].str.contains(r"\s\s|^\s|\s$").any()
    assert catalogue["price"].str.fullmatch(r"[1-9]\d*\.\d\d").all()
    assert catalogue["category"].str.count(SEP).ge(2).all()
    pd.testing.assert_frame_equal(catalogue, generate_catalogue(**overrides))
    other = generate_catalogue(**{**overrides, "seed": config.seed + 1})
    assert (other["name"] != catalogue["name"]).mean() > 0.5


def test_names_fit_their_category():
    """Each item's noun is one of its leaf's nouns (shoes in a shoes leaf), its brand is its department's, and
    it has a colour exactly when its leaf's products come in colours; except the ~1% of items whose category
    property moved to a related leaf later, which keep the name of the leaf they were made for."""
    config = SyntheticConfig()
    catalogue = generate_catalogue()
    props = _World(config).item_properties().query("property == 'categoryid'")
    moved = set(props.loc[props["itemid"].duplicated(), "itemid"].astype(str))
    kinds = {}
    for dept in DEPARTMENTS:
        for leaf in dept.leaves:
            middle, last = leaf.path.split(SEP)
            kinds[(dept.name, middle, last.lower())] = (dept, leaf)
    checked = 0
    for row in catalogue.itertuples():
        if row.item_id in moved:
            continue
        root, middle, last = row.category.split(SEP)
        dept_name = next(d.name for d in DEPARTMENTS if root == d.name or root.endswith(d.name.lower()))
        dept, leaf = next(v for (d, m, name), v in kinds.items()
                          if d == dept_name and m == middle and last.lower().endswith(name))
        assert any(re.search(rf"(^| ){re.escape(noun.lower())},", row.name.lower()) for noun in leaf.nouns), row
        assert row.brand in dept.brands
        assert (pd.isna(row.colour)) == (leaf.variants is not None)
        assert row.colour is pd.NA or row.colour in COLOURS
        checked += 1
    assert checked >= 0.97 * len(catalogue) and 0 < len(moved) < 0.03 * len(catalogue)
    example = catalogue[catalogue["name"] == "Trail running shoes, graphite"]  # the README's example
    assert example["category"].tolist() == ["Sports › Running › Shoes"]


def test_vocabulary_cannot_repeat_a_name():
    """Every edition-0 name a leaf kind can make differs from every other leaf kind's: nouns are never shared
    and no list holds a repeat (a comma inside a value, e.g. "2,500 sheets", would split it)."""
    nouns = [n for d in DEPARTMENTS for leaf in d.leaves for n in leaf.nouns]
    assert len(nouns) == len(set(nouns))
    names = set()
    total = 0
    for dept in DEPARTMENTS:
        assert len(set(dept.brands)) == len(dept.brands) and len(set(dept.qualifiers)) == len(dept.qualifiers)
        for leaf in dept.leaves:
            for words in (leaf.nouns, leaf.adjectives, leaf.variants or COLOURS):
                assert len(set(words)) == len(words) and all(w and w == w.strip() for w in words), leaf.path
            lo, hi = leaf.price
            assert 0 < lo < hi
            for a in leaf.adjectives:
                for n in leaf.nouns:
                    for v in leaf.variants or COLOURS:
                        names.add(f"{a} {n}, {v}".lower())
                        total += 1
    assert len(names) == total


def test_synthetic_source_carries_the_catalogue_into_items_parquet_and_model_folders(tmp_path, capsys):
    main = prepare_main()
    assert main(["--source", "synthetic", "--n-events", "4000", "--seed", "11", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    data = Dataset.load(tmp_path / "d")
    n = len(data.items)
    assert f"item catalogue synthetic: {n:,} of {n:,} items have a name" in out
    catalogue = generate_catalogue(n_events=4000, seed=11).set_index("item_id")
    for name in ("name", "category", "price", "brand", "colour"):
        expected = catalogue.loc[data.items["item_id"], name].reset_index(drop=True)
        pd.testing.assert_series_equal(data.items[name], expected, check_names=False, check_dtype=False)
    assert data.meta["catalogue"]["matched"] == n
    # the same catalogue read from the raw files the generator writes, through the retailrocket source
    paths = generate_retailrocket_log(tmp_path / "raw", with_items=True, n_events=4000, seed=11)
    raw = [paths[k] for k in ("events", "item_properties_part1", "item_properties_part2", "category_tree")]
    via_file = prepare("retailrocket", raw, items=paths["items"])
    joined = data.items.merge(via_file.items, on="item_id", suffixes=("", "_file"))
    assert len(joined) > 0.9 * n
    for name in ("name", "category", "price", "brand"):
        assert (joined[name] == joined[f"{name}_file"]).all()
    # into a model folder and back
    model = Pop(PopConfig(), data.n_items)
    loaded = load_folder(save_folder(model, tmp_path / "pop", data.items), REGISTRY)
    attrs = item_attributes(loaded.item_info)
    first = str(data.items["item_id"][0])
    assert attrs["name"][first] == data.items["name"][0]
    assert item_label(attrs, first) == f"{data.items['name'][0]} ({first})"
    assert len(attrs["name"]) == n and set(attrs) == {"name", "category", "price", "brand", "colour"}


# --- catalogues of real logs ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def log(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A csv event log (the synthetic one under other column names) and its item ids."""
    events = generate_events(**SMALL)
    path = tmp_path_factory.mktemp("log") / "orders.csv"
    pd.DataFrame({"customer": events["user_id"], "sku": events["item_id"],
                  "at": events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).to_csv(path, index=False)
    return path, events


def test_csv_source_with_a_compressed_tsv_catalogue(tmp_path, log, capsys):
    path, events = log
    ids = events["item_id"].value_counts().index.tolist()  # most viewed first: ids[0] survives preparation
    rows = [{"SKU": f" {i} ", "Title": f"Product {i}\twith a tab", "Notes": "x" * 3000 if k == 0 else f"about {i}",
             "Cost": "9.99"} for k, i in enumerate(ids[::2])]
    rows += [{"SKU": "no-such-item", "Title": "Ghost", "Notes": "", "Cost": ""},
             {"SKU": ids[0], "Title": "A repeat, ignored", "Notes": "", "Cost": ""}]
    catalogue = tmp_path / "products.tsv.gz"
    with gzip.open(catalogue, "wt", encoding="utf-8") as f:
        pd.DataFrame(rows).to_csv(f, sep="\t", index=False)
    main = prepare_main()
    code = main(["--source", "csv", "--input", str(path), "--columns", "user_id=customer,item_id=sku,timestamp=at",
                 "--items", str(catalogue), "--item-columns", "item_id=SKU,name=Title,description=Notes,price=Cost",
                 "--out", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert code == 0
    data = Dataset.load(tmp_path / "d")
    named = data.items["name"].notna()
    assert 0 < named.sum() < len(data.items)
    assert f"{named.sum():,} of {len(data.items):,} items have a name" in out
    unmatched = data.meta["catalogue"]["unmatched_rows"]
    assert unmatched >= 1 and f"{unmatched:,} of {len(ids[::2]) + 1:,} catalogue rows matched no item" in out
    assert "1 repeated ids (first row kept)" in out and "1 values cut to 1,000 characters" in out
    first = data.items.set_index("item_id").loc[ids[0]]
    assert first["name"] == f"Product {ids[0]} with a tab"  # the first row won; the tab became a space
    assert len(first["description"]) == MAX_CHARS and first["description"].endswith("…")
    assert first["price"] == "9.99" and pd.isna(data.items.set_index("item_id").loc[ids[1], "name"])
    assert set(data.items.columns) >= {"name", "description", "price"}
    assert str(catalogue) in data.meta["inputs"]


def test_presplit_source_with_a_parquet_catalogue(tmp_path, capsys):
    (tmp_path / "train_sessions.txt").write_text("1 2 3\n2 3 4\n3 4 5 1\n4 5 1 2\n" * 5)
    (tmp_path / "test_pairs.tsv").write_text("prefix\tlabel\n1 2\t3\n3 4\t5\n")
    pd.DataFrame({"id": [1, 2, 3, 9], "title": ["One", "Two", None, "Nine"],
                  "path": ["A › B", "A › C", "A › B", "Z"]}).to_parquet(tmp_path / "items.parquet")
    main = prepare_main()
    code = main(["--source", "sessions", "--input", str(tmp_path / "train_sessions.txt"),
                 str(tmp_path / "test_pairs.tsv"), "--items", str(tmp_path / "items.parquet"),
                 "--item-columns", "item_id=id,name=title,category=path", "--out", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert code == 0
    items = Dataset.load(tmp_path / "d").items.set_index("item_id")
    assert items.loc["1", "name"] == "One" and pd.isna(items.loc["3", "name"]) and pd.isna(items.loc["5", "name"])
    assert items.loc["3", "category"] == "A › B"
    assert "2 of 5 items have a name" in out and "1 of 4 catalogue rows matched no item" in out


BAD_CATALOGUES = [
    ("missing column", "item_id=id,name=title,brand=maker", "missing column", "'maker'"),
    ("unknown attribute", "item_id=id,name=title,flavour=title", "unknown item attribute 'flavour'", "colour"),
    ("no id column", "name=title", "must name the id column", None),
    ("no attribute", "item_id=id", "name no attribute", None),
    ("malformed mapping", "item_id=id,name", "--item-columns must look like", None),
    ("same attribute twice", "item_id=id,name=title,name=id", "names a canonical column twice", None),
]


@pytest.mark.parametrize("case,mapping,message,also", BAD_CATALOGUES, ids=[c[0] for c in BAD_CATALOGUES])
def test_bad_catalogue_mappings_are_refused_with_one_line(tmp_path, capsys, case, mapping, message, also):
    (tmp_path / "train_sessions.txt").write_text("1 2 3\n2 3 4\n" * 10)
    (tmp_path / "test_pairs.tsv").write_text("prefix\tlabel\n1 2\t3\n")
    (tmp_path / "cat.csv").write_text("id,title\n1,One\n")
    main = prepare_main()
    code = main(["--source", "sessions", "--input", str(tmp_path / "train_sessions.txt"),
                 str(tmp_path / "test_pairs.tsv"), "--items", str(tmp_path / "cat.csv"), "--item-columns", mapping,
                 "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and (also is None or also in err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_catalogue_reader_hostile_values(tmp_path):
    path = tmp_path / "cat.csv"
    huge = "é" * 50_000
    path.write_text("item_id,name,description\n"
                    f'7,"Line one\nline two",{huge}\n'
                    "8,\x1b[31mred\x1b[0m  text ,\u2028\n"
                    "9,   ,ok\n", encoding="utf-8")
    with pytest.raises(DataError, match="unterminated quote|line breaks"):
        read_item_catalogue(path)  # a quoted line break is refused by the hardened reader, naming the line
    path.write_text("item_id,name,description\n"
                    f"7,big,{huge}\n"
                    "8,\x1b[31mred\x1b[0m  text ,\u2028\n"
                    "9,   ,ok\n", encoding="utf-8")
    table, counts = read_item_catalogue(path)
    rows = table.set_index("item_id")
    assert len(rows.loc["7", "description"]) == MAX_CHARS and counts["cut"] == 1
    assert rows.loc["8", "name"] == "[31mred [0m text" and pd.isna(rows.loc["8", "description"])
    assert pd.isna(rows.loc["9", "name"]) and rows.loc["9", "description"] == "ok"
    path.write_text("item_id,name\n1,a\n ,b\n")
    with pytest.raises(DataError, match=r"missing value.*line 3"):
        read_item_catalogue(path)
    with pytest.raises(DataError, match="--items"):
        prepare("synthetic", item_columns={"item_id": "x", "name": "y"}, synthetic={"n_events": 500})


# --- items.json -----------------------------------------------------------------------------------------------

N = 6


def items_table() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [f"i{i}" for i in range(1, N)], "category_id": ["c"] * (N - 1), "popularity": np.ones(N - 1, int),
        "name": pd.array(["Kettle", None, "Lamp", "Mug", "Pan"], dtype="string"),
        "price": pd.array(["9.90", "1.00", None, None, None], dtype="string"),
        "colour": pd.array([None] * (N - 1), dtype="string"),  # no item has one: left out of items.json
    })


@pytest.fixture
def folder(tmp_path):
    model = Pop(PopConfig(), N)
    model.counts = torch.arange(N, dtype=torch.float32)
    return save_folder(model, tmp_path / "pop", items_table(), descriptions={"i2": "Second\nitem", "zz": "unknown"})


def test_attributes_round_trip_through_save_and_load(folder):
    info = json.loads((folder / "items.json").read_text())
    assert set(info["attributes"]) == {"name", "price", "description"} and "descriptions" not in info
    assert info["attributes"]["description"] == [None, "Second item", None, None, None]
    attrs = item_attributes(load_folder(folder, REGISTRY).item_info)
    assert attrs == {"name": {"i1": "Kettle", "i3": "Lamp", "i4": "Mug", "i5": "Pan"},
                     "price": {"i1": "9.90", "i2": "1.00"}, "description": {"i2": "Second item"}}
    assert item_label(attrs, "i1") == "Kettle (i1)" and item_label(attrs, "i2") == "i2"


def test_legacy_descriptions_still_load(folder):
    info = json.loads((folder / "items.json").read_text())
    del info["attributes"]
    info["descriptions"] = {"i1": "Old text", "i9": "an id the folder lacks"}
    (folder / "items.json").write_text(json.dumps(info))
    attrs = item_attributes(load_folder(folder, REGISTRY).item_info)
    assert attrs == {"description": {"i1": "Old text", "i9": "an id the folder lacks"}}
    assert item_label(attrs, "i1") == "i1"


HOSTILE = [
    ("not an object", lambda a: ["x"], "field attributes must be an object"),
    ("unknown field", lambda a: {**a, "<script>": [None] * (N - 1)}, "unknown attribute '<script>'"),
    ("wrong length", lambda a: {**a, "name": a["name"][:-1]}, "attributes.name must list one entry per item"),
    ("not a list", lambda a: {**a, "price": "9.90"}, "attributes.price must list one entry per item"),
    ("a number", lambda a: {**a, "price": [9.9] + a["price"][1:]}, "attributes.price must hold a string or null"),
    ("an object", lambda a: {**a, "name": [{"x": 1}] + a["name"][1:]}, "attributes.name must hold a string"),
    ("too long", lambda a: {**a, "name": ["x" * (MAX_CHARS + 1)] + a["name"][1:]},
     f"attributes.name must hold at most {MAX_CHARS} characters"),
    ("control character", lambda a: {**a, "name": ["a\x00b"] + a["name"][1:]},
     "attributes.name must hold text without control characters"),
]


@pytest.mark.parametrize("case,edit,message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_attributes_are_refused_on_load(folder, case, edit, message):
    info = json.loads((folder / "items.json").read_text())
    info["attributes"] = edit(info["attributes"])
    (folder / "items.json").write_text(json.dumps(info))
    with pytest.raises(ModelFolderError, match=re.escape(message)):
        load_folder(folder, REGISTRY)


def test_payload_cleans_what_the_items_table_holds(tmp_path):
    items = items_table()
    items["name"] = pd.array(["x" * 5000, "tab\there", "", None, "ok"], dtype="string")
    model = Pop(PopConfig(), N)
    loaded = load_folder(save_folder(model, tmp_path / "m", items), REGISTRY)  # loads: within every check
    names = loaded.item_info["attributes"]["name"]
    assert len(names[0]) == MAX_CHARS and names[1] == "tab here" and names[2] is None and names[3] is None
    assert set(ATTRIBUTES) >= set(loaded.item_info["attributes"])


def test_default_data_prepared_before_the_catalogue_gets_its_names(tmp_path):
    """A synthetic folder written before names existed: loading the default joins the same catalogue on."""
    from recsys.prepare import load_or_prepare_default

    fresh = prepare("synthetic", out=tmp_path / "d", synthetic={"n_events": 3000, "seed": 2})
    attributes = ["name", "category", "price", "brand", "colour"]
    pd.read_parquet(tmp_path / "d" / "items.parquet").drop(columns=attributes).to_parquet(
        tmp_path / "d" / "items.parquet")
    assert "name" not in Dataset.load(tmp_path / "d").items.columns
    loaded = load_or_prepare_default(tmp_path / "d")
    pd.testing.assert_frame_equal(loaded.items[attributes], fresh.items[attributes])
