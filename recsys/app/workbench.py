"""The "Your data" workbench: an uploaded event log -> a private folder -> the project's own pipeline -> models the
app serves to that visitor alone, a zip of them and the CLI commands that reproduce the run.

One code path: the data set is built by `recsys.prepare.prepare` and the models by `recsys.pipeline.run`, what
`scripts/prepare_data.py` and `scripts/train_and_eval.py` call; `commands` writes those scripts' command lines
for the same options.

Isolation and clean-up. Every upload gets `<work root>/<token>/` (a random 128-bit token, mode 0700) holding a
marker file; its models are registered under keys holding the token, listed only in the page session that made
them. A training fills a temporary `.tmp-*` folder inside the upload's and renames it into place only when every
step succeeded, so a failed or cancelled run leaves nothing. `cleanup` removes upload folders older than the
time limit, and only real folders named by a token and holding our marker: never a link, never anything else.
app.py runs `train` in a child process at a lower CPU priority (recsys.app.trainproc, the same function), which
also removes the staging folder of a child that was stopped or died.

Limits (environment variables, stated in the page): file size `RECSYS_UPLOAD_MB` (default 256: a 5 M-event CSV
with ISO dates and text ids runs about 41 bytes an event, 205 MB, and the events limit, not the bytes, is what
bounds the work; docs/BENCHMARKS.md), events `RECSYS_UPLOAD_EVENTS` (5,000,000), training minutes
`RECSYS_TRAIN_MINUTES` (10), hours an upload is kept `RECSYS_UPLOAD_HOURS` (24), and the work root `RECSYS_WORK`
(default: <temp dir>/recsys-uploads). The upload's token is kept in the browser (app.py, gr.BrowserState) and
`restore` finds its run again after a reload or a server restart, until the time limit.
"""

import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from recsys.app.detect import RETAILROCKET_MAPPING, ROLES
from recsys.datasets.files import DECOMPRESS_ERRORS, open_input
from recsys.datasets.schema import DataError

MARKER = ".recsys-upload.json"
TOKEN = re.compile(r"[0-9a-f]{32}")
KEY_PREFIX = "upload:"
BASELINES = ("pop", "spop", "itemknn", "sr", "sknn", "vsknn")
NEURAL = ("gru4rec", "sasrec", "lstm")
DEFAULT_BASELINES = ("pop", "spop", "sr", "vsknn")
N_BOOT = 200  # bootstrap resamples behind each CI (the first start's too)
VALID_CASES = 2000  # selection validates on this many evenly spaced cases (as the first start's)
EVENTS_NAME = "events"
ITEMS_NAME = "items"
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,2}$")
_VALID_LINE = re.compile(r"^\[([A-Za-z0-9._@-]+)\] .*valid mrr@20 ([0-9.]+)")


class Cancelled(Exception):
    """The user stopped the training."""


@dataclass(frozen=True)
class Limits:
    max_mb: float = 256.0
    max_events: int = 5_000_000
    train_minutes: float = 10.0
    keep_hours: float = 24.0
    root: Path = Path(tempfile.gettempdir()) / "recsys-uploads"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Limits":
        def number(name: str, default: float, kind=float):
            text = (environ.get(name) or "").strip()
            try:
                value = kind(text) if text else default
            except ValueError:
                raise ValueError(f"{name} must be a number, got {text!r}") from None
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {text!r}")
            return value

        return cls(number("RECSYS_UPLOAD_MB", cls.max_mb), number("RECSYS_UPLOAD_EVENTS", cls.max_events, int),
                   number("RECSYS_TRAIN_MINUTES", cls.train_minutes), number("RECSYS_UPLOAD_HOURS", cls.keep_hours),
                   Path(environ.get("RECSYS_WORK") or cls.root))

    def describe(self) -> str:
        return (f"Limits on this server: files up to **{self.max_mb:g} MB**, logs up to **{self.max_events:,} "
                f"events**, a neural model trains for at most **{self.train_minutes:g} minutes**; uploads and their "
                f"models are deleted after **{self.keep_hours:g} hours** (set by `RECSYS_UPLOAD_MB`, "
                "`RECSYS_UPLOAD_EVENTS`, `RECSYS_TRAIN_MINUTES`, `RECSYS_UPLOAD_HOURS`).")


