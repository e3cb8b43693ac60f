"""Benchmark suites behind `scripts/benchmark.py` (data, eval, serving, train, accuracy) and docs/BENCHMARKS.md.

    python scripts/benchmark.py SUITE [--quick]

Each suite returns plain numbers; `run_suite` adds the machine, the command line, a timestamp, load averages and
wall/CPU times and writes `benchmarks/results/<suite>.json` (`<suite>.quick.json` for `--quick`);
scripts/benchmark.py then regenerates docs/BENCHMARKS.md and the assets/bench_*.png plots from every results file.

Whatever is measured for peak memory runs in a child process (`python -m recsys.bench WORKER JSON`, which
prints one JSON line); the child's own wall time, CPU time and peak RSS come from `os.wait4`. The machine is
shared (2 cores, other jobs running), so every number carries CPU time beside wall time and the load average
before and after: a slow wall time with a normal CPU time means a busy machine, not a slow program.

Scratch files (generated logs, processed data, model folders, peer runs) go under benchmarks/work/ (git-ignored).
"""

import functools
import gc
import json
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
WORK_DIR = ROOT / "benchmarks" / "work"
PARAMS_DIR = ROOT / "benchmarks" / "params"
DOC = ROOT / "docs" / "BENCHMARKS.md"
ASSETS = ROOT / "assets"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "run_recbole.sh"
SUITES = ("data", "eval", "serving", "train", "accuracy")
MIB = 2**20


def shared_data_dir() -> Path:
    """../shared/data beside the repository, or $RECSYS_SHARED_DATA."""
    return Path(os.environ.get("RECSYS_SHARED_DATA") or ROOT.parent / "shared" / "data")


@dataclass
class Options:
    quick: bool = False
    results_dir: Path = RESULTS_DIR
    work_dir: Path = WORK_DIR
    shared_data: Path = field(default_factory=shared_data_dir)
    models: tuple[str, ...] | None = None  # serving / accuracy filter
    datasets: tuple[str, ...] | None = None  # accuracy filter
    max_epochs: int | None = None  # accuracy: neural models
    time_budget_min: float | None = None  # accuracy: per data set, models not started within it are skipped
    refit: bool = True  # accuracy: baselines refitted on train + valid after validation (as the ANCHORS runs)
    app: bool = True  # serving: the gradio_client round trip
    epochs: int | None = None  # train: epochs per run (default 2; quick 1)
    threads: int | None = None  # train: torch intra-op threads (None: torch's default)
    peers: bool = False  # train: start the RecBole runs in the background (nohup) when they have no results
    peers_only: bool = False  # train: keep our numbers from the last train result, refresh the RecBole part
    repeats: int | None = None  # data: preparation runs per size
    command: str = ""  # the command line (set by run_suite), kept with results merged across runs


# ---------------------------------------------------------------------------------------------------------------
# measuring


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """CPU, cores, memory and library versions of this machine."""
    import numpy
    import pandas
    import torch

    cpu, mem_gib = platform.processor() or platform.machine(), None
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem_gib = round(mem_kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    try:
        import polars

        polars_version = polars.__version__
    except ImportError:
        polars_version = None
    return {"cpu": cpu, "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
            "memory_gib": mem_gib, "os": platform.platform(terse=True), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": numpy.__version__,
            "pandas": pandas.__version__, "polars": polars_version, "malloc": os.environ.get("LD_PRELOAD") or "glibc"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Wall and CPU seconds of a block (this process, and children it waited for), with load averages."""

    def __enter__(self):
        self.load_before = load_avg()
        self._wall, self._cpu, self._child = time.perf_counter(), time.process_time(), _children_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.children_cpu = _children_cpu() - self._child
        self.load_after = load_avg()
        return False

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3),
                "children_cpu_s": round(self.children_cpu, 3),
                "load_before": self.load_before, "load_after": self.load_after}


def rss_mib(field_name: str = "VmRSS") -> float | None:
    """This process's resident memory (VmRSS) or its peak so far (VmHWM), MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_child(argv: list[str], timeout: float | None = None, env: dict | None = None) -> dict:
    """Run `argv` in ROOT; return the JSON its stdout ends with and the child's own wall, CPU and peak RSS.

    The child is waited for with os.wait4, whose rusage is that child's alone (peak RSS included).
    """
    with tempfile.TemporaryDirectory(prefix="recsys-bench-") as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        killed = threading.Event()
        load_before = load_avg()
        start = time.perf_counter()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err,
                                    env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

            def kill():
                killed.set()
                proc.kill()

            timer = threading.Timer(timeout, kill) if timeout else None
            if timer:
                timer.start()
            _, status, usage = os.wait4(proc.pid, 0)
            if timer:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    result = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
            break
    out = {"result": result, "returncode": proc.returncode, "timed_out": killed.is_set(),
           "wall_s": round(wall, 3), "user_s": round(usage.ru_utime, 3), "sys_s": round(usage.ru_stime, 3),
           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "load_before": load_before, "load_after": load_avg()}
    if proc.returncode != 0 or result is None:
        out["error"] = f"timed out after {timeout:.0f} s" if killed.is_set() else stderr[-3000:]
    return out


def worker_argv(name: str, params: dict) -> list[str]:
    return [sys.executable, "-m", "recsys.bench", name, json.dumps(params, default=str)]


def percentiles_ms(seconds: list[float]) -> dict:
    ms = 1000 * np.asarray(seconds)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(ms.mean()), 3), "max_ms": round(float(ms.max()), 3), "n": len(ms)}


def check(what: str, measured, target, unit: str, le: bool = True, note: str = "") -> dict:
    """One target line: measured <= target (or >=), with the numbers, for the report's summary."""
    met = None if measured is None else (measured <= target if le else measured >= target)
    return {"what": what, "measured": measured, "target": target, "unit": unit, "le": le, "met": met, "note": note}


# ---------------------------------------------------------------------------------------------------------------
# suite: data preparation

# RetailRocket: 2,756,101 events, 235,061 items, 1,669 categories, 1,407,580 visitors. YooChoose clicks:
# 33,003,944 events, 52,739 items (the generator needs visitors; it keeps its default n_events / 8).
DATA_SIZES = {
    "retailrocket-size": dict(n_events=2_756_101, n_items=235_061, n_categories=1_669, n_visitors=1_407_580),
    "yoochoose-size": dict(n_events=33_003_944, n_items=52_739, n_categories=340),
}
DATA_SIZES_QUICK = {
    "retailrocket-size": dict(n_events=40_000, n_items=3_000, n_categories=60, n_visitors=20_000),
    "yoochoose-size": dict(n_events=80_000, n_items=2_000, n_categories=60),
}
DATA_TARGETS = {"retailrocket-size": 15.0, "yoochoose-size": 180.0}  # seconds
DATA_MEMORY_TARGET_MIB = 8 * 1024


