"""Data-parallel training: Lightning DDP on 2 CPU processes (gloo) produces a valid model folder whose validation
metrics match a single-process run.

The run is a script in a subprocess because Lightning's "ddp" launcher starts the other rank by re-running the
script. Every rank sees every batch (train_neural sets use_distributed_sampler=False), so the all-reduced gradient
equals the single-process one and both runs follow the same trajectory up to float rounding in the all-reduce:
the tolerance is 0.02 absolute on metrics in [0, 1] (one validation case in 50 changing rank would be 0.02).
Validation runs on every rank (the same weights give the same numbers), so no rank waits on another at epoch end.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.evaluate import evaluate
from recsys.folder import load_folder
from recsys.models import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TRAIN = """
import json, os, sys
sys.path[:0] = [{root!r}, {tests!r}]
import torch
torch.set_num_threads(1)
from test_neural import make_data, tiny
from recsys.folder import save_folder
from recsys.lit import TrainConfig
from recsys.models import FitOptions
workdir, devices = sys.argv[1], int(sys.argv[2])
data = make_data((200, 50, 50))
model = tiny("gru4rec", emb_dropout=0.0, hidden_dropout=0.0)
config = TrainConfig(batch_size=16, lr=3e-3, schedule="constant", devices=devices,
                     strategy="ddp" if devices > 1 else "auto")
result = model.fit(data, FitOptions(workdir=workdir, max_epochs=2, seed=0, progress=False, accelerator="cpu"), config)
rank = int(os.environ.get("LOCAL_RANK", 0))
world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
open(os.path.join(workdir, f"rank{{rank}}-of-{{world}}"), "w").close()  # proof that each rank trained
if rank == 0:
    save_folder(model, os.path.join(workdir, "model"), data.items)
    json.dump(result, open(os.path.join(workdir, "result.json"), "w"))
"""


def _train(script: Path, workdir: Path, devices: int) -> dict:
    subprocess.run([sys.executable, str(script), str(workdir), str(devices)], check=True, timeout=120)
    return json.loads((workdir / "result.json").read_text())


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path):
    from test_neural import make_data

    script = tmp_path / "train.py"
    script.write_text(TRAIN.format(root=str(ROOT), tests=str(ROOT / "tests")))
    single, ddp = _train(script, tmp_path / "single", 1), _train(script, tmp_path / "ddp", 2)
    assert ddp["epochs"] == single["epochs"] == 2
    assert sorted(p.name for p in (tmp_path / "ddp").glob("rank*")) == ["rank0-of-2", "rank1-of-2"]
    model = load_folder(tmp_path / "ddp" / "model", REGISTRY)  # a valid folder, loadable like any other
    data = make_data((200, 50, 50))
    metrics = evaluate(model, data.valid, "all").metrics()
    for name in ("hr@10", "mrr@10", "ndcg@10"):
        assert ddp["best_valid"][name] == pytest.approx(single["best_valid"][name], abs=0.02), name
        assert metrics[name] == pytest.approx(ddp["best_valid"][name], abs=1e-6), name  # the folder is that model
