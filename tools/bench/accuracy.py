"""Suite "accuracy": the tuned models on the published splits, beside the ANCHORS.md rows."""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tools.bench.common import (
    PARAMS_DIR,
    ROOT,
    Options,
    Timer,
    check,
    plain_items,
    read_json,
    results_path,
    update_json,
)

# suite: accuracy against the published anchors


@dataclass(frozen=True)
class DataSpec:
    source: str  # recsys.prepare source
    inputs: tuple[str, ...]  # relative to shared/data
    protocol: str
    main_k: int  # the K the anchors report
    skip: str | None = None
    # Data.with_valid_in_train takes the validation sequences as the refit data when valid and test cover the
    # same users; on the partial ML-1M split they cover 512 of 6,040 users, so its baselines are not refitted.
    refit: bool = True
    # rank only items not already in the prefix (RunConfig.exclude_seen, for validation in training too): the
    # published protocol where a log never repeats an item (ML-1M: no user rates a film twice)
    exclude_seen: bool = False
    # relative to shared/data: the files the items' category_id is read from (by `category_reader`, called with
    # their paths and the item ids), for category-aware models such as lstm-cat: Beauty's S3-Rec item ->
    # attributes file (s3rec_leaf_categories), ML-1M's SASRec id mapping and GroupLens movies.dat (ml1m_genres)
    categories: tuple[str, ...] | None = None
    category_reader: Callable | None = None


