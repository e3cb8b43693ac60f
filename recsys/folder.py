"""The model folder: the only artifact that leaves training, the same for every model kind.

    config.json        {"format_version", "model" (registry key), "class", "n_items", "config": {...}, "train": {...}}
    model.safetensors  parameters and buffers (tied weights saved once, by safetensors.torch.save_model)
    items.json         {"item_ids": [...], "category_ids": [...], "popularity": [...], "attributes": {...}?}
                       attributes: {"name": [...], "category": [...], ...}, one list per readable attribute
                       (recsys.iteminfo.ATTRIBUTES) aligned with item_ids, a string or null per item. Older
                       folders may carry "descriptions": {item id: text} instead (still read; recsys.iteminfo).
    metrics.json       validation and test metrics, data statistics
    README.md          the model card
    training_curves.png (neural models)

Only JSON and safetensors are read: nothing here unpickles. A folder is written to a temporary sibling
and renamed into place, so a crash never leaves a half-written folder that later loads.
"""

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from recsys.atomic import atomic_folder
from recsys.config import UnknownKeys, check_keys
from recsys.data import ItemVocab
from recsys.iteminfo import ATTRIBUTES, MAX_CHARS
from recsys.jsonfile import read_json
from recsys.models.base import INT64_MAX, check_field_types, score_batch, stored_shape_fits

FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "model.safetensors", "items.json")


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded: says which file and why."""


def items_payload(items: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dict:
    """items.json from the data set's item table: ids, categories, popularity and the readable attributes the
    table has (columns among ATTRIBUTES). `descriptions` ({raw id: text}) fills attributes["description"] for
    the items it names. Values are text cut to MAX_CHARS characters; an attribute no item has is left out."""
    item_ids = items["item_id"].astype(str).tolist()
    payload = {
        "item_ids": item_ids,
        "category_ids": [None if pd.isna(c) else str(c) for c in items["category_id"]],
        "popularity": items["popularity"].astype(int).tolist(),
    }
    columns = {name: items[name].tolist() for name in ATTRIBUTES if name in items.columns}
    if descriptions:
        given = {str(k): v for k, v in descriptions.items()}
        old = columns.get("description", [None] * len(item_ids))
        columns["description"] = [given.get(i, o) for i, o in zip(item_ids, old, strict=True)]
    attributes = {}
    for name, values in columns.items():
        texts = [None if v is None or pd.isna(v) or str(v) == "" else _CONTROL.sub(" ", str(v))[:MAX_CHARS]
                 for v in values]
        if any(t is not None for t in texts):
            attributes[name] = texts
    if attributes:
        payload["attributes"] = attributes
    return payload


def save_folder(model, out: str | Path, items: pd.DataFrame, *, metrics: dict | None = None,
                train: dict | None = None, card: str | None = None, extra_files: dict[str, Path] | None = None,
                descriptions: dict[str, str] | None = None) -> Path:
    """Write a model folder atomically. `items` is the data set's item table (row i = item index i + 1)."""
    if len(items) + 1 != model.n_items:
        raise ModelFolderError(f"item table has {len(items)} items but the model scores {model.n_items - 1}")
    with atomic_folder(out, kind="model") as tmp:
        config = {
            "format_version": FORMAT_VERSION,
            "model": model.name,
            "class": type(model).__name__,
            "n_items": model.n_items,
            "config": dataclasses.asdict(model.config),
            "train": train or {},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt", "model": model.name})
        (tmp / "items.json").write_text(json.dumps(items_payload(items, descriptions)))
        (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2))
        if card:
            (tmp / "README.md").write_text(card)
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / name)
    return Path(out)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONFIG_MAX_BYTES = 1 << 20  # a config.json holds a few hundred bytes; this bounds what a hostile one costs


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_folder(path: str | Path, registry: dict, *, links_within: str | Path | None = None):
    """Build the model a folder describes, check config, vocabulary and weights agree, and load the weights.

    The returned model carries `.vocab` (ItemVocab), `.item_info` (items.json), `.metrics` and `.folder`.
    Nothing is allocated from an unchecked number: config fields are type- and range-checked, n_items must
    match items.json, the model is first built on the `meta` device (shapes only) and each of its tensors
    compared with the safetensors header, whose tensors must fit in the file. So building and loading take
    about as much memory as the weights file holds. Every failure is a ModelFolderError naming the file.
    A file may be a symbolic link only to somewhere inside the folder or inside `links_within` (the Hub cache's
    blobs/ for a downloaded model): a folder never makes the app read, and show, an arbitrary file.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"model folder {path} does not exist")
    _check_files(path, links_within)
    config = read_json(path / "config.json", CONFIG_MAX_BYTES, error=ModelFolderError)
    version = config.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise ModelFolderError(f"config.json format_version {_show(version)} is not {FORMAT_VERSION}")
    name = config.get("model")
    if not isinstance(name, str) or name not in registry:
        raise ModelFolderError(f"config.json names model {_show(name)}, which is not one of {sorted(registry)}")
    cls = registry[name]
    n_items = config.get("n_items")
    if isinstance(n_items, bool) or not isinstance(n_items, int):
        raise ModelFolderError(f"config.json field n_items must be an integer, got {_show(n_items)}")
    item_info = read_json(path / "items.json", error=ModelFolderError)
    vocab = _vocabulary(item_info, n_items)  # n_items is now the vocabulary's size, bounded by items.json
    model_config = _model_config(cls, config.get("config", {}), name)
    weights = path / "model.safetensors"
    shapes = _read_header(weights)
    model = _build(cls, model_config, n_items, shapes, weights.stat().st_size, name)
    model.resize_buffers(shapes)  # data-sized dimensions, checked against the config by _build
    try:
        load_model(model, str(weights), strict=False)  # strict=False: tied weights are stored once
    except (RuntimeError, SafetensorError) as err:
        raise ModelFolderError(f"model.safetensors does not fit a {name} model with this config: "
                               f"{str(err).splitlines()[0][:300]}") from None
    try:
        model.check_state()
    except ValueError as err:
        raise ModelFolderError(f"model.safetensors does not fit this {name} model: {err}") from None
    _check_scores(model, name)
    model.vocab = vocab
    model.item_info = item_info
    metrics = path / "metrics.json"
    model.metrics = read_json(metrics, error=ModelFolderError) if metrics.is_file() else {}
    model.folder = path
    model.eval()
    return model


def _check_files(path: Path, links_within: str | Path | None) -> None:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        found = sorted(p.name for p in path.iterdir())
        raise ModelFolderError(f"{path} is not a model folder: missing {missing} (found {found})")
    roots = [path.resolve()] + ([Path(links_within).resolve()] if links_within is not None else [])
    for name in (*REQUIRED_FILES, "metrics.json"):
        file = path / name
        if not file.is_symlink():
            continue
        try:
            target = file.resolve(strict=True)
        except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
            raise ModelFolderError(f"{name} is a broken symbolic link: {err}") from None
        if not any(target.is_relative_to(root) for root in roots):
            raise ModelFolderError(f"{name} is a symbolic link to {target}, outside the model folder: refused "
                                   f"(copy the file into the folder if it belongs to the model)")


def _vocabulary(item_info: dict, n_items: int) -> ItemVocab:
    """The vocabulary of items.json, checked against config.json's n_items, with its per-item fields checked
    so that nothing downstream (the app's popularity fallback, category picker, descriptions) fails on them."""
    item_ids = item_info.get("item_ids")
    if not isinstance(item_ids, list) or len(item_ids) + 1 != n_items:
        n = len(item_ids) if isinstance(item_ids, list) else "no"
        raise ModelFolderError(f"items.json lists {n} items but config.json says the model scores "
                               f"{_show(n_items - 1)}: vocabulary and weights do not match")
    checks = {
        "item_ids": (lambda i: isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool)),
                     "an id (a string)"),
        "category_ids": (lambda c: c is None or isinstance(c, str), "a category id (a string) or null"),
        "popularity": (lambda p: isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= INT64_MAX,
                       "a count (an integer >= 0)"),
    }
    for field, (valid, what) in checks.items():
        values = item_info.get(field)
        if values is None and field != "item_ids":
            continue  # optional
        if not isinstance(values, list) or len(values) != len(item_ids):
            got = f"{len(values)} entries" if isinstance(values, list) else _show(values)
            raise ModelFolderError(f"items.json field {field} must list one entry per item ({len(item_ids)}), "
                                   f"got {got}")
        bad = next((i for i, v in enumerate(values) if not valid(v)), None)
        if bad is not None:
            raise ModelFolderError(f"items.json field {field} must hold {what} per item, got "
                                   f"{_show(values[bad])} at position {bad}")
    descriptions = item_info.get("descriptions")
    if descriptions is not None and not (isinstance(descriptions, dict)
                                         and all(isinstance(v, str) for v in descriptions.values())):
        raise ModelFolderError("items.json field descriptions must map item ids to strings")
    _check_attributes(item_info.get("attributes"), len(item_ids))
    try:
        return ItemVocab(item_ids)
    except ValueError as err:
        raise ModelFolderError(f"items.json field item_ids: {err}") from None