# ---------------------------------------------------------------------------------------------- private folders


def _root(limits: Limits) -> Path:
    root = Path(limits.root)
    if root.is_symlink():
        raise DataError(f"the work root {root} is a symbolic link; set RECSYS_WORK to a real folder")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def display_name(filename: str) -> str:
    """A safe short name for an upload from its file name: `my shop log.csv.gz` -> `my-shop-log`."""
    stem = _SUFFIX.sub("", Path(str(filename)).name)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "upload"


def new_upload(limits: Limits, filename: str) -> str:
    """A new private upload folder; returns its token."""
    token = secrets.token_hex(16)
    folder = _root(limits) / token
    folder.mkdir(mode=0o700)
    (folder / MARKER).write_text(json.dumps({"created": time.time(), "name": display_name(filename)}))
    return token


def upload_folder(limits: Limits, token) -> Path:
    """The folder of an upload token, refused (DataError) unless it is one of ours: a token's form, a real folder
    (no link) holding our marker."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise DataError("this upload is no longer available; upload the file again")
    folder = Path(limits.root) / token
    marker = folder / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        raise DataError("this upload is no longer available (removed after its time limit?); upload it again")
    return folder


def upload_name(folder: Path) -> str:
    try:
        return display_name(json.loads((folder / MARKER).read_text()).get("name") or "upload")
    except (OSError, ValueError, AttributeError):
        return "upload"


def cleanup(limits: Limits, now: float | None = None) -> list[str]:
    """Remove upload folders older than `limits.keep_hours`; returns their tokens. Only real folders named by a
    token that hold our marker are touched; a link is never followed (nor removed)."""
    root = Path(limits.root)
    if root.is_symlink() or not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for entry in root.iterdir():
        marker = entry / MARKER
        if not TOKEN.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        if marker.is_symlink() or not marker.is_file():
            continue
        try:
            created = float(json.loads(marker.read_text()).get("created"))
        except (OSError, ValueError, TypeError, AttributeError):
            created = marker.stat().st_mtime
        if now - created > limits.keep_hours * 3600:
            shutil.rmtree(entry, ignore_errors=True)  # rmtree removes links inside, never what they point to
            removed.append(entry.name)
    return removed


def store_file(limits: Limits, token: str, source, what: str = EVENTS_NAME) -> Path:
    """Copy an uploaded file into the upload's folder (input/<what><suffix>), after the size limit."""
    source = Path(source)
    if source.is_symlink() or not source.is_file():
        raise DataError("the uploaded file is missing; upload it again")
    size = source.stat().st_size
    if size > limits.max_mb * 1e6:
        raise DataError(f"the file is {size / 1e6:,.1f} MB, over this server's limit of {limits.max_mb:g} MB "
                        "(RECSYS_UPLOAD_MB); use the command-line scripts for larger logs")
    if size == 0:
        raise DataError("empty file")
    folder = upload_folder(limits, token) / "input"
    folder.mkdir(exist_ok=True)
    suffix = "".join(Path(source.name).suffixes[-2:]).lower()
    suffix = suffix if re.fullmatch(r"(\.[a-z0-9]{1,8}){0,2}", suffix) else ""
    for old in folder.glob(f"{what}*"):
        old.unlink()
    target = folder / f"{what}{suffix}"
    shutil.copyfile(source, target)
    return target