ACCURACY_DATASETS = {
    "yoochoose1_64": DataSpec("sessions", ("yoochoose/yoochoose1_64_plain/train_sessions.txt",
                                           "yoochoose/yoochoose1_64_plain/test_pairs.tsv"),
                              "SR-GNN plain split: every prefix of a test session predicts its next item", 20),
    "diginetica": DataSpec("sessions", ("diginetica/plain/train_sessions.txt", "diginetica/plain/test_pairs.tsv"),
                           "SR-GNN plain split: every prefix of a test session predicts its next item", 20),
    # Beauty.txt never repeats a user-item pair (0 of 22,363 validation or test targets is in the user's history,
    # tools/beauty_probe.py), and the published rows remove the user's items before ranking (eSASRec's code,
    # blondered/transformer_benchmark at 2b03992: src/evaluation/common.py:267 filter_viewed=True; its validation
    # callback masks them too, src/models/transformers/trainer.py:86-91); so only wrong answers leave the ranking
    "beauty": DataSpec("sequences", ("s3rec/Beauty.txt",),
                       "leave-one-out: last item of each user is test, second to last validation; items already in "
                       "the user's sequence are excluded from the ranking (Beauty has no repeated user-item pair; "
                       "the published eSASRec and SASRec+SS rows filter them: filter_viewed in their code)", 10,
                       exclude_seen=True, categories=("s3rec/Beauty_item2attributes.json",),
                       category_reader=lambda path, ids: s3rec_leaf_categories(path, ids)),
    "ml-1m": DataSpec("ml-1m-partial", tuple(f"ml-1m/gsasrec_split_partial/{f}.txt" for f in (
                          "train/input", "val/input", "val/output", "test/output")),
                      "leave-one-out evaluated on the 512 users whose whole sequence survives in the partial "
                      "gSASRec split (SOURCES.md 4a, protocol ii); training on every user's sequence but its last "
                      "two items, as standard; items the user already rated are excluded from the ranking (ML-1M "
                      "has no repeated user-item pair; both published setups filter them: filter_seen in "
                      "Klenitskiy and Vasilev's code, filter_rated in gSASRec's); the published rows are over all "
                      "6,040 users", 10, refit=False, exclude_seen=True,
                      categories=("ml-1m/sas_id_mapping/sas_to_original_items.txt", "ml-1m/grouplens_meta/movies.dat"),
                      category_reader=lambda mapping, movies, ids: ml1m_genres(mapping, movies, ids)),
}
# ../shared/data/ANCHORS.md, percent. (name, metrics, source); the "measured" rows are its simple baselines.
ANCHOR_ROWS = {
    "yoochoose1_64": [
        ("GRU4Rec (as run by later papers)", {"hr@20": 60.64, "mrr@20": 22.89}, "paper tables (SR-GNN, AAAI 2019)"),
        ("NARM", {"hr@20": 68.32, "mrr@20": 28.63}, "paper tables"),
        ("SR-GNN", {"hr@20": 70.57, "mrr@20": 30.94}, "SR-GNN paper"),
        ("SGNN-HN", {"hr@20": 72.06, "mrr@20": 32.61}, "SGNN-HN paper (Pan et al., CIKM 2020)"),
        ("GraphFine", {"hr@20": 72.64, "mrr@20": 31.93}, "GraphFine paper (AAAI 2026)"),
        ("Pop", {"hr@10": 4.55, "hr@20": 7.31, "mrr@10": 1.50, "mrr@20": 1.69, "ndcg@10": 2.23, "ndcg@20": 2.92},
         "measured baseline"),
        ("S-Pop", {"hr@10": 28.36, "hr@20": 30.86, "mrr@10": 18.27, "mrr@20": 18.45, "ndcg@10": 20.72,
                   "ndcg@20": 21.36}, "measured baseline"),
        ("sequential rules", {"hr@10": 57.57, "hr@20": 66.80, "mrr@10": 29.60, "mrr@20": 30.25, "ndcg@10": 36.26,
                              "ndcg@20": 38.60}, "measured baseline"),
        ("item-kNN", {"hr@10": 41.96, "hr@20": 50.72, "mrr@10": 20.86, "mrr@20": 21.48, "ndcg@10": 25.83,
                      "ndcg@20": 28.06}, "measured baseline"),
        ("V-SKNN", {"hr@10": 55.60, "hr@20": 66.51, "mrr@10": 26.48, "mrr@20": 27.26, "ndcg@10": 33.40,
                    "ndcg@20": 36.17}, "measured baseline"),
    ],
    "diginetica": [
        ("SR-GNN", {"hr@20": 50.73, "mrr@20": 17.59}, "SR-GNN paper"),
        ("GCE-GNN", {"hr@20": 54.22, "mrr@20": 19.04}, "GCE-GNN paper (SIGIR 2020)"),
        ("SGNN-HN", {"hr@20": 55.67, "mrr@20": 19.45}, "SGNN-HN paper (Pan et al., CIKM 2020)"),
        ("Mssen", {"hr@20": 55.17, "mrr@20": 19.64}, "Mssen paper (LREC-COLING 2024)"),
        ("Pop", {"hr@10": 0.58, "hr@20": 0.93, "mrr@10": 0.19, "mrr@20": 0.21, "ndcg@10": 0.28, "ndcg@20": 0.36},
         "measured baseline"),
        ("S-Pop", {"hr@10": 20.68, "hr@20": 21.08, "mrr@10": 13.62, "mrr@20": 13.65, "ndcg@10": 15.35,
                   "ndcg@20": 15.46}, "measured baseline"),
        ("sequential rules", {"hr@10": 30.98, "hr@20": 40.49, "mrr@10": 13.42, "mrr@20": 14.08, "ndcg@10": 17.54,
                              "ndcg@20": 19.94}, "measured baseline"),
        ("item-kNN", {"hr@10": 25.38, "hr@20": 35.04, "mrr@10": 10.30, "mrr@20": 10.98, "ndcg@10": 13.82,
                      "ndcg@20": 16.27}, "measured baseline"),
        ("V-SKNN", {"hr@10": 38.79, "hr@20": 50.93, "mrr@10": 17.11, "mrr@20": 17.96, "ndcg@10": 22.21,
                    "ndcg@20": 25.28}, "measured baseline"),
    ],
    "beauty": [
        ("SASRec, sampled softmax", {"hr@10": 9.21, "ndcg@10": 5.31}, "eSASRec repository README"),
        ("eSASRec", {"hr@10": 9.28, "ndcg@10": 5.23}, "eSASRec repository README"),
        ("Pop", {"hr@10": 1.06, "hr@20": 1.95, "mrr@10": 0.34, "mrr@20": 0.39, "ndcg@10": 0.51, "ndcg@20": 0.73},
         "measured baseline"),
        ("sequential rules", {"hr@10": 7.30, "hr@20": 9.33, "mrr@10": 3.85, "mrr@20": 3.99, "ndcg@10": 4.66,
                              "ndcg@20": 5.17}, "measured baseline"),
        ("item-kNN", {"hr@10": 5.41, "hr@20": 7.07, "mrr@10": 2.76, "mrr@20": 2.88, "ndcg@10": 3.38,
                      "ndcg@20": 3.80}, "measured baseline"),
    ],
    "ml-1m": [
        ("SASRec, full softmax CE", {"hr@10": 31.52, "ndcg@10": 18.21}, "Klenitskiy and Vasilev, RecSys 2023"),
        ("gSASRec", {"hr@10": 30.03, "ndcg@10": 17.26}, "gSASRec repository README"),
        ("BERT4Rec", {"hr@10": 28.43, "ndcg@10": 15.37}, "Klenitskiy and Vasilev, RecSys 2023"),
    ],
}
# registry key -> the ANCHORS baseline row it corresponds to (same method, independent implementation)
ANCHOR_TWIN = {"pop": "Pop", "spop": "S-Pop", "sr": "sequential rules", "itemknn": "item-kNN", "vsknn": "V-SKNN",
               "gru4rec": "GRU4Rec (as run by later papers)", "sasrec": "SASRec, sampled softmax"}
