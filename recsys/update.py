"""Incremental updates: fold a file of new events into a trained model folder and write a new folder.

    report = update_folder("checkpoints/vsknn", "new_events.csv", "checkpoints/vsknn-0601",
                           columns={"session_id": "sid", "item_id": "item", "timestamp": "time"})

The events are read by the readers of scripts/prepare_data.py (recsys.prepare.load_events, same --source and
--columns) and cut into sessions as prepare_data cuts them (recsys.sessionize.session_keys; repeats collapsed
if asked, sessions shorter than min_session_length dropped, each cut to its most recent max_length items; the
IQR outlier filter is not applied to a batch of new sessions). Items are mapped through the folder's vocabulary
(items.json). An item it lacks becomes a new item at the end of the vocabulary when it has at least
min_item_support events in the file (prepare_data's rule), so every old index keeps its meaning; events of rarer
unknown items are dropped and counted. New sessions are ordered by end time, most recent last.

What each model keeps, so what an update can recover (tests/test_update.py; measured in docs/BENCHMARKS.md):
- pop, spop: item counts, a sufficient statistic: counts += new counts. Exact: fit on A, update with B
  scores as fit on A + B.
- sknn, vsknn: every training session's item set, so the new sessions are appended and the inverted index
  rebuilt. Exact, given that the new sessions are later than the old (the folder keeps no session times:
  new sessions always count as the most recent, as a refit on a later log would order them).
- sr: per item only its top k_neighbors rules (ids and summed weights). A weight is a sum over sessions, so a
  stored weight plus the new sessions' weight is exact (up to float32 rounding). Lost: a rule that was below
  its item's k-th when pruned; if the new sessions bring it back it enters with the new weight alone (its old
  weight was at most the k-th). Items with fewer than k_neighbors rules were never pruned and are exact.
- itemknn: per item its top k_neighbors similarities co(i, j) / (n_i^alpha n_j^(1-alpha) + shrink). On top
  of sr's loss, the session supports n_i are not stored: the old co-occurrence counts are recovered with the
  stored event counts (popularity) standing in for n_i, which is exact only when no training session repeated
  an item; then counts and supports are summed and the similarities recomputed.
- neural models (gru4rec*, lstm*, sasrec): warm start. The item tables (embeddings, untied output rows, output
  biases, the item -> category map) grow by one row per new item, initialised to the mean of the old rows of
  the item's category (the mean of all old rows when the category is new or unknown) plus small Gaussian noise
  (`UpdateConfig.noise` times the old rows' per-dimension spread; biases get the mean, no noise); the old rows
  are copied unchanged, so before training every old item scores as before. Then `epochs` epochs on the new
  sessions only, with no validation and no early stopping: the folder holds no training sessions, so nothing
  old can be replayed, and the model may drift towards the new period.
- hybrid: every part is updated as above and the mixing weights are kept (no validation data to choose anew).
- random, recent: nothing is fitted; they gain the new items. als: refused (its item factors need a refit).
"""

import dataclasses
import datetime as dt
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys.atomic import OutputFolderError, check_output
from recsys.card import model_card
from recsys.data import Dataset
from recsys.datasets.schema import DataError
from recsys.folder import CONFIG_MAX_BYTES, ModelFolderError, load_folder, save_folder
from recsys.iteminfo import ATTRIBUTES
from recsys.jsonfile import read_json
from recsys.models import REGISTRY
from recsys.models.als import ALS
from recsys.models.base import FitOptions, Recommender
from recsys.models.blend import Blend
from recsys.models.knn import ItemKNN, NeighbourModel, top_k_per_row
from recsys.models.neural import NeuralRecommender
from recsys.models.pop import Pop, RandomRec, Recent
from recsys.models.sknn import SKNN
from recsys.prepare import config_from_options, load_events
from recsys.sessionize import PrepareConfig, _latest_category, _micros, _order_by, session_keys
from recsys.sessions import Sessions