def _check_attributes(attributes, n: int) -> None:
    """items.json's optional "attributes": known names only, one string (at most MAX_CHARS characters, no
    control characters) or null per item."""
    if attributes is None:
        return
    if not isinstance(attributes, dict):
        raise ModelFolderError(f"items.json field attributes must be an object of per-item lists, got "
                               f"{_show(attributes)}")
    for name, values in attributes.items():
        if name not in ATTRIBUTES:
            raise ModelFolderError(f"items.json field attributes has unknown attribute {_show(name)}; known: "
                                   f"{', '.join(ATTRIBUTES)}")
        if not isinstance(values, list) or len(values) != n:
            got = f"{len(values)} entries" if isinstance(values, list) else _show(values)
            raise ModelFolderError(f"items.json field attributes.{name} must list one entry per item ({n}), "
                                   f"got {got}")
        for valid, what in ((lambda v: isinstance(v, str), "a string or null"),
                            (lambda v: len(v) <= MAX_CHARS, f"at most {MAX_CHARS} characters"),
                            (lambda v: not _CONTROL.search(v), "text without control characters")):
            bad = next((i for i, v in enumerate(values) if v is not None and not valid(v)), None)
            if bad is not None:
                raise ModelFolderError(f"items.json field attributes.{name} must hold {what} per item, got "
                                       f"{_show(values[bad])} at position {bad}")


def _model_config(cls, given, name: str):
    """The model's Config from config.json's "config" object: unknown keys, wrong types and values out of range
    are refused naming the field (registry Configs check themselves; see recsys.models.base.ModelConfig)."""
    if not isinstance(given, dict):
        raise ModelFolderError(f"config.json field config must be a JSON object of {cls.Config.__name__} fields, "
                               f"got {_show(given)}")
    try:
        check_keys(cls.Config, given, "keys in config.json")
    except UnknownKeys as err:
        raise ModelFolderError(f"{err}; a config from another model or version?") from None
    try:
        model_config = cls.Config(**given)
        check_field_types(model_config)  # a Config outside the registry gets the same type check
    except (TypeError, ValueError, OverflowError, ZeroDivisionError, KeyError) as err:
        raise ModelFolderError(f"config.json field config does not describe a valid {name} model: "
                               f"{str(err)[:300]}") from None
    return model_config


