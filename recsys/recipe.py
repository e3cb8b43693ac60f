"""The default training recipe of a neural model, read from the data it is about to train on.

`recsys.train.fit` uses it when no TrainConfig is given (neither as an argument nor in a parameter file's
{"train": {...}}): a parameter file that gives the training settings replaces the recipe entirely.

    recipe = choose_recipe(model, data)      # a frozen Recipe: what the data looked like and what it chose
    recipe.train_config()                    # the TrainConfig fit trains with
    recipe.line()                            # one line for logs and the model card

The rules, and the evidence they rest on (tuned on ml-100k validation only; docs/BENCHMARKS.md, "Default
training recipe"):
- Loss: full-softmax cross-entropy while the catalogue has at most `Rules.full_softmax_max_items` items (its cost per
  target grows with the catalogue; Klenitskiy and Vasilev 2023 show full CE is what makes SASRec strong); above
  that, a sampled softmax over `sampled_negatives` shared popularity-sampled negatives with the logQ correction,
  as the Yoochoose and Diginetica recipes in benchmarks/params/ do.
- Batch: about `targets_per_step` (prefix -> next item) targets per optimiser step, as RecBole's 2,048-prefix
  batches: a batch of training rows (windows of a causal model, prefixes of the bidirectional LSTM) sized by
  how many targets a row holds on average, a power of two within `batch_range`.
- Schedule: AdamW at the learning rate below, linear warm-up over `warmup_fraction` of the steps (at most one
  epoch), then cosine decay to zero over the epoch budget; validation after every epoch, the best validated
  epoch kept. The project's
  old default (halve the rate after two epochs without improvement, patience 3) stopped SASRec on ml-100k at
  a plateau that later lifted; cosine needs no plateau to lower the rate, and early stopping only ends a run
  that has not improved for `patience_fraction` of its budget.
- Context: a causal model's training windows overlap by `min_context` items (at most half its max_len), so a
  target past a sequence's first max_len items reads at least that many earlier items (at test time the model
  reads the last max_len). On ml-100k validation (SASRec) this lifted validation NDCG@10 over epochs 11-31
  from 5.63 to 5.76 on average (best epoch 6.07 -> 6.19) for 1.2x the CPU per epoch.
- Budget: epochs = the larger of target_visits / targets per epoch and row_visits / rows per epoch, within
  `epoch_range`: small logs get many epochs, large logs few (each of which already sees many targets). The row
  term (sequence windows passed through the model) was added after the first recipe (4M targets alone) gave
  long-sequence data too few epochs: ML-1M 10 epochs, where SASRec's validation NDCG@10 rose from 10.6 (10
  epochs) to 12.9 (20) and 15.9 (best at epoch 35 of 82); Beauty 30, where 150 lifted it from 3.8 to 4.9;
  ml-100k 41, where 118 lifted it from 5.3 to 6.8 (runs on an H200, docs/BENCHMARKS.md "Default training recipe").
- Learning rate: the model's own (`recipe_lr`): 1e-3 for SASRec, 3e-3 for the recurrent models, whose
  validation MRR@20 on Diginetica / Yoochoose 1/64 rose from 16.95 / 29.58 at 1e-3 to 17.79 / 30.84.
"""

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from recsys.trainconfig import TrainConfig


@dataclass(frozen=True)
class Rules:
    """The constants of the rules (module docstring); tuned on ml-100k validation."""

    full_softmax_max_items: int = 20_000
    sampled_negatives: int = 2048
    targets_per_step: int = 2048
    batch_range: tuple[int, int] = (32, 512)
    lr: float | None = None  # None: the model's own (NeuralRecommender.recipe_lr: 1e-3, recurrent models 3e-3)
    warmup_fraction: float = 0.05
    target_visits: int = 4_000_000
    row_visits: int = 2_000_000
    epoch_range: tuple[int, int] = (10, 100)
    patience_fraction: float = 0.25
    min_patience: int = 5
    min_context: int = 25  # causal models: training windows overlap by this many items (at most max_len // 2), so
    # a target reads at least this many earlier items where its sequence has them


RULES = Rules()


