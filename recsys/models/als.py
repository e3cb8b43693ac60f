"""Implicit-feedback ALS (Hu, Koren and Volinsky 2008) on the session x item matrix, with session fold-in.

Fitting uses the `implicit` library (CPU). Only the item factors Y (n_items, f) are kept: a session is new at
recommendation time, so its vector x is solved from its items with the same regularised least squares
that ALS solves for every training row (implicit's `recalculate_user`):

    c_i = alpha * r_i                 (r_i: times item i occurs in the session; every other item has c = 1, p = 0)
    (Y^T Y + reg I + sum_i (c_i - 1) y_i y_i^T) x = sum_i c_i y_i
    score = Y x

The solve runs in float64 torch, batched over sessions. `Y^T Y + reg I` (f, f) does not depend on the session: it
is computed once per set of item factors and cached (at 40k items and f = 128 it is 1.3 GFLOP, ~70 ms, against
under a millisecond for the rest of the solve), and so is a transposed copy of Y for scoring.

Defaults come from a validation search on the SR-GNN Diginetica split (8 trials): session rows are short, so
many factors and a high alpha pay (MRR@20 on 20k validation cases 3.75 with implicit's defaults of 64 factors
and alpha 1; 7.89 with these; 10.09 with the best trial, 232 factors, alpha 33, regularization 0.0034, at
twice the cost).
"""

from dataclasses import dataclass

import numpy as np
import torch

from recsys.models.base import DerivedTable, FitOptions, ModelConfig, Recommender, check_range
from recsys.models.knn import session_item_matrix

MAX_FACTORS = 1024  # every score solves against an (f, f) float64 matrix: 8 MiB at this bound


@dataclass(frozen=True)
class ALSConfig(ModelConfig):
    factors: int = 128
    regularization: float = 0.01
    alpha: float = 20.0  # confidence per occurrence (implicit's alpha)
    iterations: int = 15

    def check(self):
        check_range(self, "factors", 1, MAX_FACTORS)
        check_range(self, "regularization", low=0.0)
        check_range(self, "alpha", low=0.0)
        check_range(self, "iterations", low=1)


class ALS(Recommender):
    """Matrix factorisation of which items occur in which training sessions; new sessions are folded in."""

    name = "als"
    Config = ALSConfig
    title = "ALS"
    uses = "a vector made of the session's items"
    because = "similar to {item}"
    summary = "matrix factorisation: each item gets a vector, and items viewed together get similar vectors."
    description = ("Matrix factorisation of session x item interactions (implicit ALS, Hu, Koren and Volinsky, "
                   "2008); a new session is folded in from its items.")
    search_space = {"factors": ("int", 16, 256, True), "regularization": ("float", 1e-4, 1.0, True),
                    "alpha": ("float", 0.5, 100.0, True), "iterations": ("int", 5, 30)}

    def __init__(self, config: ALSConfig, n_items: int):
        super().__init__(config, n_items)
        self.register_buffer("item_factors", torch.zeros(n_items, config.factors))
        self._gram, self._scoring = DerivedTable(), DerivedTable()  # Y^T Y + reg I; Y^T contiguous (f, n_items)

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        c = self.config
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; a BLAS pool on top of them thrashes
            model = AlternatingLeastSquares(factors=c.factors, regularization=c.regularization, alpha=c.alpha,
                                            iterations=c.iterations, random_state=options.seed,
                                            num_threads=torch.get_num_threads(), calculate_training_loss=False)
            model.fit(session_item_matrix(data.train, self.n_items, binary=False), show_progress=options.progress)
        self.item_factors = torch.from_numpy(np.ascontiguousarray(model.item_factors, dtype=np.float32))
        return {"factors": c.factors}

    def gram(self) -> torch.Tensor:
        """Y^T Y + reg I (f, f) in float64, computed once per set of item factors."""
        reg = self.config.regularization
        return self._gram.get((self.item_factors,), lambda y: y.double().T @ y.double()
                              + reg * torch.eye(y.shape[1], dtype=torch.float64, device=y.device))

    def session_vectors(self, sessions) -> torch.Tensor:
        """(B, f) fold-in vectors x, solved as in the module docstring."""
        counted = [np.unique(np.asarray(s, dtype=np.int64), return_counts=True) for s in sessions]
        width = max((len(i) for i, _ in counted), default=0)
        items = torch.zeros(len(sessions), width, dtype=torch.long)
        conf = torch.zeros(len(sessions), width, dtype=torch.float64)  # c_i, 0 on padding columns
        for row, (i, n) in enumerate(counted):
            items[row, : len(i)] = torch.from_numpy(i)
            conf[row, : len(i)] = torch.from_numpy(n * self.config.alpha)
        yi = self.item_factors[items].double()  # (B, L, f): only the session's rows
        extra = (conf - 1) * (conf > 0)  # c_i - 1 on the session's items, 0 on padding
        a = self.gram() + (yi * extra[..., None]).transpose(1, 2) @ yi  # (B, f, f)
        b = (yi * conf[..., None]).sum(1)  # (B, f)
        return torch.linalg.solve(a, b)

    def score(self, sessions):
        # Y^T as a contiguous (f, n_items) copy: x @ Y^T then streams it, ~2.5x faster than n_items dot products
        table = self._scoring.get((self.item_factors,), lambda y: y.T.contiguous())
        return self.session_vectors(sessions).float() @ table
