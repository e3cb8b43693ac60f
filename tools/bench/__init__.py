"""Benchmark suites behind `scripts/benchmark.py` (data, eval, serving, train, accuracy) and docs/BENCHMARKS.md.

    python scripts/benchmark.py SUITE [--quick]

Each suite returns plain numbers; `run_suite` adds the machine, the command line, a timestamp, load averages and
wall/CPU times and writes `benchmarks/results/<suite>.json` (`<suite>.quick.json` for `--quick`);
scripts/benchmark.py then regenerates docs/BENCHMARKS.md and the assets/bench_*.png plots from every results file
(`report`, which fills the generated blocks from `render` and draws `plots`).

One module per suite (data, evalspeed, serving, batchbench, train, accuracy; serving uses servedata and
app_timing) beside `common` (paths, options, timers, child processes, result files); this module runs a suite
and its workers. The package lives outside `recsys` so that neither the wheel nor the Space upload
(scripts/deploy_space.py) holds it.

Whatever is measured for peak memory runs in a child process (`python -m tools.bench WORKER JSON`, which
prints one JSON line); the child's own wall time, CPU time and peak RSS come from `os.wait4`. The machine is
shared (2 cores, other jobs running), so every number carries CPU time beside wall time and the load average
before and after: a slow wall time with a normal CPU time means a busy machine, not a slow program.

Scratch files (generated logs, processed data, model folders, peer runs) go under benchmarks/work/ (git-ignored).
"""

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from tools.bench.accuracy import ACCURACY_DATASETS, accuracy_checks, suite_accuracy
from tools.bench.app_timing import worker_app_handler, worker_app_models
from tools.bench.batchbench import suite_batch, worker_batch_data, worker_batch_models
from tools.bench.common import (
    ASSETS,
    DOC,
    RESULTS_DIR,
    SUITES,
    WORK_DIR,
    Options,
    Timer,
    machine,
    results_path,
    shared_data_dir,
    update_json,
)
from tools.bench.data import suite_data, worker_generate, worker_prepare
from tools.bench.evalspeed import suite_eval, worker_eval
from tools.bench.servedata import worker_serving_data
from tools.bench.serving import suite_serving, worker_serving
from tools.bench.serving_knn import worker_knn, worker_knn_data
from tools.bench.train import suite_train, worker_train

# what scripts/benchmark.py reads from here (the report: tools.bench.report)
__all__ = ["ACCURACY_DATASETS", "ASSETS", "DOC", "RESULTS_DIR", "SUITES", "WORK_DIR", "Options", "run_suite",
           "shared_data_dir"]


SUITE_FUNCTIONS = {"data": suite_data, "eval": suite_eval, "serving": suite_serving, "batch": suite_batch,
                   "train": suite_train, "accuracy": suite_accuracy}


def run_suite(suite: str, opts: Options, argv: list[str]) -> Path:
    """Run one suite and write its JSON; returns the JSON path (scripts/benchmark.py then rewrites the report)."""
    if suite not in SUITE_FUNCTIONS:
        raise ValueError(f"unknown suite {suite!r}; choose from {SUITES}")
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    # the library (and torch) is imported before the timer, so that a suite's time is its own work; not at the top
    # of this package, because the workers (`python -m tools.bench`) time their own imports
    import recsys  # noqa: F401
    started = datetime.now(UTC).isoformat(timespec="seconds")
    opts.command = " ".join(shlex.quote(a) for a in ["python", "scripts/benchmark.py", *argv])
    with Timer() as t:
        numbers = SUITE_FUNCTIONS[suite](opts)
    result = {"suite": suite, "quick": opts.quick, "timestamp": started,
              "command": opts.command,
              "machine": machine(), "timing": t.as_dict(), **numbers}
    # `serving --knn` has a results file of its own, so that it never replaces the other serving rows
    path = results_path(opts.results_dir, "serving_knn" if suite == "serving" and opts.knn else suite, opts.quick)
    if suite == "accuracy":  # merged model by model under a lock while running; keep what others wrote since
        def finish(current: dict) -> dict:
            datasets = current.get("datasets", result["datasets"])
            return {**result, "datasets": datasets, "checks": accuracy_checks(datasets)}

        update_json(path, finish)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


WORKERS = {"generate": worker_generate, "prepare": worker_prepare, "eval": worker_eval,
           "serving_data": worker_serving_data, "serving": worker_serving, "app_models": worker_app_models,
           "app_handler": worker_app_handler, "train": worker_train, "batch_data": worker_batch_data,
           "batch_models": worker_batch_models, "knn_data": worker_knn_data, "knn": worker_knn}


def worker_main(argv: list[str]) -> int:
    name, params = argv[0], json.loads(argv[1])
    result = WORKERS[name](params)
    sys.stdout.flush()
    print("\n" + json.dumps(result, default=str), flush=True)
    return 0

