"""Everything behind app.py that is not Gradio: model catalogue, input parsing, cold start, tables, explanations.

The app builds one `AppService` at import (catalogue of models, an LRU cache of loaded models, sample visitors)
and every handler is a plain function of (service, inputs) -> outputs, so tests call them without a browser.
Nothing about a visitor's session is kept here: the session travels in the request (the textbox content),
so concurrent users never see each other's sessions.
"""

import functools
import html
import inspect
import json
import logging
import math
import os
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("recsys.app")

MAX_SESSION_ITEMS = 200  # only the most recent items of a longer session are used
MAX_K = 100
DEFAULT_K = 10
MAX_INPUT_CHARS = 20_000  # longer text is cut to its tail before parsing
MAX_TOKEN_CHARS = 120  # no item id or name is longer; longer tokens are reported as unknown, shortened
MAX_KEY_CHARS = 300  # a model key: a folder name or a Hub id "user/repo/model"
MAX_LIMIT = 100  # the most visitor ids one search returns
N_SAMPLE_VISITORS = 50
MAX_VISITORS = 200_000
MAX_CACHED_MODELS = 8
HEADLINE = (("hr@10", "HR@10"), ("mrr@20", "MRR@20"), ("ndcg@10", "NDCG@10"))
CARD_METRICS = {"hr": "HR", "mrr": "MRR", "ndcg": "NDCG", "coverage": "Coverage"}  # shown in the model card
TABLE_COLUMNS = ["rank", "item", "category", "score"]

MODEL_BLURBS = {
    "random": "Random: a random ranking, the floor every real model must beat.",
    "pop": "Pop: the most viewed items overall, the same list for everyone.",
    "spop": "S-Pop: items already in this session first (most repeated first), then the most popular items.",
    "itemknn": "Item-kNN: items most often viewed in the same sessions as the session's items.",
    "sknn": "Session-kNN: finds past sessions like this one and recommends what those visitors viewed.",
    "sessionknn": "Session-kNN: finds past sessions like this one and recommends what those visitors viewed.",
    "als": "ALS: matrix factorisation; items get vectors so that items viewed together lie close.",
    "gru4rec": "GRU4Rec: a recurrent neural network (GRU) that reads the session in order.",
    "lstm": "LSTM: the same recurrent model with an LSTM cell.",
    "sasrec": "SASRec: a Transformer; self-attention weighs every earlier item of the session.",
    "sr": "Sequential rules: items that often followed the session's last item soon after, in past sessions.",
    "vsknn": "V-SKNN: session-kNN that weighs the session's recent items more and rare items higher.",
    "hybrid": "Hybrid: a weighted mix of several models' recommendations, weights chosen on validation data.",
}


# ---------------------------------------------------------------------------------------------------------------
# text hygiene


