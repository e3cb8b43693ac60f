"""The "Your data" tab's logic, without Gradio: an uploaded file -> its private folder, preview and column guess;
the page's fields -> a TrainRequest; a finished run -> the text the page shows. app.py only wires these.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsys.app.detect import ROLES, read_head
from recsys.app.text import MAX_TOKEN_CHARS, clean_text, code, md
from recsys.app.workbench import (
    BASELINES,
    KEY_PREFIX,
    NEURAL,
    Limits,
    Trained,
    TrainRequest,
    display_name,
    new_upload,
    store_file,
    upload_folder,
)
from recsys.datasets.schema import DataError

NONE = "(none)"
UNITS = {"ISO dates": None, "epoch seconds": "s", "epoch milliseconds": "ms"}
ROLE_LABELS = {"session_id": "Session id", "user_id": "User / visitor id", "item_id": "Item id",
               "timestamp": "Time", "event": "Event type", "category_id": "Category"}


def uploaded_path(value) -> tuple[Path, str]:
    """(path, file name) of a file Gradio received from this page. The value is sent by the browser, so the path is
    accepted only inside Gradio's upload folder, as a regular file (never a link)."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    if isinstance(value, dict):
        path, name = value.get("path"), value.get("orig_name")
    else:
        path, name = value, None
    if not isinstance(path, str) or not path or len(path) > 4096:
        raise DataError("no file received; upload it again")
    path = Path(path)
    if not is_in_or_equal(path, get_upload_folder()) or path.is_symlink() or not path.is_file():
        raise DataError("that file was not uploaded through this page; upload it again")
    name = clean_text(name if isinstance(name, str) else path.name, MAX_TOKEN_CHARS) or path.name
    return path, name


@dataclass(frozen=True)
class Inspected:
    token: str
    name: str
    status: str
    preview: pd.DataFrame
    columns: list[str]
    guess: dict[str, str]
    unit: str  # a key of UNITS
    events: list[str]


def inspect(limits: Limits, value) -> Inspected:
    """Store an uploaded event log in a new private folder, read its head and guess its columns."""
    path, name = uploaded_path(value)
    token = new_upload(limits, name)
    stored = store_file(limits, token, path)
    try:
        head = read_head(stored)
    except DataError as err:
        raise DataError(str(err).replace(str(stored), name)) from None
    unit = next(k for k, v in UNITS.items() if v == head.timestamp_unit)
    found = ", ".join(f"{ROLE_LABELS[r].lower()} {code(c, 30)}" for r, c in head.guess.items())
    layout = " It is in RetailRocket's `events.csv` layout." if head.retailrocket else ""
    missing = [ROLE_LABELS[r].lower() for r in ("item_id", "timestamp") if r not in head.guess]
    if not {"session_id", "user_id"} & set(head.guess):
        missing.append("session or user id")
    todo = (f" **Please choose** the {', '.join(missing)} column{'s' * (len(missing) > 1)} below." if missing
            else " Check the mapping below, correct it if needed, and train.")
    status = (f"Read {code(name, 60)} ({head.kind.upper()}, {len(head.columns)} columns). Guessed: "
              f"{found or 'nothing'}; times as {unit}.{layout}{todo}")
    return Inspected(token, display_name(name), status, head.preview, list(head.columns), head.guess, unit,
                     head.events())


def attach_items(limits: Limits, token, value) -> str:
    path, name = uploaded_path(value)
    upload_folder(limits, token)
    stored = store_file(limits, token, path, "items")
    columns = list(read_head(stored).columns)
    return (f"Item catalogue {code(name, 60)} attached ({', '.join(code(c, 20) for c in columns[:8])}): its "
            "`item_id` column and any of name, category, price, brand, colour, description are joined on.")


def column(value) -> str | None:
    text = clean_text(value, MAX_TOKEN_CHARS)
    return None if not text or text == NONE else text


def number(value, what: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise DataError(f"the {what} must be a number") from None
    if not result > 0 or result > 1e6:
        raise DataError(f"the {what} must be a positive number")
    return result


def request(limits: Limits, token, columns: dict, unit, events, split, gap, test_days, valid_days, baselines,
            neural, minutes) -> TrainRequest:
    """The page's fields -> a checked TrainRequest (DataError says what is wrong)."""
    if not token:
        raise DataError("upload an event log first")
    folder = upload_folder(limits, token)
    stored = next(iter(sorted((folder / "input").glob("events*"))), None)
    if stored is None:
        raise DataError("upload an event log first")
    mapping = {role: c for role in ROLES if (c := column(columns.get(role)))}
    head = read_head(stored)
    unknown = [c for c in mapping.values() if c not in head.columns]
    if unknown:
        raise DataError(f"the file has no column {unknown[0]!r}")
    events_text = clean_text(events, 400)
    kept = tuple(e for e in (p.strip() for p in re.split(r"[,\s]+", events_text)) if e)
    baselines = tuple(b for b in (baselines or []) if isinstance(b, str) and b in BASELINES)
    neural = column(neural)
    if neural is not None and neural not in NEURAL:
        raise DataError(f"unknown neural model {neural!r}")
    unit_label = clean_text(unit, 40)
    if unit_label not in UNITS:
        raise DataError("choose how times are written")
    return TrainRequest(columns=mapping, timestamp_unit=UNITS[unit_label], retailrocket=head.retailrocket,
                        events=kept, split="loo" if clean_text(split, 20).startswith("leave") else "temporal",
                        session_gap_minutes=number(gap, "session gap"), test_days=number(test_days, "test days"),
                        valid_days=number(valid_days, "validation days"), baselines=baselines, neural=neural,
                        minutes=min(number(minutes, "training minutes"), limits.train_minutes))


def private_choices(service, token) -> list[tuple[str, str]]:
    """The app's models and, for this page session only, its upload's."""
    mine = [(e.label, e.key) for k, e in service.private.items()
            if isinstance(token, str) and k.startswith(f"{KEY_PREFIX}{token}/")]
    return mine + service.choices


def summary(trained: Trained, keys: list[str]) -> str:
    stats = trained.results.get("data") or {}
    best = (trained.results.get("selection") or {}).get("best")
    rows = ["| Model | valid MRR@20 | test HR@10 | test MRR@20 |", "|---|---|---|---|"]
    for name, entry in trained.results.get("models", {}).items():
        valid = entry["valid"]["mrr@20"]["value"]
        rows.append(f"| {name}{' (best on validation)' if name == best else ''} | {valid:.3f} | "
                    f"{entry['test']['hr@10']['value']:.3f} | {entry['test']['mrr@20']['value']:.3f} |")
    return (f"**Trained {len(keys)} models on {md(trained.name, 40)}** ({stats.get('n_items', 0):,} items; "
            f"{(stats.get('test') or {}).get('sessions', 0):,} test sessions, now the sample visitors). They are "
            "in the model selectors (**Recommend**, **Compare**, **Dashboard**) as “" + md(trained.name, 40)
            + " · model”, for this browser only (a reload keeps them until the time limit).\n\n" + "\n".join(rows))
