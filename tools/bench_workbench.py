"""Time the app's "Your data" path on a generated log: the upload stored and its head read (what the page does on
upload, after the browser's transfer), then training the default baselines with the page's options
(recsys.app.workbench.train: recsys.prepare + recsys.pipeline.run). Wall and CPU seconds per phase, as JSON.

    flock /tmp/recsys-heavy.lock .venv/bin/python -m tools.bench_workbench --events 1000000 [--gzip]
"""

import argparse
import gzip
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--gzip", action="store_true", help="upload the log gzip-compressed")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("RECSYS_TORCH_THREADS") or 1))  # as app.py serves
    from recsys.app import workbench as wb
    from recsys.app.detect import read_head
    from recsys.datasets.synthetic import generate_retailrocket_log

    tmp = Path(tempfile.mkdtemp(prefix="bench-workbench-"))
    try:
        log = generate_retailrocket_log(tmp / "raw", n_events=args.events,
                                        n_items=max(3000, args.events // 50))["events"]
        if args.gzip:
            with open(log, "rb") as src, gzip.open(tmp / "raw" / "events.csv.gz", "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst)
            log = tmp / "raw" / "events.csv.gz"
        limits = wb.Limits(root=tmp / "work")
        phases = {}
        wall, used = time.perf_counter(), cpu()
        token = wb.new_upload(limits, log.name)
        stored = wb.store_file(limits, token, log)
        head = read_head(stored)
        phases["upload_seconds"] = [round(time.perf_counter() - wall, 2), round(cpu() - used, 2)]
        request = wb.TrainRequest(columns=head.guess, timestamp_unit=head.timestamp_unit,
                                  retailrocket=head.retailrocket)
        first = {}
        wall, used = time.perf_counter(), cpu()
        trained = wb.train(limits, token, request, log=lambda _: None,
                           on_model=lambda n, s, d, t: first.setdefault("seconds", time.perf_counter() - wall))
        phases["train_seconds"] = [round(time.perf_counter() - wall, 2), round(cpu() - used, 2)]
        stats = trained.results["data"]
        print(json.dumps({"events": args.events, "file_mb": round(log.stat().st_size / 1e6, 1), "gzip": args.gzip,
                          "models": list(request.models), "wall_cpu": phases,
                          "first_model_shown_after_seconds": round(first.get("seconds", float("nan")), 2),
                          "total_wall_seconds": round(sum(v[0] for v in phases.values()), 2),
                          "items": stats["n_items"], "train_sessions": stats["train"]["sessions"],
                          "load_average": os.getloadavg()}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
