"""Popularity baselines: Pop (global counts), S-Pop (session items first), Recent (the session's own items by
recency) and Random.

Counts live in a buffer, so these save and load like every other model.
"""

from dataclasses import dataclass

import numpy as np
import torch

from recsys.models.base import FitOptions, ModelConfig, Recommender, check_range


@dataclass(frozen=True)
class PopConfig(ModelConfig):
    pass


class Pop(Recommender):
    """Global popularity: every session gets the training item counts."""

    name = "pop"
    Config = PopConfig
    title = "Popularity (Pop)"
    uses = "popularity only: the same list for every session"
    because = ""  # no item of the session moves the ranking
    summary = "the most viewed items overall, the same list for everyone; simple, and surprisingly hard to beat."
    description = ("Recommends the items seen most often in training, the same list for every session: the baseline "
                   "that shows how much of a metric is popularity alone.")

    def __init__(self, config: PopConfig, n_items: int):
        super().__init__(config, n_items)
        self.register_buffer("counts", torch.zeros(n_items))

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        counts = np.bincount(data.train.items, minlength=self.n_items).astype(np.float32)
        self.counts = torch.from_numpy(counts)
        return {}

    def score(self, sessions):
        return self.counts.expand(len(sessions), -1).clone()


@dataclass(frozen=True)
class SPopConfig(ModelConfig):
    exclude_session: bool = False  # True: popularity excluding the current session's items (no repeats)


class SPop(Pop):
    """Session popularity: items of the current session by frequency there, then by global popularity.

    With `exclude_session=True` it is the opposite baseline: global popularity with the session's items removed.
    """

    name = "spop"
    Config = SPopConfig
    title = "Session popularity (S-Pop)"
    uses = "how often each item occurs in this session, then popularity"
    summary = "items already in this session first (most repeated first), then the most popular items."
    description = ("Ranks the current session's items by how often they occur in it, then the rest by global "
                   "popularity. With `exclude_session` set it is the opposite baseline: global popularity with the "
                   "session's items removed.")

    def score(self, sessions):
        pop = self.counts / (self.counts.max() + 1.0)  # in [0, 1): below any in-session count
        scores = pop.expand(len(sessions), -1).clone()
        rows = torch.from_numpy(np.repeat(np.arange(len(sessions)), [len(s) for s in sessions]))
        cols = torch.from_numpy(np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions]))
        if self.config.exclude_session:
            scores[rows, cols] = -1.0
        else:
            scores.index_put_((rows, cols), torch.ones(len(cols)), accumulate=True)
        return scores


@dataclass(frozen=True)
class RecentConfig(ModelConfig):
    decay: float = 0.5  # an occurrence n steps before the last item weighs decay**n; 1.0: plain counts

    def check(self):
        check_range(self, "decay", 0.0, 1.0)
        if self.decay == 0:
            raise ValueError("decay must be above 0 (0 would weigh every item but the last 0)")


class Recent(Recommender):
    """Recently viewed: the session's own items, each occurrence weighted by decay**(steps before the last item).

    Scores sum to 1 over the session's items; every other item scores 0. Alone it is the "recently viewed" list
    shops show. In a hybrid it is a learned repeat bonus (RepeatNet's "repeat" mode without the network, Ren et al.
    2019): the weight validation gives it says how often next items repeat, and its decay how much recency counts.
    Nothing is fitted.
    """

    name = "recent"
    Config = RecentConfig
    title = "Recently viewed"
    uses = "this session's own items, the most recent first"
    because = "viewed {item} in this session"
    summary = "the items of this session again, the most recently viewed first; nothing else."
    search_space = {"decay": ("float", 0.05, 1.0)}
    description = ("Recommends the items already viewed in this session, the most recent first (each view weighs "
                   "`decay` to the power of the steps since it; repeated views add up). It never recommends a new "
                   "item: alone it is the \"recently viewed\" list, and in a hybrid it adds a repeat bonus whose "
                   "weight is chosen on validation.")

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        return {}

    def score(self, sessions):
        lengths = np.array([len(s) for s in sessions], dtype=np.int64)
        out = torch.zeros(len(sessions), self.n_items)
        if not lengths.sum():
            return out
        rows = np.repeat(np.arange(len(sessions)), lengths)
        cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
        ends = np.cumsum(lengths)
        steps = np.repeat(ends, lengths) - 1 - np.arange(ends[-1])  # steps before the session's last item
        weights = self.config.decay ** steps.astype(np.float64)
        weights /= np.bincount(rows, weights, minlength=len(sessions))[rows]
        out.index_put_((torch.from_numpy(rows), torch.from_numpy(cols)), torch.from_numpy(weights).float(),
                       accumulate=True)
        return out


@dataclass(frozen=True)
class RandomConfig(ModelConfig):
    seed: int = 0


class RandomRec(Recommender):
    """Uniformly random scores, fixed per session content so repeated calls agree (a floor for every metric)."""

    name = "random"
    Config = RandomConfig
    title = "Random"
    uses = "nothing: a random ranking"
    because = ""  # no item of the session moves the ranking
    summary = "a random ranking, the floor every real model must beat."
    description = ("Scores every item uniformly at random (the same scores for the same session, so repeated calls "
                   "agree): the floor any real model must beat.")

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        return {}

    def score(self, sessions):
        out = torch.empty(len(sessions), self.n_items)
        for row, s in enumerate(sessions):
            gen = torch.Generator().manual_seed(hash((self.config.seed, tuple(int(i) for i in s))) % (2**63))
            out[row] = torch.rand(self.n_items, generator=gen)
        return out
