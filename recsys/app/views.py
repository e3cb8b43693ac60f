"""The app's views: each handler of app.py is a plain function of (service, inputs) -> outputs here, so tests call
them without a browser. Nothing about a visitor's session is kept: the session travels in the request (the
textbox content), so concurrent users never see each other's sessions.

A session is ranked by `recsys.recommend`, the library's one contract (seen-item masking and top-k); a session
with no item the model knows gets the popularity fallback (cold start, in a category when one is given).
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.app.catalogue import Served
from recsys.app.chart import empty_chart
from recsys.app.explain import format_explanation, popularity_reason, quoted, reasons
from recsys.app.items import ItemNames, read_session, write_session
from recsys.app.scores import percent, probabilities, target_rank
from recsys.app.service import AppService
from recsys.app.text import (
    DEFAULT_K,
    MAX_INPUT_CHARS,
    MAX_SESSION_ITEMS,
    MAX_TOKEN_CHARS,
    SLACK,
    bounded_text,
    clean_text,
    code,
    md,
    name_list,
    natural_order,
    parse_k,
)
from recsys.models import recommend

TABLE_COLUMNS = ["rank", "item", "id", "score", "why", "category"]  # + price, brand, colour when the data has them
ID_COLUMN = 2  # where a clicked row's item id is
WIDTHS = {"rank": "60px", "item": "190px", "id": "64px", "score": "64px", "why": "220px", "category": "170px"}


@dataclass
class Recommendations:
    table: pd.DataFrame  # rank, item (name), id, score ("12%"), why, category, [price, brand, colour]
    chart: pd.DataFrame  # label, item, probability: bars in ranking order
    status: str  # markdown: what was done, what the model used, what was skipped, why
    explanation: str  # markdown
    mode: str  # "personalized", "popularity", "category popularity" or "error"
    session: list[str] = field(default_factory=list)  # the known item ids actually used, oldest first
    skipped: list[str] = field(default_factory=list)  # unknown tokens
    probability: list[float] = field(default_factory=list)  # each row's probability (the score column's number)


def empty_table(columns=()) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in TABLE_COLUMNS + list(columns)})


def column_widths(table: pd.DataFrame) -> list[str]:
    return [WIDTHS.get(c, "90px") for c in table.columns]


def error_result(message: str) -> Recommendations:
    return Recommendations(empty_table(), empty_chart(), f"⚠️ {message}", "", "error")


def protocol_exclude_seen(model) -> bool | None:
    """Whether the model's metrics were computed with the session's items hidden (metrics.json "protocol");
    None when the run did not record it."""
    protocol = (getattr(model, "metrics", None) or {}).get("protocol")
    value = protocol.get("exclude_seen") if isinstance(protocol, dict) else None
    return value if isinstance(value, bool) else None


def data_set(model) -> str | None:
    """The name of the data set the model was trained on (metrics.json "data", else config.json's train)."""
    data = (getattr(model, "metrics", None) or {}).get("data")
    name = (data.get("name") or data.get("source")) if isinstance(data, dict) else None
    return clean_text(name, 80) or None if isinstance(name, str) else None


def build_table(names: ItemNames, ids: list[str], probs: np.ndarray, why: list[str]) -> tuple[pd.DataFrame,
                                                                                               pd.DataFrame]:
    table = pd.DataFrame({
        "rank": np.arange(1, len(ids) + 1),
        "item": [names.name(i) for i in ids],
        "id": [clean_text(i, MAX_TOKEN_CHARS) for i in ids],
        "score": [percent(p) for p in probs],
        "why": why,
        "category": [names.category(i) for i in ids],
    })
    for column, values in names.columns.items():
        table[column] = [values.get(i, "") for i in ids]
    chart = pd.DataFrame({"label": [names.short(i) for i in ids], "item": [names.label(i) for i in ids],
                          "probability": np.asarray(probs, dtype=np.float64)})
    return table, chart


def popularity_fallback(served: Served, k: int, category: str | None = None):
    """Most popular items (in `category` when it is known): raw ids, probabilities (share of all views in
    training, Pop's definition), counts, mode and a label."""
    model, names = served.model, served.names
    pop = np.asarray(model.item_info.get("popularity") or [], dtype=np.float64)
    if len(pop) != len(model.vocab) - 1:
        pop = np.zeros(len(model.vocab) - 1)
    category = clean_text(category, MAX_TOKEN_CHARS)
    mode, label = "popularity", "the most popular items overall"
    candidates = np.arange(len(pop))
    if category:
        cats = np.asarray([names.category(i) for i in model.vocab.decode(candidates + 1)], dtype=object)
        in_cat = np.flatnonzero(cats == category)
        if len(in_cat):
            candidates, mode = in_cat, "category popularity"
            label = f"the most popular items in category {code(category)}"
        else:
            label += f" (category {code(category)} is unknown to this model)"
    order = candidates[np.lexsort((candidates, -pop[candidates]))][:k]  # ties: lower index first
    probs = probabilities(pop, logits=False)[order]
    return model.vocab.decode(order + 1), probs, pop[order].astype(int).tolist(), mode, label


def what_it_used(served: Served, n: int, last: str) -> str:
    """The status line: which model, what it used (its class's `uses`), how much of the session."""
    cls, key = type(served.model), md(served.entry.key)
    uses = md(getattr(cls, "uses", "the session's items"), 160)
    if getattr(cls, "because", "x") == "" and served.model.name != "spop":
        return f"**Not personalised** — **{key}** uses {uses}."
    return (f"**Personalised** by **{key}** from {n} item{'s' * (n > 1)} of this session (most recent: "
            f"{quoted(served.names, last)}); it uses {uses}.")


def held_out_check(served: Served, target: str, ids: list[str], order, history, exclude_seen: bool, k: int) -> str:
    """Where the visitor's true next item is, in this list and as the model's metrics count it."""
    model, names = served.model, served.names
    what = f"This visitor actually viewed {quoted(names, target)} next"
    if target not in model.vocab:
        return f"{what}, an item this model does not know."
    index = model.vocab.encode([target], strict=True)[0]
    shown = ids.index(target) + 1 if target in ids else None
    text = f"{what}: **rank {shown}** in this list." if shown else f"{what}: not in this top {k}."
    protocol = protocol_exclude_seen(model)
    as_metrics = bool(protocol)  # evaluate's default: repeats allowed
    rank = target_rank(order[0], order[1], model.n_items, history, index, as_metrics)
    repeat = index in set(np.asarray(history).tolist())
    how = ("with the session's items hidden" if as_metrics else "with repeats allowed") + (
        "" if protocol is not None else ", the evaluator's default: this run did not record it")
    if repeat and exclude_seen and not as_metrics:
        text += (f" It repeats an item of the session, which “Hide items already in the session” removes from "
                 f"this list; the model's test metrics were computed {how}, where it ranks **{rank}**.")
    elif rank is None:
        text += f" It repeats an item of the session: the model's metrics ({how}) count it as a miss."
    elif rank != shown:
        text += f" As the model's metrics count it ({how}), it ranks **{rank}**."
    return text


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
    model, names = served.model, served.names
    read = read_session(session_text, names, model.vocab, MAX_SESSION_ITEMS)
    if read.gated:
        notes.append(f"The session text is very long: only its last {SLACK * MAX_INPUT_CHARS:,} characters were "
                     "read. Paste the most recent items only; the app uses at most "
                     f"{MAX_SESSION_ITEMS} of them.")
    elif read.cut:
        notes.append(f"The session text is longer than {MAX_INPUT_CHARS:,} characters: its items were counted, "
                     "and the most recent ones read.")
    if read.total > MAX_SESSION_ITEMS:
        notes.append(f"Only the {MAX_SESSION_ITEMS} most recent of {'at least ' * read.gated}{read.total:,} items "
                     "were used.")
    known, unknown = read.items, read.unknown
    if unknown:
        what = "All items are" if not known and not read.ambiguous else (
            f"Skipped {len(unknown)} unknown item{'s' * (len(unknown) > 1)}:")
        notes.append(f"{what} unknown to this model: {name_list(unknown)}." if what.startswith("All") else
                     f"{what} {name_list(unknown)}.")
    if read.ambiguous:
        notes.append(f"Several items share the name {name_list(read.ambiguous)}: type its id instead.")
    if not known:
        ids, probs, counts, mode, label = popularity_fallback(served, k, category)
        why = "the session is empty" if not read.total else "no item of the session is known to this model"
        status = f"**Cold start** — {why}, so these are {label} (popularity fallback, not personalised)."
        explanation = (f"Popularity fallback: items are ranked by how often they were viewed in the training "
                       f"data{' in that category' if mode == 'category popularity' else ''}; the score is an item's "
                       "share of all views.")
        why_rows = [popularity_reason(names, i, c) for i, c in zip(ids, counts, strict=True)]
    else:
        history = model.vocab.encode(known, strict=True)
        order = recommend(model, history, model.n_items - 1, exclude_seen=False)  # every item, best first
        keep = ~np.isin(order[0], history) if exclude_seen else np.ones(len(order[0]), dtype=bool)
        if not keep.any():
            return error_result("Every item of the catalogue is already in the session; nothing left to recommend "
                                "(untick “Hide items already in the session”).")
        probs_all = probabilities(order[1][keep], model.returns_logits)
        top = order[0][keep][:k]
        probs = probs_all[:k]
        ids, mode = model.vocab.decode(top), "personalized"
        status = what_it_used(served, len(known), known[-1])
        if len(ids) < k:
            notes.append(f"Only {len(ids)} items could be recommended.")
        why_rows = reasons(model, history, top, names)
        explanation = format_explanation(model, history, names)
        target = clean_text(target, MAX_TOKEN_CHARS) if target else ""
        if target:
            notes.append(held_out_check(served, target, ids, order, history, bool(exclude_seen), k))
    table, chart = build_table(names, ids, probs, why_rows)
    message = "\n\n".join([status] + [f"ℹ️ {n}" for n in notes])
    return Recommendations(table, chart, message, explanation, mode, known, unknown, [float(p) for p in probs])


def append_item(session_text, item) -> str:
    """The session text with `item` (a clicked recommendation, an id, a name or "name (id)") on a line of its own,
    the session kept to its most recent MAX_SESSION_ITEMS lines."""
    text = bounded_text(session_text, SLACK * MAX_INPUT_CHARS, tail=True)
    lines = [ln.strip() for ln in clean_text(text.replace("\r", "\n"), MAX_INPUT_CHARS).split("\n") if ln.strip()]
    item = clean_text(item, MAX_TOKEN_CHARS).replace("\n", " ")
    if item:
        lines.append(item)
    return "\n".join(lines[-MAX_SESSION_ITEMS:])


def resolve_visitor(service: AppService, query, model_key=None) -> tuple[str | None, str]:
    """What was typed in the visitor box -> a visitor id and, when it is not the exact id, why it was picked or
    why none was."""
    vid = clean_text(query, MAX_TOKEN_CHARS)
    visitors = service.visitors_for(model_key)
    if not vid or vid in visitors.sessions:
        return (vid or None), ""
    matches = visitors.search(vid, 6)
    if len(matches) == 1:
        return matches[0], f"{code(vid)} is not a visitor id; the only visitor id containing it is {code(matches[0])}."
    if matches:
        return None, (f"{code(vid)} is not a visitor id; {len(matches)}{'+' * (len(matches) == 6)} ids contain it "
                      f"({name_list(matches[:5])}): pick one in the list.")
    return None, f"**Unknown visitor** {code(vid)}: no visitor id contains it."


VISITOR_IDS = ("Visitor ids read *visitor:n*: the visitor, then which of their sessions this is "
               "(0 = their first visit).")


def load_visitor(service: AppService, visitor_id, model_key=None) -> tuple[str, str | None, str]:
    """A visitor id (or part of one) -> (session text, held-out next item, status). Unknown visitor: empty
    session (cold start). The session is written with the chosen model's item names.

    The last item of the visitor's session is held out, so the app can show whether the model ranks it.
    """
    vid, note = resolve_visitor(service, visitor_id, model_key)
    if vid is None:
        return "", None, (note + " Recommendations fall back to popular items (cold start)." if note else
                          "Choose or search a visitor.")
    items = service.visitors_for(model_key).sessions[vid]
    try:
        names = service.served(model_key).names if model_key is not None else ItemNames()
    except LookupError:
        names = ItemNames()
    history, target = (items[:-1], items[-1]) if len(items) > 1 else (items, None)
    history = history[-MAX_SESSION_ITEMS:]
    held = f"; their next item, {quoted(names, target)}, is held out" if target else ""
    which = f" session {code(vid.rsplit(':', 1)[1])} of visitor {code(vid.rsplit(':', 1)[0])}" if (
        ":" in vid and vid.rsplit(":", 1)[1].isdigit()) else ""
    prefix = f"{note} " if note else ""
    return (write_session(history, names), target,
            f"{prefix}Visitor {code(vid)}{' (' + which.strip() + ')' if which else ''}: "
            f"{len(history)} items{held}.")


def categories(service: AppService, model_key, limit: int = 300) -> list[str]:
    """The model's categories (their readable paths when the data has them), most viewed first, for the
    cold-start category picker."""
    try:
        served = service.served(model_key)
    except LookupError:
        return []
    ids = served.model.vocab.decode(np.arange(1, len(served.model.vocab)))
    pop = served.model.item_info.get("popularity") or [0] * len(ids)
    totals: dict[str, int] = {}
    for item, p in zip(ids, pop, strict=False):
        if c := served.names.category(item):
            totals[c] = totals.get(c, 0) + int(p)
    return sorted(totals, key=lambda c: (-totals[c], natural_order(c)))[:limit]


def placeholder(service: AppService, model_key) -> str:
    """The session box's example: the model's three most viewed items, as the box would hold them."""
    try:
        served = service.served(model_key)
    except LookupError:
        return "one item id or name per line, oldest first"
    ids, *_ = popularity_fallback(served, 3)
    return "e.g.\n" + write_session(ids, served.names)


def suggestions(service: AppService, model_key) -> list[str]:
    """The item picker's choices: labels of the model's named items (ids when it has no names), most viewed
    first."""
    try:
        served = service.served(model_key)
    except LookupError:
        return []
    if served.names.suggestions:
        return list(served.names.suggestions)
    ids, *_ = popularity_fallback(served, 3000)
    return list(ids)