class UpdateError(ValueError):
    """A model that cannot be updated this way: says which and why."""


@dataclass(frozen=True)
class UpdateConfig:
    """How neural models are warm-started (count-based models have no knobs)."""

    epochs: int = 1  # epochs on the new sessions
    lr: float | None = None  # None: a tenth of the rate the model was trained with (its folder's record, else the
    # default): at half that rate a week of daily updates fell below the model it started from (docs/BENCHMARKS.md)
    batch_size: int | None = None  # None: the batch size the model was trained with
    seed: int = 0
    noise: float = 0.1  # a new item's row: its category's mean + noise * the old rows' per-dimension std
    cpu_threads: int | None = 1  # torch threads while training (1 is fastest on a shared CPU)
    progress: bool = False

    def __post_init__(self):
        if self.epochs < 1 or (self.lr is not None and not self.lr > 0) or (self.batch_size or 1) < 1 \
                or self.noise < 0:
            raise ValueError("epochs and batch_size must be >= 1, lr > 0 and noise >= 0")


@dataclass
class NewSessions:
    """New events cut into sessions over the grown vocabulary."""

    sessions: Sessions  # item indices of the grown vocabulary, most recent session last
    items: pd.DataFrame  # the grown item table (item_id, category_id, popularity): row i = index i + 1
    stats: dict  # what was read, used, added and dropped


# ---------------------------------------------------------------- events -> sessions


def new_sessions(events: pd.DataFrame, item_info: dict, prep: PrepareConfig = PrepareConfig()) -> NewSessions:
    """Cut a canonical events table into sessions over the folder's vocabulary (items.json), grown by the
    unknown items that have at least `prep.min_item_support` events here. Raises DataError when none is left."""
    if len(events) == 0:
        raise DataError("the events table is empty")
    item_ids = [str(i) for i in item_info["item_ids"]]
    n_old = len(item_ids) + 1
    ts = _micros(events)
    key = session_keys(events, prep.session_gap_minutes)
    order = _order_by(key, ts)
    key = key[order]
    raw = events["item_id"].to_numpy()[order]
    known = pd.Index(item_ids).get_indexer(raw)  # -1: not in the vocabulary
    unknown_codes, unknown_ids = pd.factorize(raw[known < 0])
    item = np.where(known >= 0, known + 1, 0).astype(np.int64)
    item[known < 0] = n_old + unknown_codes  # provisional indices for unknown items, from n_old on
    when = ts[order]
    if prep.collapse_repeats:
        keep = np.r_[True, (item[1:] != item[:-1]) | (key[1:] != key[:-1])]
        key, item, when = key[keep], item[keep], when[keep]
    n_events = len(item)
    key, item, when, rare = _filter(key, item, when, n_old, prep)
    if len(item) == 0:
        raise DataError(f"no new session left: of {len(events):,} events, none forms a session of at least "
                        f"{prep.min_session_length} items the model knows or that occur at least "
                        f"{prep.min_item_support} times here (min_item_support) "
                        f"({int((known < 0).sum()):,} events of {len(unknown_ids):,} items not in the model)")
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.maximum.reduceat(when, starts)
    sessions = Sessions(item, np.r_[starts, len(key)].astype(np.int64))
    cut = int(np.maximum(sessions.lengths - prep.max_length, 0).sum())
    sessions = sessions.select(np.argsort(ends, kind="stable")).truncate(prep.max_length)  # most recent last
    # new items get indices n_old, n_old + 1, ... in order of first appearance, as prepare_data orders items
    flat = sessions.items.astype(np.int64)
    new_codes, first = np.unique(flat[flat >= n_old], return_index=True)
    new_codes = new_codes[np.argsort(first, kind="stable")]
    remap = np.zeros(n_old + len(unknown_ids), dtype=np.int64)
    remap[:n_old] = np.arange(n_old)
    remap[new_codes] = n_old + np.arange(len(new_codes))
    sessions = Sessions(remap[flat].astype(np.int32), sessions.offsets)
    n_items = n_old + len(new_codes)
    new_ids = np.asarray(unknown_ids, dtype=object)[new_codes - n_old].astype(str)
    codes, uniques = pd.factorize(events["item_id"])
    latest = _latest_category(events, codes, ts)  # the latest category of each raw item, as prepare_data
    new_cats = latest[pd.Index(uniques).get_indexer(new_ids)] if len(new_ids) else np.array([], dtype=object)
    old_cats = item_info.get("category_ids") or [None] * len(item_ids)
    old_pop = np.asarray(item_info.get("popularity") or [0] * len(item_ids), dtype=np.int64)
    added = np.bincount(sessions.items, minlength=n_items)[1:]
    items = pd.DataFrame({
        "item_id": pd.array(item_ids + new_ids.tolist(), dtype="string"),
        "category_id": pd.array(list(old_cats) + [None if pd.isna(c) else str(c) for c in new_cats], dtype="string"),
        "popularity": np.r_[old_pop, np.zeros(len(new_ids), dtype=np.int64)] + added})
    for name, values in (item_info.get("attributes") or {}).items():  # names, prices, ...: none for new items
        if name in ATTRIBUTES and isinstance(values, list) and len(values) == len(item_ids):
            items[name] = pd.array(list(values) + [None] * len(new_ids), dtype="string")
    stats = {"events_read": int(len(events)), "events_added": int(len(sessions.items)),
             "sessions_added": len(sessions), "new_items": len(new_ids),
             "events_of_rare_unknown_items_dropped": rare, "events_in_short_sessions_dropped":
                 int(n_events - len(item) - rare), "events_cut_by_max_length": cut,
             "first_event": _iso(ts.min()), "last_event": _iso(ts.max())}
    return NewSessions(sessions, items, stats)


