"""Items as people know them: names first, ids second. One `ItemNames` per loaded model, built once from its
items.json (through recsys.iteminfo, the one reader of its layout): an item's label ("Trail running shoes,
graphite (24981)"), short name for the chart, category path, the table's attribute columns, the name -> id map
behind typed sessions, and the suggestions of the name picker.

A session typed or pasted as text is read by `read_session`: one item per line (the app writes sessions so),
else items separated by commas, semicolons or tabs, else by spaces. Each item may be an id, a name, or a label
"name (id)"; names that hold commas ("Trail running shoes, graphite") are found by trying the longest run of
comma-separated pieces that names an item first.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from recsys.app.text import MAX_INPUT_CHARS, MAX_TOKEN_CHARS, SLACK, bounded_text, clean_text
from recsys.iteminfo import item_attributes

TABLE_ATTRIBUTES = ("price", "brand", "colour")  # shown as table columns when the model's items have them
MAX_SUGGESTIONS = 3000  # names offered by the picker (the most viewed first); any name can still be typed
MAX_NAME_PIECES = 6  # a name holds at most this many comma-separated pieces
_LABEL = re.compile(r"^(?P<name>.*\S)\s*\((?P<id>[^()]+)\)$")  # "name (id)"
_LINES = re.compile(r"[\n\r]+")
_STRONG = re.compile(r"[,;\t]+")


def shorten(text: str, limit: int) -> str:
    text = clean_text(text, limit + 1)
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,") + "…"


@dataclass(frozen=True)
class ItemNames:
    """What the app shows of each item of one model, by raw id."""

    names: Mapping[str, str] = field(default_factory=dict)  # raw id -> name ("" / missing: the item has none)
    categories: Mapping[str, str] = field(default_factory=dict)  # raw id -> category (a path when the data has it)
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # "price"/"brand"/... -> raw id -> text
    lookup: Mapping[str, str] = field(default_factory=dict)  # casefolded unique name or description -> raw id
    ambiguous: frozenset = frozenset()  # casefolded names that several items share: refused, with the reason
    suggestions: tuple[str, ...] = ()  # labels of named items, most viewed first

    @classmethod
    def of(cls, item_info: Mapping) -> "ItemNames":
        attrs = item_attributes(item_info)
        names = {i: clean_text(n, MAX_TOKEN_CHARS) for i, n in attrs.get("name", {}).items()}
        ids = [str(i) for i in item_info.get("item_ids") or []] if isinstance(item_info, Mapping) else []
        raw_cats = item_info.get("category_ids") if isinstance(item_info, Mapping) else None
        categories = {}
        if isinstance(raw_cats, list) and len(raw_cats) == len(ids):
            categories = {i: clean_text(c, MAX_TOKEN_CHARS) for i, c in zip(ids, raw_cats, strict=True)
                          if c is not None and clean_text(c)}
        categories.update({i: clean_text(c, 200) for i, c in attrs.get("category", {}).items()})
        columns = {a: {i: clean_text(v, 80) for i, v in attrs[a].items()} for a in TABLE_ATTRIBUTES if a in attrs}
        counts: dict[str, list[str]] = {}
        for source in (attrs.get("description", {}), names):  # names win over descriptions
            seen: dict[str, list[str]] = {}
            for item, text in source.items():
                key = clean_text(text, MAX_TOKEN_CHARS).casefold()
                if key:
                    seen.setdefault(key, []).append(item)
            counts.update(seen)
        lookup = {k: v[0] for k, v in counts.items() if len(v) == 1}
        ambiguous = frozenset(k for k, v in counts.items() if len(v) > 1)
        pop = item_info.get("popularity") if isinstance(item_info, Mapping) else None
        order = {i: -p for i, p in zip(ids, pop, strict=True)} if isinstance(pop, list) and len(pop) == len(ids) else {}
        position = {i: n for n, i in enumerate(ids)}
        named = sorted((i for i in ids if names.get(i)), key=lambda i: (order.get(i, 0), position[i]))
        named = named[:MAX_SUGGESTIONS]
        return cls(names, categories, columns, lookup, ambiguous, tuple(f"{names[i]} ({i})" for i in named))

    def name(self, item) -> str:
        """The item's name, or its id when it has none."""
        return self.names.get(str(item)) or str(item)

    def label(self, item) -> str:
        """"name (id)", or the id alone."""
        name = self.names.get(str(item))
        return f"{name} ({item})" if name else str(item)

    def short(self, item, limit: int = 34) -> str:
        return shorten(self.name(item), limit)

    def category(self, item) -> str:
        return self.categories.get(str(item), "")

    def resolve(self, token: str, vocab) -> str | None:
        """A typed token -> raw id: an id, a label "name (id)", a unique name or description (any case)."""
        if token in vocab:
            return token
        match = _LABEL.match(token)
        if match and match["id"].strip() in vocab:
            return match["id"].strip()
        raw = self.lookup.get(token.casefold())
        return raw if raw is not None and raw in vocab else None