def _read_header(weights: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor in the safetensors header; no tensor data is read. safetensors
    itself refuses offsets that overlap, leave gaps or do not cover the file; the total is checked again here
    because everything later allocates from these shapes."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFolderError(f"model.safetensors is corrupt or not a safetensors file: {err}") from None
    shapes = {k: (shape, _dtype(dtype)) for k, (shape, dtype) in header.items()}
    declared = sum(math.prod(shape) * dtype.itemsize for shape, dtype in shapes.values())
    size = weights.stat().st_size
    if declared > size:
        raise ModelFolderError(f"model.safetensors declares {declared} bytes of tensors in a {size}-byte file")
    return shapes


class _NoInit(torch.overrides.TorchFunctionMode):
    """Skip weight initialisation (torch.nn.init, in-place random fills) while building the meta-device skeleton:
    a meta tensor holds no values, and torch initialises a meta tensor through its Python reference code, whose
    first call imports torch._dynamo (~1.5 s of a batch command's start-up)."""

    RANDOM = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_, torch.Tensor.exponential_,
              torch.Tensor.random_, torch.Tensor.log_normal_, torch.Tensor.cauchy_, torch.Tensor.geometric_}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.RANDOM or getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _build(cls, model_config, n_items: int, shapes: dict, file_bytes: int, name: str):
    """The model, built only after a shapes-only copy on the meta device agrees with the weights file."""
    ints = {f.name: v for f in dataclasses.fields(model_config) if type(v := getattr(model_config, f.name)) is int}
    sizes = ", ".join(f"{k}={v}" for k, v in {"n_items": n_items, **ints}.items())
    try:
        with torch.device("meta"), _NoInit():  # shapes only: nothing is allocated, however large
            skeleton = cls(model_config, n_items)
    except (TypeError, ValueError, KeyError, OverflowError, ZeroDivisionError, RuntimeError) as err:
        huge = [k for k, v in ints.items() if v > file_bytes]
        hint = f"; check config field {', '.join(huge)} (above the weights file's byte count)" if huge else ""
        raise ModelFolderError(f"config.json does not describe a {name} model that can be built ({sizes}): "
                               f"{str(err).splitlines()[0][:300]}{hint}") from None
    state = skeleton.state_dict(keep_vars=True)
    buffers = {k for k, _ in skeleton.named_buffers()}
    aliases: dict[int, list[str]] = {}  # tied weights: one tensor under several names, stored under one
    for key, tensor in state.items():
        aliases.setdefault(id(tensor), []).append(key)
    missing = []
    for key, tensor in state.items():
        if key not in shapes:
            if not any(alias in shapes for alias in aliases[id(tensor)]):
                missing.append(key)
            continue
        implied, stored = tuple(tensor.shape), shapes[key][0]
        fits = stored_shape_fits(implied, stored) if key in buffers else implied == stored
        if not fits:
            suspects = [k for k, v in ints.items() if v in implied and v not in stored]
            hint = f"; check config field {', '.join(suspects)}" if suspects else ""
            raise ModelFolderError(f"model.safetensors holds {key} as {stored}, but config.json ({sizes}) gives a "
                                   f"{name} model {implied} there{hint}")
    unexpected = sorted(set(shapes) - set(state))
    if missing or unexpected:
        raise ModelFolderError(f"model.safetensors does not match {name}: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    need = sum(t.numel() * t.element_size() for t in {id(t): t for t in state.values()}.values())
    if need > file_bytes:  # implied by the checks above; the guarantee load_folder's docstring gives
        raise ModelFolderError(f"config.json gives a {name} model of {need} bytes, more than the "
                               f"{file_bytes}-byte model.safetensors holds")
    try:
        return cls(model_config, n_items)
    except (TypeError, ValueError, KeyError, OverflowError, ZeroDivisionError, RuntimeError, MemoryError) as err:
        raise ModelFolderError(f"config.json does not describe a {name} model that can be built ({sizes}): "
                               f"{str(err).splitlines()[0][:300]}") from None


def _check_scores(model, name: str) -> None:
    """Score one session: weights that loaded but do not fit the vocabulary fail here, not in front of a user."""
    try:
        scores = score_batch(model, [np.array([1], dtype=np.int64)])
    except (RuntimeError, IndexError, ValueError, TypeError, OverflowError, ZeroDivisionError, MemoryError) as err:
        raise ModelFolderError(f"model.safetensors does not fit the {model.n_items - 1}-item vocabulary of this "
                               f"{name} model: {str(err).splitlines()[0][:200]}") from None
    if not torch.isfinite(scores[0, 1:]).any():
        raise ModelFolderError(f"model.safetensors gives no finite score for any item ({name})")


def _dtype(name: str):
    table = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}
    if name not in table:
        raise ModelFolderError(f"model.safetensors holds an unsupported dtype {name}")
    return table[name]