def _filter(key, item, ts, n_old: int, prep: PrepareConfig):
    """Drop unknown items with fewer than min_item_support events, and too short (or long) sessions, until
    nothing changes (prepare_data's filter, except that items the model knows are always kept)."""
    rare = 0
    while len(item):
        n = len(item)
        counts = np.bincount(item)
        keep = (item < n_old) | (counts[item] >= prep.min_item_support)
        rare += int((~keep).sum())
        key, item, ts = key[keep], item[keep], ts[keep]
        if not len(item):
            break
        new = np.r_[True, key[1:] != key[:-1]]
        lengths = np.diff(np.r_[np.flatnonzero(new), len(key)])
        ok = lengths >= prep.min_session_length
        if prep.max_session_length is not None:
            ok &= lengths <= prep.max_session_length
        keep = ok[np.cumsum(new) - 1]
        key, item, ts = key[keep], item[keep], ts[keep]
        if len(item) == n:
            break
    return key, item, ts, rare


def _iso(micros) -> str:
    return pd.Timestamp(int(micros), unit="us", tz="UTC").isoformat()


# ---------------------------------------------------------------- models


def update_model(model: Recommender, sessions: Sessions, items: pd.DataFrame,
                 config: UpdateConfig = UpdateConfig(), log=print, recorded: dict | None = None
                 ) -> tuple[Recommender, dict]:
    """A new model: `model` with `sessions` folded in, scoring len(items) + 1 items (the old ones first, at their
    old indices). `items` is the grown item table (its category_id places new items for neural models).
    Returns (model, what was done); the given model is left as it was. See the module docstring. `log`: progress
    lines (None: none). `recorded`: the fit report of the model as trained (config.json train.fit), whose
    "train_config" gives a neural model's training settings (a hybrid's parts: its "components")."""
    log = log or (lambda *_: None)
    n_items = len(items) + 1
    if n_items < model.n_items:
        raise UpdateError(f"the item table has {n_items - 1} items, fewer than the model's {model.n_items - 1}")
    if len(sessions) and (sessions.items.min() < 1 or sessions.items.max() >= n_items):
        raise UpdateError(f"session items must be indices 1..{n_items - 1}")
    refusal = why_not(model)
    if refusal:
        raise UpdateError(refusal)
    if isinstance(model, Blend):
        return _update_blend(model, sessions, items, config, log, recorded)
    if isinstance(model, NeuralRecommender):
        return _update_neural(model, sessions, items, config, log, recorded)
    if isinstance(model, SKNN):
        return _update_sknn(model, sessions, n_items)
    if isinstance(model, NeighbourModel):
        return _update_neighbours(model, sessions, n_items)
    if isinstance(model, Pop):  # and SPop
        fresh = type(model)(model.config, n_items)
        fresh.counts = torch.from_numpy((_grown(model.counts, n_items) + _counts(sessions, n_items))
                                        .astype(np.float32))
        return fresh, {"method": "exact: item counts += the new sessions' counts"}
    return type(model)(model.config, n_items), {"method": "nothing fitted: the new items added"}  # random, recent


