"""Data-parallel training: each DDP rank trains on its own half of every epoch's batches, and Lightning DDP on 2 CPU
processes (gloo) produces a valid model folder whose validation metrics are close to a single-process run.

The run is a script in a subprocess because Lightning's "ddp" launcher starts the other rank by re-running the
script. SimilarLengthBatches gives each rank a disjoint half of the batches (the same shuffle on both ranks,
from the seed and the epoch), so an epoch takes half the optimiser steps, each averaging the gradients of two
batches. That is not the single-process trajectory (half the steps at the same learning rate), so the runs are
compared after training long enough to learn the cycling data set: within 0.05 absolute on metrics in [0, 1].
Validation is sharded: each rank scores every other chunk of the validation cases and the ranks are combined, so both
ranks compute the same metrics and stop at the same epoch; the sharded evaluation equals one process's exactly
(test_sharded_evaluation_on_two_processes_equals_one_process). scripts/train_and_eval.py under DDP shards its final
validation and test evaluation the same way and saves on rank 0 only.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.datamodule import SimilarLengthBatches
from recsys.evaluate import evaluate
from recsys.folder import load_folder
from recsys.models import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 10
TRAIN = """
import json, os, sys
sys.path[:0] = [{root!r}, {tests!r}]
import torch
torch.set_num_threads(1)
import recsys.datamodule as dm
from test_neural import make_data, tiny
from recsys.folder import save_folder
from recsys.train import TrainConfig, fit
from recsys.models import FitOptions

seen = []  # the row indices of every batch this rank trained on, per epoch
iterate = dm.SimilarLengthBatches.__iter__
def recording(self):
    seen.append([])
    for batch in iterate(self):
        seen[-1].append(batch)
        yield batch
dm.SimilarLengthBatches.__iter__ = recording

workdir, devices = sys.argv[1], int(sys.argv[2])
data = make_data((200, 50, 50))
model = tiny("gru4rec", emb_dropout=0.0, hidden_dropout=0.0)
config = TrainConfig(batch_size=16, lr=3e-3, schedule="constant", patience={epochs}, devices=devices,
                     strategy="ddp" if devices > 1 else "auto")
options = FitOptions(workdir=workdir, max_epochs={epochs}, seed=0, progress=False, accelerator="cpu")
result = fit(model, data, options, config)
rank = int(os.environ.get("LOCAL_RANK", 0))
world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
with open(os.path.join(workdir, f"rank{{rank}}-of-{{world}}.json"), "w") as f:
    json.dump({{"batches": seen, "history": result["history"]}}, f)
if rank == 0:
    save_folder(model, os.path.join(workdir, "model"), data.items)
    json.dump(result, open(os.path.join(workdir, "result.json"), "w"))
"""


SHARDED = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
import torch
torch.set_num_threads(1)
import torch.distributed as dist
from test_distributed import eval_cases
from recsys.evaluate import evaluate

rank, world, store = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
model, data = eval_cases()
out = {{}}
for name, kw in {cases!r}.items():
    result = evaluate(model, data.valid, "all", shard=True, **kw)
    out[name] = {{"ranks": result.ranks.tolist(), "topk": result.topk.tolist(), "metrics": result.metrics(),
                 "ci": result.confidence_intervals(200)}}
json.dump(out, open(sys.argv[4], "w"))
dist.destroy_process_group()
"""
# chunk sizes giving an odd number of chunks, one chunk (rank 1 scores nothing), a subset, repeats excluded
SHARD_CASES = {"chunks-7": {"batch_size": 7}, "one-chunk": {"batch_size": 4096}, "default": {},
               "subset": {"batch_size": 5, "max_cases": 61}, "exclude-seen": {"batch_size": 16, "exclude_seen": True}}


def eval_cases():
    """An untrained GRU4Rec (seeded) and validation sessions over 300 items: the same on every process."""
    from test_neural import make_data

    from recsys.models import REGISTRY

    data = make_data((50, 120, 10), n_items=300, seed=1)
    cls = REGISTRY["gru4rec"]
    model = cls(cls.Config(emb_dim=16, hidden=32), data.n_items)
    model.initialize(data, seed=0)
    return model.eval(), data


