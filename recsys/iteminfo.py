"""Readable item attributes (name, category path, price, brand, colour, description) of a model folder.

A folder's items.json may carry `"attributes": {"name": [...], ...}`, one list per attribute aligned with
`item_ids` (a string or null per item), checked by `recsys.folder` on load. Older folders carry
`"descriptions": {raw id: text}` instead; it is read here as the "description" attribute. This module is the
one place that turns either form into lookups, so the app never reads items.json's layout itself.
"""

from collections.abc import Mapping

# The attributes an items table / items.json may carry, in display order. Every value is text (a price too:
# "49.90"), at most MAX_CHARS characters; an item without a value has null (None / pd.NA).
ATTRIBUTES = ("name", "category", "price", "brand", "colour", "description")
MAX_CHARS = 1000


def item_attributes(item_info: Mapping) -> dict[str, dict[str, str]]:
    """attribute -> {raw item id -> text} for the attributes the folder has (items without a value are left out).

    `item_info` is a loaded model's `.item_info` (its items.json). The legacy `descriptions` map fills
    "description" for the items the `attributes` lists leave without one.
    """
    if not isinstance(item_info, Mapping):
        return {}
    ids = item_info.get("item_ids")
    ids = [str(i) for i in ids] if isinstance(ids, list) else []
    out: dict[str, dict[str, str]] = {}
    attributes = item_info.get("attributes")
    if isinstance(attributes, Mapping):
        for field in ATTRIBUTES:
            values = attributes.get(field)
            if not isinstance(values, list) or len(values) != len(ids):
                continue
            texts = {i: v for i, v in zip(ids, values, strict=True) if isinstance(v, str) and v}
            if texts:
                out[field] = texts
    legacy = item_info.get("descriptions")
    if isinstance(legacy, Mapping):
        texts = {str(k): v[:MAX_CHARS] for k, v in legacy.items() if isinstance(v, str) and v}
        if texts:
            out["description"] = {**texts, **out.get("description", {})}
    return out


def item_label(attrs: Mapping[str, Mapping[str, str]], item_id) -> str:
    """"Trail running shoes, graphite (24981)" when the item has a name, else the bare id "24981"."""
    item_id = str(item_id)
    name = attrs.get("name", {}).get(item_id)
    return f"{name} ({item_id})" if name else item_id
