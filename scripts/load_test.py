"""Load test of the app: N concurrent gradio_client users, mixed requests, the server's memory; writes
benchmarks/results/load.json (with --api: load_api.json).

    python scripts/load_test.py --clients 16 --requests 1600
    python scripts/load_test.py --clients 4 --warmup 2000 --requests 10000 --fresh-sessions   # memory
    python scripts/load_test.py --api --items 40000 --clients 16 --warmup 400 --requests 4000  # JSON API

`--api` loads POST /v1/recommend (recsys/api.py) of the same `python app.py` instead of the UI
(tools.loadtest.run_api_load); `--items N` serves the serving benchmark's synthetic catalogue of about N items and
its Pop / item-kNN / GRU4Rec / SASRec folders (tools/bench/servedata.py; neural weights random, which costs the
same per call) instead of the 20-item demo folders, built once under benchmarks/work/.

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

from tools.loadtest import build_demo, launch_app, rss_mb, run_api_load, run_load, stop_app

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def catalogue(n_items: int) -> tuple[Path, Path, list[str]]:
    """The serving benchmark's synthetic data set of about `n_items` items and the app's model folders on it
    (built once under benchmarks/work/), and the raw ids of its test sessions (repeats kept: popular ids often)."""
    from recsys.data import Dataset
    from tools.bench.app_timing import APP_MODELS
    from tools.bench.common import WORK_DIR, Options, run_child, worker_argv
    from tools.bench.servedata import synthetic_processed

    data_dir = synthetic_processed(Options(work_dir=WORK_DIR), n_items)
    ckpt = WORK_DIR / "app" / f"checkpoints-n{n_items}"
    if not all((ckpt / m / "config.json").is_file() for m in APP_MODELS):
        child = run_child(worker_argv("app_models", {"data": str(data_dir), "out": str(ckpt),
                                                     "models": list(APP_MODELS)}))
        if child.get("error"):
            raise RuntimeError(f"could not build the model folders: {child['error'][-500:]}")
    data = Dataset.load(data_dir)
    return ckpt, data_dir, data.vocab.decode(data.test.items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1600, help="measured requests in all (not per client)")
    parser.add_argument("--warmup", type=int, default=0, help="requests sent first, not measured")
    parser.add_argument("--fresh-sessions", action="store_true", help="a new Gradio session for every request")
    parser.add_argument("--sample-every", type=int, default=500, help="server RSS sampled every N answers")
    parser.add_argument("--api", action="store_true", help="load the JSON API (POST /v1/recommend), not the UI")
    parser.add_argument("--items", type=int, help="--api: a synthetic catalogue of about N items (default: the "
                                                  "20-item demo)")
    parser.add_argument("--out", help="default benchmarks/results/load.json (--api: load_api.json)")
    args = parser.parse_args()
    if args.items and not args.api:
        parser.error("--items goes with --api (the UI load test checks answers on the demo folders)")
    args.out = args.out or str(ROOT / "benchmarks/results" / ("load_api.json" if args.api else "load.json"))
    with tempfile.TemporaryDirectory(prefix="recsys-load-") as tmp:
        tmp = Path(tmp)
        checkpoints, data, known = catalogue(args.items) if args.items else (*build_demo(tmp), None)
        proc, url = launch_app(checkpoints, data, tmp / "app.log")
        try:
            load_before, started_mb = os.getloadavg(), rss_mb(proc.pid)
            if args.api:
                warm = run_api_load(url, args.clients, args.warmup, known, seed=1) if args.warmup else None
                server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
                report = run_api_load(url, args.clients, args.requests, known, proc.pid, args.sample_every)
                report["cpu_ms_per_request"] = {  # where the 2 cores went (the client shares the machine)
                    "server": round(1000 * (cpu_seconds(proc.pid) - server_cpu) / max(report["requests"], 1), 3),
                    "client": round(1000 * (time.process_time() - client_cpu) / max(report["requests"], 1), 3)}
            else:
                warm = run_load(url, args.clients, args.warmup, args.fresh_sessions) if args.warmup else None
                report = run_load(url, args.clients, args.requests, args.fresh_sessions, proc.pid,
                                  args.sample_every)
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
    waited = (f" ({report['waited_for_stream_close']} sent after waiting for the client's stream to close)"
              if "waited_for_stream_close" in report else "")
    print(f"{report['requests']} requests after {args.warmup} warm-up, {report['n_errors']} errors{waited}, "
          f"p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, p99 {lat.get('p99')} ms, "
          f"{report['throughput_rps']} req/s; server RSS {rss.get('before_mb')} -> {rss.get('after_mb')} MB "
          f"(min {rss.get('min_mb')}, max {rss.get('max_mb')}); CPU ms per request "
          f"{report.get('cpu_ms_per_request', '(not measured)')} -> {args.out}")
    for error in (report["warmup"] or {}).get("errors", [])[:5] + report["errors"][:10]:
        print("  ", error)
    n_errors = report["n_errors"] + (report["warmup"] or {}).get("n_errors", 0)
    return 1 if n_errors else 0


if __name__ == "__main__":
    sys.exit(main())