def why_not(model: Recommender) -> str | None:
    """Why `model` cannot be updated (None: it can)."""
    if isinstance(model, ALS):
        return ("als keeps only item factors fitted on all training sessions together, and the folder has none "
                "of those sessions: refit it (scripts/train_and_eval.py) instead of updating")
    if isinstance(model, Blend):
        for name, part in zip(model.config.components, model.parts):
            if why_not(part):
                return f"hybrid part {name}: {why_not(part)}"
        return None
    if isinstance(model, (Pop, RandomRec, Recent, SKNN, NeighbourModel, NeuralRecommender)):
        return None
    return f"{model.name} has no update rule"


def _counts(sessions: Sessions, n_items: int) -> np.ndarray:
    return np.bincount(sessions.items, minlength=n_items).astype(np.float64)


def _grown(values: torch.Tensor, n: int, fill: float = 0.0) -> np.ndarray:
    """A 1-D buffer as float64, extended to length n with `fill`."""
    old = values.detach().cpu().numpy().astype(np.float64)
    return np.r_[old, np.full(n - len(old), fill)]


def _concat(a: Sessions, b: Sessions) -> Sessions:
    return Sessions(np.concatenate([a.items, b.items]).astype(np.int32),
                    np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]))


def _update_sknn(model: SKNN, sessions: Sessions, n_items: int):
    """Append the new sessions to the stored item sets (as the most recent) and rebuild the index by `fit`."""
    stored = Sessions(model.session_items.numpy(), model.session_offsets.numpy())
    if len(stored.offsets) == 0:  # never fitted
        stored = Sessions.from_lists([])
    fresh = type(model)(model.config, n_items)
    # the stored item sets are distinct items in first-occurrence order, which `fit` keeps as they are; the
    # session order is file order (no "end" times given), old sessions first
    fresh.fit(SimpleNamespace(train=_concat(stored, sessions), info={}))
    fresh.popularity = torch.from_numpy((_grown(model.popularity, n_items) + _counts(sessions, n_items))
                                        .astype(np.float32))
    return fresh, {"method": "exact: the new sessions appended to the stored ones (as the most recent)",
                   "stored_sessions": len(stored) + len(sessions)}


def _stored_matrix(model: NeighbourModel, n_items: int) -> sp.csr_matrix:
    """The stored top-k neighbour weights as an (n_items, n_items) float64 matrix (new items: empty rows)."""
    ids, weights = model.neighbors.numpy(), model.weights.numpy().astype(np.float64)
    rows = np.repeat(np.arange(len(ids)), ids.shape[1])
    keep = weights.ravel() > 0
    return sp.csr_matrix((weights.ravel()[keep], (rows[keep], ids.ravel()[keep].astype(np.int64))),
                         shape=(n_items, n_items))


