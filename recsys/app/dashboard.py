"""The metrics dashboard of a data set: the models trained on it compared on their test scores (one bar chart per
headline metric, the 95% CI in each bar's tooltip), their validation and test scores with CIs in one table, and
the neural models' training curves (validation scores and training loss per epoch). Everything comes from the
metrics.json each model folder carries (its "valid", "test", "data" and "history" blocks), the same for the
app's own models and an upload's; app.py draws the frames with Gradio's native plots, nothing is read from an
image file.

A data set is named by the "data" block's name (an upload's name) or source (e.g. "synthetic"). An upload's models
are listed only for the page session that holds its token.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from recsys.app.catalogue import HEADLINE, ModelEntry, metric_value
from recsys.app.text import MAX_KEY_CHARS, clean_text, md
from recsys.app.workbench import KEY_PREFIX, TOKEN

SELECT = "mrr@20"  # what the pipeline selects on (recsys.pipeline.RunConfig.select): the table's order
APP_PREFIX = "data:"  # a choice value naming one of the app's data sets; an upload's is KEY_PREFIX + token + "/"
CURVE_METRICS = HEADLINE  # validation scores drawn per epoch
UNKNOWN = "(data set not recorded)"


@dataclass(frozen=True)
class Dashboard:
    title: str  # markdown: which data set, how many models, how to read it
    bars: dict[str, pd.DataFrame] = field(default_factory=dict)  # "test HR@10" -> model, value, 95% CI
    order: list[str] = field(default_factory=list)  # the models, best on validation first
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, epoch, metric, value, series
    loss: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, epoch, training loss
    curves_note: str = ""
    epochs: list[str] = field(default_factory=list)  # the x axis of the curves, in order (epochs are labels: a
    # numeric axis over 2 epochs would tick at 1.1, 1.2, ...)


def data_name(metrics: Mapping) -> str:
    data = (metrics or {}).get("data")
    name = (data.get("name") or data.get("source")) if isinstance(data, Mapping) else None
    return clean_text(name, 80) or UNKNOWN if isinstance(name, str) else UNKNOWN


def _metrics(service, entry: ModelEntry) -> dict:
    """The entry's metrics.json; a Hub model's once it is loaded (its entry has none before)."""
    if entry.metrics:
        return entry.metrics
    if entry.key in service.cache:
        return getattr(service.served(entry.key).model, "metrics", None) or {}
    return {}


def _mine(token) -> str | None:
    return f"{KEY_PREFIX}{token}/" if isinstance(token, str) and TOKEN.fullmatch(token) else None


def choices(service, token=None) -> list[tuple[str, str]]:
    """(label, value) of every data set: this page's upload first, then the app's own models' data sets."""
    out = []
    prefix = _mine(token)
    mine = [e for k, e in service.private.items() if prefix and k.startswith(prefix)]
    if mine:
        name = (mine[0].title or "upload").rsplit(" · ", 1)[0]
        out.append((f"{name} (your upload, {len(mine)} models)", prefix))
    counts: dict[str, int] = {}
    for entry in service.catalogue.values():
        name = data_name(_metrics(service, entry))
        counts[name] = counts.get(name, 0) + 1
    out += [(f"{name} ({n} model{'s' * (n > 1)})", f"{APP_PREFIX}{name}") for name, n in counts.items()]
    return out


def entries(service, choice, token=None) -> tuple[str, list[ModelEntry]]:
    """(data set name, its models) for a choice value; an upload's only with the page's own token."""
    choice = clean_text(choice, MAX_KEY_CHARS)
    prefix = _mine(token)
    if prefix and choice == prefix:
        found = [e for k, e in service.private.items() if k.startswith(prefix)]
        name = (found[0].title or "upload").rsplit(" · ", 1)[0] if found else "your upload"
        return name, found
    if choice.startswith(APP_PREFIX):
        name = choice[len(APP_PREFIX):]
        return name, [e for e in service.catalogue.values() if data_name(_metrics(service, e)) == name]
    return "", []


def _short(entry: ModelEntry) -> str:
    """An upload's "shop · sr" -> "sr"; a Hub key "user/repo/sasrec" -> "sasrec"."""
    name = entry.title.rsplit(" · ", 1)[-1] if entry.title else entry.key.rsplit("/", 1)[-1]
    return clean_text(name, 60) or entry.key


