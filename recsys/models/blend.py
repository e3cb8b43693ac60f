"""Hybrid: a weighted mixture of other registry models' next-item distributions, weights chosen on validation.

Each part's scores for a session become a probability distribution over the catalogue: a neural model's logits
through a softmax, any other model's scores (similarity sums, counts; negative ones count as 0) divided by their
sum. A part with no score for any item there (a kNN model without neighbours) adds nothing, so the others decide.
The hybrid's score is sum_i w_i p_i; with `mix_by` "length-repeat" the weights w depend on the session's bucket
(prefix length, and whether an item repeats in it), each bucket's chosen on its own validation cases. With
`weights` empty, `fit` fits every part (with the part-fitter it is
given: recsys.train.fit) and then picks the weights on a
simplex grid (step `grid_step`) by the validation metric `select`, on up to `select_max_cases` evenly spaced
validation cases, and keeps them in its config (so config.json records them). Combining kNN and neural scores
is what Ludewig et al. (2019, "Empirical analysis of session-based recommendation algorithms") found to help.
"""

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.models.base import FitOptions, ModelConfig, Recommender, score_batch
from recsys.models.mixrank import grid_ranks, mix
from recsys.progress import progress_lines
from recsys.sessions import make_cases

METRICS = ("hr", "mrr", "ndcg")


@dataclass(frozen=True)
class BlendConfig(ModelConfig):
    components: tuple[str, ...] = ("gru4rec", "vsknn")  # registry keys of the parts
    params: dict = field(default_factory=dict)  # part -> its parameters, as in benchmarks/params/<data>/<part>.json
    weights: tuple[float, ...] = ()  # one per part, summing to 1; empty: chosen on validation by `fit`
    # "": one weighting for every session; "length-repeat": a weighting per bucket of sessions, by prefix length
    # (cut at `length_edges`) and whether the prefix repeats an item (issue 18's learned mixture), each chosen on
    # that bucket's validation cases (a bucket with none keeps `weights`)
    mix_by: str = ""
    length_edges: tuple[int, ...] = (2, 3, 4, 6, 10)  # buckets 1, 2, 3, 4-5, 6-9, 10+
    bucket_weights: tuple[tuple[float, ...], ...] = ()  # with mix_by: one weighting per bucket (`bucket_of`)
    grid_step: float = 0.1  # of the weight grid searched on validation
    select: str = "mrr@20"  # validation metric that picks the weights, or the mean of several: "hr@20+mrr@20"
    select_max_cases: int | None = 20_000  # validation cases scored for the choice (evenly spaced); None: all
    # part -> an already-trained model folder of the same data set (a run's model name: OUT/<name>; or a path),
    # taken as it is: only the weights are fitted (recsys.pipeline.run loads them)
    folders: dict = field(default_factory=dict)
    reuse: bool = False  # take each part from this run's row of that name, or its folder OUT/<part>, if there

    def check(self):  # the field types are checked (and JSON lists made tuples) before this
        if len(self.components) < 1 or len(set(self.components)) != len(self.components):
            raise ValueError(f"components must name one or more distinct models, got {list(self.components)}")
        if "hybrid" in self.components:
            raise ValueError("a hybrid cannot contain a hybrid")
        bad = [name for name, p in self.params.items() if p is not None and not isinstance(p, dict)]
        if bad:
            raise TypeError(f"BlendConfig.params must map each part to a dict of its parameters, not for {bad}")
        if set(self.params) - set(self.components):
            raise ValueError(f"params given for {sorted(set(self.params) - set(self.components))}, "
                             f"which are not components {list(self.components)}")
        if self.weights and (len(self.weights) != len(self.components) or min(self.weights) < 0
                             or abs(sum(self.weights) - 1) > 1e-6):
            raise ValueError(f"weights must be one non-negative weight per component summing to 1, got "
                             f"{list(self.weights)} for {list(self.components)}")
        if set(self.folders) - set(self.components):
            raise ValueError(f"folders given for {sorted(set(self.folders) - set(self.components))}, "
                             f"which are not components {list(self.components)}")
        bad = [name for name, f in self.folders.items() if not isinstance(f, str) or not f]
        if bad:
            raise TypeError(f"BlendConfig.folders must map each part to a folder (a model name or a path), "
                            f"not for {bad}")
        if self.mix_by not in MIX_BY:
            raise ValueError(f"mix_by must be one of {MIX_BY}, got {self.mix_by!r}")
        edges = self.length_edges
        if not 1 <= len(edges) <= MAX_EDGES or min(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"length_edges must be 1 to {MAX_EDGES} increasing lengths >= 2, got {list(edges)}")
        if self.bucket_weights:
            if not self.mix_by or not self.weights:
                raise ValueError("bucket_weights need mix_by and the overall weights")
            if len(self.bucket_weights) != 2 * (len(edges) + 1):
                raise ValueError(f"bucket_weights must hold {2 * (len(edges) + 1)} weightings (one per bucket), "
                                 f"got {len(self.bucket_weights)}")
            for w in self.bucket_weights:
                if len(w) != len(self.components) or min(w) < 0 or abs(sum(w) - 1) > 1e-6:
                    raise ValueError(f"each of bucket_weights must be one non-negative weight per component "
                                     f"summing to 1, got {list(w)} for {list(self.components)}")
        steps = 1 / self.grid_step if self.grid_step > 0 else 0.5
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"grid_step must divide 1 into whole steps (0.1, 0.05, 0.25 ...), got {self.grid_step}")
        for metric in self.select.split("+"):
            name, _, k = metric.partition("@")
            if name not in METRICS or not k.isdigit() or int(k) < 1:
                raise ValueError(f"select must look like 'mrr@20' with one of {METRICS}, or the mean of several "
                                 f"joined by '+' ('hr@20+mrr@20'), got {self.select!r}")


