"""Fitting any registry model: `fit`, and the training of neural models with Lightning (LitRecommender).

    model = build_model("sasrec", data.n_items)
    result = fit(model, data, FitOptions(workdir="runs/sasrec"), TrainConfig(lr=1e-3))

`fit` is the one entry point: a neural model (a NeuralRecommender) is trained here, a hybrid fits each of its
parts with `fit` and then chooses its weights, and any other model fits itself (`model.fit(data, options)`).
This is the only module in recsys/ that imports Lightning (with recsys.datamodule, the LightningDataModule it
feeds), so building, loading and serving a model never do (Lightning alone takes ~5 s to import on a 2-core CPU).

The model computes states and logits; this module owns the loss, the optimiser, the epoch-end validation with
`recsys.evaluate.evaluate` on `data.valid`, early stopping, best-epoch selection, checkpoints for resuming
(Lightning's pickled .ckpt files stay in the workdir and are never published: the exported artifact is
`lit.model` as safetensors), logs and the training-curves plot. The knobs are a TrainConfig
(recsys.trainconfig, apart so that the registry reads them without importing Lightning).

Resuming is exact on the CPU: a run killed at any point and rerun ends bitwise where the uninterrupted run with
the same seed ends (tests/test_resume_exact.py). It restarts from the last end-of-epoch checkpoint, which holds
the global random generators and the plateau scheduler as the next epoch found them, and that epoch's batches
are a function of the seed and the epoch number (recsys.datamodule.SimilarLengthBatches).
"""

import dataclasses
import importlib.util
import logging
import math
import random
import statistics
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from recsys.datamodule import SessionDataModule
from recsys.evaluate import evaluate
from recsys.heap import retained_heap
from recsys.models.base import FitOptions, Recommender
from recsys.models.blend import Blend
from recsys.models.chunked_softmax import chunked_cross_entropy
from recsys.models.neural import NeuralRecommender
from recsys.plots import plot_training_curves
from recsys.recipe import RULES, Recipe, choose_recipe
from recsys.sessions import Sessions, make_cases
from recsys.trainconfig import METRICS, TrainConfig