def test_sharded_evaluation_on_two_processes_equals_one_process(tmp_path):
    """Two gloo processes each score their share of the cases; both get every case's rank and top items, equal
    to one process's, so the metrics and bootstrap CIs (the same code) are equal too."""
    script = tmp_path / "shard.py"
    script.write_text(SHARDED.format(root=str(ROOT), tests=str(ROOT / "tests"), cases=SHARD_CASES))
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", str(tmp_path / "store"),
                               str(tmp_path / f"rank{r}.json")]) for r in (0, 1)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    shards = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    model, data = eval_cases()
    for name, kw in SHARD_CASES.items():
        alone = evaluate(model, data.valid, "all", **kw)
        assert len(alone.ranks) > 0 and (alone.ranks < alone.n_items).mean() > 0.5, name  # real ranks, few misses
        for shard in shards:
            got = shard[name]
            assert got["ranks"] == alone.ranks.tolist(), name
            assert got["topk"] == alone.topk.tolist(), name
            assert got["metrics"] == json.loads(json.dumps(alone.metrics())), name
            assert got["ci"] == json.loads(json.dumps(alone.confidence_intervals(200))), name
    # without a process group, shard=True is one process's evaluation
    alone = evaluate(model, data.valid, "all")
    assert evaluate(model, data.valid, "all", shard=True).ranks.tolist() == alone.ranks.tolist()


def _old_order(lengths, batch_size, pool=50):
    """SimilarLengthBatches' order before data-parallel sharding existed (one process must keep it)."""
    order = torch.randperm(len(lengths)).numpy()
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches)).tolist()]


def test_one_process_keeps_the_seeded_order():
    lengths = np.random.default_rng(0).integers(1, 30, 1000)
    torch.manual_seed(3)
    expected = _old_order(lengths, 16, pool=5)
    torch.manual_seed(3)
    assert list(SimilarLengthBatches(lengths, 16, pool=5)) == expected


