"""What every benchmark suite shares: paths, options, timers, child processes, result files."""

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "benchmarks" / "results"
WORK_DIR = ROOT / "benchmarks" / "work"
PARAMS_DIR = ROOT / "benchmarks" / "params"
DOC = ROOT / "docs" / "BENCHMARKS.md"
ASSETS = ROOT / "assets"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "run_recbole.sh"
SUITES = ("data", "eval", "serving", "batch", "train", "accuracy")
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
    items: tuple[int, ...] | None = None  # serving: catalogue sizes (`--items`); None: the suite's own
    datasets: tuple[str, ...] | None = None  # accuracy filter
    max_epochs: int | None = None  # accuracy: neural models
    time_budget_min: float | None = None  # accuracy: per data set, models not started within it are skipped
    refit: bool = True  # accuracy: baselines refitted on train + valid after validation (as the ANCHORS runs)
    app: bool = True  # serving: the gradio_client round trip
    first_start_only: bool = False  # serving: only the app's first start; the last run's other numbers are kept
    knn: bool = False  # serving: the kNN models' fits and recommend() at 1M items (tools/bench/serving_knn.py)
    epochs: int | None = None  # train: epochs per run (default 2; quick 1)
    threads: int | None = None  # train: torch intra-op threads (None: torch's default)
    seeds: int = 1  # train: seeds 0..seeds-1 of each default-settings (time to quality) run
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
                                    env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (
                                        str(ROOT), os.environ.get("PYTHONPATH")))), **(env or {})})

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
    return [sys.executable, "-m", "tools.bench", name, json.dumps(params, default=str)]


def percentiles_ms(seconds: list[float]) -> dict:
    ms = 1000 * np.asarray(seconds)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(ms.mean()), 3), "max_ms": round(float(ms.max()), 3), "n": len(ms)}


def check(what: str, measured, target, unit: str, le: bool = True, note: str = "") -> dict:
    """One target line: measured <= target (or >=), with the numbers, for the report's summary."""
    met = None if measured is None else (measured <= target if le else measured >= target)
    return {"what": what, "measured": measured, "target": target, "unit": unit, "le": le, "met": met, "note": note}


def results_path(results_dir: Path, suite: str, quick: bool) -> Path:
    return Path(results_dir) / (f"{suite}.quick.json" if quick else f"{suite}.json")


def read_json(path: Path) -> dict:
    """The JSON object in a results file, or {} when it is missing or damaged: nothing measured yet."""
    from recsys import jsonfile  # not at the top: importing recsys imports torch, which a worker's timings include

    try:
        return jsonfile.read_json(path)
    except jsonfile.JSONFileError:
        return {}


def update_json(path: Path, change) -> None:
    """Read `path` (or {}), apply `change`, write the result back atomically, all under a lock on the file."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(change(read_json(path)), indent=2, default=str) + "\n")
        tmp.replace(path)


def plain_items(n_items: int, train):
    """The item table of a data set whose item ids are 1..n_items themselves (no categories, no times)."""
    import pandas as pd

    pop = np.bincount(train.items, minlength=n_items + 1)[1:].astype(np.int64)
    return pd.DataFrame({"item_id": pd.array([str(i) for i in range(1, n_items + 1)], dtype="string"),
                         "category_id": pd.array([pd.NA] * n_items, dtype="string"), "popularity": pop,
                         "first_seen": pd.Series(pd.NaT, index=range(n_items), dtype="datetime64[us, UTC]"),
                         "last_seen": pd.Series(pd.NaT, index=range(n_items), dtype="datetime64[us, UTC]")})
