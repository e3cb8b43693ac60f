"""What every neural model shares: padding, optional category input and scoring. recsys.train trains them.

A neural model maps a padded batch of item sequences to hidden states, and hidden states to item logits:

    sequence_states(x, lengths) -> (B, T, D)   the state after each position (causal models only)
    final_state(x, lengths)     -> (B, D)      the state after the last item: what `score` ranks from
    project(h) @ output_layer() -> (..., n_items)  logits; `output_layer()` gives (weight (n_items, E), bias)
                                                  (with config.cosine_scale s: s * cosine, no bias)

Causal models (`per_position` True) are trained on every position at once; the others (the bidirectional
LSTM) on the last position of every prefix. A model never imports its trainer (recsys.train.fit, the only
module that imports Lightning), so building and loading one for serving stays light.
"""

import dataclasses
import warnings
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.models.base import DerivedTable, Recommender, check_index, pad_sessions


class NeuralRecommender(Recommender):
    trains_in_epochs = True
    returns_logits = True
    uses = "the whole session, in order"
    pad_side: ClassVar[str] = "left"  # "left": sessions right-aligned (last item in the last column)
    recipe_lr: ClassVar[float] = 1e-3  # the default recipe's learning rate (recsys.recipe.Rules.lr None)

    def __init__(self, config, n_items: int):
        super().__init__(config, n_items)
        self.train_config = None  # a recsys.trainconfig.TrainConfig for recsys.train.fit; None: the recipe
        # recsys.recipe chooses from the data
        self.recipe_rules = None  # recsys.recipe.Rules for that recipe; None: recsys.recipe.RULES
        # category index per item, filled by fit from the data (empty when categories are not used)
        self.register_buffer("item_category", torch.zeros(0, dtype=torch.long))
        self.category_emb: nn.Embedding | None = None
        self._output_table = DerivedTable()  # the output layer transposed, for inference (see `logits`)

    # --- what each model defines -----------------------------------------------------------------------------
    def sequence_states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def init_weights(self) -> None:
        raise NotImplementedError

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return h

    # --- shared ----------------------------------------------------------------------------------------------
    @property
    def per_position(self) -> bool:
        return True

    @property
    def device(self) -> torch.device:
        return self.output_layer()[0].device

    def final_state(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states = self.sequence_states(x, lengths)  # (B, T, D)
        if self.pad_side == "left":
            return states[:, -1]
        return states[torch.arange(len(x), device=x.device), lengths - 1]

    @property
    def cosine_scale(self) -> float:
        """0: logits are dot products (plus the output bias). s > 0: s * cosine(state, item), no bias, as in
        NISER (Gupta et al. 2019): unit-length item rows stop popular items from winning by norm alone."""
        return float(getattr(self.config, "cosine_scale", 0.0))

    def query(self, h: torch.Tensor) -> torch.Tensor:
        """The vector that scores items: `project(h)`, rescaled to length `cosine_scale` when that is set."""
        z = self.project(h)
        return self.cosine_scale * F.normalize(z, dim=-1) if self.cosine_scale else z

    def item_vectors(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output rows and biases of some items (unit rows, no bias under `cosine_scale`); the sampled softmax."""
        weight, bias = self.output_layer()
        if self.cosine_scale:
            return F.normalize(weight[items], dim=-1), None
        return weight[items], None if bias is None else bias[items]

    def output_rows(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every item's output row and bias as training scores them, straight from the parameters (unit rows, no
        bias under `cosine_scale`): logits = query(h) @ rows.T (+ bias)."""
        weight, bias = self.output_layer()
        if self.cosine_scale:
            return F.normalize(weight, dim=-1), None
        return weight, bias

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # training: straight from the parameters
            rows, bias = self.output_rows()
            out = self.query(h) @ rows.T  # (N, n_items)
            return out if bias is None else out + bias
        table, bias = self.serving_table()
        return self.query(h) @ table if bias is None else torch.addmm(bias, self.query(h), table)

    def serving_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What inference scores against: (E, n_items) and the bias (None under `cosine_scale`). A cached
        contiguous copy of the output layer, transposed: for one session this is a vector-matrix product that
        streams the table row by row, ~2.5x faster on the CPU than h @ weight.T (n_items dot products); it costs
        a second copy of the output layer in memory. The serving benchmark's floor multiplies this table too."""
        weight, bias = self.output_layer()
        table = self._output_table.get((weight,), lambda w: (
            F.normalize(w, dim=-1) if self.cosine_scale else w).T.contiguous())
        return table, None if self.cosine_scale else bias

    def score(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        if len(sessions) == 1 and len(sessions[0]) and not self.training and not torch.is_grad_enabled():
            # one session served (recsys.recommend, the app): no padding, so no padded batch to build
            seq = np.ascontiguousarray(sessions[0][-self.config.max_len:], dtype=np.int64)
            with torch.inference_mode():  # ~5% less per operation; the state is only read after this
                h = self.session_state(torch.from_numpy(seq).to(self.device))
            return self.logits(h)  # a normal tensor, which callers may write (mask_scores does)
        x, lengths = pad_sessions(sessions, self.config.max_len, self.pad_side)
        return self.logits(self.final_state(x.to(self.device), lengths.to(self.device)))

    def session_state(self, seq: torch.Tensor) -> torch.Tensor:
        """(1, D): `final_state` of one session `seq` (T,), at most max_len items, in eval mode without gradients.
        Models override it with a leaner path to the same numbers (no padding, mask or dropout modules to go
        through): one session's encoder costs about as much as its scoring at 40k items, mostly per-operation
        overhead, so each operation saved counts (tests/test_serving_fast.py checks the numbers are equal)."""
        return self.final_state(seq[None], torch.tensor([len(seq)], device=seq.device))

    def category_embedding(self, dim: int, std: float) -> nn.Embedding | None:
        """The category table the config asks for (one placeholder row until fit knows the categories)."""
        if not self.config.use_categories:
            return None
        emb = nn.Embedding(max(self.config.n_categories, 1), dim, padding_idx=0)
        nn.init.normal_(emb.weight, std=std)
        with torch.no_grad():
            emb.weight[0].zero_()
        return emb

    def embed_categories(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) item indices -> (B, T, C) category embeddings."""
        if len(self.item_category) != self.n_items:
            raise RuntimeError("use_categories is set but the item -> category table is empty: fit or load first")
        return self.category_emb(self.item_category[x])

    def check_state(self) -> None:
        if self.category_emb is not None and len(self.item_category):
            if len(self.item_category) != self.n_items:
                raise ValueError(f"item_category has {len(self.item_category)} entries for {self.n_items} items")
            check_index("item_category", self.item_category, self.category_emb.num_embeddings)

    def set_categories(self, categories: np.ndarray) -> None:
        """Store the item -> category table and size the category embedding to it (the size goes in the config)."""
        if not self.config.use_categories:
            return
        categories = np.asarray(categories, dtype=np.int64)
        if len(categories) != self.n_items:
            raise ValueError(f"category table has {len(categories)} entries for {self.n_items} items")
        n = int(categories.max(initial=0)) + 1
        if n == 1:
            warnings.warn("use_categories is set but the data has no item categories: the input gets none",
                          stacklevel=3)
        self.item_category = torch.from_numpy(categories).to(self.device)
        if n != self.config.n_categories:
            self.config = dataclasses.replace(self.config, n_categories=n)

    def refit_params(self, params: dict, fit_info: dict) -> dict | None:
        """The selected epoch count, replaying the learning rate each of those epochs had (no validation then),
        with the training settings the fit used (a default recipe's too: "train_config" in `fit_info`)."""
        best = fit_info.get("best_epoch")
        if not best:
            return None
        lrs = [row["lr"] for row in fit_info["history"][:best]]
        used = {k: v for k, v in (fit_info.get("train_config") or {}).items() if k != "epoch_lrs"}
        kept = {k: v for k, v in params.items() if k != "recipe"}  # the recipe's rules are in "train" now
        return {**kept, "train": {**used, **params.get("train", {}), "epoch_lrs": lrs, "max_epochs": best}}

    def initialize(self, data, seed: int | None = None) -> None:
        """Start afresh on `data`, as training does: the category input sized to its categories, new weights
        (drawn from `seed` when given)."""
        if seed is not None:
            torch.manual_seed(seed)
        self.set_categories(data.item_categories())
        self.init_weights()
