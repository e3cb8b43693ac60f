"""The contract every model keeps, and the one `recommend` that serves them all.

A model is an `nn.Module` whose whole state is parameters and buffers (so every kind, kNN included, saves
to safetensors the same way). It is built from `(config, n_items)`, fitted on a processed `Dataset`, and
scores a batch of sessions against the whole catalogue:

    score(sessions: list[np.ndarray]) -> torch.Tensor  # (B, n_items), column 0 is padding (ignored)

`n_items` is the vocabulary size *including* the padding index 0. Sessions are arrays of item indices >= 1,
oldest first; a model cuts them to the length it handles. Buffers whose size depends on the data (counts,
neighbour lists, stored sessions) are registered empty in `__init__` and filled by `fit` or by loading.
"""

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

INT64_MAX = 2**63 - 1  # config integers reach numpy and torch as int64


@dataclass(frozen=True)
class FitOptions:
    """What the training script passes to every `fit`; models that do not train in epochs ignore the epoch knobs."""

    max_epochs: int | None = None  # None: the model's own default
    seed: int = 0
    progress: bool = True
    workdir: str | None = None  # where neural models keep checkpoints and logs
    accelerator: str = "auto"
    exclude_seen: bool = False  # a neural model's per-epoch validation (early stopping, best epoch) ranks only items
    # not in the prefix, as the run's final evaluation does (RunConfig.exclude_seen)


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model's Config. Construction checks each field against its type hint (an int field takes
    an int, never a bool or a float; a float field takes an int or float, finite; a tuple field takes a list
    from JSON), then the model's own `check`: sizes, names, divisibility. So a config.json and a parameter file
    fail here, naming the field, before anything is allocated from them."""

    def __post_init__(self):
        check_field_types(self)
        self.check()

    def check(self) -> None:
        """Per-model invariants (raise ValueError naming the field); the types are already right here."""


def check_field_types(config) -> None:
    """Check (and normalise: numpy scalars, int -> float, list -> tuple) every field of a config dataclass against
    its type hint. Raises TypeError or ValueError naming `Class.field`."""
    hints = _type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        fixed = _coerce(value, hints.get(f.name, Any), f"{type(config).__name__}.{f.name}")
        if fixed is not value:
            object.__setattr__(config, f.name, fixed)  # config dataclasses are frozen


@functools.cache
def _type_hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce(value, hint, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1:
            return _coerce(value, kinds[0], where)
        for kind in kinds:
            try:
                return _coerce(value, kind, where)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"{where} must be one of {hint}, got {_show(value)}")
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{where} must be a list, got {_show(value)}")
        kind = args[0] if args else Any
        return tuple(_coerce(v, kind, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where} must be true or false, got {_show(value)}")
        return bool(value)
    if hint is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{where} must be an integer, got {_show(value)}")
        if abs(int(value)) > INT64_MAX:
            raise ValueError(f"{where} is out of the 64-bit integer range, got {_show(value)}")
        return int(value)
    if hint is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{where} must be a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"{where} must be a finite number, got {_show(value)}")
        return value if type(value) is float else number
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a string, got {_show(value)}")
        return value
    if isinstance(origin or hint, type) and hint is not Any and not isinstance(value, origin or hint):
        raise TypeError(f"{where} must be a {(origin or hint).__name__}, got {_show(value)}")
    return value


def check_range(config, name: str, low=None, high=None) -> None:
    """Raise ValueError naming `Class.name` unless low <= value <= high (either bound may be None)."""
    value = getattr(config, name)
    if (low is None or value >= low) and (high is None or value <= high):
        return
    bounds = (f"between {low} and {high}" if low is not None and high is not None
              else f"at least {low}" if low is not None else f"at most {high}")
    raise ValueError(f"{type(config).__name__}.{name} must be {bounds}, got {_show(value)}")


def stored_shape_fits(registered: Sequence[int], stored: Sequence[int]) -> bool:
    """Whether a buffer registered with shape `registered` may take a stored tensor of shape `stored`: the same
    number of dimensions, equal wherever the registered size is not 0. A dimension registered empty is sized by
    the data (neighbour lists, stored sessions, a category table) and comes from the weights file; every other
    dimension follows from the config and must agree with it."""
    return len(registered) == len(stored) and all(r in (0, s) for r, s in zip(registered, stored))


class Recommender(nn.Module):
    name: ClassVar[str]  # registry key
    # what the model is, in words, declared once per registry class (recsys.models.describe reads them)
    title: ClassVar[str]  # display name: "GRU4Rec"
    summary: ClassVar[str]  # one line for shoppers, after the title: "a recurrent network that ..."
    description: ClassVar[str]  # the model card's paragraph: what it computes, with its reference
    uses: ClassVar[str] = "the session's items"  # what a recommendation is computed from (the app's status)
    because: ClassVar[str] = "mostly from {item}"  # an item's one-line reason; {item}: the session item it rests on
    Config: ClassVar[type]  # frozen dataclass of the model's hyperparameters
    trains_in_epochs: ClassVar[bool] = False  # trained by recsys.train in epochs, with a TrainConfig (neural)
    returns_logits: ClassVar[bool] = False  # `score` gives logits (a softmax makes them a distribution), not
    # non-negative weights such as counts or similarity sums

    def __init__(self, config: Any, n_items: int):
        super().__init__()
        if n_items < 2:
            raise ValueError(f"n_items must count padding plus at least one item, got {n_items}")
        self.config = config
        self.n_items = n_items

    def fit(self, data, options: FitOptions = FitOptions()) -> dict:
        """Fit on `data.train` (and `data.valid` for early stopping only). Returns facts worth reporting.
        Models that recsys.train trains (the neural ones) have none: call recsys.train.fit(model, data, options),
        which fits every kind."""
        raise NotImplementedError(f"{type(self).__name__} does not fit itself: use recsys.train.fit(model, data, "
                                  f"options)")

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

    def check_state(self) -> None:
        """Raise ValueError if a table that indexes another (neighbour ids, offsets into stored sessions, an item
        -> category map) points outside it: called after loading, so such weights fail there and not on the one
        session that reaches the bad row. Models without index tables have nothing to check."""

    def resize_buffers(self, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
        """Give data-dependent buffers the shapes stored in a weights file before loading into them. Only the
        dimensions registered empty may change (see `stored_shape_fits`): the rest follow from the config."""
        for name, buf in list(self.named_buffers()):
            if name in shapes and (tuple(buf.shape), buf.dtype) != shapes[name]:
                shape, dtype = shapes[name]
                if not stored_shape_fits(buf.shape, shape):
                    raise ValueError(f"buffer {name} is registered as {tuple(buf.shape)} and cannot take the "
                                     f"stored shape {tuple(shape)}")
                module_name, _, attr = name.rpartition(".")
                module = self.get_submodule(module_name) if module_name else self
                module.register_buffer(attr, torch.empty(shape, dtype=dtype))


def check_index(name: str, values: torch.Tensor, high: int) -> None:
    """`values` must be integers in 0..high - 1 (ValueError naming the buffer otherwise)."""
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got {values.dtype}")
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= high):
        raise ValueError(f"{name} holds values outside 0..{high - 1} "
                         f"(from {int(values.min())} to {int(values.max())})")


def check_offsets(name: str, offsets: torch.Tensor, total: int) -> None:
    """`offsets` must rise from 0 to `total` (the length of the flat array it cuts into rows)."""
    check_index(name, offsets, total + 1)
    if len(offsets) == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != total or bool((offsets.diff() < 0).any()):
        raise ValueError(f"{name} must rise from 0 to {total}")


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
    if exclude_seen and len(sessions) == 1:  # one session (recommend, the API): its items index its one row
        scores[0, torch.from_numpy(np.asarray(sessions[0], dtype=np.int64))] = -torch.inf
    elif exclude_seen:
        rows = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
        cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions]) if len(rows) else rows
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
    return scores


def eval_mode(model: nn.Module) -> None:
    """Put `model` in eval mode unless every module of it already is. `nn.Module.eval` sets each submodule's flag
    through `nn.Module.__setattr__` (~0.1 ms a call for SASRec's 30 modules, a tenth of a one-session `recommend`
    at 40k items), and `nn.Module.modules()` builds names on its walk (~25 us); this walk reads the flags (~7 us)."""
    stack = [model]
    while stack:
        module = stack.pop()
        if module is None:  # a submodule slot registered empty
            continue
        if module.training:
            model.eval()
            return
        stack.extend(module._modules.values())


@torch.no_grad()
def score_batch(model: Recommender, sessions: Sequence[np.ndarray]) -> torch.Tensor:
    """Eval-mode float32 scores on the CPU, checked for shape."""
    eval_mode(model)
    scores = model.score(sessions).float()
    if scores.shape != (len(sessions), model.n_items):
        raise RuntimeError(f"{type(model).__name__}.score returned {tuple(scores.shape)}, "
                           f"expected {(len(sessions), model.n_items)}")
    return scores.cpu()


def item_indices(session) -> np.ndarray:
    """One session as an int64 array. Only integers are item indices (Python ints, any numpy integer dtype):
    a float (1.7) or bool (a mask?) would otherwise be cast silently to some other item, so they are refused."""
    if isinstance(session, (list, tuple)) and any(isinstance(i, (bool, np.bool_)) for i in session):
        raise TypeError("item indices must be integers, got a bool (a mask, not item indices?)")
    arr = np.asarray(session)
    if arr.size == 0:
        raise ValueError("empty session: give at least one item (or use a popularity fallback)")
    if arr.ndim != 1:
        raise ValueError(f"a session must be a flat sequence of item indices, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise TypeError("item indices must be integers, got bools (a mask, not item indices?)")
    if arr.dtype.kind == "O" and all(isinstance(i, numbers.Integral) for i in arr):
        raise ValueError(f"item index out of range: {_show(max(arr, key=abs))}")  # ints beyond 64 bits
    if arr.dtype.kind not in "iu":
        raise TypeError(f"item indices must be integers (Python ints or a numpy integer array), got {arr.dtype} "
                        f"values such as {_show(arr[:1].tolist()[0])}")
    if arr.dtype == np.uint64 and arr.max() > INT64_MAX:
        raise ValueError(f"item index {arr.max()} is out of range")
    return arr.astype(np.int64, copy=False)


def top_unmasked(scores: torch.Tensor, k: int):
    """torch.topk of each row, k cut to the fewest items any row has above -inf (never pad the answer with masked
    items: padding, or seen items under exclude_seen; NaN counts as masked). When every one of the k best scores
    is above -inf, every row has k such items and that first topk is the answer: the count (a pass over every
    score, ~0.1 ms at 40k items) runs only when it is not. The check reads one session's k scores in Python:
    a torch comparison and reduction costs ~50 us right after the product has swept the caches, this ~15 us."""
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    values = top.values.numpy()
    if all(v > -math.inf for v in values.ravel().tolist()) if values.size <= 256 else (values > -np.inf).all():
        return top
    k = min(k, int((scores > -torch.inf).sum(dim=1).min()))
    if k == 0:
        raise ValueError("no item left to recommend after excluding the session's items")
    return torch.topk(scores, k, dim=1)


def recommend(model: Recommender, history, k: int = 10, exclude_seen: bool = False, *,
              with_floor: bool = False) -> tuple[np.ndarray, ...]:
    """Top-k item indices and scores for one session (1-D) or a batch of sessions (list of 1-D).

    Stateless: nothing about the session is kept on the model, so concurrent callers never mix sessions.
    Repeats are allowed by default because on e-commerce logs a large share of next items were seen before.
    `with_floor=True` also returns the lowest score of any item that could have been recommended (the app's 0 of
    its 0..1 scale), from the same scoring pass.
    """
    single = len(history) == 0 or np.ndim(history[0]) == 0
    batch = [item_indices(history)] if single else [item_indices(s) for s in history]
    for s in batch:
        if s.min() < 1 or s.max() >= model.n_items:
            raise ValueError(f"item index out of range 1..{model.n_items - 1}")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    scores = mask_scores(score_batch(model, batch), batch, exclude_seen)
    top = top_unmasked(scores, int(k))
    ids, vals = top.indices.numpy(), top.values.numpy()
    out = (ids[0], vals[0]) if single else (ids, vals)
    if not with_floor:
        return out
    floor = scores.masked_fill(~torch.isfinite(scores), torch.inf).min(dim=1).values.numpy()
    return (*out, float(floor[0]) if single else floor)