ACCURACY_METRICS = ("hr@10", "hr@20", "mrr@10", "mrr@20", "ndcg@10", "ndcg@20")
QUICK_LINES = {"sessions": (4_000, 800), "sequences": 1_500}  # train sessions / test pairs; users


def _quick_inputs(opts: Options, name: str, spec: DataSpec) -> list[str]:
    """Small slices of the real files: the last training sessions and the first test pairs (or the first users)."""
    folder = opts.work_dir / "quick-data" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = [opts.shared_data / p for p in spec.inputs]
    out = []
    if spec.source == "sessions":
        n_train, n_test = QUICK_LINES["sessions"]
        train_lines = paths[0].read_text().splitlines()[-n_train:]
        test_lines = paths[1].read_text().splitlines()[: n_test + 1]
        for path, lines in ((folder / paths[0].name, train_lines), (folder / paths[1].name, test_lines)):
            path.write_text("\n".join(lines) + "\n")
            out.append(str(path))
    else:
        path = folder / paths[0].name
        path.write_text("\n".join(paths[0].read_text().splitlines()[: QUICK_LINES["sequences"]]) + "\n")
        out.append(str(path))
    return out


def _accuracy_data(opts: Options, name: str, spec: DataSpec):
    data = _prepared_data(opts, name, spec)
    paths = [opts.shared_data / p for p in spec.categories or ()]
    if paths and all(p.is_file() for p in paths):
        data.items["category_id"] = spec.category_reader(*paths, data.items["item_id"])
    return data


