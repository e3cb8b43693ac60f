"""One registry, read by scripts/train_and_eval.py and the app: registry key -> model class."""

from recsys.models.als import ALS
from recsys.models.base import FitOptions, Recommender, recommend
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
}

__all__ = ["REGISTRY", "FitOptions", "Recommender", "recommend"]