_SPLIT_STRONG = re.compile(r"[,;\n\r\t]+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
SLACK = 4  # text is cut to SLACK x its cap before cleaning: invisible characters and combining marks that cleaning
# removes or merges cannot push real content out, and cleaning costs O(cap) whatever was sent


class BadInput(ValueError):
    """A request value of the wrong type (a list where text belongs, text where a number does): the message is
    shown to the caller as it is."""


def describe(value) -> str:
    """A short, safe description of any request value for an error message (never the whole of a long value)."""
    if isinstance(value, (str, bool, int, float, np.number)) or value is None:
        return code(value[: SLACK * 20] if isinstance(value, str) else str(value), 20)
    return f"a {type(value).__name__}"


def bounded_text(value, limit: int, tail: bool = False) -> str:
    """The gate for untrusted text, before any other work: None -> "", a number -> its text, a str cut to `limit`
    characters (its last ones when `tail`); any other type (a list, a dict) is refused with BadInput. Costs
    O(limit) whatever was sent."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, np.number)):
        value = str(value)
    if not isinstance(value, str):
        raise BadInput(f"expected text, got {describe(value)}")
    return value[-limit:] if tail and len(value) > limit else value[:limit]


def clean_text(text, limit: int = MAX_INPUT_CHARS) -> str:
    """NFC-normalised text without control/format/unassigned characters (input from anywhere is untrusted), at
    most `limit` characters. Only the first SLACK x `limit` characters are read, so the work is bounded even
    for text that did not pass through `bounded` (internal values such as error messages may be any object)."""
    if text is None:
        return ""
    text = (text if isinstance(text, str) else str(text))[: SLACK * limit]
    text = unicodedata.normalize("NFC", text)
    keep = (ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return "".join(keep).strip()[:limit]


def md(text, limit: int = 80) -> str:
    """Untrusted text made safe to put in markdown: HTML escaped, markdown syntax escaped, shortened."""
    text = clean_text(text, limit + 1).replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=True))


def code(text, limit: int = 60) -> str:
    """Untrusted text as an inline code span (shown literally: no markdown or HTML inside one)."""
    text = clean_text(text, limit + 1).replace("\n", " ").replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text.strip() else "(blank)"


def name_list(values, limit: int = 8) -> str:
    shown = ", ".join(code(v, 40) for v in values[:limit])
    more = len(values) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def split_session(text) -> tuple[list[str], bool]:
    """Session text -> tokens, oldest first, and whether the text was cut to its tail.

    Commas, semicolons, tabs or new lines separate items when present (so names with spaces work:
    "red shoe, blue hat"); otherwise spaces do ("12 57 3").
    """
    text = bounded_text(text, SLACK * MAX_INPUT_CHARS, tail=True)
    cut = len(text) > MAX_INPUT_CHARS
    if cut:
        text = text[-MAX_INPUT_CHARS:]
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\r\t" or unicodedata.category(ch)[0] != "C")
    parts = _SPLIT_STRONG.split(text) if _SPLIT_STRONG.search(text) else text.split()
    return [p.strip() for p in parts if p.strip()], cut


def join_session(items) -> str:
    """The textbox form of a session: ids separated by commas (descriptions may contain spaces)."""
    return ", ".join(str(i) for i in items)


def parse_k(k) -> tuple[int, str | None]:
    """Any K from a slider, an API call or a typo -> an int in 1..MAX_K, plus a note when it had to change."""
    try:
        value = float(k)
    except (TypeError, ValueError):
        return DEFAULT_K, f"K must be a number, got {describe(k)}; using {DEFAULT_K}."
    if math.isnan(value):
        return DEFAULT_K, f"K is not a number; using {DEFAULT_K}."
    if value < 1:
        return 1, f"K must be at least 1 (got {value:g}); using 1."
    if value > MAX_K:
        return MAX_K, f"K is capped at {MAX_K} (got {value:g})."
    return int(round(value)), None


def parse_limit(limit) -> int:
    """A search's `limit` -> an int in 1..MAX_LIMIT; not a number -> BadInput (the API endpoint has no status line
    to carry a note, so it refuses)."""
    try:
        value = float(limit)
    except (TypeError, ValueError):
        raise BadInput(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {describe(limit)}") from None
    if math.isnan(value):
        raise BadInput(f"limit must be a whole number from 1 to {MAX_LIMIT}, got NaN")
    return int(max(1, min(value, MAX_LIMIT)))


# Every request value passes through `bounded` before a handler sees it (app.py decorates every handler), looked
# up by parameter name: (kind, cap). Text is cut to SLACK x its cap (a session to its end) before any other work;
# numbers and flags must have their type; "server" values are made by Gradio, not sent by the client.
INPUTS = {
    "model": ("text", MAX_KEY_CHARS),
    "session": ("tail", MAX_INPUT_CHARS),  # its most recent items matter
    "visitor": ("text", MAX_TOKEN_CHARS),
    "category": ("text", MAX_TOKEN_CHARS),
    "query": ("text", MAX_TOKEN_CHARS),
    "item": ("text", MAX_TOKEN_CHARS),
    "k": ("number", 20),
    "limit": ("number", 20),
    "exclude_seen": ("flag", 0),
    "held": ("server", 0),  # gr.State: kept by the server for the session
    "evt": ("server", 0),  # gr.SelectData: the clicked row's values are bounded where they are read
}


def gate(name: str, value, default=None):
    """One request value through its INPUTS entry: O(cap) work whatever was sent; the wrong type -> BadInput."""
    kind, cap = INPUTS[name]
    if kind in ("text", "tail"):
        try:
            return bounded_text(value, SLACK * cap, tail=kind == "tail")
        except BadInput:
            raise BadInput(f"{name} must be text, got {describe(value)}") from None
    if kind == "number":
        if isinstance(value, str):
            return value[: SLACK * cap]  # parse_k / parse_limit say why it is not a number
        if value is None or isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
            return value
        raise BadInput(f"{name} must be a number, got {describe(value)}")
    if kind == "flag":
        if value is None:
            return default
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise BadInput(f"{name} must be true or false, got {describe(value)}")
    return value


def bounded(fn: Callable) -> Callable:
    """Handler `fn` with every argument through `gate` (by parameter name) before it runs. A parameter with no
    INPUTS entry fails here, when app.py is imported, so no handler can take a value that skips the gate."""
    sig = inspect.signature(fn)
    missing = [name for name in sig.parameters if name not in INPUTS]
    if missing:
        raise TypeError(f"{fn.__name__}: parameters {missing} have no entry in recsys.app.views.INPUTS")

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            call = sig.bind(*args, **kwargs)
        except TypeError as err:  # a raw HTTP call with too many or too few values
            raise BadInput(str(err)) from None
        for name, value in call.arguments.items():
            call.arguments[name] = gate(name, value, sig.parameters[name].default)
        return fn(*call.args, **call.kwargs)

    inner.bounded = True
    return inner


# ---------------------------------------------------------------------------------------------------------------
# model catalogue


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

    @property
    def label(self) -> str:
        name = self.key if self.where == "local" else f"{self.key} (Hub)"
        scores = headline(self.metrics)
        return f"{name} — test {scores}" if scores else f"{name} — metrics shown once loaded"


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def discover_local(checkpoints_dir: str | Path) -> list[ModelEntry]:
    """Every `<checkpoints_dir>/<name>/` holding a config.json, with the metrics of its metrics.json."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / "config.json").is_file():
            kind = str(_read_json(folder / "config.json").get("model", ""))
            out.append(ModelEntry(folder.name, str(folder), "local", kind, _read_json(folder / "metrics.json")))
    return out