def count_events(path: Path, limit: int) -> int:
    """Rows of a CSV (compressed or not) or Parquet file, counting no further than `limit` + 1."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    lines, last = 0, b"\n"
    try:
        with open_input(path) as stream:
            while chunk := stream.read(1 << 22):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
                if lines > limit + 1:
                    break
    except DECOMPRESS_ERRORS as err:
        raise DataError(f"could not decompress: {err}") from None
    return lines + (last != b"\n") - 1  # the header line


# ---------------------------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class TrainRequest:
    """What the page sends: the column mapping and the options scripts/prepare_data.py and train_and_eval.py take."""

    columns: dict[str, str]  # canonical role -> file column
    timestamp_unit: str | None = None  # None: ISO dates; "s" or "ms": epoch numbers
    retailrocket: bool = False  # the file is in RetailRocket's events.csv layout (its own reader, --events works)
    events: tuple[str, ...] = ()  # keep only these event types (needs an event type column)
    split: str = "temporal"
    session_gap_minutes: float = 30.0
    test_days: float = 1.0
    valid_days: float = 1.0
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    neural: str | None = None
    minutes: float = 2.0
    item_columns: dict[str, str] | None = None

    def __post_init__(self):
        columns = {k: v for k, v in self.columns.items() if v}
        object.__setattr__(self, "columns", columns)
        unknown = set(columns) - set(ROLES)
        if unknown:
            raise DataError(f"unknown column roles {sorted(unknown)}")
        if len(set(columns.values())) != len(columns):
            raise DataError("one file column is mapped to two roles; give each role its own column")
        if "item_id" not in columns or "timestamp" not in columns:
            raise DataError("map the item id and the time columns (both are needed)")
        if not ({"session_id", "user_id"} & set(columns)):
            raise DataError("map a session id or a user id column (sessions are cut from a user's events by the "
                            "session gap)")
        if self.split == "loo" and "user_id" not in columns:
            raise DataError("leave-one-out needs a user id column")
        if self.split not in ("temporal", "loo"):
            raise DataError("the split is temporal or leave-one-out")
        if self.timestamp_unit not in (None, "s", "ms"):
            raise DataError("the time unit is ISO dates, epoch seconds or epoch milliseconds")
        if self.events and not self.uses_retailrocket and "event" not in columns:
            raise DataError("an event filter needs an event type column: map one, or leave the filter empty")
        bad = [m for m in self.models if m not in BASELINES + NEURAL]
        if bad:
            raise DataError(f"unknown model {bad[0]!r}")
        if not self.models:
            raise DataError("choose at least one model")
        for name, value in (("session gap", self.session_gap_minutes), ("test days", self.test_days),
                            ("validation days", self.valid_days), ("training minutes", self.minutes)):
            if not (isinstance(value, (int, float)) and value > 0 and value < 1e6):
                raise DataError(f"the {name} must be a positive number")

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.baselines) + ((self.neural,) if self.neural else ())

    @property
    def uses_retailrocket(self) -> bool:
        """prepare's retailrocket source reads the file: its layout, mapped as that reader maps it."""
        return self.retailrocket and self.columns == RETAILROCKET_MAPPING and self.timestamp_unit == "ms"

    @property
    def source(self) -> str:
        return "retailrocket" if self.uses_retailrocket else "csv"

    def prepare_options(self) -> dict:
        """What scripts/prepare_data.py sets from its options (recsys.prepare.config_from_options)."""
        options = {"split": self.split, "test_days": self.test_days, "valid_days": self.valid_days}
        if self.split == "temporal":
            options["session_gap_minutes"] = self.session_gap_minutes
        return options

    def params(self, limits: Limits) -> dict:
        """The neural model's training parameters: the time budget and the first start's validation sample."""
        if not self.neural:
            return {}
        return {self.neural: {"train": {"max_minutes": min(self.minutes, limits.train_minutes),
                                        "val_max_cases": VALID_CASES}}}


# ---------------------------------------------------------------------------------------------- training