def _update_neighbours(model: NeighbourModel, sessions: Sessions, n_items: int):
    """Stored top-k weights + the new sessions' weights, pruned to k again (see the module docstring)."""
    k = model.config.k_neighbors
    full = int(((model.weights > 0).sum(dim=1) >= k).sum())  # items whose list was pruned (possibly)
    stored = _stored_matrix(model, n_items)
    fresh = type(model)(model.config, n_items)
    pop_old, pop_new = _grown(model.popularity, n_items), _counts(sessions, n_items)
    if isinstance(model, ItemKNN):
        a, shrink = model.config.alpha, model.config.shrink
        coo = stored.tocoo()
        # co-occurrence counts back from the similarities, with event counts standing in for session supports
        co_old = coo.data * (pop_old[coo.row] ** a * pop_old[coo.col] ** (1 - a) + shrink)
        support = _support(sessions, n_items)
        # ItemKNN with alpha 0 and no shrink gives co(i, j) / support(j): its own pair counting, reused
        plain = ItemKNN(dataclasses.replace(model.config, alpha=0.0, shrink=0.0), n_items)
        new = plain.item_weights(sessions).tocoo()
        co = sp.csr_matrix((co_old, (coo.row, coo.col)), shape=(n_items, n_items)) + sp.csr_matrix(
            (new.data.astype(np.float64) * support[new.col], (new.row, new.col)), shape=(n_items, n_items))
        co = co.tocoo()
        total = pop_old + support
        sim = co.data / (total[co.row] ** a * total[co.col] ** (1 - a) + shrink)
        merged = sp.csr_matrix((sim.astype(np.float32), (co.row, co.col)), shape=(n_items, n_items))
        how = ("lossy: stored top-k similarities turned back into co-occurrence counts (event counts standing in "
               "for session supports), plus the new sessions' counts, re-normalised and pruned to k")
    else:
        merged = stored + fresh.item_weights(sessions).astype(np.float64)
        merged = merged.astype(np.float32)
        how = "lossy where pruned: stored top-k rule weights + the new sessions' weights, pruned to k"
    ids, vals = top_k_per_row(merged, k)
    fresh.neighbors, fresh.weights = torch.from_numpy(ids), torch.from_numpy(vals)
    fresh.popularity = torch.from_numpy((pop_old + pop_new).astype(np.float32))
    return fresh, {"method": how, "items_with_pruned_lists": full,
                   "items_exact": int(model.n_items - 1 - full)}


def _support(sessions: Sessions, n_items: int) -> np.ndarray:
    """Sessions holding each item (repeats once)."""
    sess = np.repeat(np.arange(len(sessions), dtype=np.int64), sessions.lengths)
    distinct = np.unique(sess * n_items + sessions.items)
    return np.bincount(distinct % n_items, minlength=n_items).astype(np.float64)


def grow_neural(model: NeuralRecommender, items: pd.DataFrame, noise: float = 0.1,
                generator: torch.Generator | None = None) -> NeuralRecommender:
    """A copy of `model` scoring len(items) + 1 items: every item table gets rows for the new items (the mean
    of the old rows of the item's category, else of all old rows, plus `noise` times their per-dimension std;
    1-D tables such as output biases get the mean alone); every other tensor and every old row is copied."""
    n_old, n_items = model.n_items, len(items) + 1
    fresh = type(model)(model.config, n_items)
    fresh.train_config = model.train_config
    cats = items["category_id"].astype(object).where(items["category_id"].notna(), None).tolist()
    old_cats = np.array([None] + cats[: n_old - 1], dtype=object)
    new_cats = cats[n_old - 1:]
    groups = {c: np.flatnonzero(old_cats == c) for c in set(new_cats) if c is not None}
    old_state, new_state = model.state_dict(), fresh.state_dict()
    with torch.no_grad():
        for name, new in new_state.items():
            old = old_state[name]
            if name.endswith("item_category"):
                continue  # below
            if old.shape == new.shape:
                new.copy_(old)
            elif (old.dim() >= 1 and old.shape[0] == n_old and new.shape[0] == n_items
                  and old.shape[1:] == new.shape[1:]):
                new[:n_old] = old
                rows = old[1:].double()  # real items (row 0 is padding)
                mean, std = rows.mean(0), rows.std(0) if len(rows) > 1 else torch.zeros_like(rows[0])
                for i, c in enumerate(new_cats):
                    at = groups.get(c)
                    centre = old[at].double().mean(0) if at is not None and len(at) else mean
                    if old.dim() > 1 and noise:
                        centre = centre + noise * std * torch.randn(std.shape, generator=generator,
                                                                    dtype=torch.float64)
                    new[n_old + i] = centre.to(new.dtype)
            else:
                raise UpdateError(f"cannot grow {model.name}'s {name} from {tuple(old.shape)} to {tuple(new.shape)}")
    if len(model.item_category):  # the item -> category map: new items take their category's index, if known
        index = {c: int(model.item_category[i]) for i, c in enumerate(old_cats) if i and c is not None}
        extra = torch.tensor([index.get(c, 0) for c in new_cats], dtype=model.item_category.dtype)
        fresh.item_category = torch.cat([model.item_category.cpu(), extra])
    fresh.check_state()
    return fresh


