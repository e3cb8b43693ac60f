"""SessionDataModule: padded (prefix -> next item) training tensors for Lightning, nothing else.

Two kinds of samples, both built once with numpy and gathered a whole batch at a time (no per-sample Python):
- per position (causal models): a session of length L gives its L - 1 (prefix -> next) pairs as one row,
  inputs `s[:-1]` and targets `s[1:]`; a session longer than max_len + 1 is cut into consecutive windows of
  max_len targets, so every position is a target exactly once. Targets are 0 at padding (ignored by the loss).
- last position (the bidirectional LSTM): one row per (prefix -> next item) pair, the prefix cut to its most
  recent max_len items, and one target per row.

Batches are (x (B, T) int64, y (B, T) or (B,) int64, lengths (B,) int64), T = the longest row in the batch.
Rows of similar length are batched together (shuffled within pools of 50 batches, batches in random order), so
little compute goes to padding: sessions are mostly short but a random batch of 256 pads to its longest row.
"""

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from recsys.sessions import Sessions, make_cases


class PaddedSamples(Dataset):
    """Rows `items[start : start + length]` (targets: the next items, or `targets` when given), padded per batch."""

    def __init__(self, items, starts, lengths, targets=None, pad_side: str = "left"):
        if pad_side not in ("left", "right"):
            raise ValueError(f"pad_side must be 'left' or 'right', got {pad_side!r}")
        self.items = np.concatenate([np.asarray(items, dtype=np.int64), [0]])  # a 0 after the end for targets
        self.starts, self.lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        self.targets = None if targets is None else np.asarray(targets, dtype=np.int64)
        self.pad_side = pad_side

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, index):
        index = np.asarray(index, dtype=np.int64)
        start, n = self.starts[index], self.lengths[index]
        width = int(n.max(initial=1))
        col = np.arange(width)[None, :]
        offset = col - (width - n)[:, None] if self.pad_side == "left" else np.broadcast_to(col, (len(n), width))
        real = (offset >= 0) & (offset < n[:, None])
        pos = np.where(real, start[:, None] + offset, 0)
        x = np.where(real, self.items[pos], 0)
        y = np.where(real, self.items[pos + 1], 0) if self.targets is None else self.targets[index]
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(n)

    def __getitem__(self, i):
        x, y, n = self.__getitems__([i])
        return x[0], y[0], n[0]


def position_windows(sessions: Sessions, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of input windows covering every target position of every session once."""
    lengths = sessions.lengths
    n_targets = np.maximum(lengths - 1, 0)
    n_windows = -(-n_targets // max_len)  # ceil
    session = np.repeat(np.arange(len(sessions)), n_windows)
    first = np.zeros(len(sessions) + 1, dtype=np.int64)
    np.cumsum(n_windows, out=first[1:])
    k = np.arange(first[-1]) - np.repeat(first[:-1], n_windows)  # 0 = the window that ends the session
    last_target = sessions.offsets[session + 1] - 1 - k * max_len  # flat index of the window's last target
    starts = np.maximum(sessions.offsets[session], last_target - max_len)
    return starts, last_target - starts


class SimilarLengthBatches(Sampler):
    """Batches of row indices: shuffle, cut into pools of `pool` batches, sort each pool by length, shuffle batches.

    Draws from torch's global generator, so `seed_everything` fixes the order.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, pool: int = 50):
        self.lengths, self.batch_size, self.pool = np.asarray(lengths), batch_size, pool

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths)).numpy()
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for i in torch.randperm(len(batches)).tolist():
            yield batches[i].tolist()


def _identity(batch):
    return batch


class SessionDataModule(L.LightningDataModule):
    def __init__(self, train: Sessions, max_len: int, batch_size: int, pad_side: str = "left",
                 per_position: bool = True, pin_memory: bool = False, num_workers: int = 0):
        super().__init__()
        self.train, self.max_len, self.batch_size = train, max_len, batch_size
        self.pad_side, self.per_position = pad_side, per_position
        self.pin_memory, self.num_workers = pin_memory, num_workers
        self.samples: PaddedSamples | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.samples is not None:
            return
        if self.per_position:
            starts, lengths = position_windows(self.train, self.max_len)
            self.samples = PaddedSamples(self.train.items, starts, lengths, pad_side=self.pad_side)
        else:
            cases = make_cases(self.train, "all")
            lengths = np.minimum(cases.lengths, self.max_len)
            self.samples = PaddedSamples(self.train.items, cases.ends - lengths, lengths, cases.targets, self.pad_side)
        if len(self.samples) == 0:
            raise ValueError("no training samples: every training session has fewer than 2 items")

    def train_dataloader(self) -> DataLoader:
        batches = SimilarLengthBatches(self.samples.lengths, self.batch_size)
        return DataLoader(self.samples, batch_sampler=batches, collate_fn=_identity, pin_memory=self.pin_memory,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
