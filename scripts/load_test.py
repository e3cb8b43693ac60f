"""Load test of the app: N concurrent gradio_client users x M mixed requests; writes benchmarks/results/load.json.

    python scripts/load_test.py --clients 16 --requests 100

Launches app.py in a subprocess on a free port, serving small Pop / S-Pop / item-kNN folders built in a
temporary directory (recsys.loadtest.build_demo), and runs recsys.loadtest.run_load.
Exits 1 on any error (an exception, a wrong answer, or one user's session showing up in another's answer).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import _path  # noqa: F401 - repository root on sys.path

from recsys.loadtest import build_demo, launch_app, run_load, stop_app

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/load.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recsys-load-") as tmp:
        tmp = Path(tmp)
        checkpoints, data = build_demo(tmp)
        proc, url = launch_app(checkpoints, data, tmp / "app.log")
        try:
            load_before = os.getloadavg()
            report = run_load(url, args.clients, args.requests)
            load_after = os.getloadavg()
        finally:
            stop_app(proc)
    report = {"command": " ".join(["python", "scripts/load_test.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": [round(x, 2) for x in load_after]},
              **report, "errors": report["errors"][:50]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    lat = report["latency_ms"]
    print(f"{report['requests']} requests, {report['n_errors']} errors "
          f"({report['waited_for_stream_close']} sent after waiting for the client's stream to close), "
          f"p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, p99 {lat.get('p99')} ms, "
          f"{report['throughput_rps']} req/s -> {args.out}")
    for error in report["errors"][:10]:
        print("  ", error)
    return 1 if report["n_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