MIX_BY = ("", "length-repeat")
MAX_EDGES = 32


def bucket_of(sessions: Sequence[np.ndarray], edges: Sequence[int]) -> np.ndarray:
    """(B,) bucket of each session for mix_by "length-repeat": 2 * (its length's slot among `edges`) + (1 if an
    item occurs twice in it)."""
    lengths = np.array([len(s) for s in sessions], dtype=np.int64)
    repeats = np.array([len(np.unique(s)) < len(s) for s in sessions], dtype=np.int64)
    return 2 * np.digitize(lengths, list(edges)) + repeats


def simplex_grid(n: int, step: float) -> np.ndarray:
    """(G, n) weight vectors: non-negative multiples of `step` summing to 1."""
    steps = round(1 / step)
    rows = [c for c in itertools.product(range(steps + 1), repeat=n) if sum(c) == steps]
    return np.array(rows, dtype=np.float64) / steps


class Blend(Recommender):
    name = "hybrid"
    Config = BlendConfig
    title = "Hybrid"
    uses = "a weighted mix of its parts' recommendations"
    summary = "a weighted mix of several models' recommendations, the weights chosen on validation data."
    description = ("A weighted mixture of other registry models' next-item distributions (by default "
                   f"{' and '.join(f'`{c}`' for c in BlendConfig.components)}), the weights chosen on validation "
                   "data: combining kNN and neural models is what Ludewig et al. (2019) found to help. Its parts and "
                   "weights are its `components` and `weights` hyperparameters.")
    # recsys.models.build_model, handed over by the registry when it is defined: the registry lists this class,
    # so this module cannot import it
    build_part: ClassVar[Callable[[str, int, dict | None], Recommender]]

    def __init__(self, config: BlendConfig, n_items: int):
        super().__init__(config, n_items)
        # a list, not a ModuleDict: part names like "pop" would clash with the dict's own methods
        self.parts = nn.ModuleList([type(self).build_part(c, n_items, config.params.get(c))
                                    for c in config.components])
        self.reused: dict[str, str] = {}  # part -> where it came from (`use_part`): `fit` leaves it as it is

    def check_state(self) -> None:
        for name, part in zip(self.config.components, self.parts, strict=True):
            try:
                part.check_state()
            except ValueError as err:
                raise ValueError(f"part {name}: {err}") from None

    def use_part(self, name: str, model: Recommender, source: str) -> None:
        """Take an already-fitted `model` (of the same data set: the caller checks) as part `name`; `fit` keeps
        it as it is and `refit_params` keeps its parameters. The config records its parameters."""
        i = self.config.components.index(name)
        if type(model) is not type(self.parts[i]) or model.n_items != self.n_items:
            raise ValueError(f"part {name}: {source} holds a {model.name} model of {model.n_items - 1} items, not "
                             f"a {self.parts[i].name} model of {self.n_items - 1} items")
        self.parts[i] = model
        self.config = dataclasses.replace(self.config, params={**self.config.params,
                                                               name: dataclasses.asdict(model.config)})
        self.reused[name] = source

    def part(self, name: str) -> Recommender:
        return self.parts[self.config.components.index(name)]

    def distributions(self, sessions: Sequence[np.ndarray], skip: Sequence[bool] = ()) -> list[torch.Tensor | None]:
        """Each part's (B, n_items) next-item distribution (padding gets 0); None for the parts `skip` marks."""
        out = []
        for i, part in enumerate(self.parts):
            if i < len(skip) and skip[i]:
                out.append(None)
                continue
            s = score_batch(part, sessions)[:, 1:]  # a part may return a view of its own tables: no writes
            if part.returns_logits:
                p = torch.softmax(s, dim=1)
            else:
                p = s.clamp_min(0)
                p /= p.sum(dim=1, keepdim=True).clamp_min_(torch.finfo(p.dtype).tiny)
            out.append(F.pad(p, (1, 0)))
        return out

    mix = staticmethod(mix)

    def session_weights(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        """(B, parts) the weighting each session is mixed with: its bucket's, or the one weighting."""
        if self.config.bucket_weights:
            return np.asarray(self.config.bucket_weights)[bucket_of(sessions, self.config.length_edges)]
        return np.broadcast_to(np.asarray(self.config.weights), (len(sessions), len(self.parts)))

    def score(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        if not self.config.weights:
            raise RuntimeError("this hybrid has no weights yet: fit it, or give weights in its config")
        if not self.config.bucket_weights:
            weights = self.config.weights  # a part weighted 0 is not scored at all
            return self.mix(self.distributions(sessions, skip=[w == 0 for w in weights]), weights)
        rows = self.session_weights(sessions)
        dists = self.distributions(sessions, skip=[not rows[:, i].any() for i in range(len(self.parts))])
        out = torch.zeros_like(next(p for p in dists if p is not None))
        for i, p in enumerate(dists):
            if p is not None:
                out.addcmul_(p, torch.from_numpy(rows[:, i : i + 1].astype(np.float32)))
        return out

    def fit(self, data, options: FitOptions = FitOptions(), *, fit_part: Callable[..., dict | None]) -> dict:
        """Fit every part with `fit_part(part, data, options)` (recsys.train.fit, which calls this; the serving
        benchmark gives neural parts random weights instead), then choose the weights on `data.valid`. Each
        part's checkpoints go to its own folder under options.workdir. A part taken by `use_part` is not fitted.
        """
        info = {"components": {}}
        for name, part in zip(self.config.components, self.parts):
            if name in self.reused:
                info["components"][name] = {"reused": self.reused[name]}
                continue
            opts = dataclasses.replace(options, workdir=f"{options.workdir}/{name}") if options.workdir else options
            info["components"][name] = fit_part(part, data, opts) or {}
        if not self.config.weights:
            if not len(data.valid):
                raise ValueError("a hybrid without weights chooses them on validation, but the data has none")
            info["selection"] = self.choose_weights(data, progress=options.progress,
                                                    exclude_seen=options.exclude_seen)
        info["weights"] = dict(zip(self.config.components, self.config.weights))
        if self.config.bucket_weights:
            info["bucket_weights"] = [dict(zip(self.config.components, w)) for w in self.config.bucket_weights]
        return info

    @torch.no_grad()
    def choose_weights(self, data, progress: bool = False, exclude_seen: bool = False) -> dict:
        """Score the validation cases once per part, rank every target under each grid weighting, and keep the
        weighting with the best `select` metric (ties: the earlier grid point). Sets config.weights. With
        `exclude_seen` (the run's protocol, FitOptions.exclude_seen) the prefix's items are not ranked, as the
        run's evaluation does. With `progress`, a bar on a terminal, else a line to stderr about every tenth of
        the cases."""
        # here, not at the top: recsys.evaluate imports recsys.models.base, whose package imports this module
        from recsys.evaluate import case_batches, rank_metric, spaced_rows

        cases = make_cases(data.valid, data.protocol("valid"))
        n = len(spaced_rows(len(cases), self.config.select_max_cases))
        grid = simplex_grid(len(self.parts), self.config.grid_step)
        k = max(int(m.partition("@")[2]) for m in self.config.select.split("+"))  # ranks beyond it: misses
        ranks = np.empty((len(grid), n), dtype=np.int64)
        buckets = np.empty(n, dtype=np.int64)
        batches = case_batches(cases, self.config.select_max_cases, batch_size=256)
        desc = f"hybrid weights: {len(grid)} weightings of {len(self.parts)} parts on {n:,} validation cases"
        for rows, prefixes, targets in progress_lines(batches, -(-n // 256), desc, progress):
            dists = self.distributions(prefixes)
            buckets[rows] = bucket_of(prefixes, self.config.length_edges)
            ranks[:, rows], _ = grid_ranks(dists, prefixes, targets, grid, k, exclude_seen)
        def values_on(cases) -> np.ndarray:
            return np.array([np.mean([rank_metric(r[cases], m) for m in self.config.select.split("+")])
                             for r in ranks])

        values = values_on(slice(None))
        best = int(np.argmax(values))
        chosen = {"weights": tuple(float(w) for w in grid[best])}
        per_bucket = []
        if self.config.mix_by:
            picks = np.array([int(np.argmax(values_on(cases))) if len(cases := np.flatnonzero(buckets == b))
                              else best for b in range(2 * (len(self.config.length_edges) + 1))])
            per_bucket = [{"cases": int((buckets == b).sum()), "weights": [float(w) for w in grid[g]]}
                          for b, g in enumerate(picks)]
            chosen["bucket_weights"] = tuple(tuple(float(w) for w in grid[g]) for g in picks)
            combined = ranks[picks[buckets], np.arange(n)]
            best_bucketed = float(np.mean([rank_metric(combined, m) for m in self.config.select.split("+")]))
        self.config = dataclasses.replace(self.config, **chosen)
        singles = {c: float(values[g]) for g, w in enumerate(grid) for c, x in zip(self.config.components, w)
                   if x == 1.0}
        return {"metric": self.config.select, "cases": n, "grid_points": len(grid), "best": float(values[best]),
                "exclude_seen": exclude_seen,
                **({"buckets": per_bucket, "best_by_bucket": best_bucketed} if per_bucket else {}),
                "each_part_alone": singles}

    def refit_params(self, params: dict, fit_info: dict) -> dict | None:
        """Keep the chosen weights; refit each part the way it would be refitted alone (a reused part is not
        refitted here: the caller hands the refitted hybrid that part's refitted model, see recsys.pipeline)."""
        parts = {}
        for name, part in zip(self.config.components, self.parts):
            if name in self.reused:
                parts[name] = self.config.params[name]
                continue
            parts[name] = part.refit_params(self.config.params.get(name) or {}, fit_info["components"][name])
            if parts[name] is None:
                return None
        kept = {"weights": list(self.config.weights)}
        if self.config.bucket_weights:
            kept["bucket_weights"] = [list(w) for w in self.config.bucket_weights]
        return {**params, "params": parts, **kept}
