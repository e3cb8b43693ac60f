"""Issue 19's measurements, one command each (run them through the shared lock; docs/BENCHMARKS.md, "Scale"):

    python -m tools.bench.scale eval [--items 40000 --sessions 8000]      sharded vs rank-0-only evaluation (gloo)
    python -m tools.bench.scale prepare --events 33003944                 pandas vs streaming preparation
    python -m tools.bench.scale catalogue --items 1000000                 sampled softmax + chunked top-k at 1M items

`--out FILE` (before the subcommand) also writes the result to FILE with the command, start time and machine.

Each prints one JSON object: wall and CPU seconds, peak RSS, the load average before and after.
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCALE_DIR = Path("/tmp/recsys-scale")

EVAL_WORKER = """
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
torch.set_num_threads(1)
import torch.distributed as dist
from recsys.evaluate import evaluate
from recsys.models import REGISTRY
from recsys.sessions import Sessions

rank, world, store, out = int(sys.argv[1]), 2, sys.argv[2], sys.argv[5]
n_items, n_sessions = int(sys.argv[3]), int(sys.argv[4])
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
rng = np.random.default_rng(0)
valid = Sessions.from_lists([rng.integers(1, n_items, k) for k in rng.integers(2, 11, n_sessions)])
cls = REGISTRY["gru4rec"]
torch.manual_seed(0)
model = cls(cls.Config(emb_dim=64, hidden=100), n_items).eval()
times = {{}}
for mode in ("rank0", "sharded") * {repeats}:
    dist.barrier()
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "sharded":
        result = evaluate(model, valid, "all", shard=True)
    else:  # what training did before: rank 0 evaluates, the other rank waits for its numbers
        result = evaluate(model, valid, "all") if rank == 0 else None
        metrics = [result.metrics() if rank == 0 else None]
        dist.broadcast_object_list(metrics, src=0)
    dist.barrier()
    wall = torch.tensor([time.perf_counter() - started, time.process_time() - cpu], dtype=torch.float64)
    walls = [torch.zeros(2, dtype=torch.float64) for _ in range(world)]
    dist.all_gather(walls, wall)  # rank 0 keeps (wall, CPU) of both ranks
    times.setdefault(mode, []).append([w.tolist() for w in walls])
    if rank == 0:
        times.setdefault(mode + "_mrr20", result.metrics()["mrr@20"])
if rank == 0:
    json.dump({{"times": times, "cases": len(result.ranks)}}, open(out, "w"))
