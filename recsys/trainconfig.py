"""TrainConfig: the training knobs of every neural model (lr, epochs, batches, schedule, devices).

Apart from the trainer (recsys.train), which imports Lightning, so that the registry can read a model's
{"train": {...}} parameters and a model can carry its TrainConfig without importing either.
"""

from dataclasses import dataclass

from recsys.evaluate import KS

METRICS = tuple(f"{m}@{k}" for m in ("hr", "mrr", "ndcg") for k in KS)
SCHEDULES = ("plateau", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Training knobs for every neural model (the model's shape lives in its own Config)."""

    batch_size: int = 64  # sessions (or prefixes) per batch on the CPU (similar-length rows batched together)
    gpu_batch_scale: int = 4  # on a GPU: batch_size * this, with bf16 (or fp16) mixed precision
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW, decoupled; applied to matrices and embeddings, not to biases/norms
    max_epochs: int = 50  # FitOptions.max_epochs overrides
    max_minutes: float | None = None  # wall-clock cap on the whole fit (training + validation); the best
    # validated epoch so far is kept. Lightning's `max_time`: it stops after the batch that crosses the limit
    patience: int = 3  # epochs without a better validation `monitor` before stopping
    monitor: str = "ndcg@10"  # validation metric for early stopping and best-epoch selection
    val_max_cases: int | None = 20_000  # validation cases per epoch (evenly spaced subset); None: all
    grad_clip: float | None = 1.0  # max gradient norm
    schedule: str = "plateau"  # "plateau" (halve lr after 2 epochs without improvement), "cosine", "constant"
    warmup: int = 0  # optimiser steps of linear learning-rate warm-up
    epoch_lrs: tuple[float, ...] | None = None  # a refit: replay these per-epoch learning rates (those of the
    # selected run's epochs) instead of a schedule; see recsys.pipeline.refit
    n_negatives: int = 0  # 0: full softmax over all items; > 0: sampled softmax with this many shared negatives
    negative_sampling: str = "popularity"  # "popularity" (count ** sample_alpha) or "uniform"
    sample_alpha: float = 0.75
    logq: bool = True  # subtract log sampling probability from sampled logits (popularity correction)
    min_context: int = 0  # causal models: training windows overlap by this many items, so every target after a
    # sequence's first max_len sees at least this many earlier items (0: windows side by side, cheapest); see
    # recsys.datamodule. Capped at the model's max_len - 1
    num_workers: int = 0  # DataLoader workers; batches are built vectorized, so 0 is fine on a small CPU
    cpu_threads: int | None = None  # torch CPU threads while training; None: torch's default. 1 is 2-7x faster
    # when other processes share the cores (a descheduled thread stalls every parallel op)
    strategy: str = "auto"  # Lightning strategy, e.g. "ddp" with devices=2 for two CPU processes (gloo)
    num_nodes: int = 1  # machines in a multi-node DDP run (each runs the same command; see the README)
    devices: int | str = 1  # processes/GPUs; 1 by default so a multi-GPU machine does not start DDP unasked.
    # Each process trains on its own 1/devices of every epoch's batches (steps per epoch divide by devices, each
    # step averages devices * batch_size rows); rank 0 validates and sends its metrics to the others

    def __post_init__(self):
        if self.monitor not in METRICS:
            raise ValueError(f"monitor must be one of {METRICS}, got {self.monitor!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.negative_sampling not in ("popularity", "uniform"):
            raise ValueError(f"negative_sampling must be 'popularity' or 'uniform', got {self.negative_sampling!r}")
        if not (self.lr > 0 and self.batch_size > 0 and self.max_epochs > 0 and self.gpu_batch_scale > 0):
            raise ValueError("lr, batch_size, max_epochs and gpu_batch_scale must be positive")
        if self.patience < 1 or min(self.n_negatives, self.warmup, self.weight_decay, self.min_context) < 0:
            raise ValueError("patience must be >= 1; n_negatives, warmup, weight_decay and min_context >= 0")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be None or positive, got {self.max_minutes}")
        if self.num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError("cpu_threads must be None or >= 1")
