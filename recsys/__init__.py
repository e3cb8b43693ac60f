"""recsys: next-item recommendation from raw e-commerce event logs.

    import recsys
    model = recsys.load("checkpoints/sasrec")            # a model folder, or a Hub repo id
    ids, scores = recsys.recommend(model, model.vocab.encode(["123", "456"]), k=10)
    model.vocab.decode(ids)
"""

from recsys.data import Dataset, ItemVocab, PrepareConfig, build_dataset
from recsys.evaluate import evaluate, paired_test
from recsys.models import REGISTRY, FitOptions, Recommender, recommend
from recsys.sessions import Sessions, make_cases


def load(path_or_repo: str, revision: str | None = None):
    """Load a model folder (local path, or a Hugging Face Hub repo id) ready for `recommend`."""
    from pathlib import Path

    from recsys.folder import load_folder

    if Path(path_or_repo).exists():
        return load_folder(path_or_repo, REGISTRY)
    from recsys.hub import download

    return load_folder(download(path_or_repo, revision=revision), REGISTRY)


__all__ = ["Dataset", "FitOptions", "ItemVocab", "PrepareConfig", "REGISTRY", "Recommender", "Sessions",
           "build_dataset", "evaluate", "load", "make_cases", "paired_test", "recommend"]
