"""Refit a model folder that was fitted on train only on train + valid, as `train_and_eval.py --refit` would have.

A run without `--refit` (or a part trained for a hybrid's weight choice) leaves folders fitted on train only.
`refit_folder` takes such a folder and the data set it was trained on, and fits the model anew on train + valid
with what validation chose (recsys.pipeline.refit: a neural model trains for its selected epoch count, replaying
each epoch's learning rate; a baseline keeps its parameters). The new folder records that it was fitted on
train + valid, so a hybrid that names it in "folders" reports it so. Its test score is not measured here: score
it with `scripts/train_and_eval.py`'s hybrid "folders" or `recsys.evaluate`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from recsys.data import Dataset
from recsys.folder import CONFIG_MAX_BYTES, ModelFolderError, save_folder
from recsys.jsonfile import read_json
from recsys.models import FitOptions
from recsys.models.blend import Blend
from recsys.pipeline import RunConfig, load_part, refit


def refit_folder(folder: str | Path, data: Dataset, out: str | Path, *, seed: int = 0,
                 progress: bool = True) -> dict:
    """Fit `folder`'s model anew on `data`'s train + valid and save it to `out` (a new folder; never `folder`).
    Returns what the refit did (data, seconds, epochs and each epoch's learning rate for a neural model)."""
    folder, out = Path(folder), Path(out)
    if out.resolve() == folder.resolve():
        raise ModelFolderError("--out must be a new folder, not the folder being refitted")
    model = load_part(folder, data)  # refused unless it was trained on this data set's items
    if isinstance(model, Blend):
        raise ModelFolderError(f"{folder} is a hybrid: refit each of its parts with this command, then name the "
                               "refitted folders in the hybrid's \"folders\" with its chosen \"weights\"")
    protocol = model.metrics.get("protocol") or {}
    if protocol.get("refit"):
        raise ModelFolderError(f"{folder} was already fitted on train+valid (--refit or scripts/refit.py)")
    trained = read_json(folder / "config.json", CONFIG_MAX_BYTES, error=ModelFolderError).get("train") or {}
    fit_info = {**(trained.get("fit") or {}), "history": model.metrics.get("history") or []}
    if model.trains_in_epochs:
        _check_epochs(folder, fit_info)
    params = json.loads(json.dumps(dataclasses.asdict(model.config)))  # the folder's configuration, plain values
    config = RunConfig(models=(model.name,), out=out.parent, params={model.name: params}, seed=seed)
    started = time.perf_counter()
    fresh, info = refit(model.name, model, data, config, fit_info, FitOptions(seed=seed, progress=progress))
    if "skipped" in info:
        raise ModelFolderError(f"{folder} cannot be refitted: {info['skipped']}")
    info["seconds"] = round(time.perf_counter() - started, 2)
    metrics = {"valid": model.metrics.get("valid"), "data": model.metrics.get("data"),
               "protocol": {**protocol, "refit": True}, "history": fit_info["history"],
               "refit": {**info, "from": str(folder)}}
    save_folder(fresh, out, data.items, metrics=metrics,
                train={"fit": {k: v for k, v in fit_info.items() if k != "history"}, "refit": info,
                       "refitted_from": str(folder), "seed": seed})
    return info


def _check_epochs(folder: Path, fit_info: dict) -> None:
    """The selected epoch count and each of those epochs' learning rate, as the refit replays them: a positive
    integer within the recorded history, and a finite positive number per epoch (else ModelFolderError)."""
    best, history = fit_info.get("best_epoch"), fit_info["history"]
    if not best:
        raise ModelFolderError(f"{folder} records no validated epoch, so there is no epoch count to refit for")
    if isinstance(best, bool) or not isinstance(best, int) or not isinstance(history, list) or \
            not 0 < best <= len(history):
        raise ModelFolderError(f"{folder}: config.json's best_epoch {str(best)[:40]} does not fit the "
                               f"{len(history) if isinstance(history, list) else 0} epochs metrics.json records")
    for row in history[:best]:
        lr = row.get("lr") if isinstance(row, dict) else None
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
            raise ModelFolderError(f"{folder}: metrics.json's history lacks a learning rate for an epoch the refit "
                                   "replays")
