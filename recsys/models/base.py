"""The contract every model keeps, and the one `recommend` that serves them all.

A model is an `nn.Module` whose whole state is parameters and buffers (so every kind, kNN included, saves
to safetensors the same way). It is built from `(config, n_items)`, fitted on a processed `Dataset`, and
scores a batch of sessions against the whole catalogue:

    score(sessions: list[np.ndarray]) -> torch.Tensor  # (B, n_items), column 0 is padding (ignored)

`n_items` is the vocabulary size *including* the padding index 0. Sessions are arrays of item indices >= 1,
oldest first; a model cuts them to the length it handles. Buffers whose size depends on the data (counts,
neighbour lists, stored sessions) are registered empty in `__init__` and filled by `fit` or by loading.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FitOptions:
    """What the training script passes to every `fit`; models that do not train in epochs ignore the epoch knobs."""

    max_epochs: int | None = None  # None: the model's own default
    seed: int = 0
    progress: bool = True
    workdir: str | None = None  # where neural models keep checkpoints and logs
    accelerator: str = "auto"


class Recommender(nn.Module):
    name: ClassVar[str]  # registry key
    Config: ClassVar[type]  # frozen dataclass of the model's hyperparameters
    trains_in_epochs: ClassVar[bool] = False

    def __init__(self, config: Any, n_items: int):
        super().__init__()
        if n_items < 2:
            raise ValueError(f"n_items must count padding plus at least one item, got {n_items}")
        self.config = config
        self.n_items = n_items

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        """Fit on `data.train` (and `data.valid` for early stopping only). Returns facts worth reporting."""
        raise NotImplementedError

    def score(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    def refit_params(self, params: dict, fit_info: dict) -> dict | None:
        """The parameters to fit anew on train + valid with what validation chose (see recsys.pipeline.refit),
        given the parameters this model was built with and what its `fit` returned. None: it cannot be refitted.
        Models that choose nothing on validation refit with the same parameters."""
        return params

    def explain(self, session: np.ndarray, top: int = 5) -> dict | None:
        """Optional: what drove the scores for one session (attention weights, neighbours). None if unsupported."""
        return None

    def resize_buffers(self, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
        """Give data-dependent buffers the shapes stored in a weights file before loading into them."""
        for name, buf in list(self.named_buffers()):
            if name in shapes and (tuple(buf.shape), buf.dtype) != shapes[name]:
                module_name, _, attr = name.rpartition(".")
                module = self.get_submodule(module_name) if module_name else self
                shape, dtype = shapes[name]
                module.register_buffer(attr, torch.empty(shape, dtype=dtype))


class DerivedTable:
    """A serving table derived from some weights (a transposed output layer, a Gram matrix), built on first use
    and rebuilt when any of those weights changes: replaced (fit, `.to`, resize on load) or changed in place
    (`load_state_dict`, an optimiser step; in-place writes through `.data` are not seen). Not saved."""

    def __init__(self):
        self._cached: tuple | None = None  # (((tensor, data_ptr, version), ...), table); one tuple, swapped whole

    @staticmethod
    def _key(tensors) -> tuple:
        return tuple((t, t.data_ptr(), None if t.is_inference() else t._version) for t in tensors)

    def get(self, tensors: Sequence[torch.Tensor], build):
        """`build(*tensors)` for these tensors, from the cache when they are unchanged. Safe across threads:
        two callers may build at once, and either result is right."""
        cached = self._cached
        key = self._key(tensors)
        if cached is not None and len(cached[0]) == len(key) and all(
                a[0] is b[0] and a[1:] == b[1:] for a, b in zip(cached[0], key)):
            return cached[1]
        with torch.no_grad():
            table = build(*tensors)
        self._cached = (key, table)
        return table


def pad_sessions(sessions: Sequence[np.ndarray], max_len: int, side: str = "left") -> tuple[torch.Tensor, torch.Tensor]:
    """Most recent `max_len` items of each session in a (B, T) LongTensor padded with 0, and the lengths.

    side="left" right-aligns the sessions (the last item sits in the last column), as SASRec wants;
    side="right" left-aligns them, as packed RNNs want.
    """
    lengths = np.array([min(len(s), max_len) for s in sessions], dtype=np.int64)
    width = max(int(lengths.max(initial=1)), 1)
    out = np.zeros((len(sessions), width), dtype=np.int64)
    for row, (s, n) in enumerate(zip(sessions, lengths)):
        if n:
            if side == "left":
                out[row, width - n:] = s[-n:]
            else:
                out[row, :n] = s[-n:]
    return torch.from_numpy(out), torch.from_numpy(lengths)


def mask_scores(scores: torch.Tensor, sessions: Sequence[np.ndarray], exclude_seen: bool) -> torch.Tensor:
    """Never recommend padding; optionally never recommend an item already in the session. In place."""
    scores[:, 0] = -torch.inf
    if exclude_seen:
        rows = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
        cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions]) if len(rows) else rows
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
    return scores


@torch.no_grad()
def score_batch(model: Recommender, sessions: Sequence[np.ndarray]) -> torch.Tensor:
    """Eval-mode float32 scores on the CPU, checked for shape."""
    model.eval()
    scores = model.score(sessions).float()
    if scores.shape != (len(sessions), model.n_items):
        raise RuntimeError(f"{type(model).__name__}.score returned {tuple(scores.shape)}, "
                           f"expected {(len(sessions), model.n_items)}")
    return scores.cpu()


def recommend(model: Recommender, history, k: int = 10, exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and scores for one session (1-D) or a batch of sessions (list of 1-D).

    Stateless: nothing about the session is kept on the model, so concurrent callers never mix sessions.
    Repeats are allowed by default because on e-commerce logs a large share of next items were seen before.
    """
    single = len(history) == 0 or np.isscalar(history[0])
    batch = [np.asarray(history, dtype=np.int64)] if single else [np.asarray(s, dtype=np.int64) for s in history]
    if any(len(s) == 0 for s in batch):
        raise ValueError("empty session: give at least one item (or use a popularity fallback)")
    for s in batch:
        if s.min() < 1 or s.max() >= model.n_items:
            raise ValueError(f"item index out of range 1..{model.n_items - 1}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    scores = mask_scores(score_batch(model, batch), batch, exclude_seen)
    # never pad the answer with masked items (padding, or seen items under exclude_seen)
    k = min(int(k), int((scores > -torch.inf).sum(dim=1).min()))
    if k == 0:
        raise ValueError("no item left to recommend after excluding the session's items")
    top = torch.topk(scores, k, dim=1)
    ids, vals = top.indices.numpy(), top.values.numpy()
    return (ids[0], vals[0]) if single else (ids, vals)