@dataclass
class Trained:
    token: str
    name: str
    run: Path  # the run folder: one model folder each, results.json, results.md
    data: Path  # the processed data set
    results: dict
    scores: dict[str, float] = field(default_factory=dict)  # model -> validation MRR@20

    def model_folders(self) -> list[Path]:
        return sorted(p.parent for p in self.run.glob("*/config.json"))


def train(limits: Limits, token: str, request: TrainRequest, log: Callable[[str], None] = print,
          cancelled: threading.Event | None = None,
          on_model: Callable[[str, float, int, int], None] | None = None) -> Trained:
    """Prepare the upload's events with `request` and train its models into a new run folder of the upload.

    Everything is written into a temporary folder first, renamed into place when all succeeded; on any error
    (a bad value, nothing left after filtering, Cancelled) it is removed and the error raised. on_model(name,
    valid mrr@20, done, total) is called as each model finishes.
    """
    from recsys.pipeline import RunConfig, run
    from recsys.prepare import config_from_options, prepare

    folder = upload_folder(limits, token)
    events = next((p for p in sorted((folder / "input").glob(f"{EVENTS_NAME}*")) if p.is_file()), None)
    if events is None or events.is_symlink():
        raise DataError("no event log uploaded yet")
    items = next((p for p in sorted((folder / "input").glob(f"{ITEMS_NAME}*")) if p.is_file()
                  and not p.is_symlink()), None)
    n_events = count_events(events, limits.max_events)
    if n_events > limits.max_events:
        raise DataError(f"the log has over {limits.max_events:,} events, this server's limit "
                        "(RECSYS_UPLOAD_EVENTS); use the command-line scripts for larger logs")
    staging = folder / f".tmp-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    scores: dict[str, float] = {}
    total = len(request.models)

    def watch(line: str) -> None:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("training stopped")
        log(line)
        hit = _VALID_LINE.match(line)
        if hit and hit.group(1) in request.models:
            scores[hit.group(1)] = float(hit.group(2))
            if on_model:
                on_model(hit.group(1), scores[hit.group(1)], len(scores), total)

    try:
        watch(f"Reading {n_events:,} events ...")
        data = prepare(request.source, [str(events)], staging / "data",
                       config_from_options(**request.prepare_options()),
                       columns=None if request.uses_retailrocket else request.columns,
                       timestamp_unit=request.timestamp_unit, events_filter=request.events or None,
                       items=str(items) if items else None, item_columns=request.item_columns if items else None)
        stats = data.stats()
        watch(f"Data set: {stats['n_items']:,} items; {stats['train']['sessions']:,} / "
              f"{stats['valid']['sessions']:,} / {stats['test']['sessions']:,} train / valid / test sessions")
        if min(stats["valid"]["sessions"], stats["test"]["sessions"]) == 0:
            raise DataError("the split leaves no validation or test sessions: choose fewer test / validation days "
                            "(or leave-one-out)")
        params = request.params(limits)
        out = staging / "run"
        for name, spec in params.items():  # what train_and_eval.py --params reads
            out.mkdir(exist_ok=True)
            (out / f"{name}.params.json").write_text(json.dumps({"model": name, "params": spec}, indent=2))
        results = run(data, RunConfig(models=request.models, out=out, params=params, n_boot=N_BOOT,
                                      progress=False, assets=None, max_valid_cases=VALID_CASES, log_phases=True),
                      log=watch)
        shutil.rmtree(out / ".work", ignore_errors=True)  # training checkpoints: not part of the result
        results = name_data_set(out, upload_name(folder), results)
        (staging / "commands.sh").write_text(commands(request, upload_name(folder), bool(items)))
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("training stopped")
        final = folder / f"run-{secrets.token_hex(4)}"
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in folder.glob("run-*"):  # the newest run replaces earlier ones of this upload
        if old != final and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return Trained(token, upload_name(folder), final / "run", final / "data", results, scores)


