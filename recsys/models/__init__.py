"""One registry, read by scripts/train_and_eval.py and the app: registry key -> model class."""

from recsys.models.base import FitOptions, Recommender, recommend
from recsys.models.pop import Pop, RandomRec, SPop

REGISTRY: dict[str, type[Recommender]] = {
    # baselines
    "random": RandomRec,
    "pop": Pop,
    "spop": SPop,
    # neural
}

__all__ = ["REGISTRY", "FitOptions", "Recommender", "recommend"]