def discover_hub(repo_ids, list_models: Callable | None = None) -> tuple[list[ModelEntry], list[str]]:
    """Hub repos (one per data set, one subfolder per model) -> entries "user/repo/model", and warnings."""
    entries, warnings = [], []
    repo_ids = [r.strip() for r in repo_ids if r and r.strip()]
    if not repo_ids:
        return entries, warnings
    if list_models is None:
        try:
            from recsys.hub import list_models
        except ImportError as err:
            return entries, [f"Hub models unavailable ({err})."]
    for repo in repo_ids:
        if repo.strip("/").count("/") >= 2:  # "user/repo/model" names one model: nothing to list
            entries.append(ModelEntry(repo.strip("/"), repo.strip("/"), "hub", repo.rstrip("/").rsplit("/", 1)[-1]))
            continue
        try:
            names = list(list_models(repo)) or [""]  # no model subfolder: the repo itself may be one model
        except Exception as err:  # offline, private, misspelt: one repo must not stop the app
            log.warning("could not list models of %s: %s", repo, err)
            warnings.append(f"Could not list the models of Hub repo {code(repo)}: {md(err, 160)}")
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


class ModelCache:
    """Thread-safe LRU of loaded models; a model is loaded once even when many requests ask at the same time."""

    def __init__(self, loader: Callable | None = None, max_models: int = MAX_CACHED_MODELS):
        self._loader = loader
        self._max = max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[str, object] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, entry: ModelEntry):
        with self._lock:
            if entry.key in self._models:
                self._models.move_to_end(entry.key)
                return self._models[entry.key]
            key_lock = self._loading.setdefault(entry.key, threading.Lock())
        with key_lock:  # one loader per key; others wait here and then find it cached
            with self._lock:
                if entry.key in self._models:
                    return self._models[entry.key]
            loader = self._loader
            if loader is None:
                from recsys import load as loader
            model = loader(entry.source)
            with self._lock:
                self._models[entry.key] = model
                while len(self._models) > self._max:
                    self._models.popitem(last=False)
                self._loading.pop(entry.key, None)
        return model

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._models


# ---------------------------------------------------------------------------------------------------------------
# visitors


