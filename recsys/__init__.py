"""recsys: next-item recommendation from raw e-commerce event logs.

    import recsys
    model = recsys.load("checkpoints/sasrec")            # a model folder, or a Hub repo id
    ids, scores = recsys.recommend(model, model.vocab.encode(["123", "456"]), k=10)
    model.vocab.decode(ids)
"""

from recsys.data import Dataset, ItemVocab
from recsys.evaluate import evaluate, paired_test
from recsys.models import REGISTRY, FitOptions, Recommender, recommend
from recsys.sessionize import PrepareConfig, build_dataset
from recsys.sessions import Sessions, make_cases


def load(path_or_repo: str, revision: str | None = None):
    """Load a model folder (local path, or a Hugging Face Hub repo id) ready for `recommend`."""
    from pathlib import Path

    from recsys.folder import ModelFolderError, load_folder

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
