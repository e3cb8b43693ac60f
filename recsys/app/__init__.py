"""Everything behind app.py that is not Gradio, one job per module:

    text.py       the caps, text hygiene and the request gate (`bounded`) every handler sits behind
    catalogue.py  the models found (local folders, Hub repos), the default choice, the load-once cache
    visitors.py   known visitors: sessions by id, the samples, the search
    service.py    AppService: what the app holds, built from the environment
    views.py      session text -> recommendations (through recsys.recommend), visitors, the category picker
    explain.py    the "why these items" panel
    cards.py      the model card and the About text (prose in about.md, the model list from the model classes)

Below is what app.py uses.
"""

from recsys.app.cards import about, model_card
from recsys.app.catalogue import HEADLINE, metric_value
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
)
from recsys.app.views import (
    Recommendations,
    append_item,
    bar_chart,
    categories,
    empty_table,
    error_result,
    load_visitor,
    recommend_view,
)

__all__ = ["DEFAULT_K", "HEADLINE", "MAX_INPUT_CHARS", "MAX_K", "MAX_SESSION_ITEMS", "MAX_TOKEN_CHARS", "SLACK",
           "AppService", "BadInput", "Recommendations", "about", "append_item", "bar_chart", "bounded", "bounded_text",
           "categories", "clean_text", "empty_table", "error_result", "load_visitor", "md", "metric_value",
           "model_card", "parse_limit", "recommend_view"]
