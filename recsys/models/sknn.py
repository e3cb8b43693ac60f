"""Session-based kNN: SKNN and V-SKNN (Ludewig and Jannach 2018; session-rec's `knn/sknn.py`, `knn/vsknn.py`).

For the current session s:
1. candidates: the `sample_size` most recent training sessions sharing at least one item with s;
2. similarity to each candidate c, from item sets (repeats count once):
   SKNN   |s & c| / sqrt(|s| |c|)                       (cosine of binary vectors)
   V-SKNN sum_{i in s & c} weighting(pos(i), len(s)) / |s| (pos(i) = last 1-based position of i in s)
3. neighbours: the k most similar candidates (ties: the more recent first);
4. score(j) = sum over neighbours c holding j of sim(s, c), for V-SKNN times weighting_score(step(c)),
   step(c) = 1 + how many clicks of s came after the latest one that c holds, and times (1 + idf_weighting idf(j));
   both models: times `backward` if j comes before that shared item in c.

Training sessions are stored most recent last (by end time where the data has it, else in file order), so
"most recent" is "largest index". Scoring is vectorised over a batch: a candidate among the `sample_size`
most recent sessions of the union is always among the `sample_size` most recent sessions of each item it
shares with s, so truncating every item's posting list to its last `sample_size` entries loses nothing.
Differences from session-rec: no dwelling time, time decay, `extend` or reminder options; and `backward`, new
here: session-rec's neighbours vote for all their items alike (backward = 1), which cannot tell the next item
from the previous one after a single click. Halving the votes for what a neighbour saw *before* the shared item
raised validation MRR@20 (20k cases, SR-GNN splits) on Yoochoose 1/64 from 27.35 to 28.02 (V-SKNN) and 25.06 to
25.30 (SKNN), on Diginetica from 17.44 to 17.68 and 16.60 to 16.78 (0, only later items, was below 0.5 on both).
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from recsys.models.base import FitOptions, ModelConfig, Recommender, check_index, check_offsets
from recsys.models.knn import decay, evidence_then_popularity


def _csr_gather(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ranges [starts, ends) in one flat array, and which range each came from."""
    counts = ends - starts
    total = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=total[1:])
    owner = np.repeat(np.arange(len(counts)), counts)
    return np.arange(total[-1], dtype=np.int64) + np.repeat(starts - total[:-1], counts), owner


class Neighbours(NamedTuple):
    """The top-k neighbour sessions of a batch of queries, flat, grouped by query (most similar first)."""

    row: np.ndarray  # which query
    session: np.ndarray  # training session index (larger = more recent)
    similarity: np.ndarray
    step: np.ndarray  # 1 + clicks of the query after the latest one the neighbour holds
    anchor: np.ndarray  # where that latest shared item sits in the neighbour's item list
    last_shared: np.ndarray  # the last place in the neighbour's item list of any item it shares with the query


@dataclass(frozen=True)
class SKNNConfig(ModelConfig):
    k: int = 200  # neighbour sessions
    sample_size: int = 1000  # most recent candidate sessions considered
    backward: float = 0.5  # vote weight of a neighbour's items that precede the item it shares (1: session-rec)