# may differ when resuming a run
RESUMABLE_CHANGES = ("max_epochs", "max_minutes", "patience", "num_workers", "cpu_threads")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class LitRecommender(L.LightningModule):
    def __init__(self, model: NeuralRecommender, config: TrainConfig, valid: Sessions, protocol: str,
                 log_q: torch.Tensor | None = None, data_id: str = "", on_epoch: Callable | None = None,
                 exclude_seen: bool = False):
        super().__init__()
        self.exclude_seen = exclude_seen  # validation ranks only items not in the prefix (FitOptions.exclude_seen)
        self.model, self.config = model, config
        self.on_epoch = on_epoch  # called as on_epoch(row, model) after each epoch's validation (rank 0 only)
        self.valid, self.protocol = valid, protocol
        self.has_valid = len(make_cases(valid, protocol)) > 0
        # log sampling probability per item for the sampled softmax (-inf for padding); not saved
        self.register_buffer("log_q", log_q, persistent=False)
        self.history: list[dict] = []  # one row per finished epoch; kept in checkpoints for resuming
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None  # stepped in on_train_epoch_end
        self._resumed: dict | None = None  # a checkpoint's generator and plateau states, for the epoch after it
        # what a checkpoint must match to be resumed (epoch budget and patience may change between runs)
        train = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE_CHANGES}
        self.fingerprint = {"model": model.name, "n_items": model.n_items, "config": dataclasses.asdict(model.config),
                            "train": train, "data": data_id}

    def on_fit_start(self):
        hparams = {"model": self.model.name, "n_items": self.model.n_items,
                   **{f"model.{k}": v for k, v in dataclasses.asdict(self.model.config).items()},
                   **{f"train.{k}": v for k, v in dataclasses.asdict(self.config).items()}}
        for logger in self.loggers:
            logger.log_hyperparams(hparams)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the target among all items, or among the target and shared sampled negatives."""
        if self.config.n_negatives == 0:
            if h.device.type == "cpu":  # a block of rows at a time: no (N, n_items) buffers (chunked_softmax)
                rows, bias = self.model.output_rows()
                return chunked_cross_entropy(self.model.query(h), rows, bias, targets)
            logits = self.model.logits(h)  # (N, n_items); the GPU's caching allocator reuses these buffers
            logits[:, 0] = -torch.inf  # padding is never a candidate
            return F.cross_entropy(logits, targets)
        z = self.model.query(h)  # (N, E)
        negatives = torch.multinomial(self.log_q.exp(), self.config.n_negatives, replacement=True)  # (K,)
        (pos_rows, pos_bias), (neg_rows, neg_bias) = map(self.model.item_vectors, (targets, negatives))
        pos = (z * pos_rows).sum(-1, keepdim=True)  # (N, 1)
        neg = z @ neg_rows.T  # (N, K)
        if pos_bias is not None:
            pos, neg = pos + pos_bias[:, None], neg + neg_bias
        if self.config.logq:
            pos, neg = pos - self.log_q[targets, None], neg - self.log_q[negatives]
        neg = neg.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)  # a sampled target is no negative
        logits = torch.cat([pos, neg], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))

    def training_step(self, batch, batch_idx):
        x, y, lengths = batch
        if self.model.per_position:
            keep = y > 0  # every real (prefix -> next) position of every row
            h, targets = self.model.sequence_states(x, lengths)[keep], y[keep]
        else:
            h, targets = self.model.final_state(x, lengths), y
        loss = self.loss(h, targets)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"training loss is {loss.item()} at epoch {self.current_epoch + 1}, step {self.global_step}; "
                f"lower lr ({self.config.lr}) or grad_clip ({self.config.grad_clip}). The last good checkpoint "
                f"(end of the previous epoch) is kept for inspection or resuming.")
        self._loss_sum += loss.detach() * len(targets)
        self._loss_count += len(targets)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(targets))
        return loss

    def on_train_epoch_start(self):
        if self._resumed is not None:  # the first epoch after a resume: as random as it was in the original run
            _set_rng_states(self._resumed["rng"])
            if self.plateau is not None:
                self.plateau.load_state_dict(self._resumed["plateau"])
            self._resumed = None
        self._loss_sum, self._loss_count, self._started = torch.zeros((), device=self.device), 0, time.perf_counter()
        if self.config.epoch_lrs:
            lr = self.config.epoch_lrs[min(self.current_epoch, len(self.config.epoch_lrs) - 1)]
            for group in self.optimizers().param_groups:
                group["lr"] = lr

    def on_train_batch_start(self, batch, batch_idx):
        warmup = self.config.warmup
        if warmup and self.config.schedule != "cosine" and self.global_step <= warmup and not self.config.epoch_lrs:
            for group in self.optimizers().param_groups:
                group["lr"] = self.config.lr * min(1.0, (self.global_step + 1) / warmup)

    def on_train_epoch_end(self):
        # the loss over every rank's share of the epoch (one process: its own sum and count)
        totals = torch.tensor([float(self._loss_sum), float(self._loss_count)], dtype=torch.float64, device=self.device)
        loss_sum, count = self.trainer.strategy.reduce(totals, reduce_op="sum").tolist()
        row = {"epoch": self.current_epoch + 1, "train_loss": loss_sum / max(count, 1),
               "lr": self.optimizers().param_groups[0]["lr"], "train_seconds": time.perf_counter() - self._started}
        if self.has_valid:
            # data-parallel: every rank scores its share of the cases (the weights are the same everywhere) and
            # gets every case's rank back, so every rank has the same metrics, as one process would compute them
            started = time.perf_counter()
            result = evaluate(self.model, self.valid, self.protocol, max_cases=self.config.val_max_cases,
                              exclude_seen=self.exclude_seen, shard=self.trainer.world_size > 1)
            self.model.train()  # evaluate switched it to eval mode
            scores = {k: v for k, v in result.metrics().items() if k in METRICS}
            scores["val_seconds"] = time.perf_counter() - started
            row.update(scores)
            for name in METRICS:  # sync_dist: the same numbers everywhere already; it keeps Lightning from warning
                if name in scores:
                    self.log(f"val_{name}", scores[name], prog_bar=name == self.config.monitor, sync_dist=True)
            if self.plateau is not None:
                # here, and not by Lightning: Lightning steps epoch schedulers after the end-of-epoch checkpoint is
                # written, and a run resumed from that checkpoint never takes the step it missed
                self.plateau.step(scores[self.config.monitor])
        self.history.append(row)
        if self.on_epoch is not None and self.trainer.is_global_zero:
            self.on_epoch(dict(row), self.model)
            self.model.train()  # the callback may have evaluated (eval mode)

    def configure_optimizers(self):
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.config.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=self.config.lr)
        if self.config.epoch_lrs:
            return optimizer  # on_train_epoch_start sets each epoch's rate
        if self.config.schedule == "cosine":
            total, warmup = max(int(self.trainer.estimated_stepping_batches), 1), self.config.warmup

            def factor(step):
                if step < warmup:
                    return (step + 1) / warmup
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(total - warmup, 1))))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if self.config.schedule == "plateau" and self.has_valid:
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
        return optimizer

    def on_save_checkpoint(self, checkpoint):
        # written at the end of an epoch, after its validation: what the next epoch starts from
        checkpoint["recsys"] = {"history": self.history, "fingerprint": self.fingerprint, "rng": _rng_states(),
                                "plateau": None if self.plateau is None else self.plateau.state_dict()}

    def on_load_checkpoint(self, checkpoint):
        saved = checkpoint.get("recsys", {})
        if saved.get("fingerprint") != self.fingerprint:
            raise ValueError(f"the checkpoint to resume from belongs to another run ({saved.get('fingerprint')}, "
                             f"this run: {self.fingerprint}); delete it or use another workdir")
        self.history = list(saved["history"])
        self._resumed = {"rng": saved["rng"], "plateau": saved["plateau"]} if "rng" in saved else None


def _rng_states() -> dict:
    """The global generators that dropout, sampled negatives and the DataLoader draw from, in a form that
    torch.load(weights_only=True) reads back (Lightning saves none of them in its checkpoints)."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "numpy": [torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss],
              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()  # this process's device
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state(("MT19937", key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


class ResumableEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, resumed with this run's patience (the checkpoint's would replace it, but patience
    may change between runs), and not training another epoch when the checkpoint's run had stopped there."""

    def load_state_dict(self, state_dict):
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience

    def on_train_start(self, trainer, pl_module):
        if self.wait_count >= self.patience:  # a run killed after its last checkpoint, before it returned
            trainer.should_stop = True


def _log_sampling_probs(data, config: TrainConfig, n_items: int) -> torch.Tensor | None:
    if config.n_negatives == 0:
        return None
    if config.negative_sampling == "uniform":
        weights = np.ones(n_items)
    else:
        weights = np.bincount(data.train.items, minlength=n_items).astype(np.float64) ** config.sample_alpha
        weights += 1e-6 * weights.max()  # every item can be drawn
    weights[0] = 0.0
    with np.errstate(divide="ignore"):  # log 0 = -inf for padding: never drawn
        return torch.from_numpy(np.log(weights / weights.sum())).float()


def _data_id(data) -> str:
    """A cheap identity of the training and validation sessions, so a checkpoint never resumes on other data."""
    crc = 0
    for part in (data.train.items, data.train.offsets, data.valid.items, data.valid.offsets):
        crc = zlib.crc32(np.ascontiguousarray(part).view(np.uint8), crc)
    return f"{len(data.train)} train / {len(data.valid)} valid sessions, crc32 {crc:08x}"


def fit(model: Recommender, data, options: FitOptions = FitOptions(), train_config: TrainConfig | None = None,
        on_epoch: Callable | None = None) -> dict:
    """Fit `model` on data.train (data.valid: early stopping and selection only); returns what is worth reporting.

    A neural model starts afresh (category input sized to the data, weights drawn from options.seed) and trains
    with `train_config`, else the one it was built with (`build_model(name, n, {"train": {...}})`, a parameter
    file's "train" section), else the default recipe chosen from the data (recsys.recipe; logged, and returned
    as "recipe"): see `_train_neural`. The TrainConfig used comes back as "train_config". `on_epoch(row, model)`
    is called after each validated epoch (a benchmark's probe; neural models only). A hybrid fits each part with
    this function (each with its own TrainConfig) and then chooses its weights; any other model fits itself.
    `train_config` is for neural models.
    """
    if isinstance(model, NeuralRecommender):
        model.initialize(data, options.seed)
        recipe: Recipe | None = None
        config = train_config or model.train_config
        if config is None:
            recipe = choose_recipe(model, data, model.recipe_rules or RULES)
            config = recipe.train_config()
            logging.getLogger(__name__).info("%s training recipe: %s", model.name, recipe.line())
        result = _train_neural(model, data, config, options, on_epoch)
        result["train_config"] = dataclasses.asdict(config)
        if recipe is not None:
            result["recipe"] = recipe.as_dict()
        return result
    if train_config is not None:
        raise TypeError(f"{type(model).__name__} does not train in epochs: train_config is for neural models")
    if isinstance(model, Blend):
        return model.fit(data, options, fit_part=fit)
    return model.fit(data, options)


def _train_neural(model: NeuralRecommender, data, config: TrainConfig, options: FitOptions,
                  on_epoch: Callable | None = None) -> dict:
    """Train `model` on data.train, select the best epoch on data.valid, and restore its weights.

    Returns {"epochs", "best_epoch", "best_valid", "history", "seconds_per_epoch"}. With options.workdir,
    checkpoints (checkpoints/last.ckpt, best.ckpt), CSV logs and training_curves.png go there, and a rerun
    resumes from last.ckpt (its epochs count toward max_epochs), exactly on the CPU.
    """
    wants_gpu = options.accelerator in ("gpu", "cuda")
    if wants_gpu and not torch.cuda.is_available():
        raise RuntimeError(f"accelerator={options.accelerator!r} but no CUDA GPU is available")
    gpu = torch.cuda.is_available() and options.accelerator in ("auto", "gpu", "cuda")
    precision = ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if gpu else "32-true"
    max_epochs = options.max_epochs or config.max_epochs
    L.seed_everything(options.seed, workers=True, verbose=False)
    temp = tempfile.TemporaryDirectory(prefix="recsys-train-") if options.workdir is None else None
    workdir = Path(temp.name if temp else options.workdir)
    ckpt_dir = workdir / "checkpoints"
    batch_size = config.batch_size * (config.gpu_batch_scale if gpu else 1)
    datamodule = SessionDataModule(data.train, model.config.max_len, batch_size, model.pad_side, model.per_position,
                                   pin_memory=gpu, num_workers=config.num_workers, seed=options.seed,
                                   min_context=config.min_context)
    datamodule.setup("fit")
    steps_per_epoch = math.ceil(len(datamodule.samples) / datamodule.batch_size)
    if isinstance(config.devices, int):  # each process trains on its share of the batches
        steps_per_epoch = math.ceil(steps_per_epoch / config.devices)
    lit = LitRecommender(model, config, data.valid, data.protocol("valid"),
                         _log_sampling_probs(data, config, model.n_items), _data_id(data), on_epoch,
                         options.exclude_seen)
    monitor = f"val_{config.monitor}"
    last_ckpt = ModelCheckpoint(ckpt_dir, filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=True,
                                enable_version_counter=False)
    callbacks, best_ckpt = [last_ckpt], None
    if lit.has_valid:
        best_ckpt = ModelCheckpoint(ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1,
                                    save_on_train_epoch_end=True, enable_version_counter=False)
        # best.ckpt is written before last.ckpt: a run killed between the two writes redoes the epoch from the
        # previous last.ckpt; the other way round, the resumed run's best-epoch record would never see that epoch
        callbacks = [best_ckpt, last_ckpt, ResumableEarlyStopping(monitor, mode="max", patience=config.patience,
                                                                  check_on_train_epoch_end=True)]
    else:
        warnings.warn("no validation cases: training for max_epochs without early stopping", stacklevel=2)
    loggers = [CSVLogger(workdir, name="logs")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(workdir, name="tensorboard"))
    last = ckpt_dir / "last.ckpt"
    deterministic_before, threads_before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    if config.cpu_threads and not gpu:
        torch.set_num_threads(config.cpu_threads)
    lightning_log = logging.getLogger("lightning.pytorch")
    log_level = lightning_log.level
    if not options.progress:
        lightning_log.setLevel(logging.WARNING)  # no "GPU available" / tips banner in quiet runs
    try:
        with warnings.catch_warnings():
            for noise in ("does not have many workers", "val_dataloader", "validation_step", "LeafSpec",
                          "exists and is not empty"):
                warnings.filterwarnings("ignore", message=f".*{noise}.*")
            trainer = L.Trainer(
                accelerator="gpu" if gpu else "cpu", devices=config.devices, num_nodes=config.num_nodes,
                strategy=config.strategy,
                precision=precision, max_epochs=max_epochs,
                max_time=None if config.max_minutes is None else timedelta(minutes=config.max_minutes),
                gradient_clip_val=config.grad_clip, deterministic=not gpu, callbacks=callbacks, logger=loggers,
                enable_progress_bar=options.progress, enable_model_summary=options.progress, num_sanity_val_steps=0,
                log_every_n_steps=min(50, steps_per_epoch), default_root_dir=workdir, use_distributed_sampler=False)
            with retained_heap(not gpu):  # the CPU's step-to-step buffers stay in the process (recsys.heap)
                trainer.fit(lit, datamodule=datamodule, ckpt_path=last if last.is_file() else None,
                            weights_only=True)
        best_path = best_ckpt.best_model_path if best_ckpt else ""
        if best_path:  # restore the best epoch's weights
            lit.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"])
    finally:
        lightning_log.setLevel(log_level)
        torch.use_deterministic_algorithms(deterministic_before)  # Trainer(deterministic=True) sets it globally
        torch.set_num_threads(threads_before)
        if temp:
            temp.cleanup()
    model.cpu().eval()
    if trainer.world_size > 1:
        _weights_of_rank_zero(model)
    history = lit.history
    scored = [row for row in history if config.monitor in row]
    best = max(scored, key=lambda row: row[config.monitor]) if scored else (history[-1] if history else {})
    result = {"epochs": len(history), "best_epoch": best.get("epoch"),
              "best_valid": {k: best[k] for k in METRICS if k in best}, "history": history,
              "seconds_per_epoch": statistics.median(r["train_seconds"] for r in history) if history else None}
    if trainer.world_size > 1:  # data-parallel: every rank evaluates its share, the caller saves on rank 0 only
        result.update(global_rank=trainer.global_rank, world_size=trainer.world_size)
    if options.workdir and history and trainer.is_global_zero:
        plot_training_curves(history, workdir / "training_curves.png", result["best_epoch"], title=model.name)
    return result


def _weights_of_rank_zero(model) -> None:
    """Give every process of a data-parallel run rank 0's weights and buffers, in place.

    Each rank restores the best epoch from the same checkpoint file and DDP keeps the ranks' weights equal while
    training, so they should agree already; broadcasting makes it certain before the ranks split an evaluation
    between them (`evaluate(..., shard=True)` is exact only if every rank scores with the same model)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)
