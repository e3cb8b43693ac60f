"""Sessions as a compact ragged array, and the evaluation cases drawn from them.

A split holds millions of short sequences, so it is stored CSR-style: one flat int32 array of item
indices and an int64 offsets array (`items[offsets[i]:offsets[i + 1]]` is session i). Item index 0 is
padding and never appears inside a session.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sessions:
    items: np.ndarray  # (n_events,) int32 item indices, >= 1
    offsets: np.ndarray  # (n_sessions + 1,) int64, offsets[0] == 0

    @classmethod
    def from_lists(cls, seqs: Iterable[Sequence[int]]) -> "Sessions":
        arrays = [np.asarray(s, dtype=np.int32) for s in seqs]
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
        return cls(items.astype(np.int32, copy=False), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_lists(self) -> list[list[int]]:
        return [s.tolist() for s in self]

    def select(self, index: np.ndarray) -> "Sessions":
        """The sessions at `index` (integer positions or a boolean mask), in that order."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Gather every event position of the selected sessions without a Python loop.
        starts = np.repeat(self.offsets[index] - offsets[:-1], lengths)
        return Sessions(self.items[np.arange(offsets[-1], dtype=np.int64) + starts], offsets)

    def truncate(self, max_len: int) -> "Sessions":
        """Keep only the most recent `max_len` items of each session."""
        lengths = np.minimum(self.lengths, max_len)
        keep_from = self.offsets[1:] - lengths
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        starts = np.repeat(keep_from - offsets[:-1], lengths)
        return Sessions(self.items[np.arange(offsets[-1], dtype=np.int64) + starts], offsets)


@dataclass(frozen=True)
class Cases:
    """Evaluation cases: predict `targets[j]` from the prefix `items[ends[j] - lengths[j]: ends[j]]`."""

    items: np.ndarray  # the flat item array the prefixes point into
    ends: np.ndarray  # (n_cases,) exclusive end of each prefix in `items`
    lengths: np.ndarray  # (n_cases,) prefix length (>= 1)
    targets: np.ndarray  # (n_cases,) target item index
    session: np.ndarray  # (n_cases,) which session the case came from

    def __len__(self) -> int:
        return len(self.targets)

    def prefixes(self, rows: slice | np.ndarray, max_len: int | None = None) -> list[np.ndarray]:
        """The prefix sequences of `rows`, each cut to its most recent `max_len` items."""
        ends, lengths = self.ends[rows], self.lengths[rows]
        if max_len is not None:
            lengths = np.minimum(lengths, max_len)
        return [self.items[e - n : e] for e, n in zip(ends.tolist(), lengths.tolist())]


PROTOCOLS = ("all", "last")


def make_cases(sessions: Sessions, protocol: str = "all") -> Cases:
    """Turn sessions into (prefix, next item) cases.

    protocol "all": every prefix of every session predicts its next item (SR-GNN protocol).
    protocol "last": only the last item of each session is predicted from everything before it
    (leave-one-out, and pre-split (prefix, label) pairs stored as prefix + [label]).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    lengths = sessions.lengths
    usable = np.flatnonzero(lengths >= 2)
    if protocol == "last":
        ends = sessions.offsets[usable + 1] - 1
        return Cases(sessions.items, ends, lengths[usable] - 1, sessions.items[ends], usable)
    per_session = lengths[usable] - 1
    session = np.repeat(usable, per_session)
    # position of each case within its session: 1 .. len-1
    first_case = np.zeros(len(usable) + 1, dtype=np.int64)
    np.cumsum(per_session, out=first_case[1:])
    step = np.arange(first_case[-1], dtype=np.int64) - np.repeat(first_case[:-1], per_session) + 1
    ends = sessions.offsets[session] + step
    return Cases(sessions.items, ends, step, sessions.items[ends], session)