class SKNN(Recommender):
    """Session-based kNN with binary cosine similarity; every neighbour votes its similarity for its items."""

    name = "sknn"
    Config = SKNNConfig
    title = "Session-kNN (SKNN)"
    uses = "past sessions that share items with this one"
    because = "viewed in past sessions that had {item}"
    summary = "finds past sessions like this one and recommends what those visitors viewed."
    description = ("Finds past sessions that share items with the current one (cosine similarity of their item "
                   "sets) and recommends their items, weighted by session similarity (Ludewig and Jannach, 2018).")
    search_space = {"k": ("int", 50, 1000, True), "sample_size": ("int", 200, 5000, True),
                    "backward": ("float", 0.0, 1.0)}

    def __init__(self, config, n_items: int):
        super().__init__(config, n_items)
        if config.k < 1 or config.sample_size < 1:
            raise ValueError("k and sample_size must be at least 1")
        # training sessions as item sets (first-occurrence order), oldest first
        self.register_buffer("session_items", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("session_offsets", torch.zeros(0, dtype=torch.int64))  # n_sessions + 1 once fitted
        # inverted index: the sessions holding each item, ascending (oldest first)
        self.register_buffer("item_sessions", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("item_positions", torch.zeros(0, dtype=torch.int32))  # the item's place in that session
        self.register_buffer("item_offsets", torch.zeros(n_items + 1, dtype=torch.int64))
        self.register_buffer("popularity", torch.zeros(n_items))  # training event counts

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        train = data.train
        end = data.info.get("train", {}).get("end") if isinstance(data.info, dict) else None
        if end is not None and len(end) == len(train) and not end.isna().any():
            train = train.select(np.argsort(end.to_numpy(), kind="stable"))  # most recent last
        sess = np.repeat(np.arange(len(train), dtype=np.int64), train.lengths)
        _, first = np.unique(sess * self.n_items + train.items, return_index=True)
        first.sort()  # item sets in first-occurrence order
        items, sess = train.items[first], sess[first]
        offsets = np.zeros(len(train) + 1, dtype=np.int64)
        np.cumsum(np.bincount(sess, minlength=len(train)), out=offsets[1:])
        by_item = np.lexsort((sess, items))
        item_offsets = np.zeros(self.n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(items, minlength=self.n_items), out=item_offsets[1:])
        self.session_items, self.session_offsets = torch.from_numpy(items), torch.from_numpy(offsets)
        self.item_sessions = torch.from_numpy(sess[by_item].astype(np.int32))
        self.item_positions = torch.from_numpy((np.arange(len(items)) - offsets[sess])[by_item].astype(np.int32))
        self.item_offsets = torch.from_numpy(item_offsets)
        self.popularity = torch.from_numpy(np.bincount(data.train.items, minlength=self.n_items).astype(np.float32))
        return {"sessions": len(train)}

    def check_state(self) -> None:
        check_offsets("session_offsets", self.session_offsets, len(self.session_items))
        check_index("session_items", self.session_items, self.n_items)
        check_offsets("item_offsets", self.item_offsets, len(self.item_sessions))
        check_index("item_sessions", self.item_sessions, len(self.session_offsets) - 1)
        if self.item_positions.shape != self.item_sessions.shape:
            raise ValueError("item_positions must have one entry per item_sessions entry")
        check_index("item_positions", self.item_positions, len(self.session_items))
        lengths = self.session_offsets.diff()[self.item_sessions.long()]
        if bool((self.item_positions.long() >= lengths).any()):
            raise ValueError("item_positions holds a position beyond its session's length")

    def position_weights(self, last_pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        return np.ones(len(last_pos))

    def similarity(self, overlap_n, overlap_w, query_size, candidate_size, query_sq):
        """overlap_n: shared items; overlap_w: their summed position weights; query_sq: the sum of the query's
        squared position weights (all per candidate pair)."""
        return overlap_n / np.sqrt(query_size * candidate_size)

    def recency(self, sessions: np.ndarray, n_sessions: int) -> np.ndarray | None:
        """A factor on each candidate's similarity from how recent it is (None: none)."""
        return None

    def neighbour_weight(self, steps: np.ndarray) -> np.ndarray:
        return np.ones(len(steps))

    def vote_weight(self, place: np.ndarray, anchor: np.ndarray, last_shared: np.ndarray) -> np.ndarray:
        """Factor on a neighbour's vote for the item at `place` in its item list: `backward` for the items it had
        before the shared item (`anchor`), 1 for the others."""
        return np.where(place < anchor, self.config.backward, 1.0)

    def item_weight(self, items: np.ndarray) -> np.ndarray:
        return np.ones(len(items))

    def neighbours(self, sessions) -> Neighbours:
        # lengths are read only for the candidates: np.diff over every training session cost ~9 ms and 32 MB a
        # call at 4 M sessions (serving --knn)
        offsets = self.session_offsets.numpy()
        item_offsets, item_sessions = self.item_offsets.numpy(), self.item_sessions.numpy()
        n_sessions = len(offsets) - 1
        lengths = np.array([len(s) for s in sessions], dtype=np.int64)
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
        row = np.repeat(np.arange(len(sessions)), lengths)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1  # 1-based
        # one entry per distinct (query, item), keeping the item's last position
        key = row * self.n_items + flat
        order = np.lexsort((pos, key))
        last = order[np.r_[key[order][1:] != key[order][:-1], True]]
        q_row, q_item, q_pos = row[last], flat[last], pos[last]
        q_size = np.bincount(q_row, minlength=len(sessions)).astype(np.float64)
        q_w = self.position_weights(q_pos, lengths[q_row])
        q_sq = np.bincount(q_row, weights=q_w * q_w, minlength=len(sessions))
        # posting lists cut to their `sample_size` most recent sessions
        ends = item_offsets[q_item + 1]
        at, owner = _csr_gather(np.maximum(item_offsets[q_item], ends - self.config.sample_size), ends)
        e_row, e_sess, e_anchor = q_row[owner], item_sessions[at].astype(np.int64), self.item_positions.numpy()[at]
        e_step = (lengths[q_row] - q_pos + 1)[owner]
        # group by (query, session), smallest step first inside a group
        max_step = int(lengths.max()) + 1
        pair = e_row * n_sessions + e_sess
        order = np.argsort(pair * max_step + e_step, kind="stable")
        pair, e_step, e_w, e_anchor = pair[order], e_step[order], q_w[owner][order], e_anchor[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        c_pair, c_step, c_anchor = pair[starts], e_step[starts], e_anchor[starts]
        c_last = np.maximum.reduceat(e_anchor, starts) if len(starts) else e_anchor[:0]
        c_n = np.diff(np.r_[starts, len(pair)]).astype(np.float64)
        c_w = np.add.reduceat(e_w, starts) if len(starts) else e_w[:0]
        c_row, c_sess = c_pair // n_sessions, c_pair % n_sessions
        # keep each query's `sample_size` most recent candidates (pairs are sorted by session within a row)
        row_end = np.searchsorted(c_row, c_row, side="right")
        keep = row_end - np.arange(len(c_row)) <= self.config.sample_size
        kept = c_sess[keep]
        sim = self.similarity(c_n[keep], c_w[keep], q_size[c_row[keep]],
                              (offsets[kept + 1] - offsets[kept]).astype(np.float64), q_sq[c_row[keep]])
        recent = self.recency(c_sess[keep], n_sessions)
        if recent is not None:
            sim = sim * recent
        found = Neighbours(c_row[keep], c_sess[keep], sim, c_step[keep], c_anchor[keep], c_last[keep])
        # top k per query: most similar first, the more recent on ties
        order = np.lexsort((-found.session, -sim, found.row))
        rows = found.row[order]
        keep = order[np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") < self.config.k]
        return Neighbours(*(a[keep] for a in found))

    def score(self, sessions):
        session_items, offsets = self.session_items.numpy(), self.session_offsets.numpy()
        scores = torch.zeros(len(sessions), self.n_items)
        if len(sessions) == 0:
            return scores
        nb = self.neighbours(sessions)
        at, owner = _csr_gather(offsets[nb.session], offsets[nb.session + 1])
        items = session_items[at].astype(np.int64)
        votes = (nb.similarity * self.neighbour_weight(nb.step))[owner] * self.item_weight(items)
        votes *= self.vote_weight(at - offsets[nb.session][owner], nb.anchor[owner], nb.last_shared[owner])
        flat = torch.from_numpy(nb.row[owner] * self.n_items + items)
        scores.view(-1).index_add_(0, flat, torch.from_numpy(votes.astype(np.float32)))
        return evidence_then_popularity(scores, self.popularity)

    def explain(self, session, top: int = 5) -> dict:
        """The most similar training sessions (their items and similarity) and what each item got from them."""
        session_items, offsets = self.session_items.numpy(), self.session_offsets.numpy()
        nb = self.neighbours([np.asarray(session)])
        neighbours = [{"session": int(s), "similarity": float(w),
                       "items": session_items[offsets[s] : offsets[s + 1]].tolist()}
                      for s, w in zip(nb.session[:top], nb.similarity[:top], strict=True)]
        return {"kind": "neighbour sessions", "neighbours": neighbours, "n_neighbours": len(nb.session)}


@dataclass(frozen=True)
class VSKNNConfig(ModelConfig):
    k: int = 200
    sample_size: int = 1000
    weighting: str = "div"  # weight of a session item by its position p of n: div p/n, quadratic (p/n)^2, ...
    weighting_score: str = "div"  # decay of a neighbour's votes by step: div 1/step (see knn.DECAYS)
    idf_weighting: float = 0.0  # votes for item j times (1 + idf_weighting * idf(j)); 0 turns it off
    backward: float = 0.5


POSITION_WEIGHTS = {
    "same": lambda p, n: np.ones(len(p)),
    "div": lambda p, n: p / n,
    "quadratic": lambda p, n: (p / n) ** 2,
    "linear": lambda p, n: np.clip(1.0 - 0.1 * (n - p), 0.0, None),
    "log": lambda p, n: 1.0 / np.log10(n - p + 1.7),
}


class VSKNN(SKNN):
    """V-SKNN: recent clicks of the session weigh more in the similarity and in the votes (see module docstring)."""

    name = "vsknn"
    Config = VSKNNConfig
    title = "Vector session-kNN (V-SKNN)"
    uses = "past sessions that share items with this one, its recent items counting most"
    summary = "session-kNN in which the session's most recent items count most."
    description = ("Session-kNN (Ludewig and Jannach, 2018) that favours recency: the current session's later items "
                   "weigh more when finding similar past sessions, and a past session's votes weigh more the more "
                   "recent the item it shares with the current one. Optionally (`idf_weighting`), rare items are "
                   "boosted.")
    search_space = {"k": ("int", 50, 1000, True), "sample_size": ("int", 200, 5000, True),
                    "weighting": ("cat", ["div", "quadratic", "linear", "log", "same"]),
                    "weighting_score": ("cat", ["div", "quadratic", "linear", "log", "same"]),
                    "idf_weighting": ("float", 0.0, 10.0), "backward": ("float", 0.0, 1.0)}

    def __init__(self, config: VSKNNConfig, n_items: int):
        super().__init__(config, n_items)
        if config.weighting not in POSITION_WEIGHTS:
            raise ValueError(f"unknown weighting {config.weighting!r}; choose one of {sorted(POSITION_WEIGHTS)}")
        decay(config.weighting_score, 1)

    def position_weights(self, last_pos, length):
        return POSITION_WEIGHTS[self.config.weighting](last_pos.astype(np.float64), length.astype(np.float64))

    def similarity(self, overlap_n, overlap_w, query_size, candidate_size, query_sq):
        return overlap_w / query_size

    def neighbour_weight(self, steps):
        return decay(self.config.weighting_score, steps)

    def item_weight(self, items):
        if self.config.idf_weighting == 0:
            return np.ones(len(items))
        # as session-rec: idf = log(#sessions / #events of the item)
        n_sessions = max(len(self.session_offsets) - 1, 1)
        idf = np.log(n_sessions / np.maximum(self.popularity.numpy()[items], 1.0))
        return 1.0 + self.config.idf_weighting * idf


@dataclass(frozen=True)
class STANConfig(ModelConfig):
    k: int = 100
    sample_size: int = 1000
    lambda_spw: float = 1.02  # the session's item at p of n weighs exp((p - n) / lambda_spw) (clicks)
    lambda_snh: float = 1.0  # a neighbour's similarity times exp(-age / lambda_snh), age: share of sessions newer
    # (mild by default: the oldest session weighs e^-1 of the newest; a log stored out of time order needs no more)
    lambda_inh: float = 2.05  # a neighbour's vote for its item at q times exp(-|q - last shared| / lambda_inh)
    backward: float = 0.5  # as SKNN's (STAN itself has none, 1): its position decay alone is symmetric


class STAN(SKNN):
    """STAN: session-kNN with three exponential decays (Garg et al., SIGIR 2019; session-rec's `knn/stan.py`).

    1. the current session's items weigh exp((p - n) / lambda_spw) by their last position p of its n clicks, and
       the similarity is the cosine of that weighted vector with the neighbour's binary item set;
    2. a neighbour's similarity decays with its age, exp(-age / lambda_snh), before the k most similar are kept;
    3. a neighbour votes for its item at place q with exp(-|q - q*| / lambda_inh), q* the last place in the
       neighbour of an item it shares with the session.
    Differences from session-rec: age is measured in training sessions, not seconds: the share of training
    sessions that ended after the neighbour (0 for the most recent, near 1 for the oldest), so lambda_snh means
    the same on any log and the model needs no timestamps (sessions are stored by end time where the data has it,
    else in file order); the current session's time is not used (in session-rec it multiplies every neighbour of a
    session alike, so it never changes a ranking). Places q, q* are in the neighbour's distinct items in
    first-occurrence order, not in its clicks with repeats. And `backward` (0.5) as in SKNN: STAN's decay weighs
    the item just before the match as much as the one just after it, which cannot tell the next item from the
    previous one; backward = 1 is STAN as published.
    """

    name = "stan"
    Config = STANConfig
    title = "Sequence- and time-aware neighbourhood (STAN)"
    uses = "recent past sessions that share this session's latest items"
    summary = "session-kNN that favours the session's latest items, recent past sessions and items near the match."
    description = ("Session-kNN with three decays (Garg et al., SIGIR 2019): the current session's later items weigh "
                   "more in the similarity, more recent past sessions weigh more, and a past session votes most for "
                   "the items it had close to the item it shares with the current session.")
    search_space = {"k": ("int", 50, 1000, True), "sample_size": ("int", 200, 5000, True),
                    "lambda_spw": ("float", 0.25, 10.0, True), "lambda_snh": ("float", 0.005, 2.0, True),
                    "lambda_inh": ("float", 0.25, 20.0, True), "backward": ("float", 0.0, 1.0)}

    def __init__(self, config: STANConfig, n_items: int):
        super().__init__(config, n_items)
        if min(config.lambda_spw, config.lambda_snh, config.lambda_inh) <= 0:
            raise ValueError("lambda_spw, lambda_snh and lambda_inh must be positive")

    def position_weights(self, last_pos, length):
        return np.exp((last_pos - length).astype(np.float64) / self.config.lambda_spw)

    def similarity(self, overlap_n, overlap_w, query_size, candidate_size, query_sq):
        return overlap_w / np.sqrt(query_sq * candidate_size)

    def recency(self, sessions, n_sessions):
        return np.exp(-((n_sessions - 1 - sessions) / max(n_sessions, 1)) / self.config.lambda_snh)

    def vote_weight(self, place, anchor, last_shared):
        return np.exp(-np.abs(place - last_shared) / self.config.lambda_inh) * super().vote_weight(place, anchor,
                                                                                                    last_shared)
