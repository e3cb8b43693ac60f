"""Faults: a training run killed with SIGKILL resumes from its last checkpoint and ends exactly where an uninterrupted
run does; a save that fails midway never leaves a folder that loads (nor damages the folder it was replacing).

tests/test_data.py already covers a Dataset.save that fails on its first file; here: failures after some files
are written, for the model folder and the processed data folder, including over an existing folder.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_neural import DATA, make_data, tiny

import recsys.folder
from recsys.data import Dataset
from recsys.folder import ModelFolderError, load_folder, save_folder
from recsys.models import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TRAIN = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
import torch
torch.set_num_threads(1)
from test_neural import make_data, tiny
from recsys.train import TrainConfig, fit
from recsys.models import FitOptions
data = make_data((1000, 200, 200), n_items=40)
small = tiny("gru4rec")  # its small config (dropout on), on this data's items
model = type(small)(small.config, data.n_items)
result = fit(model, data, FitOptions(workdir=sys.argv[1], max_epochs=3, seed=0, progress=False, accelerator="cpu"),
                   TrainConfig(batch_size=8, lr=3e-3))
json.dump(result["history"], open(sys.argv[2], "w"))
"""


def _train_cmd(script: Path, workdir: Path, out: Path) -> list[str]:
    return [sys.executable, str(script), str(workdir), str(out)]


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_last_checkpoint_to_the_same_metrics(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN.format(root=str(ROOT), tests=str(ROOT / "tests")))
    reference = tmp_path / "reference.json"
    subprocess.run(_train_cmd(script, tmp_path / "ref", reference), check=True, timeout=300)

    work, out = tmp_path / "killed", tmp_path / "resumed.json"
    proc = subprocess.Popen(_train_cmd(script, work, out))
    last, deadline = work / "checkpoints" / "last.ckpt", time.monotonic() + 240
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the checkpoint write finish; epoch 2 is now under way (an epoch takes seconds)
    assert proc.poll() is None, "training finished before it could be killed: make the epochs longer"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL and not out.exists()
    assert [p.name for p in (work / "checkpoints").iterdir() if p.suffix == ".ckpt"]

    subprocess.run(_train_cmd(script, work, out), check=True, timeout=300)  # the same command resumes
    ref, resumed = json.loads(reference.read_text()), json.loads(out.read_text())
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    # the interrupted epoch is redone from the last end-of-epoch checkpoint with the same batches and the same
    # random draws (tests/test_resume_exact.py: bitwise, weights and checkpoints too): the same numbers
    timings = ("train_seconds", "val_seconds")
    assert [{k: v for k, v in row.items() if k not in timings} for row in resumed] == \
        [{k: v for k, v in row.items() if k not in timings} for row in ref]


def _boom(*args, **kwargs):
    raise OSError("disk full")


def test_model_folder_failing_after_the_weights_leaves_no_folder(tmp_path, monkeypatch):
    model = tiny("gru4rec")
    monkeypatch.setattr(recsys.folder, "items_payload", _boom)  # config.json and model.safetensors are written
    with pytest.raises(OSError, match="disk full"):
        save_folder(model, tmp_path / "m", DATA.items)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary sibling
    with pytest.raises(ModelFolderError):
        load_folder(tmp_path / "m", REGISTRY)


def test_model_folder_failing_midway_keeps_the_folder_it_replaces(tmp_path, monkeypatch):
    old = tiny("gru4rec")
    save_folder(old, tmp_path / "m", DATA.items)
    new = tiny("gru4rec")
    torch.nn.init.normal_(new.item_emb.weight)
    real_save = recsys.folder.save_model

    def save_then_crash(model, path, **kwargs):
        real_save(model, path, **kwargs)
        raise KeyboardInterrupt  # a Ctrl-C right after the weights are written

    monkeypatch.setattr(recsys.folder, "save_model", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_folder(new, tmp_path / "m", DATA.items)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    seqs = [np.array([1, 2, 3])]
    torch.testing.assert_close(load_folder(tmp_path / "m", REGISTRY).score(seqs), old.eval().score(seqs))


def test_data_folder_failing_after_the_splits_keeps_the_folder_it_replaces(tmp_path, monkeypatch):
    old, new = make_data(seed=0), make_data(seed=1)
    old.save(tmp_path / "ds")
    monkeypatch.setattr(Path, "write_text", _boom)  # meta.json is the last file: the parquet files are written
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path / "ds")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert Dataset.load(tmp_path / "ds").train.to_lists() == old.train.to_lists()
