"""The models the app can serve: local model folders and Hub repos found at start-up (one ModelEntry each,
with the metrics of its metrics.json), the default choice, and the cache that loads each model once.

A loaded model is kept as a `Served` record: the model and what the app derives from it once (item names ->
raw ids, labels), side by side, so nothing of the app's is written onto the library's model.
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recsys import hub, load
from recsys.app.items import ItemNames
from recsys.app.text import code, md
from recsys.jsonfile import JSONFileError, read_json

log = logging.getLogger("recsys.app")

MAX_CACHED_MODELS = 8
HEADLINE = (("hr@10", "HR@10"), ("mrr@20", "MRR@20"), ("ndcg@10", "NDCG@10"))


def metric_value(metrics: Mapping, split: str, name: str) -> float | None:
    """metrics.json value: `{"test": {"hr@10": {"value": .., "ci95": [..]}}}` or a bare number."""
    value = (metrics or {}).get(split, {}).get(name) if isinstance((metrics or {}).get(split), Mapping) else None
    if isinstance(value, Mapping):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def headline(metrics: Mapping, split: str = "test") -> str:
    parts = [f"{label} {v:.3f}" for key, label in HEADLINE if (v := metric_value(metrics, split, key)) is not None]
    return " · ".join(parts)


@dataclass(frozen=True)
class ModelEntry:
    key: str  # the dropdown value: a local folder name, or a Hub id "user/repo/name"
    source: str  # what recsys.load takes: a folder path or the Hub id
    where: str  # "local" or "hub"
    kind: str = ""  # registry key from config.json ("" until known)
    metrics: dict = field(default_factory=dict, compare=False, hash=False)
    title: str = ""  # shown instead of the key (an upload's models: "<upload> · <model>", the key holds a token)

    @property
    def label(self) -> str:
        name = self.title or (self.key if self.where == "local" else f"{self.key} (Hub)")
        scores = headline(self.metrics)
        return f"{name} — test {scores}" if scores else f"{name} — metrics shown once loaded"


def _json_or_empty(path: Path) -> dict:
    """A folder's config.json or metrics.json; {} when it is missing or damaged (loading then says why)."""
    try:
        return read_json(path)
    except JSONFileError:
        return {}


def discover_local(checkpoints_dir: str | Path) -> list[ModelEntry]:
    """Every `<checkpoints_dir>/<name>/` holding a config.json, with the metrics of its metrics.json."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / "config.json").is_file():
            kind = str(_json_or_empty(folder / "config.json").get("model", ""))
            out.append(ModelEntry(folder.name, str(folder), "local", kind, _json_or_empty(folder / "metrics.json")))
    return out


def discover_hub(repo_ids, list_models: Callable | None = None) -> tuple[list[ModelEntry], list[str]]:
    """Hub repos (one per data set, one subfolder per model) -> entries "user/repo/model", and warnings."""
    entries, warnings = [], []
    list_models = list_models or hub.list_models
    for given in (r.strip() for r in repo_ids if r and r.strip()):
        try:
            repo, inner = hub.split_repo_id(given)
            # no model subfolder: the repo itself may be one model; "user/repo/model" names one: nothing to list
            names = [inner] if inner else (list(list_models(repo)) or [""])
        except Exception as err:  # not a repo id, offline, private, misspelt: one repo must not stop the app
            log.warning("could not list models of %s: %s", given, err)
            warnings.append(f"Could not list the models of Hub repo {code(given)}: {md(err, 160)}")
            continue
        for name in names:
            name = str(getattr(name, "name", name)).strip("/")
            key = name if name.startswith(repo + "/") else f"{repo}/{name}".rstrip("/")
            entries.append(ModelEntry(key, key, "hub", key.rsplit("/", 1)[-1]))
    return entries, warnings


def default_model(entries: list[ModelEntry]) -> str | None:
    """The best model by *validation* NDCG@10 (then HR@10): test scores are reported, never used to choose."""
    if not entries:
        return None

    def rank(e: ModelEntry):
        return tuple(-(metric_value(e.metrics, "valid", m) or -1.0) for m in ("ndcg@10", "hr@10"))

    return min(entries, key=rank).key


@dataclass(frozen=True)
class Served:
    """A loaded catalogue entry: the model, and what the app derives from it once."""

    entry: ModelEntry
    model: object
    names: ItemNames  # names, categories and attributes of its items; name -> id for typed sessions

    @classmethod
    def of(cls, entry: ModelEntry, model) -> "Served":
        return cls(entry, model, ItemNames.of(getattr(model, "item_info", {}) or {}))


class ModelCache:
    """Thread-safe LRU of loaded models; a model is loaded once even when many requests ask at the same time."""

    def __init__(self, loader: Callable | None = None, max_models: int = MAX_CACHED_MODELS):
        self._loader = loader or load  # source -> model (recsys.load: a folder path or a Hub id)
        self._max = max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[str, Served] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, entry: ModelEntry) -> Served:
        with self._lock:
            if entry.key in self._models:
                self._models.move_to_end(entry.key)
                return self._models[entry.key]
            key_lock = self._loading.setdefault(entry.key, threading.Lock())
        with key_lock:  # one loader per key; others wait here and then find it cached
            with self._lock:
                if entry.key in self._models:
                    return self._models[entry.key]
            served = Served.of(entry, self._loader(entry.source))
            with self._lock:
                self._models[entry.key] = served
                while len(self._models) > self._max:
                    self._models.popitem(last=False)
                self._loading.pop(entry.key, None)
        return served

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._models