def _generated_log(opts: Options, name: str, params: dict) -> dict:
    """The synthetic RetailRocket-layout log of this size on disk (generated once, in a child; then reused)."""
    folder = opts.work_dir / "logs" / (name + ("-quick" if opts.quick else ""))
    spec_path = folder / "spec.json"
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text())
        if spec.get("params") == params and all(Path(p).is_file() for p in spec.get("paths", {}).values()):
            return {**spec, "cached": True}
    child = run_child(worker_argv("generate", {"out": str(folder), "params": params}))
    if child.get("error"):
        raise RuntimeError(f"generating the {name} log failed: {child['error']}")
    paths = child["result"]["paths"]
    spec = {"params": params, "paths": paths, "bytes": {k: Path(p).stat().st_size for k, p in paths.items()},
            "generation": {k: child[k] for k in ("wall_s", "user_s", "sys_s", "peak_rss_mib", "load_before",
                                                 "load_after")},
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    spec_path.write_text(json.dumps(spec, indent=2))
    return {**spec, "cached": False}


def suite_data(opts: Options) -> dict:
    sizes = DATA_SIZES_QUICK if opts.quick else DATA_SIZES
    out, checks = {}, []
    for name, params in sizes.items():
        log = _generated_log(opts, name, params)
        inputs = [log["paths"][k] for k in ("events", "item_properties_part1", "item_properties_part2",
                                            "category_tree")]
        processed = opts.work_dir / "processed" / (name + ("-quick" if opts.quick else ""))
        repeats = opts.repeats or (2 if name == "retailrocket-size" and not opts.quick else 1)
        runs = []
        for _ in range(repeats):
            child = run_child(worker_argv("prepare", {"inputs": inputs, "out": str(processed)}))
            if child.get("error"):
                raise RuntimeError(f"preparing the {name} log failed: {child['error']}")
            result = child.pop("result")
            phases = result["phases"]
            result["prepare_wall_s"] = round(sum(phases[k]["wall_s"] for k in ("read", "build", "save")), 3)
            result["prepare_cpu_s"] = round(sum(phases[k]["cpu_s"] for k in ("read", "build", "save")), 3)
            runs.append({**child, **result})
            print(f"[data] {name}: read+build+save {result['prepare_wall_s']:.1f} s wall / "
                  f"{result['prepare_cpu_s']:.1f} s CPU; process {child['wall_s']:.1f} s wall, "
                  f"{child['user_s'] + child['sys_s']:.1f} s CPU, peak {child['peak_rss_mib']:.0f} MiB, "
                  f"load {child['load_before']}", flush=True)
        best = min(runs, key=lambda r: r["prepare_wall_s"])
        out[name] = {"generator": params, "generation": {**log["generation"], "cached": log["cached"],
                                                         "generated_at": log["generated_at"],
                                                         "bytes": log["bytes"]},
                     "command": "python scripts/prepare_data.py --source retailrocket --input " + " ".join(
                         Path(p).name for p in inputs) + " --out DIR",
                     "runs": runs, "best_prepare_wall_s": best["prepare_wall_s"],
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
        if not opts.quick:
            checks.append(check(f"prepare {name} log ({params['n_events']:,} events): read + build + save",
                                best["prepare_wall_s"], DATA_TARGETS[name], "s",
                                note=f"{best['prepare_cpu_s']:.1f} s CPU; load {best['load_before'][0]}"))
            checks.append(check(f"prepare {name} log, peak memory", out[name]["peak_rss_mib"],
                                DATA_MEMORY_TARGET_MIB, "MiB"))
    return {"sizes": out, "checks": checks}


def worker_generate(params: dict) -> dict:
    from recsys.datasets.synthetic import generate_retailrocket_log

    paths = generate_retailrocket_log(params["out"], **params["params"])
    return {"paths": {k: str(v) for k, v in paths.items()}}


def worker_prepare(params: dict) -> dict:
    """`scripts/prepare_data.py --source retailrocket` itself, with its three phases timed from outside."""
    sys.path.insert(0, str(ROOT / "scripts"))
    started = time.perf_counter()
    import prepare_data  # the script's main(); imports recsys.prepare

    import recsys.data
    import recsys.prepare

    imported = time.perf_counter() - started
    phases = {}

    def timed(name, fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = {"wall_s": round(time.perf_counter() - wall, 3),
                                "cpu_s": round(time.process_time() - cpu, 3), "rss_peak_mib": rss_mib("VmHWM")}
        return inner

    recsys.prepare.load_events = timed("read", recsys.prepare.load_events)
    recsys.prepare.build_dataset = timed("build", recsys.prepare.build_dataset)
    recsys.data.Dataset.save = timed("save", recsys.data.Dataset.save)
    rc = prepare_data.main(["--source", "retailrocket", "--input", *params["inputs"], "--out", params["out"]])
    if rc != 0:
        raise RuntimeError(f"prepare_data exited with {rc}")
    meta = json.loads((Path(params["out"]) / "meta.json").read_text())
    return {"imports_s": round(imported, 3), "phases": phases, "raw_events": meta.get("raw_events"),
            "events_after_filter": meta.get("events_after_filter"), "stats": meta.get("stats")}


# ---------------------------------------------------------------------------------------------------------------
# suite: evaluation throughput

EVAL = dict(n_items=43_000, n_cases=60_000, dim=64, batch_sizes=(1024, 4096))
EVAL_QUICK = dict(n_items=2_000, n_cases=3_000, dim=16, batch_sizes=(256, 1024))
EVAL_TARGET_S = 30.0


def _dot_model(n_items: int, dim: int):
    """A Recommender whose scoring is one matrix product: last item's embedding @ every item embedding."""
    import torch
    from torch import nn

    from recsys.models.base import Recommender

    @dataclass(frozen=True)
    class DotConfig:
        dim: int = 64

    class LastItemDot(Recommender):
        name, Config = "bench-dot", DotConfig

        def __init__(self, config, n_items):
            super().__init__(config, n_items)
            self.emb = nn.Embedding(n_items, config.dim)

        def score(self, sessions):
            last = torch.tensor([int(s[-1]) for s in sessions])
            return self.emb(last) @ self.emb.weight.T  # (B, n_items)

    torch.manual_seed(0)
    return LastItemDot(DotConfig(dim), n_items)


def suite_eval(opts: Options) -> dict:
    spec = EVAL_QUICK if opts.quick else EVAL
    runs, checks = [], []
    for bs in spec["batch_sizes"]:
        params = {k: spec[k] for k in ("n_items", "n_cases", "dim")} | {"batch_size": bs}
        child = run_child(worker_argv("eval", params))
        if child.get("error"):
            raise RuntimeError(f"eval worker failed: {child['error']}")
        result = child.pop("result")
        run = {**params, **child, **result,
               "score_chunk_mib": round(bs * (spec["n_items"] + 1) * 4 / MIB, 1)}
        runs.append(run)
        print(f"[eval] batch {bs}: evaluate {result['evaluate_wall_s']:.1f} s wall / {result['evaluate_cpu_s']:.1f} s "
              f"CPU, peak RSS {child['peak_rss_mib']:.0f} MiB (before evaluate {result['rss_before_mib']:.0f}), "
              f"load {child['load_before']}", flush=True)
    default = next((r for r in runs if r["batch_size"] == 1024), runs[0])
    if not opts.quick:
        checks.append(check(f"evaluate {spec['n_cases']:,} prefixes x {spec['n_items']:,} items (batch "
                            f"{default['batch_size']})", default["evaluate_wall_s"], EVAL_TARGET_S, "s",
                            note=f"{default['evaluate_cpu_s']:.1f} s CPU on 2 threads; load "
                                 f"{default['load_before'][0]}"))
    return {"spec": {k: v for k, v in spec.items() if k != "batch_sizes"}, "runs": runs, "checks": checks,
            "model": f"embedding of the last item @ all item embeddings (random weights), dim {spec['dim']}",
            "call": "recsys.evaluate.evaluate(model, sessions, 'last', batch_size=B)"}


def worker_eval(params: dict) -> dict:
    import torch

    from recsys.evaluate import evaluate
    from recsys.sessions import Sessions

    rng = np.random.default_rng(0)
    n_items, n_cases = params["n_items"], params["n_cases"]
    lengths = rng.integers(2, 21, n_cases)  # prefix 1..19 items + the target
    offsets = np.zeros(n_cases + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    sessions = Sessions(rng.integers(1, n_items + 1, offsets[-1]).astype(np.int32), offsets)
    model = _dot_model(n_items + 1, params["dim"])
    gc.collect()
    before, hwm_before = rss_mib(), rss_mib("VmHWM")
    with Timer() as t:
        result = evaluate(model, sessions, "last", batch_size=params["batch_size"])
    metrics = result.metrics()
    return {"evaluate_wall_s": round(t.wall, 3), "evaluate_cpu_s": round(t.cpu, 3), "cases": int(metrics["cases"]),
            "cases_per_s": round(metrics["cases"] / t.wall, 1), "rss_before_mib": before,
            "hwm_before_mib": hwm_before, "hwm_after_mib": rss_mib("VmHWM"), "torch_threads": torch.get_num_threads(),
            "hr@20": round(metrics["hr@20"], 5), "load_before": t.load_before, "load_after": t.load_after}


# ---------------------------------------------------------------------------------------------------------------
# suite: serving latency

SERVING_SIZES = {"10k": 10_000, "40k": 40_000, "1M": 1_000_000}
SERVING_SIZES_QUICK = {"1k": 1_000}
SERVING_SINGLE = 200  # single-session calls per model (after 5 warm-up calls)
SERVING_THREADS = 1  # torch intra-op threads while timing: 2 threads on 2 busy cores make one call 10-20x slower
SERVING_TARGETS = {"p50_ms": 5.0, "p99_ms": 20.0}  # at 40k
APP_TARGET_MS = 150.0
CHILD_TIMEOUT_1M_S = 300  # per model at 1M items: load, fit and the timed calls


def _synthetic_processed(opts: Options, n_items: int) -> Path:
    """A processed synthetic data set with about `n_items` items (kept in benchmarks/work, built once)."""
    path = opts.work_dir / "serving" / f"synthetic-{n_items}"
    if not (path / "meta.json").is_file():
        child = run_child(worker_argv("serving_data", {"n_items": n_items, "out": str(path)}))
        if child.get("error"):
            raise RuntimeError(f"building the {n_items}-item synthetic data set failed: {child['error']}")
    return path


def worker_serving_data(params: dict) -> dict:
    from recsys.data import PrepareConfig, build_dataset
    from recsys.datasets.synthetic import generate_events

    n = params["n_items"]
    if n >= 500_000:  # the generator's world at this size costs minutes; a direct random catalogue does
        data = _random_catalogue(n)
    else:
        # ~40 events per item; +10% items because the Zipf tail leaves some items unseen
        events = generate_events(n_events=40 * n, n_items=int(1.1 * n), n_categories=max(60, n // 200), seed=0)
        data = build_dataset(events, PrepareConfig(min_item_support=1, test_days=3.0, valid_days=3.0),
                             source="synthetic")
    data.save(params["out"])
    return {"n_items": data.n_items - 1}


def _random_catalogue(n_items: int, n_sessions: int = 500_000, seed: int = 0):
    """A data set over exactly `n_items` items: sessions of 2-10 items near a popular 'topic' item (so kNN
    models find co-occurrences), topics drawn with a power-law popularity. For the 1M-item serving point."""
    from recsys.data import Dataset
    from recsys.sessions import Sessions

    rng = np.random.default_rng(seed)

    def sessions(n, lo, hi):
        lengths = rng.integers(lo, hi + 1, n)
        topic = (n_items * rng.random(n) ** 2.5).astype(np.int64)
        items = (np.repeat(topic, lengths) + rng.integers(0, 50, lengths.sum())) % n_items + 1
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Sessions(items.astype(np.int32), offsets)

    train, valid, test = sessions(n_sessions, 2, 10), sessions(2_000, 2, 10), sessions(2_000, 5, 20)
    meta = {"source": "random-catalogue", "protocols": {"train": "all", "valid": "all", "test": "all"},
            "dropped_unknown_items": {}}
    return Dataset(train, valid, test, _plain_items(n_items, train), meta)


def _serving_sessions(data, n: int, rng) -> list[np.ndarray]:
    """`n` sessions of 5-20 items: real test (or valid, train) sessions cut to a random length, else random."""
    out = []
    for split in (data.test, data.valid, data.train):
        long = np.flatnonzero(split.lengths >= 5)
        for i in rng.permutation(long)[: n - len(out)]:
            s = split[int(i)]
            out.append(np.asarray(s[-int(rng.integers(5, min(20, len(s)) + 1)):], dtype=np.int64))
        if len(out) >= n:
            break
    while len(out) < n:
        out.append(rng.integers(1, data.n_items, int(rng.integers(5, 21))))
    return out


def suite_serving(opts: Options) -> dict:
    from recsys.models import REGISTRY

    sizes = SERVING_SIZES_QUICK if opts.quick else SERVING_SIZES
    models = list(opts.models or REGISTRY)
    n_single = 10 if opts.quick else SERVING_SINGLE
    results, checks = {}, []
    for label, n in sizes.items():
        path = _synthetic_processed(opts, n)
        base = {"data": str(path), "n_single": n_single, "batch_size": 32 if opts.quick else int(
                    min(256, max(16, 2**28 // (4 * n)))), "n_batches": 1 if opts.quick else 5,
                "threads": SERVING_THREADS, "n_default_threads": 0 if opts.quick else 50}
        per_model = n >= 500_000  # one child per model: own memory, and a fit that runs too long is cut off
        groups = [[m] for m in models] if per_model else [models]
        entries, n_real = {}, n
        for group in groups:
            child = run_child(worker_argv("serving", {**base, "models": group}),
                              timeout=CHILD_TIMEOUT_1M_S if per_model else None)
            if child.get("error"):
                reason = child["error"] if not child["timed_out"] else (
                    f"skipped: fitting on the synthetic {label}-item data and timing did not finish within "
                    f"{CHILD_TIMEOUT_1M_S} s on this machine")
                for m in group:
                    entries[m] = {"skipped": reason.strip().splitlines()[-1][:300]}
                continue
            for m, entry in child["result"]["models"].items():
                entries[m] = {**entry, **({"child_peak_rss_mib": child["peak_rss_mib"]} if per_model else {})}
            n_real = child["result"]["n_items"]
        results[label] = {"n_items": n_real, "batch_size": base["batch_size"], "models": entries}
        for m, e in entries.items():
            msg = e.get("skipped") or (f"p50 {e['single']['p50_ms']:.2f} ms, p99 {e['single']['p99_ms']:.2f} ms, "
                                       f"batch {e['batch']['sessions_per_s']:.0f} sessions/s")
            print(f"[serving] {label} {m}: {msg}", flush=True)
        if label == "40k":
            for m, e in entries.items():
                if "single" in e:
                    note = (f"{e['single']['cpu_ms_per_call']:.2f} ms CPU per call, {SERVING_THREADS} thread; "
                            f"load {e['single']['load_before'][0]}")
                    checks.append(check(f"recommend() p50, {m}, 40k items", e["single"]["p50_ms"],
                                        SERVING_TARGETS["p50_ms"], "ms", note=note))
                    checks.append(check(f"recommend() p99, {m}, 40k items", e["single"]["p99_ms"],
                                        SERVING_TARGETS["p99_ms"], "ms", note=note))
    out = {"sizes": results, "checks": checks, "n_single": n_single,
           "session_lengths": "5-20 items (test sessions of the synthetic data cut to a random length)",
           "call": "recsys.models.base.recommend(model, session, k=20) (repeats allowed, the library default)",
           "threads": f"torch.set_num_threads({SERVING_THREADS}) for the timed calls; 'default threads' column: "
                      "torch's default on this machine (2), 50 calls",
           "weights": "neural models: random initial weights (REGISTRY[name](Config(), n_items)), not trained; "
                      "the others: fitted on the synthetic data of that size"}
    if opts.app:
        out["app"] = app_round_trip(opts)
        if out["app"].get("p50_ms") is not None and not opts.quick:
            checks.append(check("app round trip (gradio_client, /recommend) p50", out["app"]["p50_ms"],
                                APP_TARGET_MS, "ms", note=f"load {out['app']['load_after'][0]} after the calls; "
                                                          "the handler alone: see the serving section"))
        out["first_start"] = first_start(opts)
        fs = out["first_start"]
        if fs.get("wall_s") is not None:
            fits = ", ".join(f"{m} {t:.0f} s" for m, t in fs["fit_s"].items() if t >= 1)
            checks.append(check("first start on a fresh machine (python app.py until it serves)", fs["wall_s"],
                                FIRST_START_TARGET_S, "s",
                                note=f"{fs['cpu_s']:.0f} s CPU; load {fs['load_before'][0]} before, "
                                     f"{fs['load_after'][0]} after; fits over 1 s: {fits or 'none'}"))
    else:
        out["app"] = out["first_start"] = {"skipped": "not requested (--no-app)"}
    return out


def worker_serving(params: dict) -> dict:
    import torch

    from recsys.data import Dataset
    from recsys.models import REGISTRY, recommend

    data = Dataset.load(params["data"])
    default_threads = torch.get_num_threads()
    torch.set_num_threads(params["threads"])
    rng = np.random.default_rng(0)
    sessions = _serving_sessions(data, params["n_single"], rng)
    batch = _serving_sessions(data, params["batch_size"], rng)
    out = {}
    for name in params["models"]:
        cls = REGISTRY[name]
        gc.collect()
        rss_before = rss_mib()
        entry = {"trained": not cls.trains_in_epochs}
        try:
            torch.manual_seed(0)
            with Timer() as t:
                model, weights = _servable(cls, data)
            if weights:
                entry["weights"] = weights
            if not cls.trains_in_epochs:
                entry["fit"] = t.as_dict()
            model.eval()
            entry["model_rss_mib"] = round(rss_mib() - rss_before, 1)
            for s in sessions[:5]:  # warm-up
                recommend(model, s, k=20)
            times = []
            cpu = time.process_time()
            load_before = load_avg()
            for s in sessions:
                t0 = time.perf_counter()
                recommend(model, s, k=20)
                times.append(time.perf_counter() - t0)
            entry["single"] = {**percentiles_ms(times), "cpu_ms_per_call": round(
                1000 * (time.process_time() - cpu) / len(sessions), 3), "load_before": load_before,
                "load_after": load_avg()}
            recommend(model, batch[:8], k=20)
            with Timer() as t:
                for _ in range(params["n_batches"]):
                    recommend(model, batch, k=20)
            entry["batch"] = {"batch_size": len(batch), "batches": params["n_batches"],
                              "sessions_per_s": round(len(batch) * params["n_batches"] / t.wall, 1),
                              "cpu_s": round(t.cpu, 3), "wall_s": round(t.wall, 3), "load_after": t.load_after}
            if params["n_default_threads"]:
                torch.set_num_threads(default_threads)
                times = []
                for s in sessions[: params["n_default_threads"]]:
                    t0 = time.perf_counter()
                    recommend(model, s, k=20)
                    times.append(time.perf_counter() - t0)
                torch.set_num_threads(params["threads"])
                entry["single_default_threads"] = {**percentiles_ms(times), "threads": default_threads}
        except Exception as err:  # one model failing must not hide the others
            entry = {"skipped": f"failed: {type(err).__name__}: {err}"[:300]}
        out[name] = entry
        model = None
    return {"n_items": data.n_items - 1, "models": out, "torch_threads": params["threads"],
            "default_threads": default_threads}


def _servable(cls, data):
    """A model of `cls` ready to serve, quickly: baselines fitted on `data`, neural models with random weights
    (say so: returned as the second item), a hybrid of both with equal weights."""
    from recsys.models import FitOptions

    if cls.trains_in_epochs:
        model = cls(cls.Config(), data.n_items)
        _random_weights(model, data)
        return model, "random (not trained)"
    parts = getattr(cls.Config(), "components", ())
    config = cls.Config(weights=(1 / len(parts),) * len(parts)) if parts else cls.Config()
    model = cls(config, data.n_items)
    if not parts:
        model.fit(data, FitOptions(progress=False))
        return model, None

    def fit_part(_, part, options):
        return _random_weights(part, data) if part.trains_in_epochs else part.fit(data, options)

    model.fit(data, FitOptions(progress=False), fit_part=fit_part)
    neural = [p for p in parts if model.part(p).trains_in_epochs]
    return model, f"equal weights; {', '.join(neural)} random (not trained)" if neural else None


def _random_weights(model, data) -> None:
    """A neural model as `fit` would start it (category table sized to the data), without training."""
    if hasattr(model, "set_categories"):
        model.set_categories(data.item_categories())
        model.init_weights()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APP_MODELS = ("pop", "itemknn", "gru4rec", "sasrec")
APP_MODELS_QUICK = ("pop", "sasrec")


def app_round_trip(opts: Options) -> dict:
    """p50 / p99 of `/recommend` through gradio_client against `python app.py` in a subprocess."""
    if not (ROOT / "app.py").is_file():
        return {"skipped": "app.py does not exist yet"}
    try:
        import gradio_client
    except ImportError:
        return {"skipped": "gradio_client is not installed"}
    label = "1k" if opts.quick else "40k"
    n = (SERVING_SIZES_QUICK if opts.quick else SERVING_SIZES)[label]
    app_models = APP_MODELS_QUICK if opts.quick else APP_MODELS
    data_dir = _synthetic_processed(opts, n)
    ckpt = opts.work_dir / "app" / f"checkpoints-{label}"
    if not all((ckpt / m / "config.json").is_file() for m in app_models):
        child = run_child(worker_argv("app_models", {"data": str(data_dir), "out": str(ckpt),
                                                     "models": list(app_models)}))
        if child.get("error"):
            return {"skipped": f"could not build the app's model folders: {child['error'][-300:]}"}
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "RECSYS_CHECKPOINTS": str(ckpt), "RECSYS_DATA": str(data_dir), "RECSYS_MODELS": "",
           "RECSYS_SAMPLES": str(ckpt / "sample_sessions.json"), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    log_path = opts.work_dir / "app" / "app.log"
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    return {"skipped": f"app.py exited with {proc.returncode}: "
                                       f"{log_path.read_text()[-500:]}"}
                if time.perf_counter() - started > 240:
                    return {"skipped": "app.py did not answer within 240 s"}
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            startup = time.perf_counter() - started
            client = gradio_client.Client(url, verbose=False)
            api = client.view_api(return_format="dict", print_info=False)
            endpoint = api.get("named_endpoints", {}).get("/recommend")
            if endpoint is None:
                return {"skipped": f"app.py has no /recommend endpoint (has {sorted(api.get('named_endpoints', {}))})"}
            params = [p.get("parameter_name") for p in endpoint.get("parameters", [])]
            from recsys.data import Dataset

            data = Dataset.load(data_dir)
            vocab = data.vocab
            rng = np.random.default_rng(1)
            n_calls = 3 if opts.quick else 60
            texts = [", ".join(vocab.decode(s)) for s in _serving_sessions(data, n_calls, rng)]
            per_model = {}
            for model in app_models:
                values = {"model": model, "session": texts[0], "k": 20, "category": None, "exclude_seen": False}
                args = [values.get(p) for p in params]
                first = client.predict(*args, api_name="/recommend")  # warm-up: loads the model
                times = []
                for text in texts:
                    values["session"] = text
                    args = [values.get(p) for p in params]
                    t0 = time.perf_counter()
                    client.predict(*args, api_name="/recommend")
                    times.append(time.perf_counter() - t0)
                status = first[2] if isinstance(first, (list, tuple)) and len(first) > 2 else None
                per_model[model] = {**percentiles_ms(times), "status": str(status)[:160] if status else None}
                print(f"[serving] app /recommend {model}: p50 {per_model[model]['p50_ms']:.1f} ms, "
                      f"p99 {per_model[model]['p99_ms']:.1f} ms", flush=True)
            all_times = [m["p50_ms"] for m in per_model.values()]
            out = {"catalogue": label, "n_items": data.n_items - 1, "startup_s": round(startup, 1),
                   "calls_per_model": n_calls, "parameters": params, "models": per_model,
                   "p50_ms": round(float(np.median(all_times)), 3), "load_after": load_avg(),
                   "note": "p50 is the median over models of each model's p50; client and server share the CPU"}
        except Exception as err:
            return {"skipped": f"round trip failed: {type(err).__name__}: {err}"[:500]}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # the handler alone, in-process (no Gradio, no HTTP): what the round trip adds on top of it
    child = run_child(worker_argv("app_handler", {**{k: env[k] for k in ("RECSYS_CHECKPOINTS", "RECSYS_DATA",
                                                                         "RECSYS_SAMPLES")},
                                                  "texts": texts, "models": list(app_models)}))
    out["handler"] = child["result"] if child.get("result") else {"error": (child.get("error") or "")[-300:]}
    return out


FIRST_START_TARGET_S = 180.0
FIRST_START_TIMEOUT_S = 900


def first_start(opts: Options) -> dict:
    """`python app.py` on a fresh machine, timed from launch until its page answers: no processed data and no
    model folder, so it generates the synthetic data, trains the default models (recsys.pipeline
    .ensure_default_models) and then serves. Runs in an empty folder under the work dir (its cwd), with
    RECSYS_CHECKPOINTS and RECSYS_DATA pointing inside it. Not run with --quick (it trains the full default)."""
    if opts.quick:
        return {"skipped": "not run with --quick (it trains the full default set)"}
    root = opts.work_dir / "first_start"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RECSYS_SAMPLES", "RECSYS_TORCH_THREADS")}
    env.update({"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "RECSYS_CHECKPOINTS": str(root / "checkpoints"),
                "RECSYS_DATA": str(root / "data" / "processed" / "synthetic"), "RECSYS_MODELS": "",
                "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
    log_path = root / "app.log"
    load_before = load_avg()
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=root, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        wall = None
        try:
            while wall is None and proc.poll() is None and time.perf_counter() - started < FIRST_START_TIMEOUT_S:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                        if response.status == 200:
                            wall = time.perf_counter() - started
                except OSError:
                    time.sleep(0.5)
        finally:
            load_after = load_avg()
            if proc.poll() is None:
                proc.terminate()
            try:
                _, _, usage = os.wait4(proc.pid, 0)  # this child's own CPU time (a second of serving included)
            except ChildProcessError:
                usage = None
    text = log_path.read_text(errors="replace")
    if wall is None:
        reason = (f"exited with {proc.returncode}" if proc.returncode not in (None, -15) else
                  f"did not serve within {FIRST_START_TIMEOUT_S} s")
        return {"skipped": f"python app.py {reason}: {text[-400:]}"}
    fits = {m: float(t) for m, t in re.findall(r"^\[([\w-]+)\] ([\d.]+)s ", text, flags=re.M)}
    models = sorted(p.parent.name for p in (root / "checkpoints").glob("*/config.json"))
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1) if usage else None,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1) if usage else None, "models": models, "fit_s": fits,
            "built_data": "Generating the synthetic event log" in text, "load_before": load_before,
            "load_after": load_after, "command": "python app.py (fresh: no data/processed, no checkpoints)"}


def worker_app_handler(params: dict) -> dict:
    """recsys.app_logic.recommend_view (what app.py's /recommend calls) timed in-process, at torch's default
    thread count (as app.py runs) and at 1 thread."""
    import torch

    from recsys import app_logic

    service = app_logic.AppService.from_env({**params, "RECSYS_MODELS": ""})
    out = {}
    for threads in (torch.get_num_threads(), 1):
        torch.set_num_threads(threads)
        for model in params["models"]:
            app_logic.recommend_view(service, model, params["texts"][0], 20, None, False, None)  # loads it
            times = []
            for text in params["texts"]:
                t0 = time.perf_counter()
                app_logic.recommend_view(service, model, text, 20, None, False, None)
                times.append(time.perf_counter() - t0)
            out[f"{model}, {threads} thread{'s' if threads > 1 else ''}"] = percentiles_ms(times)
    return {"models": out, "load_after": load_avg()}


def worker_app_models(params: dict) -> dict:
    """Model folders for the app: baselines fitted on the data, neural models with random weights."""
    import torch

    from recsys.data import Dataset
    from recsys.folder import save_folder
    from recsys.models import REGISTRY

    data = Dataset.load(params["data"])
    for name in params["models"]:
        cls = REGISTRY[name]
        torch.manual_seed(0)
        model, weights = _servable(cls, data)
        save_folder(model, Path(params["out"]) / name, data.items,
                    train={"note": "benchmark folder: " + (weights or "fitted")})
    return {"models": params["models"]}


# ---------------------------------------------------------------------------------------------------------------
# suite: training speed (ours vs RecBole 1.2.1 on ml-100k)

# The fixed configurations: RecBole 1.2.1's defaults for each model where ours has the same knob.
TRAIN_MODELS = {
    "sasrec": {"params": {"max_len": 50, "dim": 64, "n_layers": 2, "n_heads": 2, "dropout": 0.2},
               "recbole": "SASRec", "recbole_config": "hidden_size 64, 2 layers, 2 heads, inner 256, max length 50, "
                                                     "dropout 0.5, CE loss, batch 2048 prefixes, lr 1e-3"},
    "gru4rec": {"params": {"max_len": 50, "emb_dim": 64, "hidden": 128, "n_layers": 1, "emb_dropout": 0.3,
                           "hidden_dropout": 0.3},
                "recbole": "GRU4Rec", "recbole_config": "embedding 64, hidden 128, 1 layer, dropout 0.3, CE loss, "
                                                       "batch 2048 prefixes, lr 1e-3"},
}
TARGETS_PER_STEP = 2048  # RecBole's train_batch_size: prefixes (= target positions) per optimiser step
# From ../shared/peers/recbole/README.md and ../shared/data/ANCHORS.md (same machine kind, measured 2026-11-22).
RECBOLE_REFERENCE = {
    "SASRec": {"median_s_per_epoch_tcmalloc": 127.0, "epoch0_s_anomaly_as_shipped_glibc": 393.5,
               "epoch0_s_anomaly_off_glibc": 252.8, "epoch0_s_anomaly_as_shipped_tcmalloc": 189.9,
               "epoch0_s_anomaly_off_tcmalloc": 127.9},
    "GRU4Rec": {"median_s_per_epoch_tcmalloc": 35.0},
}


def _ml100k_sequences(opts: Options) -> tuple[Path | None, str]:
    """ml-100k u.data -> `user i1 i2 ...` lines by timestamp (file order on ties), written once to the work dir."""
    u_data = opts.shared_data / "ml-100k" / "u.data"
    name = "ml-100k-quick.txt" if opts.quick else "ml-100k.txt"
    out = opts.work_dir / "train" / name
    if not u_data.is_file():
        return None, f"{u_data} not found"
    if not out.is_file():
        import pandas as pd

        df = pd.read_csv(u_data, sep="\t", names=["user", "item", "rating", "ts"])
        if opts.quick:
            df = df[df["user"] <= 60]
        df = df.sort_values(["user", "ts"], kind="stable")
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = (f"{u} " + " ".join(map(str, g["item"].tolist())) for u, g in df.groupby("user", sort=True))
        out.write_text("\n".join(lines) + "\n")
    return out, "ml-100k (shared/data/ml-100k/u.data), users' ratings by timestamp, leave-one-out"


def _window_counts(seq_file: Path, max_len: int) -> dict:
    """Training rows (windows of <= max_len targets) and target positions of the leave-one-out train split."""
    lengths = np.array([len(line.split()) - 1 for line in seq_file.read_text().splitlines() if line.strip()])
    lengths = lengths[lengths >= 3]
    targets = np.maximum(lengths - 2 - 1, 0)  # train = all but the last two items; each position after the first
    windows = -(-targets // max_len)
    return {"users": int(len(lengths)), "target_positions": int(targets.sum()), "windows": int(windows.sum()),
            "targets_per_window": round(float(targets.sum() / max(windows.sum(), 1)), 2)}


def suite_train(opts: Options) -> dict:
    previous = _read_json(results_path(opts.results_dir, "train", opts.quick))
    if opts.peers_only and previous.get("ours"):
        ours, data_info = previous["ours"], previous.get("data")
    else:
        ours, data_info = _train_ours(opts)
        # runs at another thread count (another key) are kept from the previous results, each with its own "ran"
        for name, runs in (previous.get("ours") or {}).items():
            if isinstance(runs, dict) and isinstance(ours.get(name), dict):
                ours[name] = {**{k: v for k, v in runs.items() if k not in ours[name]}, **ours[name]}
    peers = peer_results(opts)
    if opts.peers and not opts.quick:
        peers["launch"] = launch_peers(opts)
    comparison = []
    for name, spec in TRAIN_MODELS.items():
        for variant, run in (ours or {}).get(name, {}).items():
            if "median_s_per_epoch" not in run:
                continue
            theirs = matching_peer(peers.get("runs", {}), spec["recbole"], run.get("torch_threads"))
            row = {"model": name, "variant": variant, "threads": run.get("torch_threads"),
                   "ours_s_per_epoch": run["median_s_per_epoch"],
                   "ours_targets_per_s": run["targets_per_s"],
                   "ours_cpu_s_per_epoch": round(run["fit_cpu_s"] / run["epochs"], 1)}
            if theirs and theirs.get("median_train_epoch_s"):
                row |= {"recbole_file": theirs["file"], "recbole_s_per_epoch": theirs["median_train_epoch_s"],
                        "recbole_samples_per_s": theirs.get("samples_per_s"),
                        "ratio_ours_over_recbole": round(run["median_s_per_epoch"] / theirs["median_train_epoch_s"], 4)}
                cpu = theirs.get("time_v") or {}
                if "user_s" in cpu and theirs.get("epochs_run"):
                    row["recbole_cpu_s_per_epoch"] = round((cpu["user_s"] + cpu["sys_s"]) / theirs["epochs_run"], 1)
                    row["cpu_ratio_ours_over_recbole"] = round(row["ours_cpu_s_per_epoch"]
                                                               / row["recbole_cpu_s_per_epoch"], 4)
            comparison.append(row)
    return {"data": data_info, "ours": ours, "peers": peers, "comparison": comparison, "checks": []}


def _train_ours(opts: Options) -> tuple[dict, dict]:
    seq_file, description = _ml100k_sequences(opts)
    if seq_file is None:
        if not opts.quick:
            return {"skipped": f"ml-100k not available ({description})"}, {"description": description}
        seq_file = _synthetic_sequences(opts)
        description = "synthetic user sequences (ml-100k not available; --quick only)"
    epochs = opts.epochs or (1 if opts.quick else 2)
    counts = _window_counts(seq_file, 50)
    matched = max(1, round(TARGETS_PER_STEP / counts["targets_per_window"]))
    variants = {"recbole-batch": matched} if opts.quick else {"recbole-batch": matched, "cpu-default": 256}
    import torch

    threads = opts.threads or torch.get_num_threads()
    ours = {}
    for name, spec in TRAIN_MODELS.items():
        ours[name] = {}
        for variant, batch in variants.items():
            params = {"seq_file": str(seq_file), "model": name, "params": spec["params"], "epochs": epochs,
                      "threads": opts.threads,
                      "train": {"batch_size": batch, "lr": 1e-3, "n_negatives": 0, "patience": 100,
                                "schedule": "constant"}}
            key = f"{variant}, {threads} thread{'s' if threads > 1 else ''}"
            ran = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "command": opts.command}
            child = run_child(worker_argv("train", params), timeout=3600)
            if child.get("error"):
                ours[name][key] = {"skipped": f"failed: {child['error'][-400:]}", "ran": ran}
                print(f"[train] {name} {variant}: FAILED {child['error'][-400:]}", flush=True)
                continue
            result = child.pop("result")
            ours[name][key] = {**result, "process": child, "batch_windows": batch, "ran": ran,
                               "params": spec["params"], "train_config": params["train"]}
            print(f"[train] {name} {variant} (batch {batch} windows): {result['median_s_per_epoch']:.1f} s/epoch, "
                  f"{result['targets_per_s']:.0f} target positions/s, peak {child['peak_rss_mib']:.0f} MiB, "
                  f"load {child['load_before']}", flush=True)
    return ours, {"description": description, "file": str(seq_file), "epochs": epochs, **counts,
                  "matched_batch_windows": matched, "threads": opts.threads}


def _synthetic_sequences(opts: Options) -> Path:
    path = opts.work_dir / "train" / "synthetic-sequences.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for u in range(60):
        start = int(rng.integers(1, 300))
        lines.append(f"{u} " + " ".join(str((start + 3 * j) % 300 + 1) for j in range(int(rng.integers(5, 80)))))
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_train(params: dict) -> dict:
    import torch

    from recsys.datasets.presplit import read_user_sequences
    from recsys.lit import TrainConfig
    from recsys.models import FitOptions
    from recsys.pipeline import build_model

    if params.get("threads"):
        torch.set_num_threads(params["threads"])
    data = read_user_sequences(params["seq_file"], max_length=10**6)  # no truncation: every position trains
    model = build_model(params["model"], data.n_items, params["params"])
    lengths = data.train.lengths
    targets = int(np.maximum(lengths - 1, 0).sum())
    windows = int((-(-np.maximum(lengths - 1, 0) // model.config.max_len)).sum())
    with Timer() as t:
        info = model.fit(data, FitOptions(max_epochs=params["epochs"], progress=False, seed=0),
                         train_config=TrainConfig(max_epochs=params["epochs"], **params["train"]))
    history = info["history"]
    per_epoch = [round(r["train_seconds"], 3) for r in history]
    median = float(np.median(per_epoch))
    return {"epochs": len(history), "train_seconds_per_epoch": per_epoch, "median_s_per_epoch": round(median, 3),
            "valid_seconds_per_epoch": [round(r.get("val_seconds", 0.0), 3) for r in history],
            "train_loss": [round(r["train_loss"], 4) for r in history], "target_positions": targets,
            "windows": windows, "targets_per_s": round(targets / median, 1),
            "windows_per_s": round(windows / median, 2),
            "fit_wall_s": round(t.wall, 3), "fit_cpu_s": round(t.cpu, 3), "load_before": t.load_before,
            "load_after": t.load_after, "n_parameters": sum(p.numel() for p in model.parameters()),
            "n_items": data.n_items - 1, "users": len(data.test), "torch_threads": torch.get_num_threads(),
            "valid_ndcg@10": [round(r.get("ndcg@10", float("nan")), 5) for r in history]}


def matching_peer(runs: dict, model: str, threads: int | None) -> dict | None:
    """The RecBole run of `model` with the same torch thread count as ours (most epochs first)."""
    same = [r for r in runs.values() if r["model"] == model and r.get("torch_threads") == threads]
    return max(same, key=lambda r: r.get("epochs_run") or 0) if same else None


def peer_output_dir(opts: Options) -> Path:
    return Path(os.environ.get("PEER_OUT") or opts.work_dir / "peers")


def peer_results(opts: Options) -> dict:
    """What the RecBole runs (benchmarks/peers/run_recbole.sh) left in benchmarks/work/peers/results."""
    folder = peer_output_dir(opts) / "results"
    runs = {}
    # <model>_ml-100k_<E>ep[_<N>t].json (run_recbole.sh's names; other files there, e.g. *_loaded.json, are not read)
    for path in sorted([*folder.glob("*_ml-100k_*ep.json"), *folder.glob("*_ml-100k_*ep_*t.json")]):
        d = _read_json(path)
        if not d.get("model"):
            continue
        epochs = d.get("train_epoch_seconds") or []
        median = d.get("median_train_epoch_s") or (float(np.median(epochs)) if epochs else None)
        runs[path.stem] = {
            "model": d["model"], "file": path.name, "epochs_run": d.get("epochs_run"), "train_epoch_seconds": epochs,
            "median_train_epoch_s": median, "n_train_samples": d.get("n_train_samples"),
            "samples_per_s": round(d["n_train_samples"] / median, 1) if median and d.get("n_train_samples") else None,
            "train_losses": d.get("train_losses"), "peak_rss_mib": d.get("peak_rss_mib_getrusage"),
            "valid_epoch_seconds": d.get("valid_epoch_seconds"), "ld_preload": d.get("ld_preload"),
            "anomaly_detection_during_run": d.get("anomaly_detection_during_run"),
            "torch_threads": d.get("torch_threads"), "versions": d.get("versions"),
            "time_v": _time_v(path.parent.parent / (path.stem + ".err")),
            **_peer_loads(peer_output_dir(opts) / "nohup.log", path.stem)}
    status = "results found" if runs else (
        "no results yet: run `nohup bash benchmarks/peers/run_recbole.sh all > benchmarks/work/peers/nohup.log "
        "2>&1 &` (or `python scripts/benchmark.py train --peers`), then `python scripts/benchmark.py train "
        "--peers-only`")
    log = peer_output_dir(opts) / "nohup.log"
    return {"runs": runs, "status": status, "reference": RECBOLE_REFERENCE,
            "log_tail": log.read_text(errors="replace")[-1500:] if log.is_file() else None,
            "setup": "RecBole 1.2.1 in its own venv (~/.cache/recsys-peers/recbole-venv) installed as "
                     "../shared/peers/recbole/README.md says (torch==2.13.0 first, recbole --no-deps, its "
                     "requirements.txt); runner called by path; anomaly detection off; glibc malloc"}


def _peer_loads(log: Path, name: str) -> dict:
    """Start/end times and load averages run_recbole.sh logged for one run (the last such run in the log)."""
    out = {}
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("start", "done") and parts[2] == name:
                when = "started" if parts[1] == "start" else "finished"
                out[when] = parts[0]
                out[f"load_{when}"] = [float(x.strip("()")) for x in parts[-3:]]
    return out


def _time_v(path: Path) -> dict | None:
    """Peak RSS, wall and CPU from /usr/bin/time -v output, if present."""
    if not path.is_file():
        return None
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size"):
            out["peak_rss_mib"] = round(int(line.rsplit(":", 1)[1]) / 1024, 1)
        elif line.startswith("User time"):
            out["user_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("System time"):
            out["sys_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("Elapsed (wall"):
            out["wall"] = line.split("):", 1)[1].strip()
    return out or None


def launch_peers(opts: Options) -> dict:
    """Start benchmarks/peers/run_recbole.sh in the background (nohup) unless results exist or it runs already."""
    out_dir = peer_output_dir(opts)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid_file = out_dir / "run.pid"
    if pid_file.is_file():
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, 0)
            return {"status": f"already running (pid {pid})"}
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    log = open(out_dir / "nohup.log", "a")  # noqa: SIM115 - handed to the detached process
    proc = subprocess.Popen(["nohup", "bash", str(PEER_SCRIPT), "all"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ,
                                                                                   "PEER_OUT": str(out_dir)})
    pid_file.write_text(str(proc.pid))
    return {"status": f"started in the background (pid {proc.pid}); log {out_dir / 'nohup.log'}"}


# ---------------------------------------------------------------------------------------------------------------
# suite: accuracy against the published anchors


@dataclass(frozen=True)
class DataSpec:
    source: str  # recsys.prepare source
    inputs: tuple[str, ...]  # relative to shared/data
    protocol: str
    main_k: int  # the K the anchors report
    skip: str | None = None
    # Data.with_valid_in_train takes the validation sequences as the refit data when valid and test cover the
    # same users; on the partial ML-1M split they cover 512 of 6,040 users, so its baselines are not refitted.
    refit: bool = True


ACCURACY_DATASETS = {
    "yoochoose1_64": DataSpec("sessions", ("yoochoose/yoochoose1_64_plain/train_sessions.txt",
                                           "yoochoose/yoochoose1_64_plain/test_pairs.tsv"),
                              "SR-GNN plain split: every prefix of a test session predicts its next item", 20),
    "diginetica": DataSpec("sessions", ("diginetica/plain/train_sessions.txt", "diginetica/plain/test_pairs.tsv"),
                           "SR-GNN plain split: every prefix of a test session predicts its next item", 20),
    "beauty": DataSpec("sequences", ("s3rec/Beauty.txt",),
                       "leave-one-out: last item of each user is test, second to last validation", 10),
    "ml-1m": DataSpec("ml-1m-partial", tuple(f"ml-1m/gsasrec_split_partial/{f}.txt" for f in (
                          "train/input", "val/input", "val/output", "test/output")),
                      "leave-one-out evaluated on the 512 users whose whole sequence survives in the partial "
                      "gSASRec split (SOURCES.md 4a, protocol ii); training on every user's sequence but its last "
                      "two items, as standard; the published rows are over all 6,040 users", 10, refit=False),
}
# ../shared/data/ANCHORS.md, percent. (name, metrics, source); the "measured" rows are its simple baselines.
ANCHOR_ROWS = {
    "yoochoose1_64": [
        ("GRU4Rec (as run by later papers)", {"hr@20": 60.64, "mrr@20": 22.89}, "paper tables (SR-GNN, AAAI 2019)"),
        ("NARM", {"hr@20": 68.32, "mrr@20": 28.63}, "paper tables"),
        ("SR-GNN", {"hr@20": 70.57, "mrr@20": 30.94}, "SR-GNN paper"),
        ("SGNN-HN", {"mrr@20": 32.61}, "leaderboard"),
        ("Pop", {"hr@10": 4.55, "hr@20": 7.31, "mrr@10": 1.50, "mrr@20": 1.69, "ndcg@10": 2.23, "ndcg@20": 2.92},
         "measured baseline"),
        ("S-Pop", {"hr@10": 28.36, "hr@20": 30.86, "mrr@10": 18.27, "mrr@20": 18.45, "ndcg@10": 20.72,
                   "ndcg@20": 21.36}, "measured baseline"),
        ("sequential rules", {"hr@10": 57.57, "hr@20": 66.80, "mrr@10": 29.60, "mrr@20": 30.25, "ndcg@10": 36.26,
                              "ndcg@20": 38.60}, "measured baseline"),
        ("item-kNN", {"hr@10": 41.96, "hr@20": 50.72, "mrr@10": 20.86, "mrr@20": 21.48, "ndcg@10": 25.83,
                      "ndcg@20": 28.06}, "measured baseline"),
        ("V-SKNN", {"hr@10": 55.60, "hr@20": 66.51, "mrr@10": 26.48, "mrr@20": 27.26, "ndcg@10": 33.40,
                    "ndcg@20": 36.17}, "measured baseline"),
    ],
    "diginetica": [
        ("SR-GNN", {"hr@20": 50.73, "mrr@20": 17.59}, "SR-GNN paper"),
        ("GCE-GNN", {"hr@20": 54.22, "mrr@20": 19.04}, "GCE-GNN paper (SIGIR 2020)"),
        ("Pop", {"hr@10": 0.58, "hr@20": 0.93, "mrr@10": 0.19, "mrr@20": 0.21, "ndcg@10": 0.28, "ndcg@20": 0.36},
         "measured baseline"),
        ("S-Pop", {"hr@10": 20.68, "hr@20": 21.08, "mrr@10": 13.62, "mrr@20": 13.65, "ndcg@10": 15.35,
                   "ndcg@20": 15.46}, "measured baseline"),
        ("sequential rules", {"hr@10": 30.98, "hr@20": 40.49, "mrr@10": 13.42, "mrr@20": 14.08, "ndcg@10": 17.54,
                              "ndcg@20": 19.94}, "measured baseline"),
        ("item-kNN", {"hr@10": 25.38, "hr@20": 35.04, "mrr@10": 10.30, "mrr@20": 10.98, "ndcg@10": 13.82,
                      "ndcg@20": 16.27}, "measured baseline"),
        ("V-SKNN", {"hr@10": 38.79, "hr@20": 50.93, "mrr@10": 17.11, "mrr@20": 17.96, "ndcg@10": 22.21,
                    "ndcg@20": 25.28}, "measured baseline"),
    ],
    "beauty": [
        ("SASRec, sampled softmax", {"hr@10": 9.21, "ndcg@10": 5.31}, "eSASRec repository README"),
        ("eSASRec", {"hr@10": 9.28, "ndcg@10": 5.23}, "eSASRec repository README"),
        ("Pop", {"hr@10": 1.06, "hr@20": 1.95, "mrr@10": 0.34, "mrr@20": 0.39, "ndcg@10": 0.51, "ndcg@20": 0.73},
         "measured baseline"),
        ("sequential rules", {"hr@10": 7.30, "hr@20": 9.33, "mrr@10": 3.85, "mrr@20": 3.99, "ndcg@10": 4.66,
                              "ndcg@20": 5.17}, "measured baseline"),
        ("item-kNN", {"hr@10": 5.41, "hr@20": 7.07, "mrr@10": 2.76, "mrr@20": 2.88, "ndcg@10": 3.38,
                      "ndcg@20": 3.80}, "measured baseline"),
    ],
    "ml-1m": [
        ("SASRec, full softmax CE", {"hr@10": 31.52, "ndcg@10": 18.21}, "Klenitskiy and Vasilev, RecSys 2023"),
        ("gSASRec", {"hr@10": 30.03, "ndcg@10": 17.26}, "gSASRec repository README"),
        ("BERT4Rec", {"hr@10": 28.43, "ndcg@10": 15.37}, "Klenitskiy and Vasilev, RecSys 2023"),
    ],
}
# registry key -> the ANCHORS baseline row it corresponds to (same method, independent implementation)
ANCHOR_TWIN = {"pop": "Pop", "spop": "S-Pop", "sr": "sequential rules", "itemknn": "item-kNN", "vsknn": "V-SKNN",
               "gru4rec": "GRU4Rec (as run by later papers)", "sasrec": "SASRec, sampled softmax"}
ACCURACY_METRICS = ("hr@10", "hr@20", "mrr@10", "mrr@20", "ndcg@10", "ndcg@20")
QUICK_LINES = {"sessions": (4_000, 800), "sequences": 1_500}  # train sessions / test pairs; users


def _quick_inputs(opts: Options, name: str, spec: DataSpec) -> list[str]:
    """Small slices of the real files: the last training sessions and the first test pairs (or the first users)."""
    folder = opts.work_dir / "quick-data" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = [opts.shared_data / p for p in spec.inputs]
    out = []
    if spec.source == "sessions":
        n_train, n_test = QUICK_LINES["sessions"]
        train_lines = paths[0].read_text().splitlines()[-n_train:]
        test_lines = paths[1].read_text().splitlines()[: n_test + 1]
        for path, lines in ((folder / paths[0].name, train_lines), (folder / paths[1].name, test_lines)):
            path.write_text("\n".join(lines) + "\n")
            out.append(str(path))
    else:
        path = folder / paths[0].name
        path.write_text("\n".join(paths[0].read_text().splitlines()[: QUICK_LINES["sequences"]]) + "\n")
        out.append(str(path))
    return out


def _accuracy_data(opts: Options, name: str, spec: DataSpec):
    from recsys.data import Dataset
    from recsys.prepare import prepare

    cache = opts.work_dir / "data" / (name + ("-quick" if opts.quick else ""))
    if (cache / "meta.json").is_file():
        return Dataset.load(cache)
    if spec.source == "ml-1m-partial":
        data = ml1m_partial(*(opts.shared_data / p for p in spec.inputs), max_users=1_500 if opts.quick else None)
        data.save(cache)
        return data
    inputs = _quick_inputs(opts, name, spec) if opts.quick else [str(opts.shared_data / p) for p in spec.inputs]
    return prepare(spec.source, inputs, cache)


def ml1m_partial(train_input: Path, val_input: Path, val_output: Path, test_output: Path,
                 max_users: int | None = None):
    """Standard leave-one-out ML-1M for the 512 users whose whole sequence the partial gSASRec split keeps.

    Per SOURCES.md 4a: line k of train/input and test/output is SASRec user k; train/input holds seq[:-2]
    (seq[:-3] for the 512 validation users), val/input holds seq[:-2] of the validation users (a train line
    plus one item; matched by content), val/output their seq[-2] and test/output every user's seq[-1]. So the
    training sequences of every user are exactly the standard ones; validation and test (seq[-2] from seq[:-2],
    seq[-1] from seq[:-1]) exist for the 512 validation users only. Item indices are the SASRec ids.
    """
    from recsys.data import Dataset
    from recsys.sessions import Sessions

    def lines(path):
        return [[int(t) for t in line.split()] for line in Path(path).read_text().splitlines()]

    train, val_in, val_out, test_out = (lines(p) for p in (train_input, val_input, val_output, test_output))
    row_of = {tuple(seq): row for row, seq in enumerate(train)}
    val_rows = [row_of[tuple(seq[:-1])] for seq in val_in]  # KeyError = not the documented layout
    full = dict(zip(val_rows, val_in))
    users = range(len(train) if max_users is None else min(max_users, len(train)))
    train_seqs = [full.get(u, train[u]) for u in users]
    picked = [(u, seq, out) for u, seq, out in zip(val_rows, val_in, val_out) if u < len(users)]
    valid = Sessions.from_lists([seq + out for _, seq, out in picked])
    test = Sessions.from_lists([seq + out + test_out[u] for u, seq, out in picked])
    n_items = max(max(max(s) for s in train if s), max(max(s) for s in test_out))
    train = Sessions.from_lists(train_seqs)
    meta = {"source": "ml-1m-partial", "protocols": {"train": "all", "valid": "last", "test": "last"},
            "dropped_unknown_items": {}, "users": len(train_seqs), "evaluated_users": len(picked)}
    return Dataset(train, valid, test, _plain_items(n_items, train), meta)


def _plain_items(n_items: int, train):
    """The item table of a data set whose item ids are 1..n_items themselves (no categories, no times)."""
    import pandas as pd

    pop = np.bincount(train.items, minlength=n_items + 1)[1:].astype(np.int64)
    return pd.DataFrame({"item_id": pd.array([str(i) for i in range(1, n_items + 1)], dtype="string"),
                         "category_id": pd.array([pd.NA] * n_items, dtype="string"), "popularity": pop,
                         "first_seen": pd.Series(pd.NaT, index=range(n_items), dtype="datetime64[us, UTC]"),
                         "last_seen": pd.Series(pd.NaT, index=range(n_items), dtype="datetime64[us, UTC]")})


def _anchor(name: str, model: str) -> dict:
    return next(values for m, values, _ in ANCHOR_ROWS[name] if m == model)


# The accuracy targets of the issues, percent: (label, neural models only, selection metric, {metric: target}).
ACCURACY_GOALS = {
    "yoochoose1_64": (("best neural model vs the SR-GNN row", True, "mrr@20", _anchor("yoochoose1_64", "SR-GNN")),
                      ("best model vs the goal", False, "mrr@20", {"hr@20": 71.0, "mrr@20": 32.61})),
    "diginetica": (("best neural model vs the SR-GNN row", True, "mrr@20", _anchor("diginetica", "SR-GNN")),
                   ("best model vs the goal", False, "mrr@20", _anchor("diginetica", "GCE-GNN"))),
    "beauty": (("best model vs the goal", False, "ndcg@10", {"hr@10": 9.28, "ndcg@10": 5.31}),),
}


def accuracy_checks(datasets: dict) -> list[dict]:
    """Summary lines for ACCURACY_GOALS. "Best" is chosen by the validation metric (never by test); its test
    value, misses counted, is what is compared."""
    from recsys.models import REGISTRY, model_class

    checks = []
    for name, goals in ACCURACY_GOALS.items():
        models = {m: r for m, r in datasets.get(name, {}).get("models", {}).items()
                  if "test_scaled" in r and m.split("@")[0] in REGISTRY}
        for label, neural_only, select, targets in goals:
            pool = {m: r for m, r in models.items() if model_class(m).trains_in_epochs or not neural_only}
            best = max(pool, key=lambda m: pool[m]["valid"].get(select, -1.0), default=None)
            for metric, target in targets.items():
                measured = None if best is None else round(100 * pool[best]["test_scaled"][metric]["value"], 2)
                note = (f"{best}, chosen by validation {select.upper()} among {len(pool)} model(s)" if best
                        else "no model run yet")
                checks.append(check(f"{name}: {label}, test {metric.upper()} (misses counted)", measured, target,
                                    "%", le=False, note=note))
    return checks


def _save_accuracy_model(opts: Options, name: str, entry: dict, model: str | None) -> None:
    """Merge one data set's entry (and `model`'s result, if given) into accuracy.json at once, under a lock.

    Accuracy runs last long and several may run side by side (one data set each); each model's result is kept
    as soon as it exists, and a run never drops what another run wrote in the meantime.
    """
    def merge(current: dict) -> dict:
        stored = current.setdefault("datasets", {}).setdefault(name, {})
        models = dict(stored.get("models", {}))
        if model is not None:
            models[model] = entry["models"][model]
        stored.update({k: v for k, v in entry.items() if k != "models"}, models=models)
        current.setdefault("suite", "accuracy")
        return current

    _update_json(results_path(opts.results_dir, "accuracy", opts.quick), merge)


def _update_json(path: Path, change) -> None:
    """Read `path` (or {}), apply `change`, write the result back atomically, all under a lock on the file."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(change(_read_json(path)), indent=2, default=str) + "\n")
        tmp.replace(path)


def _param_file(name: str, model: str) -> Path | None:
    path = PARAMS_DIR / name / f"{model}.json"
    return path if path.is_file() else None


def _with_part_params(name: str, model: str, params: dict) -> dict:
    """A hybrid's parts take the data set's parameter files (benchmarks/params/<name>/<part>.json), unless the
    hybrid's own file gives a part's parameters; other models' parameters are returned as they are."""
    from recsys.models import model_class
    from recsys.pipeline import load_params

    parts = params.get("components", getattr(model_class(model).Config(), "components", ()))
    given = params.get("params", {})
    filled = {p: given[p] if p in given else load_params([f]).get(p, {})
              for p in parts if p in given or (f := _param_file(name, p))}
    return {**params, "params": filled} if parts else params


def suite_accuracy(opts: Options) -> dict:
    from recsys.models import REGISTRY
    from recsys.pipeline import RunConfig, load_params, run

    previous = _read_json(results_path(opts.results_dir, "accuracy", opts.quick))
    datasets = dict(previous.get("datasets", {}))
    if not opts.shared_data.is_dir():
        msg = f"skipped: {opts.shared_data} not found (set RECSYS_SHARED_DATA to the shared data folder)"
        print(f"[accuracy] {msg}")
        return {"skipped": msg, "datasets": datasets, "checks": []}
    names = list(opts.datasets or ACCURACY_DATASETS)
    unknown = [n for n in names if n not in ACCURACY_DATASETS]
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown}; choose from {list(ACCURACY_DATASETS)}")
    models = list(opts.models or (("pop",) if opts.quick else tuple(m for m in REGISTRY)))
    bad = [m for m in models if m.split("@")[0] not in REGISTRY]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; choose from {sorted(REGISTRY)} (optionally as key@variant)")
    for name in names:
        spec = ACCURACY_DATASETS[name]
        entry = dict(datasets.get(name, {}))
        entry.update(protocol=spec.protocol, main_k=spec.main_k, source=spec.source, inputs=list(spec.inputs))
        missing = [p for p in spec.inputs if not (opts.shared_data / p).is_file()]
        if spec.skip or missing:
            entry["skipped"] = spec.skip or f"skipped: missing {missing} under {opts.shared_data}"
            print(f"[accuracy] {name}: {entry['skipped']}")
            datasets[name] = entry
            continue
        entry.pop("skipped", None)
        with Timer() as t:
            data = _accuracy_data(opts, name, spec)
        total = data.meta.get("test_pairs_total") or len(data.test)
        kept = len(data.test)
        entry["data"] = {**data.stats(), "test_cases_kept": kept, "test_cases_total": total,
                         "dropped_unknown_items": data.meta.get("dropped_unknown_items"),
                         "kept_fraction": round(kept / total, 6), "prepare": t.as_dict(), "quick": opts.quick}
        entry.setdefault("models", {})
        started = time.perf_counter()
        for model in models:
            if opts.time_budget_min is not None and time.perf_counter() - started > 60 * opts.time_budget_min:
                entry["models"][model] = {"skipped": f"time budget of {opts.time_budget_min} min per data set used up"}
                _save_accuracy_model(opts, name, entry, model)
                continue
            pfile = _param_file(name, model)
            params = load_params([pfile]) if pfile else {}
            params = {model: _with_part_params(name, model, params.get(model, {}))}
            out = opts.work_dir / "accuracy" / (name + ("-quick" if opts.quick else ""))
            config = RunConfig(models=(model,), out=out, params=params, max_epochs=opts.max_epochs,
                               n_boot=200 if opts.quick else 1000, progress=False, assets=None,
                               refit=opts.refit and spec.refit)
            with Timer() as t:
                results = run(data, config, log=functools.partial(print, f"[accuracy] {name}", flush=True))
            r = results["models"][model]
            factor = kept / total
            scaled = {k: {"value": v["value"] * factor, **({"ci95": [c * factor for c in v["ci95"]]}
                                                          if "ci95" in v else {})}
                      for k, v in r["test"].items() if k in ACCURACY_METRICS}
            entry["models"][model] = {
                "test_raw": {k: v for k, v in r["test"].items() if k in ACCURACY_METRICS or k == "cases"},
                "test_scaled": scaled, "valid": {k: v["value"] for k, v in r["valid"].items() if k in ACCURACY_METRICS},
                "params": r["params"], "params_file": str(pfile.relative_to(ROOT)) if pfile else None,
                "fit_seconds": r["fit_seconds"], "fit": r["fit"], "refit": opts.refit and spec.refit,
                "refit_info": r.get("refit"),
                "max_epochs": opts.max_epochs, "timing": t.as_dict(), "quick": opts.quick,
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds")}
            main = f"hr@{spec.main_k}"
            _save_accuracy_model(opts, name, entry, model)
            print(f"[accuracy] {name} {model}: test {main} {100 * scaled[main]['value']:.2f} (misses counted), "
                  f"{100 * r['test'][main]['value']:.2f} (kept cases); {t.wall:.0f} s wall, {t.cpu:.0f} s CPU",
                  flush=True)
        datasets[name] = entry
        _save_accuracy_model(opts, name, entry, None)
    datasets = _read_json(results_path(opts.results_dir, "accuracy", opts.quick)).get("datasets", datasets)
    return {"datasets": datasets, "checks": accuracy_checks(datasets),
            "anchors": {k: [{"model": m, "metrics": v, "source": s} for m, v, s in rows]
                        for k, rows in ANCHOR_ROWS.items()}}


# ---------------------------------------------------------------------------------------------------------------
# running a suite


SUITE_FUNCTIONS = {"data": suite_data, "eval": suite_eval, "serving": suite_serving, "train": suite_train,
                   "accuracy": suite_accuracy}


def results_path(results_dir: Path, suite: str, quick: bool) -> Path:
    return Path(results_dir) / (f"{suite}.quick.json" if quick else f"{suite}.json")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def run_suite(suite: str, opts: Options, argv: list[str]) -> Path:
    """Run one suite and write its JSON; returns the JSON path (scripts/benchmark.py then rewrites the report)."""
    if suite not in SUITE_FUNCTIONS:
        raise ValueError(f"unknown suite {suite!r}; choose from {SUITES}")
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    opts.command = " ".join(shlex.quote(a) for a in ["python", "scripts/benchmark.py", *argv])
    with Timer() as t:
        numbers = SUITE_FUNCTIONS[suite](opts)
    result = {"suite": suite, "quick": opts.quick, "timestamp": started,
              "command": opts.command,
              "machine": machine(), "timing": t.as_dict(), **numbers}
    path = results_path(opts.results_dir, suite, opts.quick)
    if suite == "accuracy":  # merged model by model under a lock while running; keep what others wrote since
        def finish(current: dict) -> dict:
            datasets = current.get("datasets", result["datasets"])
            return {**result, "datasets": datasets, "checks": accuracy_checks(datasets)}

        _update_json(path, finish)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


WORKERS = {"generate": worker_generate, "prepare": worker_prepare, "eval": worker_eval,
           "serving_data": worker_serving_data, "serving": worker_serving, "app_models": worker_app_models,
           "app_handler": worker_app_handler, "train": worker_train}


def _worker_main(argv: list[str]) -> int:
    name, params = argv[0], json.loads(argv[1])
    result = WORKERS[name](params)
    sys.stdout.flush()
    print("\n" + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
