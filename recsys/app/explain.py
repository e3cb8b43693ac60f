"""The "Why these items" panel: any `model.explain(history, top)` dict (attention weights, neighbour sessions,
item neighbours) rendered as compact Markdown, item indices shown as raw item ids, every value escaped.
"""

import logging
from collections.abc import Mapping

import numpy as np

from recsys.app.text import md

log = logging.getLogger("recsys.app")


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
    return render(expl, model.vocab)


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


def render(expl, vocab) -> str:
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
