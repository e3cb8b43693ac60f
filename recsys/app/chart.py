"""The score chart: horizontal bars, one per recommended item, its name beside it (never rotated, never on top of
its neighbours' at K = 100), drawn as plain HTML so it costs the server nothing and needs no plotting library.
Only the first MAX_BARS items get a bar; the table has them all.
"""

import html

import pandas as pd

from recsys.app.scores import percent

MAX_BARS = 20
LABEL_CHARS = 34


def empty_chart() -> pd.DataFrame:
    """Chart data: label (short name), item (full label, for the tooltip), probability; best first."""
    return pd.DataFrame({"label": pd.Series([], dtype=str), "item": pd.Series([], dtype=str),
                         "probability": pd.Series([], dtype=float)})


def bar_chart(chart: pd.DataFrame | None) -> str:
    """HTML bars of `chart` in ranking order; bar length relative to the best item, its probability printed."""
    if chart is None or not len(chart):
        return ""
    shown = chart.head(MAX_BARS)
    best = max(float(shown["probability"].max()), 1e-12)
    rows = []
    for rank, (label, item, p) in enumerate(zip(shown["label"], shown["item"], shown["probability"],
                                                strict=True), 1):
        width = max(0.5, 100 * float(p) / best)
        rows.append(f'<div class="bar-row" title="{html.escape(str(item), quote=True)}">'
                    f'<span class="bar-label">{rank}. {html.escape(str(label))}</span>'
                    f'<span class="bar-track"><span class="bar" style="width:{width:.1f}%"></span></span>'
                    f'<span class="bar-value">{percent(float(p))}</span></div>')
    more = (f"the first {MAX_BARS} of {len(chart)} items; the table lists all" if len(chart) > MAX_BARS
            else f"{len(chart)} item{'s' * (len(chart) > 1)}")
    caption = f"Probability of being viewed next, {more}. Bars are relative to the best item."
    return (f'<div class="bars" role="figure" aria-label="{html.escape(caption, quote=True)}">{"".join(rows)}'
            f'<div class="bar-caption">{html.escape(caption)}</div></div>')
