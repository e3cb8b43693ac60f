"""Text hygiene and the request gate: every value a request brings passes `bounded` (by parameter name, see
INPUTS) before a handler sees it, and every piece of untrusted text shown back is cleaned (`clean_text`) and
escaped (`md`, `code`). Also the caps the app keeps (session length, K, text lengths) and the parsers of K and a
search limit.
"""

import functools
import html
import inspect
import math
import re
import unicodedata
from collections.abc import Callable

import numpy as np

MAX_SESSION_ITEMS = 200  # only the most recent items of a longer session are used
MAX_K = 100
DEFAULT_K = 10
MAX_INPUT_CHARS = 20_000  # longer text is cut to its tail before parsing
MAX_TOKEN_CHARS = 120  # no item id or name is longer; longer tokens are reported as unknown, shortened
MAX_KEY_CHARS = 300  # a model key: a folder name or a Hub id "user/repo/model"
MAX_LIMIT = 100  # the most visitor ids one search returns

_URL = re.compile(r"(https?://[^\s`]+)")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
SLACK = 4  # text is cut to SLACK x its cap before cleaning: invisible characters and combining marks that cleaning
# removes or merges cannot push real content out, and cleaning costs O(cap) whatever was sent


class BadInput(ValueError):
    """A request value of the wrong type (a list where text belongs, text where a number does): the message is
    shown to the caller as it is."""


def describe_value(value) -> str:
    """A short, safe description of any request value for an error message (never the whole of a long value)."""
    if isinstance(value, (str, bool, int, float, np.number)) or value is None:
        return code(value[: SLACK * 20] if isinstance(value, str) else str(value), 20)
    return f"a {type(value).__name__}"