@dataclass
class Visitors:
    """Known visitors (test-split sessions): id -> raw item ids, oldest first; `samples` for the dropdown."""

    sessions: dict[str, list[str]] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.sessions)

    def search(self, query, limit: int = 20) -> list[str]:
        """Visitor ids matching `query` (case-insensitive): prefix matches first, then substring matches."""
        query = clean_text(query, MAX_TOKEN_CHARS).lower()
        if not query:
            return list(self.samples[:limit])
        prefix, inner = [], []
        for vid in self.sessions:
            low = vid.lower()
            if low.startswith(query):
                prefix.append(vid)
                if len(prefix) >= limit:
                    break
            elif query in low and len(inner) < limit:
                inner.append(vid)
        return (prefix + inner)[:limit]

    @classmethod
    def from_mapping(cls, sessions: Mapping, source: str = "", n_samples: int = N_SAMPLE_VISITORS, seed: int = 0):
        sessions = {str(k): [str(i) for i in v] for k, v in sessions.items() if len(v) >= 1}
        usable = [k for k, v in sessions.items() if len(v) >= 3] or list(sessions)
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(usable), size=min(n_samples, len(usable)), replace=False) if usable else []
        return cls(sessions, sorted((usable[i] for i in picks), key=_natural), source)

    @classmethod
    def from_processed(cls, path: str | Path, split: str = "test", max_visitors: int = MAX_VISITORS) -> "Visitors":
        """Sessions of one split of a processed data set folder (see recsys.data), raw item ids via items.parquet.

        Reads only the two files it needs (a large data set's train split is never loaded).
        """
        import pyarrow.parquet as pq

        path = Path(path)
        table = pq.read_table(path / f"{split}.parquet", columns=["session_id", "items"]).slice(0, max_visitors)
        item_ids = pq.read_table(path / "items.parquet", columns=["item_id"]).column("item_id").to_pylist()
        raw = np.asarray([""] + [str(i) for i in item_ids], dtype=object)
        ids = table.column("session_id").to_pylist()
        seqs = table.column("items").to_pylist()
        sessions = {str(s): raw[np.asarray(q, dtype=np.int64)].tolist() for s, q in zip(ids, seqs, strict=True)}
        return cls.from_mapping(sessions, source=str(path))

    @classmethod
    def from_json(cls, path: str | Path) -> "Visitors":
        """`{"id": [items]}` or `{"sessions": [{"session_id": .., "items": [..]}]}` or that list alone."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, dict) and "sessions" in data:
            data = data["sessions"]
        if isinstance(data, list):
            data = {str(row["session_id"]): row["items"] for row in data}
        return cls.from_mapping(data, source=str(path))


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def load_visitors(data_dir: str | Path | None, samples_file: str | Path | None = None) -> Visitors:
    """Sample sessions saved by the pipeline if present, else the test split of the processed data set."""
    for candidate in (samples_file,):
        if candidate and Path(candidate).is_file():
            try:
                return Visitors.from_json(candidate)
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("could not read sample sessions %s: %s", candidate, err)
    if data_dir and (Path(data_dir) / "test.parquet").is_file():
        try:
            return Visitors.from_processed(data_dir)
        except Exception as err:  # a broken data folder must not stop the app from serving models
            log.warning("could not read visitors from %s: %s", data_dir, err)
    return Visitors()


# ---------------------------------------------------------------------------------------------------------------
# the service the app holds


@dataclass
class AppService:
    checkpoints_dir: str = "checkpoints"
    hub_repos: tuple[str, ...] = ()
    data_dir: str | None = None
    samples_file: str | None = None
    catalogue: dict[str, ModelEntry] = field(default_factory=dict)
    visitors: Visitors = field(default_factory=Visitors)
    notes: list[str] = field(default_factory=list)
    cache: ModelCache = field(default_factory=ModelCache)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, list_models: Callable | None = None) -> "AppService":
        checkpoints = environ.get("RECSYS_CHECKPOINTS") or "checkpoints"
        service = cls(
            checkpoints_dir=checkpoints,
            hub_repos=tuple(r.strip() for r in environ.get("RECSYS_MODELS", "").split(",") if r.strip()),
            data_dir=environ.get("RECSYS_DATA") or "data/processed/synthetic",
            samples_file=environ.get("RECSYS_SAMPLES") or str(Path(checkpoints) / "sample_sessions.json"),
        )
        service.refresh(list_models)
        return service

    def refresh(self, list_models: Callable | None = None) -> None:
        """Re-scan local folders and Hub repos, and re-read the visitors."""
        hub, self.notes = discover_hub(self.hub_repos, list_models)
        self.catalogue = {e.key: e for e in discover_local(self.checkpoints_dir) + hub}
        self.visitors = load_visitors(self.data_dir, self.samples_file)

    @property
    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the model dropdown."""
        return [(e.label, e.key) for e in self.catalogue.values()]

    @property
    def default_model(self) -> str | None:
        return default_model(list(self.catalogue.values()))

    def model(self, key):
        """The loaded model for a catalogue key. Only catalogue entries load: a request cannot name a path."""
        key = clean_text(key, MAX_KEY_CHARS)
        if not self.catalogue:
            raise LookupError("No model is available: train one (make train) or set RECSYS_MODELS to a Hub repo.")
        if key not in self.catalogue:
            raise LookupError(f"Unknown model {code(key)}. Choose one of: {name_list(list(self.catalogue), 20)}.")
        entry = self.catalogue[key]
        try:
            return entry, self.cache.get(entry)
        except Exception as err:
            log.exception("loading %s failed", entry.source)
            raise LookupError(f"Model {code(key)} could not be loaded: {md(err, 300)}") from None


# ---------------------------------------------------------------------------------------------------------------
# handlers


@dataclass
class Recommendations:
    table: pd.DataFrame  # rank, item, category, [description], score (0..1)
    chart: pd.DataFrame  # item, score: bars sorted by score
    status: str  # markdown: what was done, what was skipped, why
    explanation: str  # markdown
    mode: str  # "personalized", "popularity", "category popularity" or "error"
    session: list[str] = field(default_factory=list)  # the known item ids actually used, oldest first
    skipped: list[str] = field(default_factory=list)  # unknown tokens


def empty_table(descriptions: bool = False) -> pd.DataFrame:
    cols = TABLE_COLUMNS[:3] + (["description"] if descriptions else []) + ["score"]
    return pd.DataFrame({c: [] for c in cols})


def empty_chart() -> pd.DataFrame:
    return pd.DataFrame({"item": pd.Series([], dtype=str), "score": pd.Series([], dtype=float)})


def error_result(message: str) -> Recommendations:
    return Recommendations(empty_table(), empty_chart(), f"⚠️ {message}", "", "error")


def _descriptions(model) -> dict[str, str]:
    desc = getattr(model, "item_info", {}).get("descriptions") or {}
    return desc if isinstance(desc, dict) else {}


