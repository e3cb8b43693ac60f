"""Load test of the app: N concurrent gradio_client users, mixed requests, the server's memory; writes
benchmarks/results/load.json.

    python scripts/load_test.py --clients 16 --requests 1600
    python scripts/load_test.py --clients 4 --warmup 2000 --requests 10000 --fresh-sessions   # memory

Launches app.py in a subprocess on a free port, serving small Pop / S-Pop / item-kNN folders built in a
temporary directory (tools.loadtest.build_demo), runs `--warmup` requests (not measured), then `--requests`
requests in all (tools.loadtest.run_load), sampling the server's RSS every `--sample-every` answers.
`--fresh-sessions` sends every request under a new Gradio session, as one-shot API callers do.
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

from tools.loadtest import build_demo, launch_app, rss_mb, run_load, stop_app

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1600, help="measured requests in all (not per client)")
    parser.add_argument("--warmup", type=int, default=0, help="requests sent first, not measured")
    parser.add_argument("--fresh-sessions", action="store_true", help="a new Gradio session for every request")
    parser.add_argument("--sample-every", type=int, default=500, help="server RSS sampled every N answers")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/load.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recsys-load-") as tmp:
        tmp = Path(tmp)
        checkpoints, data = build_demo(tmp)
        proc, url = launch_app(checkpoints, data, tmp / "app.log")
        try:
            load_before, started_mb = os.getloadavg(), rss_mb(proc.pid)
            warm = run_load(url, args.clients, args.warmup, args.fresh_sessions) if args.warmup else None
            report = run_load(url, args.clients, args.requests, args.fresh_sessions, proc.pid, args.sample_every)
            load_after = os.getloadavg()
        finally:
            stop_app(proc)
    samples = [mb for _, mb in report.get("rss_mb", []) if mb is not None]
    report = {"command": " ".join(["python", "scripts/load_test.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": [round(x, 2) for x in load_after]},
              "app": {"RECSYS_SESSIONS": os.environ.get("RECSYS_SESSIONS", "(default)")},
              "warmup": {"requests": warm["requests"], "n_errors": warm["n_errors"], "errors": warm["errors"][:20]}
              if warm else None,
              "rss": {"after_start_mb": started_mb, "before_mb": samples[0], "after_mb": samples[-1],
                      "change_mb": round(samples[-1] - samples[0], 1), "min_mb": min(samples),
                      "max_mb": max(samples)} if samples else None,
              **report, "errors": report["errors"][:50]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    lat, rss = report["latency_ms"], report["rss"] or {}
    print(f"{report['requests']} requests after {args.warmup} warm-up, {report['n_errors']} errors "
          f"({report['waited_for_stream_close']} sent after waiting for the client's stream to close), "
          f"p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, p99 {lat.get('p99')} ms, "
          f"{report['throughput_rps']} req/s; server RSS {rss.get('before_mb')} -> {rss.get('after_mb')} MB "
          f"(min {rss.get('min_mb')}, max {rss.get('max_mb')}) -> {args.out}")
    for error in (report["warmup"] or {}).get("errors", [])[:5] + report["errors"][:10]:
        print("  ", error)
    n_errors = report["n_errors"] + (report["warmup"] or {}).get("n_errors", 0)
    return 1 if n_errors else 0


if __name__ == "__main__":
    sys.exit(main())
