"""Resuming is exact on the CPU: a run SIGKILLed in the middle of an epoch and resumed by the same command in a fresh
process ends bitwise where the uninterrupted run with the same seed ends: the same final weights, the same
last.ckpt and best.ckpt (weights, optimiser, learning-rate schedule, early-stopping and best-epoch state) and the
same history, metric for metric.

Everything random is drawn again identically after a resume: the batch order is a function of (seed, epoch)
(SimilarLengthBatches), and the global torch / numpy / Python generators that dropout and sampled negatives draw
from are saved in every checkpoint and put back where the next epoch starts (LitRecommender). The plateau
scheduler is stepped before the end-of-epoch checkpoint is written, so a resume does not skip one of its steps.

The killed run is a subprocess that sends itself SIGKILL at a fixed batch (deterministic, and as abrupt as a
`kill -9` from outside: no handler, no flush); it resumes from the end-of-epoch checkpoint before that batch.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_neural import make_data, tiny

from recsys.datamodule import SimilarLengthBatches
from recsys.models import FitOptions
from recsys.train import TrainConfig
from recsys.train import fit as fit_model

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, KILL_EPOCH, KILL_BATCH = 5, 2, 2  # 0-based: killed at the 3rd batch of epoch 3, resumed from the end of 2
# not compared: wall-clock times, and ModelCheckpoint's `current_score` (the score of the last file it wrote in this
# process; Lightning saves it but never reloads it, and nothing reads it)
SKIP = ("train_seconds", "val_seconds", "seconds_per_epoch", "current_score")
CHILD = "import sys; sys.path[:0] = [{root!r}, {tests!r}]; import test_resume_exact as t; t.main(sys.argv[1:])"


@pytest.fixture(autouse=True)
def one_cpu_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def fit(key: str, workdir: Path) -> dict:
    """A small run with dropout on (the global generator matters) and the default plateau schedule."""
    torch.set_num_threads(1)  # as in the subprocesses: the same kernels, the same sums
    data = make_data((300, 60, 60), n_items=30)
    small = tiny(key)  # GRU4Rec: dropout 0.25 on embeddings and states; SASRec: 0.2 everywhere
    model = type(small)(small.config, data.n_items)
    # one DataLoader worker for GRU4Rec: a worker process fetches the epoch's first batches before Lightning
    # tells the sampler the epoch number on a resume
    config = TrainConfig(batch_size=32, lr=1e-2, val_max_cases=100, num_workers=1 if key == "gru4rec" else 0)
    options = FitOptions(workdir=str(workdir), max_epochs=EPOCHS, seed=0, progress=False, accelerator="cpu")
    result = fit_model(model, data, options, config)
    torch.save(model.state_dict(), workdir / "final.pt")
    (workdir / "result.json").write_text(json.dumps(result))
    return result


def main(argv: list[str]) -> None:
    """The subprocess, `[--kill] WORKDIR KEY...`: fit each model in WORKDIR/KEY; with --kill, the process SIGKILLs
    itself at (KILL_EPOCH, KILL_BATCH) of the first."""
    if argv[0] == "--kill":
        from recsys.train import LitRecommender

        batch_start = LitRecommender.on_train_batch_start

        def kill_midway(self, batch, batch_idx):
            if (self.current_epoch, batch_idx) == (KILL_EPOCH, KILL_BATCH):
                os.kill(os.getpid(), signal.SIGKILL)
            batch_start(self, batch, batch_idx)

        LitRecommender.on_train_batch_start = kill_midway
        argv = argv[1:]
    for key in argv[1:]:
        fit(key, Path(argv[0]) / key)


def _child(*args: str) -> subprocess.Popen:
    code = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same(a, b, where: str = "") -> None:
    """Equal down to the bit: tensors by torch.equal (and dtype), numbers by ==, containers element by element."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (where, set(a) ^ set(b))
        for k in a:
            if k not in SKIP:
                _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def _relative_paths(obj, workdir: Path):
    """Checkpoint paths (best_model_path, dirpath, ...) relative to the run's workdir."""
    if isinstance(obj, str):
        return obj.replace(str(workdir), "<workdir>")
    if isinstance(obj, dict):
        return {_relative_paths(k, workdir): _relative_paths(v, workdir) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_relative_paths(v, workdir) for v in obj)
    return obj


@pytest.mark.slow
def test_sigkill_midway_then_resume_in_a_fresh_process_is_bitwise_the_uninterrupted_run(tmp_path):
    keys, run_dir = ("gru4rec", "sasrec"), tmp_path / "killed"
    killed = [_child("--kill", run_dir, key) for key in keys]  # one process per model: each one dies
    for key, proc in zip(keys, killed):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
        assert not (run_dir / key / "result.json").exists()
        at_kill = _load(run_dir / key / "checkpoints" / "last.ckpt")
        assert [row["epoch"] for row in at_kill["recsys"]["history"]] == list(range(1, KILL_EPOCH + 1))

    resumed = _child(run_dir, *keys)  # the same command, in a fresh process: each model resumes from its last.ckpt
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-3000:]
    for key in keys:
        ref_dir, key_dir = tmp_path / "uninterrupted" / key, run_dir / key
        ref = fit(key, ref_dir)  # in this process: the uninterrupted run
        assert ref["epochs"] == EPOCHS
        _assert_same(json.loads((key_dir / "result.json").read_text()), json.loads(json.dumps(ref)), key)
        _assert_same(_load(key_dir / "final.pt"), _load(ref_dir / "final.pt"), f"{key} final weights")
        for name in ("last.ckpt", "best.ckpt"):
            _assert_same(_relative_paths(_load(key_dir / "checkpoints" / name), key_dir),
                         _relative_paths(_load(ref_dir / "checkpoints" / name), ref_dir), f"{key} {name}")


def test_one_process_batch_order_is_a_function_of_the_seed_and_the_epoch():
    lengths = np.random.default_rng(0).integers(1, 30, 500)

    def order(seed, epoch, global_seed):
        torch.manual_seed(global_seed)  # whatever dropout drew before: no effect
        sampler = SimilarLengthBatches(lengths, 16, pool=5, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 2, global_seed=1) == order(0, 2, global_seed=2)
    assert list(SimilarLengthBatches(lengths, 16, pool=5, seed=0, epoch=2)) == order(0, 2, global_seed=3)
    assert order(0, 1, 0) != order(0, 2, 0) and order(1, 0, 0) != order(0, 1, 0)  # seed 1 is no epoch shift of 0