def resolve_items(tokens: list[str], model) -> tuple[list[int], list[str], list[str]]:
    """Tokens -> (item indices, their raw ids, unknown tokens). A token is a raw id, else an item description."""
    vocab = model.vocab
    by_name = getattr(model, "_app_names", None)
    if by_name is None:  # description (case-insensitive) -> raw id, built once per loaded model
        by_name = {}
        for item, text in _descriptions(model).items():
            by_name.setdefault(clean_text(text).casefold(), str(item))
        model._app_names = by_name
    indices, ids, unknown = [], [], []
    for token in tokens:
        token = token[: MAX_TOKEN_CHARS + 1]
        raw = token if token in vocab else by_name.get(token.casefold())
        if raw is None or raw not in vocab:
            unknown.append(token if len(token) <= MAX_TOKEN_CHARS else token[:MAX_TOKEN_CHARS] + "…")
            continue
        indices.append(vocab.encode([raw], strict=True)[0])
        ids.append(raw)
    return indices, ids, unknown


def normalise(scores: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scores -> 0..1 relative to the catalogue's range (lo = lowest item score, hi = best)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.ones_like(scores)
    return np.clip((scores - lo) / (hi - lo), 0.0, 1.0)


def build_table(model, ids: list[str], scores01: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    info = model.item_info
    cats = info.get("category_ids") or []
    index = model.vocab.encode(ids, strict=True)
    desc = _descriptions(model)
    table = pd.DataFrame({
        "rank": np.arange(1, len(ids) + 1),
        "item": [clean_text(i) for i in ids],
        "category": [clean_text(cats[i - 1]) if i - 1 < len(cats) and cats[i - 1] is not None else "" for i in index],
    })
    if desc:
        table["description"] = [clean_text(desc.get(i, ""))[:200] for i in ids]
    table["score"] = np.round(scores01, 3)
    chart = pd.DataFrame({"item": table["item"].astype(str), "score": table["score"].astype(float)})
    return table, chart


CHART_HEIGHT = 320  # pixels


def bar_chart(chart: pd.DataFrame) -> dict:
    """Arguments of the app's bar chart (a native Gradio plot drawn in the browser): the 0..1 scores, one bar per
    item, in ranking order. The order is given as the list of items, because a sort by score would let Vega
    shuffle tied bars out of the table's order. No data: an empty plot."""
    chart = empty_chart() if chart is None else chart
    return {"value": chart if len(chart) else None, "x": "item", "y": "score", "sort": chart["item"].tolist(),
            "y_lim": [0, 1], "x_label_angle": -45 if len(chart) > 8 else 0, "height": CHART_HEIGHT,
            "x_title": "item, best first", "y_title": "score (0–1, relative to the best item)"}


def popularity_fallback(model, k: int, category: str | None = None) -> tuple[list[str], np.ndarray, str, str]:
    """Most popular items (in `category` when it is known), scores 0..1 by count, plus mode and a label."""
    pop = np.asarray(model.item_info.get("popularity") or [], dtype=np.float64)
    if len(pop) != len(model.vocab) - 1:
        pop = np.zeros(len(model.vocab) - 1)
    category = clean_text(category, MAX_TOKEN_CHARS)
    mode, label = "popularity", "the most popular items overall"
    candidates = np.arange(len(pop))
    if category:
        cats = np.asarray([c if c is not None else "" for c in model.item_info.get("category_ids") or []], dtype=object)
        in_cat = np.flatnonzero(cats == category) if len(cats) == len(pop) else np.array([], dtype=np.int64)
        if len(in_cat):
            candidates, mode = in_cat, "category popularity"
            label = f"the most popular items in category {code(category)}"
        else:
            label += f" (category {code(category)} is unknown to this model)"
    order = candidates[np.lexsort((candidates, -pop[candidates]))][:k]  # ties: lower index first
    top = pop[candidates].max() if len(candidates) else 0.0
    scores = pop[order] / top if top > 0 else np.ones(len(order))
    return model.vocab.decode(order + 1), scores, mode, label


def ranked(model, history: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The top-k item indices and raw scores for one session (as `recsys.models.base.recommend` ranks them), and
    the lowest score of any recommendable item: the range that turns raw scores (logits, counts, similarities)
    into 0..1. Items with a non-finite score (padding, seen items when excluded) are never shown."""
    import torch

    from recsys.models.base import mask_scores, score_batch

    scores = mask_scores(score_batch(model, [history]), [history], exclude_seen)[0]
    finite = torch.isfinite(scores)
    n = int(finite.sum())
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), 0.0
    lo = float(scores[finite].min())
    scores[~finite] = -torch.inf
    top = torch.topk(scores, min(k, n))  # not the whole ranking: a full sort of 40k scores costs ~3 ms
    return top.indices.numpy(), top.values.numpy(), lo


def recommend_view(service: AppService, model_key, session_text, k=DEFAULT_K, category=None,
                   exclude_seen: bool = True, target: str | None = None) -> Recommendations:
    """The main handler: a session (text) -> top-K table, chart data, status and explanation.

    Empty session, or no item known to the model: popularity fallback (category popularity when a known
    category is given), labelled as such. Unknown items in an otherwise known session are skipped and named.
    """
    notes = []
    k, note = parse_k(k)
    if note:
        notes.append(note)
    try:
        entry, model = service.model(model_key)
    except LookupError as err:
        return error_result(str(err))
    tokens, cut = split_session(session_text)
    if cut:
        notes.append(f"The session text was longer than {MAX_INPUT_CHARS:,} characters; only its end was read.")
    if len(tokens) > MAX_SESSION_ITEMS:
        notes.append(f"Only the {MAX_SESSION_ITEMS} most recent of {len(tokens)} items were used.")
        tokens = tokens[-MAX_SESSION_ITEMS:]
    indices, known, unknown = resolve_items(tokens, model)
    if unknown:
        what = "All items are" if not known else f"Skipped {len(unknown)} unknown item{'s' * (len(unknown) > 1)}:"
        notes.append(f"{what} unknown to this model: {name_list(unknown)}." if not known else
                     f"{what} {name_list(unknown)}.")
    if not indices:
        ids, scores, mode, label = popularity_fallback(model, k, category)
        why = "the session is empty" if not tokens else "no item of the session is known to this model"
        status = f"**Cold start** — {why}, so these are {label} (popularity fallback, not personalised)."
        explanation = (f"Popularity fallback: items are ranked by how often they were viewed in the training "
                       f"data{' in that category' if mode == 'category popularity' else ''}; "
                       "a score of 1 is the most viewed item.")
    else:
        history = np.asarray(indices, dtype=np.int64)
        top_ids, top_scores, lo = ranked(model, history, k, bool(exclude_seen))
        if len(top_ids) == 0:
            return error_result("Every item of the catalogue is already in the session; nothing left to recommend "
                                "(untick “Hide items already in the session”).")
        scores = normalise(top_scores, lo, float(top_scores[0]))
        ids, mode = model.vocab.decode(top_ids), "personalized"
        status = (f"**Personalised** by **{md(entry.key)}** from {len(indices)} "
                  f"item{'s' * (len(indices) > 1)} (most recent: {code(known[-1], 40)}).")
        if len(ids) < k:
            notes.append(f"Only {len(ids)} items could be recommended.")
        explanation = format_explanation(model, history)
        target = clean_text(target, MAX_TOKEN_CHARS) if target else ""
        if target:
            rank = ids.index(target) + 1 if target in ids else None
            notes.append(f"This visitor actually viewed {code(target, 40)} next: "
                         + (f"**rank {rank}** in this list." if rank else f"not in the top {k}."))
    table, chart = build_table(model, ids, scores)
    message = "\n\n".join([status] + [f"ℹ️ {n}" for n in notes])
    return Recommendations(table, chart, message, explanation, mode, known, unknown)


def append_item(session_text, item) -> str:
    """The session text with `item` (a clicked recommendation) appended, capped to the most recent items."""
    tokens, _ = split_session(session_text)
    item = clean_text(item, MAX_TOKEN_CHARS)
    if item:
        tokens.append(item)
    return join_session(tokens[-MAX_SESSION_ITEMS:])


def load_visitor(service: AppService, visitor_id) -> tuple[str, str | None, str]:
    """A visitor id -> (session text, held-out next item, status). Unknown visitor: empty session (cold start).

    The last item of the visitor's session is held out, so the app can show whether the model ranks it.
    """
    vid = clean_text(visitor_id, MAX_TOKEN_CHARS)
    if not vid:
        return "", None, "Choose or search a visitor."
    items = service.visitors.sessions.get(vid)
    if items is None:
        return "", None, (f"**Unknown visitor** {code(vid)}: no history, so recommendations fall back "
                          "to popular items (cold start).")
    history, target = (items[:-1], items[-1]) if len(items) > 1 else (items, None)
    history = history[-MAX_SESSION_ITEMS:]
    held = f"; their next item, {code(target, 40)}, is held out" if target else ""
    return join_session(history), target, f"Visitor {code(vid)}: {len(history)} items{held}."


def model_card(service: AppService, model_key) -> str:
    """Markdown about the chosen model: what it is, and its validation and test metrics with 95% CIs."""
    try:
        entry, model = service.model(model_key)
    except LookupError as err:
        return f"⚠️ {err}"
    kind = entry.kind or type(model).__name__.lower()
    metrics = getattr(model, "metrics", None) or entry.metrics
    blurb = MODEL_BLURBS.get(kind) or MODEL_BLURBS.get(kind.split("-")[0], f"Model kind: {code(kind)}.")
    weights = dict(zip(getattr(model.config, "components", ()), getattr(model.config, "weights", ())))
    if weights:  # a hybrid: which models, how much of each
        blurb += " Mix: " + ", ".join(f"{code(p)} {w:.0%}" for p, w in weights.items()) + "."
    lines = [blurb, ""]
    names = sorted({m for split in ("valid", "test") for m in (metrics.get(split) or {})
                    if str(m).partition("@")[0] in CARD_METRICS and metric_value(metrics, split, m) is not None},
                   key=_metric_order)
    if any(m.endswith(("@10", "@20")) for m in names):  # the cut-offs the app reports; others are in metrics.json
        names = [m for m in names if m.endswith(("@10", "@20"))]
    if names:
        lines += ["| metric | validation | test (95% CI) |", "|---|---|---|"]
        for m in names:
            valid, test = metric_value(metrics, "valid", m), metric_value(metrics, "test", m)
            ci = (metrics.get("test") or {}).get(m)
            ci = ci.get("ci95") if isinstance(ci, Mapping) else None
            ci_text = f" ({ci[0]:.3f}–{ci[1]:.3f})" if isinstance(ci, list) and len(ci) == 2 else ""
            label = m.replace(m.partition("@")[0], CARD_METRICS.get(m.partition("@")[0], m), 1)
            lines.append(f"| {md(label)} | {'' if valid is None else f'{valid:.3f}'} | "
                         f"{'' if test is None else f'{test:.3f}'}{ci_text} |")
        cases = metric_value(metrics, "test", "cases")
        if cases:
            lines += ["", f"Test scores over {int(cases):,} predictions; 95% bootstrap confidence intervals."]
    else:
        lines.append("No metrics recorded for this model.")
    return "\n".join(lines)


def categories(service: AppService, model_key, limit: int = 300) -> list[str]:
    """The model's categories, most viewed first, for the cold-start category picker."""
    try:
        _, model = service.model(model_key)
    except LookupError:
        return []
    cats = model.item_info.get("category_ids") or []
    pop = model.item_info.get("popularity") or [0] * len(cats)
    totals: dict[str, int] = {}
    for c, p in zip(cats, pop, strict=False):
        if c is not None and clean_text(c):
            totals[clean_text(c)] = totals.get(clean_text(c), 0) + int(p)
    return sorted(totals, key=lambda c: (-totals[c], _natural(c)))[:limit]


_METRIC_BASES = ("hr", "mrr", "ndcg", "precision", "coverage", "popularity")


def _metric_order(name: str):
    base, _, k = name.partition("@")
    return (_METRIC_BASES.index(base) if base in _METRIC_BASES else len(_METRIC_BASES),
            int(k) if k.isdigit() else 0, name)


# ---------------------------------------------------------------------------------------------------------------
# explanations


NOT_AVAILABLE = ("Not available for this model: explanations exist for SASRec (attention over the session) "
                 "and the kNN models (neighbour sessions / items).")


def format_explanation(model, history: np.ndarray, top: int = 5) -> str:
    """`model.explain(history, top)` as compact markdown; item indices in it are shown as raw item ids."""
    try:
        expl = model.explain(np.asarray(history, dtype=np.int64), top)
    except Exception as err:  # an explanation must never break a recommendation
        log.warning("explain failed for %s: %s", type(model).__name__, err)
        return f"The explanation could not be computed ({md(err, 160)})."
    if not expl:
        return NOT_AVAILABLE
    return _render(expl, model.vocab)


def _is_itemish(key) -> bool:
    key = str(key).lower()
    return key in ("item", "items", "history", "target") or key.endswith(("item", "items", "_id"))


def _is_scalar(v) -> bool:
    return isinstance(v, (str, int, float, bool, np.generic)) or v is None


def _value(v, vocab, itemish: bool) -> str:
    """One cell: item indices shown as raw ids, floats to 3 decimals, small records as `id (weight)`."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or v is None:
        return md(v)
    if itemish and isinstance(v, int) and 1 <= v < len(vocab):
        return md(vocab.decode([v])[0], 40)
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, Mapping):
        named = [x for x in v if _is_itemish(x) or str(x).lower() in ("session", "name")]
        rest = [x for x in v if x not in named]
        if len(named) == 1 and len(rest) == 1:  # {"item": 17, "weight": 0.4} -> "abc (0.400)"
            return f"{_value(v[named[0]], vocab, _is_itemish(named[0]))} ({_value(v[rest[0]], vocab, False)})"
        return "; ".join(f"{md(x, 20)}: {_value(y, vocab, _is_itemish(x))}" for x, y in list(v.items())[:6])
    if isinstance(v, (list, tuple, np.ndarray)):
        v = list(v)
        return ", ".join(_value(x, vocab, itemish) for x in v[:10]) + (f" … ({len(v)} in all)" if len(v) > 10 else "")
    return md(v, 60)


def _table(rows: list[Mapping], vocab, limit: int = 20) -> list[str]:
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(md(str(c).replace("_", " "), 30) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows[:limit]:
        lines.append("| " + " | ".join(_value(r.get(c, ""), vocab, _is_itemish(c)) for c in cols) + " |")
    return lines + [""]


def _render(expl, vocab) -> str:
    """Any explain() dict as markdown: `kind` as a title, parallel lists and lists of records as tables."""
    if not isinstance(expl, Mapping):
        return md(expl, 500)
    # "all_*" entries are whole raw vectors (e.g. SASRec's attention over every position): for code, not people
    expl = {k: v for k, v in expl.items() if not str(k).startswith("all_")}
    lines = []
    if "kind" in expl:
        lines += [f"*{md(str(expl.pop('kind')).capitalize(), 60)}*", ""]
    for key in [k for k, v in expl.items() if isinstance(v, str)]:  # short notes such as "method" first
        lines += [f"**{md(str(key).replace('_', ' '), 40)}**: {md(expl.pop(key), 200)}", ""]
    lists = {k: list(v) for k, v in expl.items()
             if isinstance(v, (list, tuple, np.ndarray)) and len(v) and all(_is_scalar(x) for x in v)}
    # parallel lists, e.g. {"items": [...], "weights": [...]}: one table row per position; the length of an
    # item list decides which lists belong together
    lengths = [len(v) for k, v in lists.items() if _is_itemish(k)] or [len(v) for v in lists.values()]
    group = {k: v for k, v in lists.items() if lengths and len(v) == lengths[0]}
    if len(group) >= 2:
        lines += _table([dict(zip(group, row, strict=True)) for row in zip(*group.values(), strict=True)], vocab)
        expl = {k: v for k, v in expl.items() if k not in group}
    n_tables = sum(isinstance(v, (list, tuple)) and bool(v) and all(isinstance(r, Mapping) for r in v)
                   for v in expl.values())
    for key, value in expl.items():
        title = md(str(key).replace("_", " "), 40)
        if isinstance(value, (list, tuple)) and value and all(isinstance(r, Mapping) for r in value):
            lines += ([f"**{title}**", ""] if n_tables > 1 else []) + _table(list(value), vocab)
        elif isinstance(value, Mapping) and value and all(_is_scalar(v) for v in value.values()):
            lines += [f"**{title}**", "", "| | |", "|---|---|"]
            lines += [f"| {_value(k2, vocab, _is_itemish(key))} | {_value(v2, vocab, _is_itemish(k2))} |"
                      for k2, v2 in list(value.items())[:20]] + [""]
        else:
            lines += [f"**{title}**: {_value(value, vocab, _is_itemish(key))}", ""]
    return "\n".join(lines).strip()


ABOUT = f"""
### What this demo does
It predicts the **next item** a shopper will look at from the items they have viewed so far in their
visit (a *session*). Pick a sample visitor, search one by id, or type item ids; click a recommended item
to add it to the session, as a shopper browsing the shop would.

### The models
- **Pop** — recommends the most viewed items to everyone. Simple, and surprisingly hard to beat on some shops.
- **S-Pop** — items the shopper already viewed in this session first, then the most popular ones.
- **Item-kNN** — "people who viewed this also viewed": items that co-occur with the session's items.
- **Session-kNN** — finds past sessions most similar to this one and recommends what those visitors viewed.
- **ALS** — matrix factorisation: each item gets a vector, and items viewed together get similar vectors.
- **GRU4Rec** and **LSTM** — recurrent neural networks that read the session in order, one item at a time.
- **SASRec** — a Transformer: *self-attention* lets it weigh every earlier item when predicting the next one.
  "Why these items" shows those attention weights.

### The metrics
Each test session is replayed: for every position, the model ranks **all** items and we look where the
item the visitor actually viewed next ended up.
- **HR@K** (hit rate) — how often that item is in the top K. HR@10 = 0.30 means "in the top 10 for 30% of cases".
- **MRR@K** (mean reciprocal rank) — 1 for rank 1, ½ for rank 2, ⅓ for rank 3 … 0 beyond K, averaged.
  Rewards putting the right item near the very top.
- **NDCG@K** — like MRR but with a gentler, logarithmic discount for lower ranks.
- **Coverage** — the share of the catalogue that ever appears in someone's top K: low coverage means the
  model keeps recommending the same few items.

### How the evaluation was done
- **Full ranking**: every item of the catalogue is ranked, not 100 sampled negatives (which inflates scores).
- **Pessimistic ties**: if the true item ties with others on score, it is placed *below* them all, so a
  model cannot score well by giving everything the same score.
- **Time-based split**: models are trained on older sessions, tuned on a **validation** period, and scored on
  the most recent **test** period once. Models are chosen on validation scores only, never on test scores;
  the test numbers come with 95% confidence intervals.

### Limits of this demo
Sessions are cut to their {MAX_SESSION_ITEMS} most recent items and at most {MAX_K} items are recommended.
A visitor or item the model has never seen gets the popularity fallback (cold start), labelled as such.
"""
