"""What a model is and how it scored, for people: the model card beside the model picker (its description
from the model class, through recsys.models.describe, and its validation and test metrics) and the About text,
whose model list names exactly the models the app serves (recsys.card.about_models).
"""

from collections.abc import Mapping
from pathlib import Path

from recsys.app.catalogue import metric_value
from recsys.app.service import AppService
from recsys.app.text import MAX_K, MAX_SESSION_ITEMS, code, md
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


_METRIC_BASES = ("hr", "mrr", "ndcg", "precision", "coverage", "popularity")


def _metric_order(name: str):
    base, _, k = name.partition("@")
    return (_METRIC_BASES.index(base) if base in _METRIC_BASES else len(_METRIC_BASES),
            int(k) if k.isdigit() else 0, name)


def about(service: AppService) -> str:
    """The About text: the prose of about.md around the list of exactly the models this app serves."""
    return ABOUT_TEMPLATE.read_text(encoding="utf-8").format(
        models=about_models(service.kinds), max_session_items=MAX_SESSION_ITEMS, max_k=MAX_K)
