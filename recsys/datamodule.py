"""SessionDataModule: padded (prefix -> next item) training tensors for Lightning, nothing else.

Two kinds of samples, both built once with numpy and gathered a whole batch at a time (no per-sample Python):
- per position (causal models): a session of length L gives its L - 1 (prefix -> next) pairs as one row,
  inputs `s[:-1]` and targets `s[1:]`; a session longer than max_len + 1 is cut into windows of up to max_len
  inputs, so every position is a target exactly once. With `min_context` c > 0 the windows overlap by c items:
  each window trains only its last max_len - c targets (the earlier ones are the previous window's), so every
  target after a sequence's first max_len sees at least c earlier items, at max_len / (max_len - c) times the
  compute. Targets are 0 at padding and at a window's context-only positions (ignored by the loss).
- last position (the bidirectional LSTM): one row per (prefix -> next item) pair, the prefix cut to its most
  recent max_len items, and one target per row.

Batches are (x (B, T) int64, y (B, T) or (B,) int64, lengths (B,) int64), T = the longest row in the batch.
Rows of similar length are batched together (shuffled within pools of 50 batches, batches in random order), so
little compute goes to padding: sessions are mostly short but a random batch of 256 pads to its longest row.
Under data-parallel training (DDP) each rank gets a disjoint 1/world_size of every epoch's batches.
"""

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from recsys.sessions import Sessions, make_cases


class PaddedSamples(Dataset):
    """Rows `items[start : start + length]` (targets: the next items, or `targets` when given), padded per batch;
    with `context`, the first context[i] targets of row i are 0 (read as input only)."""

    def __init__(self, items, starts, lengths, targets=None, pad_side: str = "left", context=None):
        if pad_side not in ("left", "right"):
            raise ValueError(f"pad_side must be 'left' or 'right', got {pad_side!r}")
        self.items = np.concatenate([np.asarray(items, dtype=np.int64), [0]])  # a 0 after the end for targets
        self.starts, self.lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        self.targets = None if targets is None else np.asarray(targets, dtype=np.int64)
        self.context = None if context is None else np.asarray(context, dtype=np.int64)
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
        if self.targets is not None:
            y = self.targets[index]
        else:
            trained = real if self.context is None else real & (offset >= self.context[index][:, None])
            y = np.where(trained, self.items[pos + 1], 0)
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(n)

    def __getitem__(self, i):
        x, y, n = self.__getitems__([i])
        return x[0], y[0], n[0]