@dataclass(frozen=True)
class Recipe:
    """What the data looked like (items, targets, rows) and the training settings chosen from it."""

    n_items: int  # catalogue size (without padding)
    n_targets: int  # (prefix -> next item) training targets per epoch
    n_rows: int  # training rows per epoch (windows of a causal model, prefixes otherwise)
    n_negatives: int  # 0: full softmax
    batch_size: int
    lr: float
    warmup: int  # optimiser steps
    max_epochs: int
    patience: int
    min_context: int = 0
    full_softmax_max_items: int = RULES.full_softmax_max_items  # the rule's bound, for the line
    rules_changed: tuple = ()  # (field, value) pairs where the rules differ from RULES (a parameter file's "recipe")

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_rows / self.batch_size)

    def train_config(self) -> TrainConfig:
        return TrainConfig(batch_size=self.batch_size, lr=self.lr, max_epochs=self.max_epochs, patience=self.patience,
                           schedule="cosine", warmup=self.warmup, n_negatives=self.n_negatives,
                           min_context=self.min_context)

    def line(self) -> str:
        bound = self.full_softmax_max_items
        loss = (f"full softmax ({self.n_items:,} items <= {bound:,})" if self.n_negatives == 0 else
                f"sampled softmax, {self.n_negatives:,} shared logQ-corrected negatives ({self.n_items:,} items > "
                f"{bound:,})")
        per_row = self.n_targets / max(self.n_rows, 1)
        return (f"{loss}; batch {self.batch_size} rows (~{round(self.batch_size * per_row):,} targets, "
                f"{self.steps_per_epoch:,} steps/epoch); lr {self.lr:g}, {self.warmup:,} warm-up steps then cosine "
                f"over {self.max_epochs} epochs ({self.n_targets:,} targets/epoch); best validation epoch kept, "
                f"patience {self.patience}" + (f"; windows overlap by {self.min_context} items (a target "
                                               f"reads >= {self.min_context} earlier ones where it has them)"
                                               if self.min_context else "")
                + (f"; rules changed: {', '.join(f'{k}={v}' for k, v in self.rules_changed)}"
                   if self.rules_changed else ""))

    def as_dict(self) -> dict:
        return {**asdict(self), "line": self.line(), "source": "recsys.recipe (chosen from the data)"}


def training_rows(lengths: np.ndarray, max_len: int, per_position: bool, min_context: int = 0) -> tuple[int, int]:
    """(targets, rows) of one epoch: a causal model trains windows of up to max_len inputs, each training
    max_len - min_context new targets (recsys.datamodule.position_windows), the others one row per
    (prefix -> next item) target."""
    targets_per_sequence = np.maximum(np.asarray(lengths, dtype=np.int64) - 1, 0)
    targets = int(targets_per_sequence.sum())
    stride = max_len - min(min_context, max_len - 1)
    rows = int((-(-targets_per_sequence // stride)).sum()) if per_position else targets
    return targets, rows


def _power_of_two(x: float, low: int, high: int) -> int:
    return int(min(max(2 ** round(math.log2(max(x, 1.0))), low), high))


def make_recipe(n_items: int, n_targets: int, n_rows: int, rules: Rules = RULES, min_context: int = 0,
                lr: float = 1e-3) -> Recipe:
    """The rules of the module docstring, from the catalogue size and one epoch's targets and rows; `lr` is the
    model's own learning rate, used unless the rules give one."""
    if n_targets < 1 or n_rows < 1:
        raise ValueError("no training targets: every training sequence has fewer than 2 items")
    n_negatives = 0 if n_items <= rules.full_softmax_max_items else rules.sampled_negatives
    batch = _power_of_two(rules.targets_per_step * n_rows / n_targets, *rules.batch_range)
    low, high = rules.epoch_range
    epochs = int(min(max(round(max(rules.target_visits / n_targets, rules.row_visits / n_rows)), low), high))
    steps = math.ceil(n_rows / batch)
    warmup = max(1, min(steps, round(rules.warmup_fraction * steps * epochs)))
    patience = max(rules.min_patience, math.ceil(rules.patience_fraction * epochs))
    changed = tuple((f.name, getattr(rules, f.name)) for f in fields(Rules)
                    if getattr(rules, f.name) != getattr(RULES, f.name))
    return Recipe(n_items, n_targets, n_rows, n_negatives, batch, rules.lr or lr, warmup, epochs, patience,
                  min_context, rules.full_softmax_max_items, changed)


def choose_recipe(model, data, rules: Rules = RULES) -> Recipe:
    """The recipe for a neural `model` (its max_len and whether it trains every position) on `data.train`."""
    context = min(rules.min_context, model.config.max_len // 2) if model.per_position else 0
    targets, rows = training_rows(data.train.lengths, model.config.max_len, model.per_position, context)
    return make_recipe(model.n_items - 1, targets, rows, rules, context, model.recipe_lr)
