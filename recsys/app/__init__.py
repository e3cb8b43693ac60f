"""Everything behind app.py that is not Gradio, one job per module:

    text.py       the caps, text hygiene and the request gate (`bounded`) every handler sits behind
    catalogue.py  the models found (local folders, Hub repos), the default choice, the load-once cache
    items.py      items as people know them: names, labels "name (id)", categories; sessions typed as text
    scores.py     one score for every model (its probability of the next item); the held-out check's rank
    visitors.py   known visitors: sessions by id, the samples, the search
    service.py    AppService: what the app holds, built from the environment
    views.py      session text -> recommendations (through recsys.recommend), visitors, the pickers
    explain.py    a one-line reason per recommended item and the "why these items" panel
    chart.py      the score chart (HTML bars)
    cards.py      the model card and the About text (prose in about.md, the model list from the model classes)
    detect.py     an uploaded log's first rows and the guess of which column is which
    workbench.py  uploads in private folders, training them with recsys.prepare + recsys.pipeline, limits, clean-up
    yourdata.py   the "Your data" tab: the page's fields -> a training request, a run -> what the page shows
    compare.py    the "Compare" tab: two or three models' lists side by side on one session
    dashboard.py  the "Dashboard" tab: a data set's models compared, their results table and training curves

Below is what app.py uses.
"""

from recsys.app.cards import about, full_card, model_card, training_curves
from recsys.app.catalogue import HEADLINE, metric_value
from recsys.app.chart import bar_chart, empty_chart
from recsys.app.scores import LEGEND
from recsys.app.service import AppService
from recsys.app.text import (
    DEFAULT_K,
    MAX_INPUT_CHARS,
    MAX_K,
    MAX_SESSION_ITEMS,
    MAX_TOKEN_CHARS,
    SLACK,
    BadInput,
    bounded,
    bounded_text,
    clean_text,
    md,
    parse_limit,
    plain,
)
from recsys.app.views import (
    ID_COLUMN,
    VISITOR_IDS,
    Recommendations,
    append_item,
    categories,
    column_widths,
    empty_table,
    error_result,
    load_visitor,
    placeholder,
    protocol_exclude_seen,
    recommend_view,
    suggestions,
)

__all__ = ["DEFAULT_K", "HEADLINE", "ID_COLUMN", "LEGEND", "MAX_INPUT_CHARS", "MAX_K", "MAX_SESSION_ITEMS",
           "MAX_TOKEN_CHARS", "SLACK", "VISITOR_IDS", "AppService", "BadInput", "Recommendations", "about",
           "append_item", "bar_chart", "bounded", "bounded_text", "categories", "clean_text", "column_widths",
           "empty_chart", "empty_table", "error_result", "full_card", "load_visitor", "md", "metric_value",
           "model_card", "parse_limit", "placeholder", "plain", "protocol_exclude_seen", "recommend_view",
           "suggestions", "training_curves"]
