"""The "Compare" view: two or three models' top-K lists for one session side by side (names first), items that
several lists share highlighted, each model's test metrics with their 95% CIs, and where a visitor's held-out next
item landed in each list. Every list comes from `views.recommend_view`, the Recommend tab's own handler.
"""

import html
from collections import Counter
from collections.abc import Mapping

from recsys.app.catalogue import HEADLINE
from recsys.app.text import MAX_TOKEN_CHARS, clean_text
from recsys.app.views import recommend_view

MAX_COMPARED = 3


def _esc(text, limit: int = 80) -> str:
    text = clean_text(text, limit + 1).replace("\n", " ")
    return html.escape(text[: limit - 1] + "…" if len(text) > limit else text)


def _metrics(metrics: Mapping) -> str:
    """"HR@10 0.412 [0.398, 0.427] · ..." from a metrics.json's test block."""
    parts = []
    for key, label in HEADLINE:
        test = (metrics or {}).get("test")
        value = test.get(key) if isinstance(test, Mapping) else None
        if isinstance(value, Mapping) and isinstance(value.get("value"), (int, float)):
            ci = value.get("ci95")
            band = (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, (list, tuple)) and len(ci) == 2
                    and all(isinstance(c, (int, float)) for c in ci) else "")
            parts.append(f"{label} {value['value']:.3f}{band}")
    return " · ".join(parts) or "no test metrics recorded"


def _entry(service, key):
    return service.catalogue.get(key) or service.private.get(key)


def compare_view(service, keys, session_text: str, k=10, target: str | None = None,
                 exclude_seen: bool = False) -> tuple[str, str]:
    """(HTML of the lists side by side, a markdown status line) for up to MAX_COMPARED catalogue keys."""
    keys = [clean_text(key, 300) for key in (keys or []) if clean_text(key, 300)]
    keys = list(dict.fromkeys(keys))
    if len(keys) < 2:
        return "", "Choose two or three models to compare."
    note = f" (the first {MAX_COMPARED} of the {len(keys)} chosen)" if len(keys) > MAX_COMPARED else ""
    keys = keys[:MAX_COMPARED]
    target = clean_text(target, MAX_TOKEN_CHARS) or None
    lists = [(key, recommend_view(service, key, session_text, k, None, exclude_seen, target)) for key in keys]
    counts = Counter(i for _, r in lists if r.mode != "error" for i in dict.fromkeys(r.table["id"].astype(str)))
    shared = {i for i, n in counts.items() if n > 1}
    columns = []
    for key, r in lists:
        entry = _entry(service, key)
        title = (entry.title or entry.key) if entry is not None else key
        scores = _esc(_metrics(entry.metrics), 200) if entry is not None else ""
        head = f"<h4>{_esc(title, 60)}</h4><div class='cmp-metrics'>test {scores}</div>"
        if r.mode == "error":
            columns.append(f"<div class='cmp-col'>{head}<p class='cmp-error'>{_esc(r.status, 300)}</p></div>")
            continue
        rows = []
        for _, row in r.table.iterrows():
            item_id = str(row["id"])
            mark = " class='cmp-shared'" if item_id in shared else ""
            held = " <b class='cmp-target'>← held out</b>" if target and item_id == target else ""
            name = f"{_esc(row['item'], 60)} <span class='cmp-id'>({_esc(item_id, 30)})</span>" if str(
                row["item"]) != item_id else _esc(item_id, 30)
            rows.append(f"<li{mark}>{name} <span class='cmp-score'>{_esc(row['score'], 8)}</span>{held}</li>")
        ids = r.table["id"].astype(str).tolist()
        landed = ""
        if target:
            landed = (f"<div class='cmp-landed'>Held-out next item: <b>rank {ids.index(target) + 1}</b></div>"
                      if target in ids else f"<div class='cmp-landed'>Held-out next item: not in the top {len(ids)}"
                      "</div>")
        kind = "" if r.mode == "personalized" else f"<div class='cmp-mode'>{_esc(r.mode, 40)} (cold start)</div>"
        columns.append(f"<div class='cmp-col'>{head}{kind}<ol>{''.join(rows)}</ol>{landed}</div>")
    status = (f"{len(keys)} models on the same session{note}; **{len(shared)}** items appear in more than one list "
              "(highlighted); items of the session are not hidden (the evaluator's default)."
              + (" The visitor's held-out next item is marked where a list has it." if target else ""))
    return f"<div class='cmp'>{''.join(columns)}</div>", status


CSS = """
.cmp {display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px;}
.cmp-col {border: 1px solid var(--border-color-primary, #e5e7eb); border-radius: 8px; padding: 8px 12px;}
.cmp-col h4 {margin: 0 0 4px 0;}
.cmp-metrics, .cmp-landed, .cmp-mode {font-size: 0.85em; opacity: 0.85;}
.cmp-col ol {padding-left: 1.6em; margin: 6px 0;}
.cmp-col li {padding: 1px 4px; border-radius: 4px;}
.cmp-shared {background: rgba(99, 102, 241, 0.16);}
.cmp-id, .cmp-score {opacity: 0.7; font-size: 0.85em;}
.cmp-target {color: #b45309;}
"""