@pytest.mark.parametrize("n_rows", [1000, 128, 10])  # 63 batches (odd: one is repeated), 8, 1
def test_ranks_get_disjoint_equal_shares_of_every_epoch(n_rows):
    lengths = np.random.default_rng(0).integers(1, 30, n_rows)
    n_batches = -(-n_rows // 16)
    ranks = [SimilarLengthBatches(lengths, 16, pool=5, num_replicas=2, rank=r, seed=7) for r in (0, 1)]
    orders = []
    for epoch in (0, 1):
        for sampler in ranks:
            sampler.set_epoch(epoch)
        shares = [list(s) for s in ranks]
        assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == -(-n_batches // 2)
        rows = [{i for b in share for i in b} for share in shares]
        assert rows[0] | rows[1] == set(range(n_rows))
        repeated = len(shares[0]) + len(shares[1]) - n_batches  # padding, so both ranks take the same steps
        assert repeated == n_batches % 2
        assert sum(b in shares[0] for b in shares[1]) == repeated
        orders.append(shares)
        again = SimilarLengthBatches(lengths, 16, pool=5, num_replicas=2, rank=1, seed=7)
        again.set_epoch(epoch)
        assert list(again) == shares[1]  # from the seed and the epoch alone, whatever the global generator did
    assert orders[0] != orders[1] or n_batches == 1  # set_epoch reshuffles
    with pytest.raises(ValueError, match="rank"):
        SimilarLengthBatches(lengths, 16, num_replicas=2, rank=2)


def _train(script: Path, workdir: Path, devices: int) -> dict:
    subprocess.run([sys.executable, str(script), str(workdir), str(devices)], check=True, timeout=300)
    return json.loads((workdir / "result.json").read_text())


def _global_step(workdir: Path) -> int:
    return torch.load(workdir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_shards_batches_and_matches_one_process(tmp_path):
    from test_neural import make_data

    script = tmp_path / "train.py"
    script.write_text(TRAIN.format(root=str(ROOT), tests=str(ROOT / "tests"), epochs=EPOCHS))
    single, ddp = _train(script, tmp_path / "single", 1), _train(script, tmp_path / "ddp", 2)
    assert ddp["epochs"] == single["epochs"] == EPOCHS

    # each rank trained on its own half of every epoch's batches: the optimiser steps halve
    one = json.loads((tmp_path / "single" / "rank0-of-1.json").read_text())
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}-of-2.json").read_text()) for r in (0, 1)]
    n_batches = len(one["batches"][0])
    assert _global_step(tmp_path / "single") == EPOCHS * n_batches
    assert _global_step(tmp_path / "ddp") == EPOCHS * -(-n_batches // 2)
    for epoch in range(EPOCHS):
        shares = [r["batches"][epoch] for r in ranks]
        assert len(shares[0]) == len(shares[1]) == -(-n_batches // 2)
        rows = [{i for b in share for i in b} for share in shares]
        assert rows[0] | rows[1] == {i for b in one["batches"][epoch] for i in b}  # all of the data, once a rank
        assert sum(b in shares[0] for b in shares[1]) == n_batches % 2  # only the padding batch is repeated
    assert ranks[0]["batches"][0] != ranks[0]["batches"][1]  # reshuffled every epoch

    # both ranks saw the same validation numbers and the same all-reduced training loss
    scores = [[{k: v for k, v in row.items() if not k.endswith("seconds")} for row in r["history"]] for r in ranks]
    assert scores[0] == scores[1]

    model = load_folder(tmp_path / "ddp" / "model", REGISTRY)  # a valid folder, loadable like any other
    metrics = evaluate(model, make_data((200, 50, 50)).valid, "all").metrics()
    for name in ("hr@10", "mrr@10", "ndcg@10"):
        assert ddp["best_valid"][name] == pytest.approx(single["best_valid"][name], abs=0.05), name
        assert metrics[name] == pytest.approx(ddp["best_valid"][name], abs=1e-6), name  # the folder is that model


@pytest.mark.slow
def test_train_and_eval_under_ddp_shares_evaluation_and_saves_on_rank_zero_only(tmp_path):
    """scripts/train_and_eval.py with a DDP training config: both processes train (and refit) and share the
    validation and test evaluation; rank 0 alone saves."""
    from test_neural import make_data

    make_data((200, 50, 50)).save(tmp_path / "data")
    params = tmp_path / "ddp.json"
    params.write_text(json.dumps({"model": "gru4rec", "params": {
        "emb_dim": 16, "hidden": 32, "train": {"strategy": "ddp", "devices": 2, "batch_size": 16, "cpu_threads": 1}}}))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_and_eval.py"), "--data", tmp_path / "data",
                           "--models", "gru4rec", "--params", params, "--out", tmp_path / "run", "--assets",
                           tmp_path / "assets", "--max-epochs", "2", "--refit", "--bootstrap", "20", "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("rank 1: trained and scored its share of the validation and test cases; rank 0 saves") == 1
    assert proc.stdout.count("valid mrr@20") == 1 and proc.stdout.count("Test (percent, 95% CI)") == 1
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    entry = results["models"]["gru4rec"]
    assert entry["fit"]["world_size"] == 2 and entry["fit"]["global_rank"] == 0 and entry["refit"]["epochs"] >= 1
    model = load_folder(tmp_path / "run" / "gru4rec", REGISTRY)
    assert model.n_items == 13
    # the test metrics both ranks computed together are those of the saved model evaluated by one process
    data = make_data((200, 50, 50))
    alone = evaluate(model, data.test, data.protocol("test")).metrics()
    for name in ("hr@20", "mrr@20", "ndcg@10"):
        assert entry["test"][name]["value"] == pytest.approx(alone[name], abs=1e-9), name
