"""What a model is and how it scored, for people: the model card beside the model picker (what the model does,
its validation and test metrics) and the About text.
"""

from collections.abc import Mapping

from recsys.app.catalogue import metric_value
from recsys.app.service import AppService
from recsys.app.text import MAX_K, MAX_SESSION_ITEMS, code, md

CARD_METRICS = {"hr": "HR", "mrr": "MRR", "ndcg": "NDCG", "coverage": "Coverage"}  # shown in the model card

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


def what_it_is(kind: str) -> str:
    """One line on a model kind."""
    return MODEL_BLURBS.get(kind) or MODEL_BLURBS.get(kind.split("-")[0], f"Model kind: {code(kind)}.")


def model_card(service: AppService, model_key) -> str:
    """Markdown about the chosen model: what it is, and its validation and test metrics with 95% CIs."""
    try:
        served = service.served(model_key)
    except LookupError as err:
        return f"⚠️ {err}"
    model = served.model
    metrics = getattr(model, "metrics", None) or served.entry.metrics
    blurb = what_it_is(served.entry.kind or type(model).__name__.lower())
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
    """The About text."""
    return ABOUT


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