def ml1m_genres(mapping_path: Path, movies_path: Path, item_ids):
    """Each SASRec ML-1M item's genres from GroupLens movies.dat, through asash's recovered id mapping
    (SOURCES.md 4b: `sas_to_original_items.txt`, "SASRec id original id" a line; movies.dat, "id;title;genres"
    or GroupLens's "::" layout, latin-1), NA where a film is missing. The category is the film's whole genre list
    ("Comedy|Romance"): movies.dat lists a film's genres in alphabetical order, not by importance, so no single
    genre of the list is the film's main one (299 genre lists over the 3,416 films, every film has one)."""
    import pandas as pd

    original = {}
    for line in Path(mapping_path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            original[parts[0]] = parts[1]
    genres = {}
    for line in Path(movies_path).read_text(encoding="latin-1").splitlines():
        fields = line.split("::" if "::" in line else ";")  # id first, genres last (a title may hold the separator)
        if len(fields) >= 3 and fields[-1].strip():
            genres[fields[0].strip()] = fields[-1].strip()
    return pd.array([genres.get(original.get(str(i), ""), None) for i in item_ids], dtype="string")


def s3rec_leaf_categories(path: Path, item_ids):
    """Each item's leaf category from S3-Rec's `*_item2attributes.json` (item id -> attribute ids), NA where none.

    S3-Rec's data_process.py builds each item's list as its brand (when frequent enough) followed by its category
    path below the top level ("Beauty"), with attribute ids given in order of first appearance. So an attribute
    that sits after the first position in some item's list is a category, one that is only ever first is a brand;
    an item's leaf category is the last category in its list (195 categories over Beauty's 12,101 items).
    """
    import pandas as pd

    from recsys.jsonfile import read_json as read_object

    attributes = read_object(path, 64 << 20)
    lists = {str(k): [int(a) for a in v] for k, v in attributes.items() if isinstance(v, list)}
    categories = {a for v in lists.values() for a in v[1:]}
    leaf = {k: next((str(a) for a in reversed(v) if a in categories), None) for k, v in lists.items()}
    return pd.array([leaf.get(str(i)) for i in item_ids], dtype="string")


def _prepared_data(opts: Options, name: str, spec: DataSpec):
    from recsys.data import Dataset
    from recsys.prepare import prepare

    cache = opts.work_dir / "data" / (name + ("-quick" if opts.quick else ""))
    if (cache / "meta.json").is_file():
        return Dataset.load(cache)
    if spec.source == "ml-1m-partial":
        data = ml1m_partial(*(opts.shared_data / p for p in spec.inputs), max_users=1_500 if opts.quick else None)
        data.save(cache)
        return data
    inputs = _quick_inputs(opts, name, spec) if opts.quick else [str(opts.shared_data / p) for p in spec.inputs]
    return prepare(spec.source, inputs, cache)


def ml1m_partial(train_input: Path, val_input: Path, val_output: Path, test_output: Path,
                 max_users: int | None = None):
    """Standard leave-one-out ML-1M for the 512 users whose whole sequence the partial gSASRec split keeps.

    Per SOURCES.md 4a: line k of train/input and test/output is SASRec user k; train/input holds seq[:-2]
    (seq[:-3] for the 512 validation users), val/input holds seq[:-2] of the validation users (a train line
    plus one item; matched by content), val/output their seq[-2] and test/output every user's seq[-1]. So the
    training sequences of every user are exactly the standard ones; validation and test (seq[-2] from seq[:-2],
    seq[-1] from seq[:-1]) exist for the 512 validation users only. Item indices are the SASRec ids.
    """
    from recsys.data import Dataset
    from recsys.sessions import Sessions

    def lines(path):
        return [[int(t) for t in line.split()] for line in Path(path).read_text().splitlines()]

    train, val_in, val_out, test_out = (lines(p) for p in (train_input, val_input, val_output, test_output))
    row_of = {tuple(seq): row for row, seq in enumerate(train)}
    val_rows = [row_of[tuple(seq[:-1])] for seq in val_in]  # KeyError = not the documented layout
    full = dict(zip(val_rows, val_in))
    users = range(len(train) if max_users is None else min(max_users, len(train)))
    train_seqs = [full.get(u, train[u]) for u in users]
    picked = [(u, seq, out) for u, seq, out in zip(val_rows, val_in, val_out) if u < len(users)]
    valid = Sessions.from_lists([seq + out for _, seq, out in picked])
    test = Sessions.from_lists([seq + out + test_out[u] for u, seq, out in picked])
    n_items = max(max(max(s) for s in train if s), max(max(s) for s in test_out))
    train = Sessions.from_lists(train_seqs)
    meta = {"source": "ml-1m-partial", "protocols": {"train": "all", "valid": "last", "test": "last"},
            "dropped_unknown_items": {}, "users": len(train_seqs), "evaluated_users": len(picked)}
    return Dataset(train, valid, test, plain_items(n_items, train), meta)



def _anchor(name: str, model: str) -> dict:
    return next(values for m, values, _ in ANCHOR_ROWS[name] if m == model)


# The accuracy targets of the issues, percent: (label, pool, selection metric, {metric: target}). The pool is
# "all" (every model), "neural" (models that train in epochs) or a registry key (that model's rows only).
ACCURACY_GOALS = {
    "yoochoose1_64": (("best neural model vs the SR-GNN row", "neural", "mrr@20", _anchor("yoochoose1_64", "SR-GNN")),
                      ("best model vs the goal", "all", "mrr@20", {"hr@20": 71.0, "mrr@20": 32.61}),
                      ("best model vs the best published rows (issue 18)", "all", "mrr@20",
                       {"hr@20": _anchor("yoochoose1_64", "GraphFine")["hr@20"],
                        "mrr@20": _anchor("yoochoose1_64", "SGNN-HN")["mrr@20"]})),
    "diginetica": (("best neural model vs the SR-GNN row", "neural", "mrr@20", _anchor("diginetica", "SR-GNN")),
                   ("best model vs the goal", "all", "mrr@20", _anchor("diginetica", "GCE-GNN")),
                   ("best model vs the best published rows (issue 18)", "all", "mrr@20",
                    {"hr@20": _anchor("diginetica", "SGNN-HN")["hr@20"],
                     "mrr@20": _anchor("diginetica", "Mssen")["mrr@20"]})),
    "beauty": (("best model vs the goal", "all", "ndcg@10", {"hr@10": 9.28, "ndcg@10": 5.31}),
               ("SASRec alone vs issue 15's target", "sasrec", "ndcg@10", {"hr@10": 9.5, "ndcg@10": 5.5})),
    "ml-1m": (("SASRec alone vs the published full-softmax row (issue 15)", "sasrec", "ndcg@10",
               {"hr@10": 31.52, "ndcg@10": 18.21}),),
}
NEURAL_KEYS = ("sasrec", "gru4rec", "lstm", "lstm-bi", "lstm-cat")  # the models issue 15 asks rows of


def current_entry(name: str, d: dict) -> dict:
    """A stored data set entry with the protocol fields of today's spec: a protocol changed since the data
    set's last run applies at once (its older rows are then marked, and left out of choices, as not comparable)."""
    spec = ACCURACY_DATASETS.get(name)
    if spec is None or d.get("skipped"):
        return d
    return {**d, "protocol": spec.protocol, "main_k": spec.main_k, "exclude_seen": spec.exclude_seen}


def comparable_rows(d: dict) -> dict:
    """A data set's tested registry-model rows measured under its protocol (rows that ranked the user's own
    items where the protocol now removes them, or the other way round, are left out)."""
    from recsys.models import REGISTRY

    exclude = bool(d.get("exclude_seen", False))
    return {m: r for m, r in d.get("models", {}).items() if "test_scaled" in r and m.split("@")[0] in REGISTRY
            and bool(r.get("exclude_seen", False)) == exclude}


def selection_metric(d: dict) -> str:
    """The ranking metric a data set's rows are chosen by: MRR@20 for sessions, NDCG@10 for leave-one-out."""
    return "ndcg@10" if d.get("main_k") == 10 else "mrr@20"


def default_and_best(d: dict) -> list[dict]:
    """For each neural model with a default-recipe row (`key` or `key@default`, no parameter file): that row and
    the row of the same model that validation chooses among all of its rows (the default's included)."""
    rows, metric = comparable_rows(d), selection_metric(d)
    out = []
    for key in NEURAL_KEYS:
        mine = {m: r for m, r in rows.items() if m.split("@")[0] == key}
        defaults = [m for m in (key, f"{key}@default") if m in mine and mine[m].get("params_file") is None]
        if not defaults:
            continue
        default = max(defaults, key=lambda m: str(mine[m].get("timestamp", "")))
        best = max(mine, key=lambda m: mine[m]["valid"].get(metric, -1.0))
        out.append({"model": key, "metric": metric, "default": default, "best": best, "candidates": len(mine)})
    return out


def accuracy_checks(datasets: dict) -> list[dict]:
    """Summary lines for ACCURACY_GOALS. "Best" is chosen by the validation metric (never by test) among the
    rows measured under the data set's protocol; its test value, misses counted, is what is compared."""
    from recsys.models import model_class

    checks = []
    for name, goals in ACCURACY_GOALS.items():
        models = comparable_rows(current_entry(name, datasets.get(name, {})))
        for label, pool_of, select, targets in goals:
            pool = {m: r for m, r in models.items()
                    if pool_of == "all" or (pool_of == "neural" and model_class(m).trains_in_epochs)
                    or m.split("@")[0] == pool_of}
            best = max(pool, key=lambda m: pool[m]["valid"].get(select, -1.0), default=None)
            for metric, target in targets.items():
                measured = None if best is None else round(100 * pool[best]["test_scaled"][metric]["value"], 2)
                note = (f"{best}, chosen by validation {select.upper()} among {len(pool)} model(s)" if best
                        else "no model run yet under this protocol")
                checks.append(check(f"{name}: {label}, test {metric.upper()} (misses counted)", measured, target,
                                    "%", le=False, note=note))
    return checks


def _save_accuracy_model(opts: Options, name: str, entry: dict, model: str | None) -> None:
    """Merge one data set's entry (and `model`'s result, if given) into accuracy.json at once, under a lock.

    Accuracy runs last long and several may run side by side (one data set each); each model's result is kept
    as soon as it exists, and a run never drops what another run wrote in the meantime.
    """
    def merge(current: dict) -> dict:
        stored = current.setdefault("datasets", {}).setdefault(name, {})
        models = dict(stored.get("models", {}))
        if model is not None:
            models[model] = entry["models"][model]
        stored.update({k: v for k, v in entry.items() if k != "models"}, models=models)
        current.setdefault("suite", "accuracy")
        return current

    update_json(results_path(opts.results_dir, "accuracy", opts.quick), merge)



def _param_file(name: str, model: str) -> Path | None:
    path = PARAMS_DIR / name / f"{model}.json"
    return path if path.is_file() else None


def _dataset_params(name: str, model: str) -> dict:
    """`model`'s parameter file and the data set's files of every registry model, as load_params reads them: a
    hybrid's parts take theirs in `run` (recsys.pipeline.with_part_params, as for train_and_eval.py --params),
    unless the hybrid's own file gives a part's parameters."""
    from recsys.models import REGISTRY
    from recsys.pipeline import load_params

    return load_params([f for m in dict.fromkeys((model, *REGISTRY)) if (f := _param_file(name, m))])


def suite_accuracy(opts: Options) -> dict:
    from recsys.models import REGISTRY
    from recsys.pipeline import RunConfig, run

    previous = read_json(results_path(opts.results_dir, "accuracy", opts.quick))
    datasets = dict(previous.get("datasets", {}))
    if not opts.shared_data.is_dir():
        msg = f"skipped: {opts.shared_data} not found (set RECSYS_SHARED_DATA to the shared data folder)"
        print(f"[accuracy] {msg}")
        return {"skipped": msg, "datasets": datasets, "checks": []}
    names = list(opts.datasets or ACCURACY_DATASETS)
    unknown = [n for n in names if n not in ACCURACY_DATASETS]
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown}; choose from {list(ACCURACY_DATASETS)}")
    models = list(opts.models or (("pop",) if opts.quick else tuple(m for m in REGISTRY)))
    bad = [m for m in models if m.split("@")[0] not in REGISTRY]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; choose from {sorted(REGISTRY)} (optionally as key@variant)")
    for name in names:
        spec = ACCURACY_DATASETS[name]
        entry = dict(datasets.get(name, {}))
        entry.update(protocol=spec.protocol, main_k=spec.main_k, source=spec.source, inputs=list(spec.inputs),
                     exclude_seen=spec.exclude_seen)
        missing = [p for p in spec.inputs if not (opts.shared_data / p).is_file()]
        if spec.skip or missing:
            entry["skipped"] = spec.skip or f"skipped: missing {missing} under {opts.shared_data}"
            print(f"[accuracy] {name}: {entry['skipped']}")
            datasets[name] = entry
            continue
        entry.pop("skipped", None)
        with Timer() as t:
            data = _accuracy_data(opts, name, spec)
        total = data.meta.get("test_pairs_total") or len(data.test)
        kept = len(data.test)
        entry["data"] = {**data.stats(), "test_cases_kept": kept, "test_cases_total": total,
                         "dropped_unknown_items": data.meta.get("dropped_unknown_items"),
                         "kept_fraction": round(kept / total, 6), "prepare": t.as_dict(), "quick": opts.quick}
        entry.setdefault("models", {})
        started = time.perf_counter()
        for model in models:
            if opts.time_budget_min is not None and time.perf_counter() - started > 60 * opts.time_budget_min:
                entry["models"][model] = {"skipped": f"time budget of {opts.time_budget_min} min per data set used up"}
                _save_accuracy_model(opts, name, entry, model)
                continue
            pfile = _param_file(name, model)
            params = _dataset_params(name, model)
            out = opts.work_dir / "accuracy" / (name + ("-quick" if opts.quick else ""))
            config = RunConfig(models=(model,), out=out, params=params, max_epochs=opts.max_epochs,
                               n_boot=200 if opts.quick else 1000, progress=False, assets=None,
                               refit=opts.refit and spec.refit, exclude_seen=spec.exclude_seen)
            with Timer() as t:
                results = run(data, config, log=functools.partial(print, f"[accuracy] {name}", flush=True))
            r = results["models"][model]
            factor = kept / total
            scaled = {k: {"value": v["value"] * factor, **({"ci95": [c * factor for c in v["ci95"]]}
                                                          if "ci95" in v else {})}
                      for k, v in r["test"].items() if k in ACCURACY_METRICS}
            entry["models"][model] = {
                "test_raw": {k: v for k, v in r["test"].items() if k in ACCURACY_METRICS or k == "cases"},
                "test_scaled": scaled, "valid": {k: v["value"] for k, v in r["valid"].items() if k in ACCURACY_METRICS},
                "params": r["params"], "params_file": str(pfile.relative_to(ROOT)) if pfile else None,
                "fit_seconds": r["fit_seconds"], "fit": r["fit"], "refit": opts.refit and spec.refit,
                "exclude_seen": spec.exclude_seen,
                "refit_info": r.get("refit"),
                "max_epochs": opts.max_epochs, "timing": t.as_dict(), "quick": opts.quick,
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds")}
            main = f"hr@{spec.main_k}"
            _save_accuracy_model(opts, name, entry, model)
            print(f"[accuracy] {name} {model}: test {main} {100 * scaled[main]['value']:.2f} (misses counted), "
                  f"{100 * r['test'][main]['value']:.2f} (kept cases); {t.wall:.0f} s wall, {t.cpu:.0f} s CPU",
                  flush=True)
        datasets[name] = entry
        _save_accuracy_model(opts, name, entry, None)
    datasets = read_json(results_path(opts.results_dir, "accuracy", opts.quick)).get("datasets", datasets)
    return {"datasets": datasets, "checks": accuracy_checks(datasets),
            "anchors": {k: [{"model": m, "metrics": v, "source": s} for m, v, s in rows]
                        for k, rows in ANCHOR_ROWS.items()}}