def _recorded_train_config(recorded: dict | None, log):
    """The TrainConfig a folder's training record gives ("train_config" of its fit report), else the default."""
    from recsys.trainconfig import TrainConfig

    given = (recorded or {}).get("train_config") if isinstance(recorded, dict) else None
    if not isinstance(given, dict):
        return TrainConfig(), "defaults (the folder records no training settings)"
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if k in names}), \
            "the folder's training record"
    except (TypeError, ValueError) as err:
        log(f"warning: the folder's training settings do not form a TrainConfig ({err}); using the defaults")
        return TrainConfig(), "defaults (the folder's record was not usable)"


def _update_neural(model: NeuralRecommender, sessions: Sessions, items: pd.DataFrame, config: UpdateConfig, log,
                   recorded: dict | None):
    from recsys.train import _train_neural  # Lightning: imported only when a neural model is updated

    torch.manual_seed(config.seed)
    fresh = grow_neural(model, items, config.noise, torch.Generator().manual_seed(config.seed))
    empty = Sessions.from_lists([])
    data = Dataset(sessions, empty, empty, items)
    base, source = _recorded_train_config(recorded, log)
    lr = config.lr if config.lr is not None else base.lr / 10
    train = dataclasses.replace(base, max_epochs=config.epochs, lr=lr, batch_size=config.batch_size or base.batch_size,
                                cpu_threads=config.cpu_threads, epoch_lrs=None, schedule="constant", warmup=0,
                                max_minutes=None, devices=1, num_nodes=1, strategy="auto")
    log(f"[{model.name}] warm start: {len(sessions):,} new sessions, {config.epochs} epoch(s) at lr {lr:g} "
        f"(other settings: {source})")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no validation cases.*")
        result = _train_neural(fresh, data, train, FitOptions(seed=config.seed, progress=config.progress))
    return fresh, {"method": "warm start: grown item tables, trained on the new sessions only (no replay: the "
                             "folder holds no training sessions)",
                   "epochs": result["epochs"], "lr": lr, "batch_size": train.batch_size, "settings_from": source,
                   "train_loss": [round(r["train_loss"], 4) for r in result["history"]],
                   "seconds": round(sum(r["train_seconds"] for r in result["history"]), 2)}


def _update_blend(model: Blend, sessions: Sessions, items: pd.DataFrame, config: UpdateConfig, log,
                  recorded: dict | None):
    fresh = Blend(model.config, len(items) + 1)
    parts = {}
    records = (recorded or {}).get("components") if isinstance(recorded, dict) else None
    for name, part in zip(model.config.components, model.parts):
        record = records.get(name) if isinstance(records, dict) else None
        updated, parts[name] = update_model(part, sessions, items, config, log, record)
        fresh.use_part(name, updated, "updated")
    return fresh, {"method": "each part updated; mixing weights kept", "parts": parts}


# ---------------------------------------------------------------- folders