def name_data_set(run: Path, name: str, results: dict) -> dict:
    """Name the run's data set after the upload: `"name"` in the "data" block of results.json and of each model's
    metrics.json, results.md and each model card regenerated from them (as recsys.hub.push does), so the app's
    model card, the dashboard and the downloaded folders say "my-shop-log" where the reader's name ("csv") was all
    they had.
    Returns the results with the name."""
    from recsys.atomic import write_text_atomic
    from recsys.card import MODEL_CARD_MARKER, model_card
    from recsys.jsonfile import read_json
    from recsys.report import results_markdown

    results = {**results, "data": {**(results.get("data") or {}), "name": name}}
    write_text_atomic(run / "results.json", json.dumps(results, indent=2))
    write_text_atomic(run / "results.md", results_markdown(results))  # "Data: <name> (read as csv)"
    for config_file in sorted(run.glob("*/config.json")):
        folder = config_file.parent
        if folder.is_symlink() or not (folder / "metrics.json").is_file():
            continue
        metrics = read_json(folder / "metrics.json")
        metrics["data"] = {**(metrics.get("data") or {}), "name": name}
        write_text_atomic(folder / "metrics.json", json.dumps(metrics, indent=2))
        card = folder / "README.md"
        if card.is_file() and MODEL_CARD_MARKER in card.read_text(encoding="utf-8"):
            write_text_atomic(card, model_card(folder.name, read_json(config_file), metrics, metrics["data"]))
    return results


def restore(limits: Limits, token) -> Trained | None:
    """The finished run of an upload still on disk (after a page reload or a server restart), or None when it
    has none; DataError when the upload itself is gone (removed after its time limit)."""
    from recsys.jsonfile import JSONFileError, read_json

    folder = upload_folder(limits, token)
    runs = [p for p in folder.glob("run-*") if p.is_dir() and not p.is_symlink()
            and (p / "run" / "results.json").is_file() and not (p / "run").is_symlink()]
    if not runs:
        return None
    final = max(runs, key=lambda p: p.stat().st_mtime)
    try:
        results = read_json(final / "run" / "results.json")
    except JSONFileError:
        return None
    models = results.get("models") if isinstance(results.get("models"), dict) else {}
    scores = {}
    for name, entry in models.items():
        value = ((entry.get("valid") or {}).get("mrr@20") or {}).get("value") if isinstance(entry, dict) else None
        if isinstance(value, (int, float)):
            scores[name] = float(value)
    return Trained(token, upload_name(folder), final / "run", final / "data", results, scores)


def expires_in_hours(limits: Limits, token) -> float:
    """Hours until the upload is removed (its marker's creation time plus the limit)."""
    try:
        created = float(json.loads((upload_folder(limits, token) / MARKER).read_text()).get("created"))
    except (OSError, ValueError, TypeError, AttributeError):
        return limits.keep_hours
    return max(0.0, limits.keep_hours - (time.time() - created) / 3600)


def model_key(token: str, run: Path, model: str) -> str:
    """The catalogue key of an upload's model: private (it holds the token) and new for every run."""
    return f"{KEY_PREFIX}{token}/{run.parent.name}/{model}"


def token_of(key: str) -> str | None:
    if isinstance(key, str) and key.startswith(KEY_PREFIX):
        token = key[len(KEY_PREFIX):].split("/", 1)[0]
        return token if TOKEN.fullmatch(token) else None
    return None


# ---------------------------------------------------------------------------------------------- take it home


