"""One registry, read by scripts/train_and_eval.py and the app: registry key -> model class."""

from recsys.config import strict_replace
from recsys.models.als import ALS
from recsys.models.base import FitOptions, Recommender, recommend
from recsys.models.blend import Blend
from recsys.models.knn import ItemKNN, SequentialRules
from recsys.models.pop import Pop, RandomRec, SPop
from recsys.models.rnn import BiLSTMRec, CatLSTMRec, GRU4Rec, GRU4RecLarge, GRU4RecMedium, LSTMRec
from recsys.models.sasrec import SASRec
from recsys.models.sknn import SKNN, VSKNN

REGISTRY: dict[str, type[Recommender]] = {
    # baselines
    "random": RandomRec,
    "pop": Pop,
    "spop": SPop,
    "itemknn": ItemKNN,
    "sr": SequentialRules,
    "sknn": SKNN,
    "vsknn": VSKNN,
    "als": ALS,
    # neural
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
    "gru4rec-medium": GRU4RecMedium,
    "gru4rec-large": GRU4RecLarge,
    "lstm": LSTMRec,
    "lstm-bi": BiLSTMRec,
    "lstm-cat": CatLSTMRec,
    # hybrid: a validation-weighted mixture of other registry models
    "hybrid": Blend,
}


def model_class(name: str) -> type[Recommender]:
    """The registry class of `name`, or of `key@variant` (one model run with another parameter set, reported as
    a row of its own); unknown names fail loudly."""
    key = name.split("@", 1)[0]
    if key not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(REGISTRY)} (optionally as key@variant)")
    return REGISTRY[key]


def build_model(name: str, n_items: int, params: dict | None = None):
    """A fresh registry model (`key` or `key@variant`). `params` holds Config fields, and for neural models
    optionally {"train": {TrainConfig fields}}; unknown names fail loudly."""
    cls = model_class(name)
    params = dict(params or {})
    train = params.pop("train", None)
    model = cls(strict_replace(cls.Config(), params, f"parameters for {name}"), n_items)
    if train:
        if not cls.trains_in_epochs:
            raise ValueError(f"{name} does not train in epochs: training parameters {sorted(train)} do not apply")
        # here, not at the top: recsys.trainconfig reads recsys.evaluate, which imports recsys.models.base
        from recsys.trainconfig import TrainConfig

        model.train_config = strict_replace(TrainConfig(), train, f"training parameters for {name}")
    return model


Blend.build_part = staticmethod(build_model)  # the hybrid builds its parts from this registry

__all__ = ["REGISTRY", "FitOptions", "Recommender", "build_model", "model_class", "recommend"]