def bounded_text(value, limit: int, tail: bool = False) -> str:
    """The gate for untrusted text, before any other work: None -> "", a number -> its text, a str cut to `limit`
    characters (its last ones when `tail`); any other type (a list, a dict) is refused with BadInput. Costs
    O(limit) whatever was sent."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, np.number)):
        value = str(value)
    if not isinstance(value, str):
        raise BadInput(f"expected text, got {describe_value(value)}")
    return value[-limit:] if tail and len(value) > limit else value[:limit]


def clean_text(text, limit: int = MAX_INPUT_CHARS) -> str:
    """NFC-normalised text without control/format/unassigned characters (input from anywhere is untrusted), at
    most `limit` characters. Only the first SLACK x `limit` characters are read, so the work is bounded even
    for text that did not pass through `bounded` (internal values such as error messages may be any object)."""
    if text is None:
        return ""
    text = (text if isinstance(text, str) else str(text))[: SLACK * limit]
    text = unicodedata.normalize("NFC", text)
    keep = (ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return "".join(keep).strip()[:limit]


def md(text, limit: int = 80) -> str:
    """Untrusted text made safe to put in markdown: HTML escaped, markdown syntax escaped, shortened. A web
    address becomes a code span: an escape inside it would show (the renderer links addresses as written)."""
    text = clean_text(text, limit + 1).replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    parts = _URL.split(text)  # odd positions: addresses
    return "".join(f"`{p}`" if i % 2 else _MD_SPECIAL.sub(r"\\\1", html.escape(p, quote=False))  # quotes are
                   for i, p in enumerate(parts))  # harmless outside tags


def code(text, limit: int = 60) -> str:
    """Untrusted text as an inline code span (shown literally: no markdown or HTML inside one)."""
    text = clean_text(text, limit + 1).replace("\n", " ").replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text.strip() else "(blank)"


def name_list(values, limit: int = 8) -> str:
    shown = ", ".join(code(v, 40) for v in values[:limit])
    more = len(values) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def parse_k(k) -> tuple[int, str | None]:
    """Any K from a slider, an API call or a typo -> an int in 1..MAX_K, plus a note when it had to change."""
    try:
        value = float(k)
    except (TypeError, ValueError):
        return DEFAULT_K, f"K must be a number, got {describe_value(k)}; using {DEFAULT_K}."
    if math.isnan(value):
        return DEFAULT_K, f"K is not a number; using {DEFAULT_K}."
    if value < 1:
        return 1, f"K must be at least 1 (got {value:g}); using 1."
    if value > MAX_K:
        return MAX_K, f"K is capped at {MAX_K} (got {value:g})."
    return int(round(value)), None


def parse_limit(limit) -> int:
    """A search's `limit` -> an int in 1..MAX_LIMIT; not a number -> BadInput (the API endpoint has no status line
    to carry a note, so it refuses)."""
    try:
        value = float(limit)
    except (TypeError, ValueError):
        raise BadInput(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {describe_value(limit)}") from None
    if math.isnan(value):
        raise BadInput(f"limit must be a whole number from 1 to {MAX_LIMIT}, got NaN")
    return int(max(1, min(value, MAX_LIMIT)))


# Every request value passes through `bounded` before a handler sees it (app.py decorates every handler), looked
# up by parameter name: (kind, cap). Text is cut to SLACK x its cap (a session to its end) before any other work;
# numbers and flags must have their type; "server" values are made by Gradio, not sent by the client.
INPUTS = {
    "model": ("text", MAX_KEY_CHARS),
    "session": ("tail", MAX_INPUT_CHARS),  # its most recent items matter
    "visitor": ("text", MAX_TOKEN_CHARS),
    "category": ("text", MAX_TOKEN_CHARS),
    "query": ("text", MAX_TOKEN_CHARS),
    "item": ("text", MAX_TOKEN_CHARS),
    "k": ("number", 20),
    "limit": ("number", 20),
    "exclude_seen": ("flag", 0),
    "held": ("server", 0),  # gr.State: kept by the server for the session
    "evt": ("server", 0),  # gr.SelectData: the clicked row's values are bounded where they are read
    # the "Your data" tab (recsys.app.yourdata): an uploaded file's path is checked where it is read
    "upload": ("file", 0),
    "items_file": ("file", 0),
    "token": ("text", 40),  # gr.BrowserState: this browser's upload token, sent by the page (checked where used)
    "dataset": ("text", MAX_KEY_CHARS),  # the dashboard's data set (recsys.app.dashboard.choices)
    "progress": ("server", 0),  # gr.Progress
    **{name: ("text", MAX_TOKEN_CHARS) for name in ("col_session", "col_user", "col_item", "col_time", "col_event",
                                                    "col_category", "unit", "events", "split", "neural")},
    **{name: ("number", 20) for name in ("gap", "test_days", "valid_days", "minutes")},
    "baselines": ("choices", 20),
    "models": ("choices", 10),  # the Compare tab's models (catalogue keys)
}


def gate(name: str, value, default=None):
    """One request value through its INPUTS entry: O(cap) work whatever was sent; the wrong type -> BadInput."""
    kind, cap = INPUTS[name]
    if kind in ("text", "tail"):
        try:
            return bounded_text(value, SLACK * cap, tail=kind == "tail")
        except BadInput:
            raise BadInput(f"{name} must be text, got {describe_value(value)}") from None
    if kind == "number":
        if isinstance(value, str):
            return value[: SLACK * cap]  # parse_k / parse_limit say why it is not a number
        if value is None or isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
            return value
        raise BadInput(f"{name} must be a number, got {describe_value(value)}")
    if kind == "file":  # Gradio's FileData as sent ({"path": .., "orig_name": ..}) or None
        if value is None or isinstance(value, (dict, str)):
            return value
        raise BadInput(f"{name} must be a file, got {describe_value(value)}")
    if kind == "choices":  # a list of short strings (a checkbox group)
        if value is None:
            return []
        if isinstance(value, list) and len(value) <= cap and all(isinstance(v, str) for v in value):
            return [v[:MAX_TOKEN_CHARS] for v in value]
        raise BadInput(f"{name} must be a list of at most {cap} names, got {describe_value(value)}")
    if kind == "flag":
        if value is None:
            return default
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise BadInput(f"{name} must be true or false, got {describe_value(value)}")
    return value


def bounded(fn: Callable) -> Callable:
    """Handler `fn` with every argument through `gate` (by parameter name) before it runs. A parameter with no
    INPUTS entry fails here, when app.py is imported, so no handler can take a value that skips the gate."""
    sig = inspect.signature(fn)
    missing = [name for name in sig.parameters if name not in INPUTS]
    if missing:
        raise TypeError(f"{fn.__name__}: parameters {missing} have no entry in recsys.app.text.INPUTS")

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            call = sig.bind(*args, **kwargs)
        except TypeError as err:  # a raw HTTP call with too many or too few values
            raise BadInput(str(err)) from None
        for name, value in call.arguments.items():
            call.arguments[name] = gate(name, value, sig.parameters[name].default)
        return fn(*call.args, **call.kwargs)

    inner.bounded = True
    return inner


def natural_order(text: str):
    """Sort key that puts "visitor:7" before "visitor:12"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


_MD_MARKUP = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])|\*\*|`|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")


def plain(markdown: str, limit: int = 300) -> str:
    """A status line as plain text, for a toast (which shows text as it is): no code spans' backticks, no bold
    or italic marks, no backslash escapes (the escaped character stays), HTML entities decoded."""
    text = _MD_MARKUP.sub(lambda m: m.group(1) or "", clean_text(markdown, limit * 2))
    text = html.unescape(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
