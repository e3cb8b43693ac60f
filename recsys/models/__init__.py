"""One registry, read by scripts/train_and_eval.py and the app: registry key -> model class; and `describe`, what
each registry model is in words (declared on its class), read by the model cards and the app."""

from dataclasses import dataclass

from recsys.config import strict_replace
from recsys.models.als import ALS
from recsys.models.base import FitOptions, Recommender, recommend
from recsys.models.blend import Blend
from recsys.models.knn import ItemKNN, SequentialRules
from recsys.models.pop import Pop, RandomRec, Recent, SPop
from recsys.models.rnn import BiLSTMRec, CatLSTMRec, GRU4Rec, GRU4RecLarge, GRU4RecMedium, LSTMRec
from recsys.models.sasrec import SASRec
from recsys.models.sknn import SKNN, STAN, VSKNN
from recsys.models.srgnn import SRGNN

REGISTRY: dict[str, type[Recommender]] = {
    # baselines
    "random": RandomRec,
    "pop": Pop,
    "spop": SPop,
    "recent": Recent,
    "itemknn": ItemKNN,
    "sr": SequentialRules,
    "sknn": SKNN,
    "vsknn": VSKNN,
    "stan": STAN,
    "als": ALS,
    # neural
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
    "gru4rec-medium": GRU4RecMedium,
    "gru4rec-large": GRU4RecLarge,
    "lstm": LSTMRec,
    "lstm-bi": BiLSTMRec,
    "lstm-cat": CatLSTMRec,
    "srgnn": SRGNN,
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


@dataclass(frozen=True)
class ModelInfo:
    """What a registry model is, in words: the model card, the app's model card and its About text show this."""

    key: str  # as asked: a registry key, or KEY@VARIANT
    title: str  # display name, "GRU4Rec"; a variant's names it: "GRU4Rec (variant big)"
    summary: str  # one line for shoppers, to follow the title: "a recurrent neural network (GRU) that ..."
    description: str  # one paragraph for a model card: what it computes, with its reference


def describe(name: str) -> ModelInfo:
    """Title, summary and description of a registry model (`key` or `key@variant`), from its class; unknown
    names fail loudly."""
    cls = model_class(name)
    key, at, variant = name.partition("@")
    if not at:
        return ModelInfo(name, cls.title, cls.summary, cls.description)
    if not variant:
        raise KeyError(f"model {name!r} names no variant after '@'")
    return ModelInfo(name, f"{cls.title} (variant {variant})", cls.summary,
                     f"{cls.description} This is its variant `{variant}`: the `{key}` model run with another "
                     "parameter set.")


def build_model(name: str, n_items: int, params: dict | None = None):
    """A fresh registry model (`key` or `key@variant`). `params` holds Config fields, and for neural models
    optionally {"train": {TrainConfig fields}} (replaces the default recipe) or {"recipe": {recsys.recipe.Rules
    fields}} (the default recipe under changed rules); unknown names fail loudly."""
    cls = model_class(name)
    params = dict(params or {})
    train = params.pop("train", None)
    rules = params.pop("recipe", None)
    model = cls(strict_replace(cls.Config(), params, f"parameters for {name}"), n_items)
    if train:
        if not cls.trains_in_epochs:
            raise ValueError(f"{name} does not train in epochs: training parameters {sorted(train)} do not apply")
        # here, not at the top: recsys.trainconfig reads recsys.evaluate, which imports recsys.models.base
        from recsys.trainconfig import TrainConfig

        model.train_config = strict_replace(TrainConfig(), train, f"training parameters for {name}")
    if rules:
        if not cls.trains_in_epochs:
            raise ValueError(f"{name} does not train in epochs: recipe rules {sorted(rules)} do not apply")
        if train:
            raise ValueError(f"parameters for {name} give both \"train\" and \"recipe\": training settings "
                             "replace the recipe, so its rules would do nothing; give one of them")
        from recsys.recipe import Rules

        rules = {k: tuple(v) if isinstance(v, list) else v for k, v in rules.items()}
        model.recipe_rules = strict_replace(Rules(), rules, f"recipe rules for {name}")
    return model


Blend.build_part = staticmethod(build_model)  # the hybrid builds its parts from this registry

__all__ = ["REGISTRY", "FitOptions", "ModelInfo", "Recommender", "build_model", "describe", "model_class", "recommend"]
