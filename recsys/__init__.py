"""recsys: next-item recommendation from raw e-commerce event logs.

    import recsys
    model = recsys.load("checkpoints/sasrec")            # a model folder, or a Hub repo id
    ids, scores = recsys.recommend(model, model.vocab.encode(["123", "456"]), k=10)
    model.vocab.decode(ids)

The names below are imported on first use (PEP 562), so `import recsys` costs nothing and serving code (batch
scoring, the JSON API) never pays for what only training and evaluation need (the evaluator's scipy.stats, the
data preparation's polars paths): ~1 s of a batch command's start-up.
"""

import importlib
import sys
import types

_LAZY = {  # public name -> the module that defines it
    "Dataset": "recsys.data", "ItemVocab": "recsys.data",
    "evaluate": "recsys.evaluate", "paired_test": "recsys.evaluate",
    "REGISTRY": "recsys.models", "FitOptions": "recsys.models", "Recommender": "recsys.models",
    "recommend": "recsys.models",
    "PrepareConfig": "recsys.sessionize", "build_dataset": "recsys.sessionize",
    "Sessions": "recsys.sessions", "make_cases": "recsys.sessions",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'recsys' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """`recsys.evaluate` is the function, as it was when this file imported it eagerly: importing the submodule
    recsys.evaluate (which sets the attribute to the module) must not replace it."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def load(path_or_repo: str, revision: str | None = None):
    """Load a model folder (local path, or a Hugging Face Hub repo id) ready for `recommend`."""
    from pathlib import Path

    from recsys.folder import ModelFolderError, load_folder
    from recsys.models import REGISTRY

    text = str(path_or_repo)
    if Path(text).expanduser().exists():
        return load_folder(Path(text).expanduser(), REGISTRY)
    from recsys.hub import HubError, download, split_repo_id

    try:
        split_repo_id(text)
    except ValueError:
        raise ModelFolderError(f"no model folder at {text} (and it is not a Hub repo id like "
                               f"user/repo/model)") from None
    try:
        folder = download(text, revision=revision)
    except HubError as err:
        raise ModelFolderError(f"{text} is not a local model folder, and from the Hub: {err}") from None
    # the Hub cache keeps a snapshot's files as links into the repo's blobs/: those links, and no others, are fine
    blobs = next((p.parent / "blobs" for p in folder.parents if p.name == "snapshots"), None)
    return load_folder(folder, REGISTRY, links_within=blobs)


__all__ = ["Dataset", "FitOptions", "ItemVocab", "PrepareConfig", "REGISTRY", "Recommender", "Sessions",
           "build_dataset", "evaluate", "load", "make_cases", "paired_test", "recommend"]