def _ci(metrics: Mapping, split: str, key: str) -> tuple[float, float] | None:
    value = (metrics.get(split) or {}).get(key) if isinstance(metrics.get(split), Mapping) else None
    ci = value.get("ci95") if isinstance(value, Mapping) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        return float(ci[0]), float(ci[1])
    return None


def _cell(metrics: Mapping, split: str, key: str) -> str:
    value = metric_value(metrics, split, key)
    if value is None:
        return ""
    ci = _ci(metrics, split, key)
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def _unique_names(found: list[ModelEntry]) -> dict[str, str]:
    short = {e.key: _short(e) for e in found}
    clashes = {n for n in short.values() if list(short.values()).count(n) > 1}
    return {k: (clean_text(k, 60) if n in clashes else n) for k, n in short.items()}


def _history(metrics: Mapping) -> list[dict]:
    history = metrics.get("history")
    return [h for h in history if isinstance(h, Mapping)] if isinstance(history, list) else []


def build(service, choice, token=None) -> Dashboard:
    """The dashboard of the data set `choice` (a value of `choices`)."""
    name, found = entries(service, choice, token)
    if not found:
        return Dashboard("Choose a data set to see its models' scores side by side." if not name else
                         f"No model of **{md(name, 60)}** is available any more.")
    names = _unique_names(found)
    metrics = {e.key: _metrics(service, e) for e in found}
    ranked = sorted(found, key=lambda e: -(metric_value(metrics[e.key], "valid", SELECT) or -1.0))
    order = [names[e.key] for e in ranked]
    bars = {}
    for key, label in HEADLINE:
        rows = []
        for e in ranked:
            value = metric_value(metrics[e.key], "test", key)
            if value is not None:
                ci = _ci(metrics[e.key], "test", key)
                rows.append({"model": names[e.key], f"test {label}": value,
                             "95% CI": f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "not recorded"})
        if rows:
            bars[f"test {label}"] = pd.DataFrame(rows)
    table = pd.DataFrame([{"model": names[e.key] + (" ★" if i == 0 and metric_value(metrics[e.key], "valid", SELECT)
                                                    is not None else ""),
                           **{f"valid {label}": _cell(metrics[e.key], "valid", key) for key, label in HEADLINE},
                           **{f"test {label}": _cell(metrics[e.key], "test", key) for key, label in HEADLINE},
                           "test cases": f"{int(c):,}" if (c := metric_value(metrics[e.key], "test", "cases")) else ""}
                          for i, e in enumerate(ranked)])
    validation, loss = [], []
    for e in ranked:
        for step in _history(metrics[e.key]):
            epoch = step.get("epoch")
            if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
                continue
            for key, label in CURVE_METRICS:
                value = step.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    validation.append({"model": names[e.key], "epoch": str(int(epoch)), "metric": label,
                                       "value": float(value), "series": f"{names[e.key]} {label}"})
            if isinstance(step.get("train_loss"), (int, float)) and not isinstance(step.get("train_loss"), bool):
                loss.append({"model": names[e.key], "epoch": str(int(epoch)),
                             "training loss": float(step["train_loss"])})
    trained = sorted({row["model"] for row in validation + loss}, key=order.index)
    curves_note = (f"Training curves of {', '.join(md(m, 40) for m in trained)}: the validation scores after each "
                   "epoch (on the validation sample the run used to stop early) and the mean training loss."
                   if trained else "No training curves: none of these models trains in epochs (the baselines are "
                   "counted or computed in one pass); train a neural model (GRU4Rec, SASRec, LSTM) to see them.")
    epochs = sorted({row["epoch"] for row in validation + loss}, key=int)
    n = len(found)
    title = (f"**{md(name, 60)}**: {n} model{'s' * (n > 1)}. Bars: test scores (full ranking; hover a bar for its "
             f"95% bootstrap CI). Table: validation and test scores with 95% CIs, best on validation MRR@20 first "
             "(★; selection never looks at test).")
    return Dashboard(title, bars, order, table, pd.DataFrame(validation, columns=["model", "epoch", "metric", "value",
                                                                                  "series"]),
                     pd.DataFrame(loss, columns=["model", "epoch", "training loss"]), curves_note, epochs)
