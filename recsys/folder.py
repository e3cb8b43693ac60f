"""The model folder: the only artifact that leaves training, the same for every model kind.

    config.json        {"format_version", "model" (registry key), "class", "n_items", "config": {...}, "train": {...}}
    model.safetensors  parameters and buffers (tied weights saved once, by safetensors.torch.save_model)
    items.json         {"item_ids": [...], "category_ids": [...], "popularity": [...], "descriptions": {...}?}
    metrics.json       validation and test metrics, data statistics
    README.md          the model card
    training_curves.png (neural models)

Only JSON and safetensors are read: nothing here unpickles. A folder is written to a temporary sibling
and renamed into place, so a crash never leaves a half-written folder that later loads.
"""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from recsys.atomic import atomic_folder
from recsys.data import ItemVocab

FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "model.safetensors", "items.json")


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded: says which file and why."""


def items_payload(items: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dict:
    payload = {
        "item_ids": items["item_id"].astype(str).tolist(),
        "category_ids": [None if pd.isna(c) else str(c) for c in items["category_id"]],
        "popularity": items["popularity"].astype(int).tolist(),
    }
    if descriptions:
        payload["descriptions"] = {k: str(v) for k, v in descriptions.items()}
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


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path.name} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ModelFolderError(f"{path.name} must hold a JSON object")
    return value


def load_folder(path: str | Path, registry: dict):
    """Build the model a folder describes, check config, vocabulary and weights agree, and load the weights.

    The returned model carries `.vocab` (ItemVocab), `.item_info` (items.json), `.metrics` and `.folder`.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"model folder {path} does not exist")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        found = sorted(p.name for p in path.iterdir())
        raise ModelFolderError(f"{path} is not a model folder: missing {missing} (found {found})")
    config = _read_json(path / "config.json")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(f"config.json format_version {config.get('format_version')!r} is not {FORMAT_VERSION}")
    name = config.get("model")
    if name not in registry:
        raise ModelFolderError(f"config.json names model {name!r}, which is not one of {sorted(registry)}")
    cls = registry[name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    given = config.get("config", {})
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ModelFolderError(f"config.json has keys {unknown} that {cls.Config.__name__} does not know "
                               f"(a config from another model or version?)")
    try:
        model_config = cls.Config(**given)
        model = cls(model_config, int(config["n_items"]))
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFolderError(f"config.json does not describe a valid {name} model: {err}") from None
    item_info = _read_json(path / "items.json")
    item_ids = item_info.get("item_ids")
    if not isinstance(item_ids, list) or len(item_ids) + 1 != model.n_items:
        n = len(item_ids) if isinstance(item_ids, list) else "no"
        raise ModelFolderError(f"items.json lists {n} items but config.json says the model scores "
                               f"{model.n_items - 1}: vocabulary and weights do not match")
    weights = path / "model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: (tuple(f.get_slice(k).get_shape()), _dtype(f.get_slice(k).get_dtype())) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFolderError(f"model.safetensors is corrupt or not a safetensors file: {err}") from None
    model.resize_buffers(shapes)
    try:
        missing_keys, unexpected = load_model(model, str(weights), strict=False)
    except (RuntimeError, SafetensorError) as err:
        raise ModelFolderError(f"model.safetensors does not fit a {name} model with this config: "
                               f"{str(err).splitlines()[0][:300]}") from None
    tied = set()
    for group in _tied_groups(model):
        if any(k in shapes for k in group):
            tied |= set(group)
    missing_keys = [k for k in missing_keys if k not in tied]
    if missing_keys or unexpected:
        raise ModelFolderError(f"model.safetensors does not match {name}: missing {missing_keys[:5]}, "
                               f"unexpected {unexpected[:5]}")
    _check_scores(model, name)
    model.vocab = ItemVocab(item_ids)
    model.item_info = item_info
    model.metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    model.folder = path
    model.eval()
    return model


def _check_scores(model, name: str) -> None:
    """Score one session: weights that loaded but do not fit the vocabulary fail here, not in front of a user."""
    from recsys.models.base import score_batch

    try:
        scores = score_batch(model, [np.array([1], dtype=np.int64)])
    except (RuntimeError, IndexError, ValueError) as err:
        raise ModelFolderError(f"model.safetensors does not fit the {model.n_items - 1}-item vocabulary of this "
                               f"{name} model: {str(err).splitlines()[0][:200]}") from None
    if not torch.isfinite(scores[0, 1:]).any():
        raise ModelFolderError(f"model.safetensors gives no finite score for any item ({name})")


def _tied_groups(model) -> list[list[str]]:
    by_ptr: dict[int, list[str]] = {}
    for k, v in model.state_dict(keep_vars=True).items():
        if v.numel():
            by_ptr.setdefault(v.data_ptr(), []).append(k)
    return [g for g in by_ptr.values() if len(g) > 1]


def _dtype(name: str):
    table = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}
    if name not in table:
        raise ModelFolderError(f"model.safetensors holds an unsupported dtype {name}")
    return table[name]


def popularity_of(model) -> np.ndarray:
    """(n_items,) training counts per item index from items.json, for cold-start fallbacks and metrics."""
    return np.concatenate([[0], np.asarray(model.item_info["popularity"], dtype=np.int64)])
