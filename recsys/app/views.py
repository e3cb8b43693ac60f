"""The app's views: each handler of app.py is a plain function of (service, inputs) -> outputs here, so tests call
them without a browser. Nothing about a visitor's session is kept: the session travels in the request (the
textbox content), so concurrent users never see each other's sessions.

A session is ranked by `recsys.recommend`, the library's one contract (seen-item masking and top-k); a session
with no item the model knows gets the popularity fallback (cold start, in a category when one is given).
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.app.catalogue import Served, item_descriptions
from recsys.app.explain import format_explanation
from recsys.app.service import AppService
from recsys.app.text import (
    DEFAULT_K,
    MAX_INPUT_CHARS,
    MAX_SESSION_ITEMS,
    MAX_TOKEN_CHARS,
    clean_text,
    code,
    join_session,
    md,
    name_list,
    natural_order,
    parse_k,
    split_session,
)
from recsys.models import recommend

TABLE_COLUMNS = ["rank", "item", "category", "score"]


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


def resolve_items(tokens: list[str], served: Served) -> tuple[list[int], list[str], list[str]]:
    """Tokens -> (item indices, their raw ids, unknown tokens). A token is a raw id, else an item description."""
    vocab = served.model.vocab
    indices, ids, unknown = [], [], []
    for token in tokens:
        token = token[: MAX_TOKEN_CHARS + 1]
        raw = token if token in vocab else served.names.get(token.casefold())
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
    desc = item_descriptions(model)
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
        served = service.served(model_key)
    except LookupError as err:
        return error_result(str(err))
    model = served.model
    tokens, cut = split_session(session_text)
    if cut:
        notes.append(f"The session text was longer than {MAX_INPUT_CHARS:,} characters; only its end was read.")
    if len(tokens) > MAX_SESSION_ITEMS:
        notes.append(f"Only the {MAX_SESSION_ITEMS} most recent of {len(tokens)} items were used.")
        tokens = tokens[-MAX_SESSION_ITEMS:]
    indices, known, unknown = resolve_items(tokens, served)
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
        try:
            top_ids, top_scores, lo = recommend(model, history, k, exclude_seen=bool(exclude_seen), with_floor=True)
        except ValueError:  # the indices are the model's own: only "no item left" can be the reason
            return error_result("Every item of the catalogue is already in the session; nothing left to recommend "
                                "(untick “Hide items already in the session”).")
        scores = normalise(top_scores, lo, float(top_scores[0]))
        ids, mode = model.vocab.decode(top_ids), "personalized"
        status = (f"**Personalised** by **{md(served.entry.key)}** from {len(indices)} "
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


def categories(service: AppService, model_key, limit: int = 300) -> list[str]:
    """The model's categories, most viewed first, for the cold-start category picker."""
    try:
        model = service.served(model_key).model
    except LookupError:
        return []
    cats = model.item_info.get("category_ids") or []
    pop = model.item_info.get("popularity") or [0] * len(cats)
    totals: dict[str, int] = {}
    for c, p in zip(cats, pop, strict=False):
        if c is not None and clean_text(c):
            totals[clean_text(c)] = totals.get(clean_text(c), 0) + int(p)
    return sorted(totals, key=lambda c: (-totals[c], natural_order(c)))[:limit]