dist.destroy_process_group()
"""


def _usage() -> dict:
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"user_s": round(child.ru_utime, 1), "sys_s": round(child.ru_stime, 1),
            "peak_rss_mib_children": round(child.ru_maxrss / 1024)}


def bench_eval(n_items: int, n_sessions: int, repeats: int = 3) -> dict:
    """Evaluation of `n_sessions` random sessions over `n_items` by 2 gloo processes: rank 0 alone (the other waits,
    as before sharding) and sharded, alternated `repeats` times; the median wall (rank 0, barrier to barrier) and
    each rank's CPU seconds."""
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="recsys-scale-eval-") as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(EVAL_WORKER.format(root=str(ROOT), repeats=repeats))
        out = Path(tmp) / "result.json"
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, str(script), str(r), str(Path(tmp) / "store"), str(n_items),
                                   str(n_sessions), str(out)]) for r in (0, 1)]
        if [p.wait() for p in procs] != [0, 0]:
            raise SystemExit("the evaluation workers failed")
        result = json.loads(out.read_text())
    times = result["times"]
    median = {mode: float(np.median([run[0][0] for run in times[mode]])) for mode in ("rank0", "sharded")}
    cpu = {mode: [round(float(np.median([run[r][1] for run in times[mode]])), 2) for r in (0, 1)]
           for mode in ("rank0", "sharded")}
    return {"suite": "scale-eval", "items": n_items, "sessions": n_sessions, "cases": result["cases"],
            "model": "gru4rec emb 64 hidden 100, 1 torch thread per process, 2 gloo processes",
            "rank0_only_wall_s": round(median["rank0"], 2), "sharded_wall_s": round(median["sharded"], 2),
            "ratio": round(median["sharded"] / median["rank0"], 3), "cpu_s_per_rank": cpu, "runs": times,
            "same_mrr20": times["rank0_mrr20"] == times["sharded_mrr20"],
            "total_wall_s": round(time.perf_counter() - started, 1), **_usage(),
            "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()]}


RR_FILES = ("events", "item_properties_part1", "item_properties_part2", "category_tree")
CSV_COLUMNS = "user_id=visitorid,item_id=itemid,timestamp=timestamp,event=event"


def _rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its children (the command under /usr/bin/time), MiB; 0 once gone."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    except OSError:
        return 0
    return total + sum(_rss_mib(int(c)) for c in children)


def _timed(argv: list[str], cwd: Path = ROOT, limit_mib: float | None = None) -> dict:
    """Run argv under /usr/bin/time -v: wall, user and system seconds, peak RSS; the load average around it.
    `limit_mib`: killed (and reported as failed) when its resident memory passes this, to spare the machine."""
    load = os.getloadavg()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    over = None
    if limit_mib is not None:
        while proc.poll() is None:
            rss = _rss_mib(proc.pid)
            if rss > limit_mib:
                over = rss
                for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
                    os.kill(int(child), 9)
                break
            time.sleep(0.5)
    stdout, stderr = proc.communicate()
    if over is not None:
        raise SystemExit(f"{' '.join(argv)} passed {limit_mib:.0f} MiB ({over:.0f} MiB) and was stopped")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{stderr[-3000:]}")
    stats = {}
    for line in stderr.splitlines():
        name, _, value = line.strip().rpartition(": ")
        stats[name] = value
    h, m, sec = (["0"] * 2 + stats["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"))[-3:]
    return {"wall_s": round(int(h) * 3600 + int(m) * 60 + float(sec), 1),
            "user_s": float(stats["User time (seconds)"]), "sys_s": float(stats["System time (seconds)"]),
            "peak_rss_mib": round(int(stats["Maximum resident set size (kbytes)"]) / 1024),
            "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()],
            "stdout_tail": stdout.strip().splitlines()[-3:]}


def generate(n_events: int, folder: Path, parquet: bool) -> dict:
    """The synthetic RetailRocket-layout log (YooChoose's item and category counts scaled with the events), and its
    events as Parquet when asked; generated once per size."""
    params = dict(n_events=n_events, n_items=max(52_739, int(52_739 * (n_events / 33_003_944) ** 0.5)),
                  n_categories=340)
    spec = folder / "spec.json"
    if spec.is_file() and json.loads(spec.read_text()).get("params") == params:
        out = json.loads(spec.read_text())
    else:
        folder.mkdir(parents=True, exist_ok=True)
        code = ("import sys, json; from recsys.datasets.synthetic import generate_retailrocket_log as g; "
                "g(sys.argv[1], **json.loads(sys.argv[2]))")
        out = {"params": params, "generation": _timed([sys.executable, "-c", code, str(folder), json.dumps(params)])}
        spec.write_text(json.dumps(out))
    if parquet and "parquet" not in out:
        code = ("import sys, polars as pl; pl.scan_csv(sys.argv[1], schema_overrides={'visitorid': pl.String, "
                "'itemid': pl.String}).sink_parquet(sys.argv[2], engine='streaming')")
        out["parquet"] = _timed([sys.executable, "-c", code, str(folder / "events.csv"),
                                 str(folder / "events.parquet")])
        spec.write_text(json.dumps(out))
    out["bytes"] = {p.name: p.stat().st_size for p in folder.iterdir() if p.suffix in (".csv", ".parquet")}
    return out


def bench_prepare(n_events: int, formats: list[str], engines: list[str], keep: bool,
                  limit_mib: float | None = None) -> dict:
    folder = SCALE_DIR / f"log-{n_events}"
    log = generate(n_events, folder, "parquet" in formats)
    runs = []
    try:
        for fmt in formats:
            if fmt == "csv":
                args = ["--source", "retailrocket", "--input", *(str(folder / f"{n}.csv") for n in RR_FILES)]
            else:
                args = ["--source", "csv", "--input", str(folder / "events.parquet"), "--columns", CSV_COLUMNS,
                        "--timestamp-unit", "ms"]
            for engine in engines:
                out = SCALE_DIR / f"processed-{n_events}-{fmt}-{engine}"
                shutil.rmtree(out, ignore_errors=True)
                command = [sys.executable, "scripts/prepare_data.py", *args, "--out", str(out), "--engine", engine,
                           "--scratch", str(SCALE_DIR)]
                run = {"format": fmt, "engine": engine, **_timed(command, limit_mib=limit_mib)}
                run["command"] = "python scripts/prepare_data.py " + " ".join(
                    a.replace(str(folder) + "/", "") for a in args) + f" --out DIR --engine {engine}"
                meta = json.loads((out / "meta.json").read_text())
                run["stats"] = meta["stats"]
                runs.append(run)
                print(json.dumps(run), flush=True)
            same = [r for r in runs if r["format"] == fmt]
            if len(same) == 2:  # the two engines' folders hold the same data set
                from recsys.data import Dataset
                a, b = (Dataset.load(SCALE_DIR / f"processed-{n_events}-{fmt}-{e}") for e in engines)
                same[1]["same_as_" + engines[0]] = bool(
                    all(np.array_equal(a.split(s).items, b.split(s).items) and np.array_equal(
                        a.split(s).offsets, b.split(s).offsets) and a.info[s].equals(b.info[s])
                        for s in ("train", "valid", "test")) and a.items.equals(b.items))
                del a, b
            for engine in engines:
                shutil.rmtree(SCALE_DIR / f"processed-{n_events}-{fmt}-{engine}", ignore_errors=True)
    finally:  # never leave a processed folder (or, unless --keep, the log) behind
        for fmt in formats:
            for engine in engines:
                shutil.rmtree(SCALE_DIR / f"processed-{n_events}-{fmt}-{engine}", ignore_errors=True)
        for scratch in SCALE_DIR.glob("recsys-outofcore-*"):  # a streaming run stopped by --limit-mib
            shutil.rmtree(scratch, ignore_errors=True)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return {"suite": "scale-prepare", "events": n_events, "log": log, "runs": runs}


CATALOGUE_WORKER = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
from recsys.data import Dataset
from recsys.evaluate import chunk_cases, evaluate
from recsys.models import REGISTRY
from recsys.models.base import FitOptions
from recsys.sessions import Sessions
from recsys.train import fit
from recsys.trainconfig import TrainConfig

def rss(kind):
    for line in open("/proc/self/status"):
        if line.startswith(kind):
            return int(line.split()[1]) / 1024

n_items, n_train, negatives = {n_items}, {n_train}, {negatives}
rng = np.random.default_rng(0)
weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
weights /= weights.sum()
def split(n):
    return Sessions.from_lists([rng.choice(n_items, size=k, p=weights) + 1 for k in rng.integers(2, 11, n)])
train, valid = split(n_train), split(n_train // 10)
items = pd.DataFrame({{"item_id": pd.array(np.arange(1, n_items + 1).astype(str), dtype="string"),
                      "category_id": pd.array(["c"] * n_items, dtype="string"),
                      "popularity": np.bincount(train.items, minlength=n_items + 1)[1:]}})
data = Dataset(train, valid, valid, items, meta={{"protocols": {{"train": "all", "valid": "all", "test": "all"}}}})
base = rss("VmRSS")
out = {{"items": n_items, "train_sessions": n_train, "rss_data_mib": round(base)}}
cls = REGISTRY["gru4rec"]
model = cls(cls.Config(emb_dim=64, hidden=100), data.n_items)
params = sum(p.numel() for p in model.parameters())
out["parameters"] = params
started = time.perf_counter()
config = TrainConfig(batch_size=256, n_negatives=negatives, cpu_threads=1, val_max_cases=2000, schedule="constant")
result = fit(model, data, FitOptions(max_epochs=1, seed=0, progress=False, accelerator="cpu"), config)
out["fit_s"] = round(time.perf_counter() - started, 1)
out["rss_peak_after_fit_mib"] = round(rss("VmHWM"))
started = time.perf_counter()
ev = evaluate(model, valid, "all", max_cases=4000)
out["eval_s"] = round(time.perf_counter() - started, 1)
out["eval_cases"] = len(ev.ranks)
out["chunk_cases"] = chunk_cases(model)
out["rss_peak_mib"] = round(rss("VmHWM"))
out["val_ndcg10"] = result["best_valid"].get("ndcg@10")
print(json.dumps(out))
"""


def bench_catalogue(n_items: int, n_train: int, negatives: int) -> dict:
    """Sampled-softmax training (one epoch) and chunked full-ranking evaluation of GRU4Rec at `n_items` items."""
    with tempfile.TemporaryDirectory(prefix="recsys-scale-cat-") as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(CATALOGUE_WORKER.format(root=str(ROOT), n_items=n_items, n_train=n_train,
                                                  negatives=negatives))
        run = _timed([sys.executable, str(script)])
    result = json.loads(run.pop("stdout_tail")[-1])
    return {"suite": "scale-catalogue", **result, "process": run,
            "model": "gru4rec emb 64 hidden 100, 1 thread; batch 256, sampled softmax"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--items", type=int, default=40_000)
    e.add_argument("--sessions", type=int, default=8_000)
    e.add_argument("--repeats", type=int, default=3)
    r = sub.add_parser("prepare")
    r.add_argument("--events", type=int, default=33_003_944)
    r.add_argument("--formats", default="csv,parquet")
    r.add_argument("--engines", default="pandas,streaming")
    r.add_argument("--keep", action="store_true", help=f"keep the generated log under {SCALE_DIR}")
    r.add_argument("--limit-mib", type=float, help="stop a preparation whose memory passes this")
    c = sub.add_parser("catalogue")
    c.add_argument("--items", type=int, default=1_000_000)
    c.add_argument("--train", type=int, default=20_000, help="training sessions")
    c.add_argument("--negatives", type=int, default=2048)
    p.add_argument("--out", type=Path, help="also write the result (with the command, time and machine) to this JSON "
                                            "file, e.g. benchmarks/results/scale_prepare.json")
    args = p.parse_args(argv)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if args.what == "catalogue":
        result = bench_catalogue(args.items, args.train, args.negatives)
    elif args.what == "eval":
        result = bench_eval(args.items, args.sessions, args.repeats)
    else:
        result = bench_prepare(args.events, args.formats.split(","), args.engines.split(","), args.keep,
                               args.limit_mib)
    print(json.dumps(result, indent=1))
    if args.out:
        from tools.bench.common import machine

        command = "python -m tools.bench.scale " + " ".join(shlex.quote(a) for a in (
            sys.argv[1:] if argv is None else argv))
        args.out.write_text(json.dumps({"command": command, "started": started, "machine": machine(), **result},
                                       indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