def commands(request: TrainRequest, name: str, with_items: bool) -> str:
    """The scripts' command lines that reproduce this run from the same files (as a shell script)."""
    q = shlex.quote
    data, runs = f"data/processed/{name}", f"runs/{name}"
    source = request.source
    prep = ["python scripts/prepare_data.py", f"--source {source}", f"--input {EVENTS_NAME}.csv"]
    if source == "csv":
        prep.append("--columns " + q(",".join(f"{k}={v}" for k, v in request.columns.items())))
        if request.timestamp_unit:
            prep.append(f"--timestamp-unit {request.timestamp_unit}")
    if request.events:
        prep.append("--events " + q(",".join(request.events)))
    for option, value in request.prepare_options().items():
        prep.append(f"--{option.replace('_', '-')} {value:g}" if isinstance(value, float) else
                    f"--{option.replace('_', '-')} {value}")
    if with_items:
        prep.append(f"--items {ITEMS_NAME}.csv" + (" --item-columns " + q(",".join(
            f"{k}={v}" for k, v in request.item_columns.items())) if request.item_columns else ""))
    prep.append(f"--out {data}")
    train_cmd = ["python scripts/train_and_eval.py", f"--data {data}", "--models " + ",".join(request.models),
                 f"--out {runs}", f"--bootstrap {N_BOOT}", f"--max-valid-cases {VALID_CASES}"]
    if request.neural:
        train_cmd.append(f"--params {request.neural}.params.json")
    push = ["python scripts/push_to_hub.py", f"--repo USER/recsys-{name}", f"--all {runs}"]
    lines = ["#!/bin/sh", "# Reproduces the app's run (the same pipeline). Put the uploaded log here as "
             f"{EVENTS_NAME}.csv" + (f" and the catalogue as {ITEMS_NAME}.csv" if with_items else "")
             + "; the file's own name and compression do not matter to the readers.", "set -e"]
    if request.neural:
        lines.append(f"# {request.neural}.params.json (in this zip): the training time budget the app used")
    return "\n".join(lines + [" \\\n    ".join(c) for c in (prep, train_cmd, push)]) + "\n"


def download(trained: Trained) -> Path:
    """A zip of the run: each model folder (JSON + safetensors, its card and curves), results.md / .json, the
    parameter files and commands.sh; written beside the run in the upload's folder."""
    target = trained.run.parent / f"{trained.name}-models.zip"
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(trained.run.rglob("*")):
            if path.is_file() and not path.is_symlink() and ".work" not in path.relative_to(trained.run).parts:
                zf.write(path, f"{trained.name}/{path.relative_to(trained.run)}")
        zf.write(trained.run.parent / "commands.sh", f"{trained.name}/commands.sh")
    tmp.replace(target)
    return target


def register(service, trained: Trained) -> list[str]:
    """Add a run's models to the service as private entries (titled "<upload> · <model>") with the upload's test
    visitors; an earlier run of the same upload is forgotten. Returns their keys, best on validation first."""
    from recsys.app.catalogue import discover_local
    from recsys.app.visitors import Visitors

    service.forget_private(f"{KEY_PREFIX}{trained.token}/")
    visitors = Visitors.from_processed(trained.data)
    entries = [replace(e, key=model_key(trained.token, trained.run, e.key), title=f"{trained.name} · {e.key}")
               for e in discover_local(trained.run)]
    entries.sort(key=lambda e: -(trained.scores.get(e.title.rsplit(" · ", 1)[-1]) or -1.0))
    service.add_private(entries, visitors)
    return [e.key for e in entries]


_FLAGS: dict[str, threading.Event] = {}  # upload token -> the Stop button's flag for its running training
_FLAGS_LOCK = threading.Lock()


def cancel_flag(token: str) -> threading.Event:
    """A fresh stop flag for a training of this upload (one at a time per upload)."""
    with _FLAGS_LOCK:
        flag = _FLAGS[token] = threading.Event()
        return flag


def cancel(token) -> bool:
    """Ask this upload's running training to stop, leaving nothing: in this process at its next step; in a child
    process (recsys.app.trainproc, as app.py trains) the child is ended at once."""
    with _FLAGS_LOCK:
        flag = _FLAGS.get(token) if isinstance(token, str) else None
    if flag is None:
        return False
    flag.set()
    return True
