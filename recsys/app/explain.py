"""Why these items: a one-line reason per recommended item (`reasons`), and the "Why these items" panel
(`format_explanation`): any `model.explain(history, top)` dict (attention weights, neighbour sessions, item
neighbours) rendered as compact Markdown with item names, weights as shares, every value escaped.

A reason says which item of the session an item's score rests on, found the same way for every model: the
session is scored again without each of its most recent distinct items, and the item whose removal lowers the
recommended item's probability most is named (when no removal matters, the item that alone gives it the highest
probability), in the model's own words (its class's `because`: "often viewed
after {item}" for sequential rules, "mostly from {item}" for a neural model). Models that use no session item
(Pop, its session variant's non-repeats, Random) get popularity reasons.
"""

import logging
from collections import Counter
from collections.abc import Mapping

import numpy as np

from recsys.app.items import ItemNames, shorten
from recsys.app.scores import distributions
from recsys.app.text import md
from recsys.models.base import score_batch

log = logging.getLogger("recsys.app")

MAX_OCCLUDED = 8  # the most recent distinct session items tried as an item's reason (one batched scoring pass)
NEGLIGIBLE = 0.02  # a removal that lowers an item's probability by less than this share of it explains nothing
FILLER = 1e-5  # a non-negative score below this share of the best one: the item fills the list (kNN models
# rank items without evidence by a popularity tie-break far below any real neighbour)

NOT_AVAILABLE = ("This model does not show its internals; the reasons in the table say which item of the session "
                 "each recommendation rests on. Attention weights exist for SASRec, neighbours for the kNN models.")


def quoted(names: ItemNames, item: str, limit: int = 40) -> str:
    return f"“{shorten(names.name(item), limit)}”"


def popularity_reason(names: ItemNames, item: str, count: int | None) -> str:
    cat = names.category(item)
    where = f" in {shorten(cat.rsplit('›', 1)[-1].strip(), 30)}" if cat and "›" in cat else ""
    views = f": {count:,} views in training" if count is not None else ""
    return f"popular{where}{views}"


def reasons(model, history: np.ndarray, top: np.ndarray, names: ItemNames) -> list[str]:
    """One line per recommended item index of `top` (see the module docstring)."""
    vocab, history = model.vocab, np.asarray(history, dtype=np.int64)
    raw = vocab.decode(top)
    pop = model.item_info.get("popularity") if isinstance(getattr(model, "item_info", None), Mapping) else None
    counts = [pop[i - 1] if isinstance(pop, list) and 0 < i <= len(pop) else None for i in top]
    in_session = Counter(history.tolist())
    because = getattr(type(model), "because", "mostly from {item}")
    if not because:  # Pop, Random: no session item moves the ranking (S-Pop: repeats first)
        return [f"already viewed {in_session[i]}× in this session" if in_session[i] and model.name == "spop"
                else popularity_reason(names, r, c) for i, r, c in zip(top, raw, counts, strict=True)]
    recent = list(dict.fromkeys(history[::-1].tolist()))[:MAX_OCCLUDED]
    drivers: list[int | None] = [recent[0]] * len(top)
    filler = np.zeros(len(top), dtype=bool)
    try:
        # without each recent item, then each recent item alone: one batched scoring pass
        variants = [history[history != j] for j in recent] + [np.array([j]) for j in recent] if len(recent) > 1 else []
        scores = score_batch(model, [history] + variants)
        if not model.returns_logits:
            best = scores[0, 1:].max().item()
            filler = (scores[0, top] < FILLER * best).numpy() if best > 0 else filler
        if variants:
            p = distributions(scores, model.returns_logits)[:, top].numpy()  # (1 + 2V, K)
            drop = p[0][None, :] - p[1 : 1 + len(recent)]  # what each item's absence costs
            alone = p[1 + len(recent) :]  # what each item alone gives
            needed, enough = drop.argmax(axis=0), alone.argmax(axis=0)
            drivers = [recent[j] if drop[j, n] > NEGLIGIBLE * p[0, n] else
                       recent[enough[n]] if alone[enough[n], n] > 0 else None for n, j in enumerate(needed)]
    except Exception as err:  # a reason must never break a recommendation
        log.warning("reasons failed for %s: %s", type(model).__name__, err)
        return ["" for _ in top]
    out = []
    for n, (item, item_raw, driver) in enumerate(zip(top, raw, drivers, strict=True)):
        if filler[n]:
            out.append(popularity_reason(names, item_raw, counts[n]) + "; nothing in this session points to it")
        elif driver is None:
            out.append("from the session as a whole (no single item stands out)")
        elif driver == item:
            out.append(f"viewed earlier in this session ({in_session[item]}×)")
        else:
            out.append(because.format(item=quoted(names, vocab.decode([driver])[0])))
    return out


# ---------------------------------------------------------------------------------------------------------------
# the "Why these items" panel


def format_explanation(model, history: np.ndarray, names: ItemNames, top: int = 5) -> str:
    """What the model used, then `model.explain(history, top)` as compact markdown with item names."""
    cls = type(model)
    head = f"**{md(getattr(cls, 'title', cls.__name__), 60)}** used {md(getattr(cls, 'uses', 'the session'), 160)}."
    try:
        expl = model.explain(np.asarray(history, dtype=np.int64), top)
    except Exception as err:  # an explanation must never break a recommendation
        log.warning("explain failed for %s: %s", type(model).__name__, err)
        return f"{head}\n\nThe explanation could not be computed ({md(err, 160)})."
    if not expl:
        return f"{head}\n\n{NOT_AVAILABLE}"
    return f"{head}\n\n{render(expl, model.vocab, names)}"