@dataclass(frozen=True)
class ReadSession:
    items: list[str]  # raw ids of the known items, oldest first (at most `keep`)
    unknown: list[str]  # tokens no item matches (shortened)
    ambiguous: list[str]  # names several items share
    total: int  # items (known or not) in the whole text (as it arrived)
    cut: bool  # the text was longer than MAX_INPUT_CHARS: only its end was resolved (all of it counted)
    gated: bool  # the text reached the gate's cap (SLACK x MAX_INPUT_CHARS): it may have been longer still


def _pieces(text: str) -> list[str]:
    return [p.strip() for p in _STRONG.split(text) if p.strip()]


def _split(text: str) -> tuple[list[list[str]], bool]:
    """Text -> groups of pieces: one group per line (then its comma pieces), or the comma pieces of one line,
    or (True: separated by spaces) the line itself. Consecutive pieces of a group may form one name."""
    lines = [ln.strip() for ln in _LINES.split(text) if ln.strip()]
    if len(lines) > 1:
        return [_pieces(ln) or [ln] for ln in lines], False
    if _STRONG.search(text):
        return [_pieces(text)], False
    return ([[text.strip()]] if text.strip() else []), True


def count_items(text: str) -> int:
    """How many items a session text holds, counted as `read_session` splits it (names with commas aside)."""
    lines = [ln for ln in _LINES.split(text) if ln.strip()]
    if len(lines) > 1:
        return len(lines)
    if _STRONG.search(text):
        return len(_pieces(text))
    return len(text.split())


def _resolve_group(pieces: list[str], names: ItemNames, vocab, spaces: bool) -> list[tuple[str, str | None]]:
    """(token, raw id or None) for a group of pieces, longest names first. A piece that names nothing is split
    at spaces when the text has no other separator (`spaces`: "12 57 3") or when every word is an item."""
    out, i = [], 0
    while i < len(pieces):
        for j in range(min(len(pieces), i + MAX_NAME_PIECES), i, -1):
            token = ", ".join(pieces[i:j])[: MAX_TOKEN_CHARS + 1]
            raw = names.resolve(token, vocab) if len(token) <= MAX_TOKEN_CHARS else None
            if raw is not None:
                out.append((token, raw))
                i = j
                break
        else:
            words = [w[: MAX_TOKEN_CHARS + 1] for w in pieces[i].split()]
            if len(words) > 1 and (spaces or all(names.resolve(w, vocab) for w in words)):
                out += [(w, names.resolve(w, vocab)) for w in words]
            else:
                out.append((pieces[i][: MAX_TOKEN_CHARS + 1], None))
            i += 1
    return out


def read_session(text, names: ItemNames, vocab, keep: int) -> ReadSession:
    """Session text -> the raw ids of its `keep` most recent items, what was not understood, and the true count.
    Only the last MAX_INPUT_CHARS characters are resolved; the items before them (up to the gate's cap) are
    counted, never looked up."""
    text = bounded_text(text, SLACK * MAX_INPUT_CHARS, tail=True)
    gated = len(text) >= SLACK * MAX_INPUT_CHARS
    text = clean_text(text.replace("\r", "\n"), len(text) + 1)
    cut = len(text) > MAX_INPUT_CHARS
    earlier = 0
    if cut:
        window = text[-MAX_INPUT_CHARS:]
        # the window starts inside an item: start it after the first separator instead
        sep = re.search(r"[\n,;\t]" if re.search(r"[\n,;\t]", window) else r"\s", window)
        start = len(text) - MAX_INPUT_CHARS + (sep.end() if sep else len(window))
        earlier = count_items(text[:start])
        text = text[start:]
    groups, spaces = _split(text)
    pairs = [p for group in groups for p in _resolve_group(group, names, vocab, spaces)]
    total = earlier + len(pairs)
    pairs = pairs[-keep:]
    unknown = [t if len(t) <= MAX_TOKEN_CHARS else t[:MAX_TOKEN_CHARS] + "…" for t, raw in pairs if raw is None]
    ambiguous = [t for t in unknown if t.casefold() in names.ambiguous]
    return ReadSession([raw for _, raw in pairs if raw is not None], [t for t in unknown if t not in ambiguous],
                       ambiguous, total, cut, gated)


def write_session(items, names: ItemNames) -> str:
    """The textbox form of a session: one item per line, as its label "name (id)" (or its id)."""
    return "\n".join(names.label(i) for i in items)