def position_windows(sessions: Sessions, max_len: int, min_context: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, lengths, context) of input windows of up to max_len items that together train every target
    position of every session once: window i trains its targets after its first context[i] (those are trained
    by the window before it). Windows step back from a session's end by max_len - min_context targets."""
    if not 0 <= min_context < max_len:
        raise ValueError(f"min_context must be in [0, max_len {max_len}), got {min_context}")
    stride = max_len - min_context
    lengths = sessions.lengths
    n_targets = np.maximum(lengths - 1, 0)
    n_windows = -(-n_targets // stride)  # ceil
    session = np.repeat(np.arange(len(sessions)), n_windows)
    first = np.zeros(len(sessions) + 1, dtype=np.int64)
    np.cumsum(n_windows, out=first[1:])
    k = np.arange(first[-1]) - np.repeat(first[:-1], n_windows)  # 0 = the window that ends the session
    last_target = sessions.offsets[session + 1] - 1 - k * stride  # flat index of the window's last target
    starts = np.maximum(sessions.offsets[session], last_target - max_len)
    trained_from = np.maximum(sessions.offsets[session], last_target - stride)  # this window's first target - 1
    return starts, last_target - starts, trained_from - starts


class SimilarLengthBatches(Sampler):
    """Batches of row indices: shuffle, cut into pools of `pool` batches, sort each pool by length, shuffle batches.

    With a `seed`, an epoch's order is a function of (seed, epoch) alone, drawn from a generator of its own (the
    epoch number is set by Lightning through `set_epoch`, as for torch's DistributedSampler): a run resumed from a
    checkpoint gets the very batches the uninterrupted run had, and every rank of a data-parallel run the same
    order. Without one (one process only), the order comes from torch's global generator, as torch's RandomSampler
    without a generator does. With num_replicas > 1 (data-parallel training) the order is padded by repeating its
    first batches to a multiple of num_replicas, and each rank keeps every num_replicas-th batch from its rank on:
    the ranks get disjoint shares of the epoch, of the same length, so no rank waits at a gradient all-reduce that
    another never joins.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, pool: int = 50, num_replicas: int = 1, rank: int = 0,
                 seed: int | None = None, epoch: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas), got rank {rank} of {num_replicas}")
        if seed is None and num_replicas > 1:
            raise ValueError("data-parallel ranks need a seed to draw the same order")
        self.lengths, self.batch_size, self.pool = np.asarray(lengths), batch_size, pool
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, epoch

    @property
    def sampler(self):
        """Itself: Lightning calls set_epoch on `dataloader.batch_sampler.sampler` (and not on the batch sampler)."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n_batches = -(-len(self.lengths) // self.batch_size)
        return -(-n_batches // self.num_replicas)

    def __iter__(self):
        generator = None  # no seed: torch's global generator
        if self.seed is not None:  # SeedSequence mixes the pair: seed 1's epoch 0 is not seed 0's epoch 1
            state = np.random.SeedSequence((self.seed, self.epoch)).generate_state(1, np.uint64)[0]
            generator = torch.Generator().manual_seed(int(state))
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        if self.num_replicas > 1:
            padded = [shuffled[i % len(shuffled)] for i in range(len(self) * self.num_replicas)]
            shuffled = padded[self.rank :: self.num_replicas]
        for i in shuffled:
            yield batches[i].tolist()


def _identity(batch):
    return batch


class SessionDataModule(L.LightningDataModule):
    def __init__(self, train: Sessions, max_len: int, batch_size: int, pad_side: str = "left",
                 per_position: bool = True, pin_memory: bool = False, num_workers: int = 0, seed: int = 0,
                 min_context: int = 0):
        super().__init__()
        self.train, self.max_len, self.batch_size, self.seed = train, max_len, batch_size, seed
        self.min_context = min(min_context, max_len - 1)  # at least one new target per window
        self.pad_side, self.per_position = pad_side, per_position
        self.pin_memory, self.num_workers = pin_memory, num_workers
        self.samples: PaddedSamples | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.samples is not None:
            return
        if self.per_position:
            starts, lengths, context = position_windows(self.train, self.max_len, self.min_context)
            self.samples = PaddedSamples(self.train.items, starts, lengths, pad_side=self.pad_side,
                                         context=context if self.min_context else None)
        else:
            cases = make_cases(self.train, "all")
            lengths = np.minimum(cases.lengths, self.max_len)
            self.samples = PaddedSamples(self.train.items, cases.ends - lengths, lengths, cases.targets, self.pad_side)
        if len(self.samples) == 0:
            raise ValueError("no training samples: every training session has fewer than 2 items")

    def train_dataloader(self) -> DataLoader:
        """Under a data-parallel trainer, this rank's share of each epoch's batches (see SimilarLengthBatches)."""
        world, rank, epoch = 1, 0, 0
        if self.trainer:
            # the epoch about to run (on a resume, the one after the checkpoint's): the number Lightning passes
            # to set_epoch, but only after the DataLoader's worker processes may have fetched its first batches
            world, rank = self.trainer.world_size, self.trainer.global_rank
            epoch = self.trainer.fit_loop.epoch_progress.current.processed
        batches = SimilarLengthBatches(self.samples.lengths, self.batch_size, num_replicas=world, rank=rank,
                                       seed=self.seed, epoch=epoch)
        # a generator of its own for the seed the DataLoader draws every epoch (for its workers; nothing here
        # is random in a worker): drawn from torch's global generator, it would shift every dropout mask after
        # the first epoch of a resumed run, which draws it before the checkpoint's generator states are restored
        return DataLoader(self.samples, batch_sampler=batches, collate_fn=_identity, pin_memory=self.pin_memory,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))
