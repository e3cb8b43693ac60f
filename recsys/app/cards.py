"""What a model is and how it scored, for people: the model card beside the model picker (its description
from the model class, through recsys.models.describe, and its validation and test metrics) and the About text,
whose model list names exactly the models the app serves (recsys.card.about_models).
"""

import dataclasses
import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from recsys.app.catalogue import metric_value
from recsys.app.service import AppService
from recsys.app.text import MAX_K, MAX_SESSION_ITEMS, code, md
from recsys.app.views import data_set, protocol_exclude_seen
from recsys.card import about_models
from recsys.models import REGISTRY, describe

CARD_METRICS = {"hr": "HR", "mrr": "MRR", "ndcg": "NDCG", "coverage": "Coverage"}  # shown in the model card
ABOUT_TEMPLATE = Path(__file__).with_name("about.md")  # the About text's prose; {models} is the served list


def what_it_is(kind: str) -> str:
    """One line on a model kind, from its class (recsys.models.describe); a kind outside the registry is named."""
    try:
        info = describe(kind)
    except KeyError:
        return f"Model kind: {code(kind)}."
    title = info.title if kind in REGISTRY else md(info.title)  # a variant's title holds text from its folder
    return f"**{title}** — {info.summary}"


def model_card(service: AppService, model_key) -> str:
    """Markdown about the chosen model: what it is, and its validation and test metrics with 95% CIs."""
    try:
        served = service.served(model_key)
    except LookupError as err:
        return f"⚠️ {err}"
    model = served.model
    metrics = getattr(model, "metrics", None) or served.entry.metrics
    blurb = what_it_is(getattr(model, "name", "") or served.entry.kind or type(model).__name__.lower())
    weights = dict(zip(getattr(model.config, "components", ()), getattr(model.config, "weights", ())))
    if weights:  # a hybrid: which models, how much of each
        blurb += " Mix: " + ", ".join(f"{code(p)} {w:.0%}" for p, w in weights.items()) + "."
        if getattr(model.config, "bucket_weights", ()):
            blurb += (" That is the overall mix; each session is mixed with the weights chosen for its length and "
                      "for whether it repeats an item.")
    lines = [blurb, "", data_line(served), ""]
    uses = getattr(type(model), "uses", None)
    if uses:
        lines += [f"It uses {md(uses, 160)}.", ""]
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
        seen = protocol_exclude_seen(model)
        lines += ["", "Measured with full ranking and pessimistic ties, " + (
            "the session's items hidden." if seen else "repeats allowed (a next item may be one already viewed)."
            if seen is False else "repeats allowed (the evaluator's default; the run did not record it).")]
    else:
        lines.append("No metrics recorded for this model.")
    lines += ["", *hyperparameters(model), card_link(served)]
    return "\n".join(lines)


def data_line(served) -> str:
    """Which data set the model learned from, and whether it is synthetic."""
    name = data_set(served.model)
    if name is None:
        return "Trained on: not recorded in this model's metrics.json."
    if name.casefold() == "synthetic":
        return ("Trained on **synthetic** data: sessions made up by this project's generator (the default demo), "
                "not real shoppers.")
    return f"Trained on **{md(name, 80)}**."


def hyperparameters(model, limit: int = 16) -> list[str]:
    """The model's configuration (config.json "config") as a small table."""
    try:
        values = dataclasses.asdict(model.config)
    except TypeError:
        return []
    shown = [(k, v) for k, v in values.items() if isinstance(v, (int, float, str, bool)) or v is None][:limit]
    if not shown:
        return []
    rows = [f"| {md(k, 30)} | {md(v, 40)} |" for k, v in shown]
    return ["| hyperparameter | value |", "|---|---|", *rows, ""]


def card_link(served) -> str:
    """Where the full model card is: the Hub page, or the folder's README.md."""
    entry = served.entry
    if entry.where == "hub":
        repo = entry.key.split("/", 2)
        url = f"https://huggingface.co/{repo[0]}/{repo[1]}" + (f"/tree/main/{repo[2]}" if len(repo) > 2 else "")
        return f"Full model card: [{md(entry.key, 120)} on the Hugging Face Hub]({html.escape(url, quote=True)})."
    return f"Full model card: {code(str(Path(entry.source) / 'README.md'), 200)} (shown below when present)."


MAX_CARD_CHARS = 30_000
MAX_IMAGE_BYTES = 5 << 20


def file_in(folder: Path, name: str) -> Path:
    """folder/name, refused (ValueError) when it is a symbolic link or leads outside the folder."""
    path = Path(folder) / name
    if path.is_symlink() or not path.resolve().is_relative_to(Path(folder).resolve()):
        raise ValueError(f"{name} of {folder} is a link or leads outside the folder")
    return path


def full_card(service: AppService, model_key) -> str:
    """The folder's README.md (its model card) without its YAML front matter; "" when it has none."""
    try:
        folder = Path(service.served(model_key).model.folder)
        path = file_in(folder, "README.md")
        if not path.is_file() or path.stat().st_size > 4 * MAX_CARD_CHARS:
            return ""
        text = path.read_text(encoding="utf-8", errors="replace")[:MAX_CARD_CHARS]
    except (LookupError, AttributeError, OSError, ValueError):
        return ""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4:] if end >= 0 else text
    return text.strip()


def training_curves(service: AppService, model_key):
    """The folder's training_curves.png as an image array (read here, so the browser never gets a path), or
    None."""
    try:
        path = file_in(Path(service.served(model_key).model.folder), "training_curves.png")
        if not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
            return None
        from PIL import Image

        with Image.open(path) as img:
            if img.width * img.height > 16_000_000:
                return None
            return np.asarray(img.convert("RGB"))
    except Exception:  # a missing, damaged or hostile image is simply not shown
        return None


_METRIC_BASES = ("hr", "mrr", "ndcg", "precision", "coverage", "popularity")


def _metric_order(name: str):
    base, _, k = name.partition("@")
    return (_METRIC_BASES.index(base) if base in _METRIC_BASES else len(_METRIC_BASES),
            int(k) if k.isdigit() else 0, name)


def about(service: AppService) -> str:
    """The About text: the prose of about.md around the list of exactly the models this app serves."""
    return ABOUT_TEMPLATE.read_text(encoding="utf-8").format(
        models=about_models(service.kinds), max_session_items=MAX_SESSION_ITEMS, max_k=MAX_K)