def _is_itemish(key) -> bool:
    key = str(key).lower()
    return key in ("item", "items", "history", "target") or key.endswith(("item", "items", "_id"))


def _is_weightish(key) -> bool:
    key = str(key).lower()
    return "weight" in key or "similarity" in key


def _is_scalar(v) -> bool:
    return isinstance(v, (str, int, float, bool, np.generic)) or v is None


def _share(v: float, scale: float | None) -> str:
    """A weight for people: a share of its list ("42%") when the list's weights sum to at most 1 (attention),
    else relative to the strongest of its list ("100%" = the strongest link)."""
    if scale is None or not np.isfinite(v):
        return f"{v:.3g}"
    return f"{100 * v / scale:.0f}%" if scale > 0 else "0%"


def _scale(values) -> float | None:
    """1 for shares (non-negative, summing to at most 1), the largest value otherwise; None if not all numbers."""
    nums = [float(x) for x in values if isinstance(x, (int, float, np.number)) and not isinstance(x, bool)]
    if not nums or len(nums) != len(values):
        return None
    if min(nums) >= 0 and sum(nums) <= 1.0001:
        return 1.0
    return max(abs(x) for x in nums)


class _Renderer:
    def __init__(self, vocab, names: ItemNames):
        self.vocab, self.names = vocab, names

    def item(self, v) -> str:
        return md(self.names.name(self.vocab.decode([v])[0]), 48)

    def value(self, v, itemish: bool, scale: float | None = None) -> str:
        """One cell: item indices shown by name, weights as shares, small records as `name (weight)`."""
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool) or v is None:
            return md(v)
        if itemish and isinstance(v, int) and 1 <= v < len(self.vocab):
            return self.item(v)
        if isinstance(v, float):
            return _share(v, scale) if scale is not None else f"{v:.3g}"
        if isinstance(v, Mapping):
            named = [x for x in v if _is_itemish(x) or str(x).lower() in ("session", "name")]
            rest = [x for x in v if x not in named]
            if len(named) == 1 and len(rest) == 1:  # {"item": 17, "weight": 0.4} -> "name (40%)"
                return f"{self.value(v[named[0]], _is_itemish(named[0]))} ({self.value(v[rest[0]], False, scale)})"
            return "; ".join(f"{md(x, 20)}: {self.value(y, _is_itemish(x))}" for x, y in list(v.items())[:6])
        if isinstance(v, (list, tuple, np.ndarray)):
            v = list(v)
            if v and all(isinstance(x, Mapping) and len(x) == 2 for x in v):  # neighbour records: weights as shares
                keys = [k for k in v[0] if _is_weightish(k)]
                scale = _scale([x.get(keys[0]) for x in v]) if keys else None
            shown = ", ".join(self.value(x, itemish, scale) for x in v[:8])
            return shown + (f" … ({len(v)} in all)" if len(v) > 8 else "")
        return md(v, 60)

    def table(self, rows: list[Mapping], limit: int = 12) -> list[str]:
        cols = list(dict.fromkeys(c for r in rows for c in r))
        scales = {c: _scale([r.get(c) for r in rows]) if _is_weightish(c) else None for c in cols}
        head = [md(str(c).replace("_", " "), 30) + (" (share)" if scales[c] == 1.0 else " (vs strongest)"
                                                    if scales[c] is not None else "") for c in cols]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
        for r in rows[:limit]:
            lines.append("| " + " | ".join(self.value(r.get(c, ""), _is_itemish(c), scales[c]) for c in cols) + " |")
        return lines + [""]


def render(expl, vocab, names: ItemNames | None = None) -> str:
    """Any explain() dict as markdown: `kind` as a title, parallel lists and lists of records as tables."""
    if not isinstance(expl, Mapping):
        return md(expl, 500)
    r = _Renderer(vocab, names or ItemNames())
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
        lines += r.table([dict(zip(group, row, strict=True)) for row in zip(*group.values(), strict=True)])
        expl = {k: v for k, v in expl.items() if k not in group}
    n_tables = sum(isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)
                   for v in expl.values())
    for key, value in expl.items():
        title = md(str(key).replace("_", " "), 40)
        if isinstance(value, (list, tuple)) and value and all(isinstance(x, Mapping) for x in value):
            lines += ([f"**{title}**", ""] if n_tables > 1 else []) + r.table(list(value))
        elif isinstance(value, Mapping) and value and all(_is_scalar(v) for v in value.values()):
            lines += [f"**{title}**", "", "| | |", "|---|---|"]
            lines += [f"| {r.value(k2, _is_itemish(key))} | {r.value(v2, _is_itemish(k2))} |"
                      for k2, v2 in list(value.items())[:20]] + [""]
        else:
            lines += [f"**{title}**: {r.value(value, _is_itemish(key))}", ""]
    text = "\n".join(lines).strip()
    if "%" in text:
        text += ("\n\n*Weights are relative: 100% is the strongest link of its list; a share is the part of "
                 "the whole (attention sums to 100% over the session).*")
    return text