def update_folder(model_dir: str | Path, events: str | Path, out: str | Path, *, source: str = "csv",
                  columns: dict[str, str] | None = None, timestamp_unit: str | None = None,
                  events_filter: tuple[str, ...] | None = None, prepare: PrepareConfig | dict | None = None,
                  config: UpdateConfig = UpdateConfig(), log=print) -> dict:
    """Read `events`, fold them into the model of `model_dir` and write the result to `out` (atomically).

    `out` is checked before any work: never the input folder, a folder inside it, or one holding it or the
    events file; otherwise a new or empty folder, or a previous model folder (recsys.atomic.check_output).
    `prepare`: a PrepareConfig, or some of its fields (prepare_data's defaults for the rest, and for max_length
    the one the folder's data was prepared with, when metrics.json records it).
    Returns the update's record (also appended to config.json's train.updates and shown in the model card).
    """
    model_dir, events, out = Path(model_dir), Path(events), Path(out)
    if out.resolve() == model_dir.resolve() or model_dir.resolve() in out.resolve().parents:
        raise OutputFolderError(f"output folder {out} is the model folder {model_dir} or inside it; refusing to "
                                f"write there (the input stays as it was: give a new folder)")
    check_output(out, "model", [model_dir, events])
    if source == "synthetic":
        raise DataError("--source synthetic generates a log instead of reading one: give the new events as a "
                        "file (--source csv with --columns, or the source's own format)")
    model = load_folder(model_dir, REGISTRY)
    refusal = why_not(model)
    if refusal:  # before reading the events
        raise UpdateError(refusal)
    folder_config = read_json(model_dir / "config.json", CONFIG_MAX_BYTES, error=ModelFolderError)
    metrics = model.metrics if isinstance(model.metrics, dict) else {}
    if not isinstance(prepare, PrepareConfig):  # prepare_data's defaults, max_length as the folder's data had it
        options = dict(prepare or {})
        recorded = ((metrics.get("data") or {}).get("truncated") or {}).get("max_length")
        if options.get("max_length") is None and isinstance(recorded, int) and not isinstance(recorded, bool) \
                and recorded > 0:
            options["max_length"] = recorded
        prepare = config_from_options(**options)
    started = time.perf_counter()
    table = load_events(source, [str(events)], columns=columns, events_filter=events_filter,
                        timestamp_unit=timestamp_unit)
    new = new_sessions(table, model.item_info, prepare)
    log(f"[{model.name}] {new.stats['sessions_added']:,} new sessions, {new.stats['events_added']:,} events, "
        f"{new.stats['new_items']:,} new items")
    train = dict(folder_config.get("train") or {})
    updated, info = update_model(model, new.sessions, new.items, config, log, train.get("fit"))
    record = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "events_file": events.name,
              "source": source, "from_folder": model_dir.name, **new.stats, "n_items": updated.n_items - 1,
              **info, "seconds": round(time.perf_counter() - started, 2)}
    train["updates"] = [*(train.get("updates") or []), record]
    kept = {k: v for k, v in metrics.items() if k not in ("valid", "test", "history")}
    measured = metrics.get("before_update") or {k: metrics[k] for k in ("valid", "test") if k in metrics}
    new_metrics = {**kept, "before_update": measured,
                   "note": "valid/test metrics were measured before the updates in config.json train.updates; "
                           "evaluate the updated model to replace them"}
    data = {**(metrics.get("data") or {}), "n_items": updated.n_items - 1}
    name = folder_config.get("model", model.name)
    card = model_card(out.name, {"model": name, "config": dataclasses.asdict(updated.config), "train": train},
                      new_metrics, data)
    descriptions = model.item_info.get("descriptions")
    curves = model_dir / "training_curves.png"
    save_folder(updated, out, new.items, metrics=new_metrics, train=train, card=card, descriptions=descriptions,
                extra_files={"training_curves.png": curves} if curves.is_file() and not curves.is_symlink() else None)
    return record
