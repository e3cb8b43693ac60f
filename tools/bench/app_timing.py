"""The app under the serving suite: the `/recommend` round trip through gradio_client against `python app.py`,
the handler alone in-process, and the first start of the app on a fresh machine."""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tools.bench.common import ROOT, Options, load_avg, machine, percentiles_ms, read_json, run_child, worker_argv
from tools.bench.servedata import SERVING_SIZES, SERVING_SIZES_QUICK, servable, serving_sessions, synthetic_processed

APP_TARGET_MS = 150.0


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
    data_dir = synthetic_processed(opts, n)
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
            texts = [", ".join(vocab.decode(s)) for s in serving_sessions(data, n_calls, rng)]
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
TIMED_LINE = re.compile(r"^ *(\d+\.\d)s  (.+)$")  # recsys.pipeline.ensure_default_models: seconds, message


def first_start(opts: Options) -> dict:
    """`python app.py` on a fresh machine, timed from launch until its page answers: no processed data and no
    model folder, so it generates the synthetic data, trains the default models (recsys.pipeline
    .ensure_default_models: the baselines and SASRec, GRU4Rec, LSTM) and then serves. Runs in an empty folder
    under the work dir (its cwd), with RECSYS_CHECKPOINTS and RECSYS_DATA pointing inside it. Each line the app
    prints is stamped with its arrival (seconds since launch), which splits the wall time into phases (imports,
    data set, each model, sample visitors, building the page) and gives the longest silence; the CPU time is the
    app process's own (os.wait4). Not run with --quick (it trains the full default)."""
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
    lines: list[tuple[float, str]] = []  # (seconds since launch, line) as the app printed it
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")

    def read():
        with open(log_path, "w") as log:
            for line in proc.stdout:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))
                log.write(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
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
        reader.join(10)
    text = "\n".join(line for _, line in lines)
    if wall is None:
        reason = (f"exited with {proc.returncode}" if proc.returncode not in (None, -15) else
                  f"did not serve within {FIRST_START_TIMEOUT_S} s")
        return {"skipped": f"python app.py {reason}: {text[-400:]}"}
    results = read_json(root / "checkpoints" / "results.json")
    seconds = {m: {k.removesuffix("_seconds"): e[k] for k in ("fit_seconds", "valid_seconds", "test_seconds")}
               | {"epochs": (e.get("fit") or {}).get("epochs")} for m, e in results.get("models", {}).items()}
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1) if usage else None,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1) if usage else None,
            "models": list(seconds), "seconds": seconds, "phases": first_start_phases(lines, wall),
            "longest_silence_s": longest_silence(lines, wall),
            "valid_cases": results.get("protocol", {}).get("max_valid_cases"),
            "built_data": "Generating the synthetic event log" in text, "load_before": load_before,
            "load_after": load_after, "command": "python app.py (fresh: no data/processed, no checkpoints)",
            "ran": {"command": opts.command, "timestamp": datetime.now(UTC).isoformat(timespec="seconds")},
            "machine": machine()}


def longest_silence(lines: list[tuple[float, str]], wall: float) -> float:
    """The longest wait, in seconds, between launch, the lines printed before the page answered, and `wall`."""
    times = [0.0, *(t for t, _ in lines if t <= wall), wall]
    return round(max(b - a for a, b in zip(times, times[1:])), 1)


def first_start_phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Wall seconds of each phase of a first start, from the arrival times of the app's lines. A phase runs from
    the line that opens it to the next such line: launch (Python, torch, Gradio and, before it builds the models,
    recsys.pipeline's Lightning imports; the app's start-up), ensure_default_models' first line (the data set),
    each "[model] fitting" (its fit, evaluations and saving; the last one's also the selection tests), "Default
    models ready" (building the page, starting the server) until the page answered."""
    marks = [("imports (Python, torch, Gradio, Lightning) and app start-up", 0.0)]
    for t, line in lines:
        match = TIMED_LINE.match(line)
        if not match:
            continue
        message, model = match.group(2), re.match(r"\[([\w-]+)\] fitting on ", match.group(2))
        if len(marks) < 2:
            marks.append(("data set (generate, prepare, load)", t))
        if model:
            marks.append((f"{model.group(1)} (fit, evaluations, saving)", t))
        elif message.startswith("Default models ready"):
            marks.append(("building the page, starting the server", t))
    ends = [t for _, t in marks[1:]] + [wall]
    return {name: round(end - t, 1) for (name, t), end in zip(marks, ends, strict=True)}


def worker_app_handler(params: dict) -> dict:
    """recsys.app.recommend_view (what app.py's /recommend calls) timed in-process, at torch's default
    thread count (as app.py runs) and at 1 thread."""
    import torch

    from recsys.app import AppService, recommend_view

    service = AppService.from_env({**params, "RECSYS_MODELS": ""})
    out = {}
    for threads in (torch.get_num_threads(), 1):
        torch.set_num_threads(threads)
        for model in params["models"]:
            recommend_view(service, model, params["texts"][0], 20, None, False, None)  # loads it
            times = []
            for text in params["texts"]:
                t0 = time.perf_counter()
                recommend_view(service, model, text, 20, None, False, None)
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
        model, weights = servable(cls, data)
        save_folder(model, Path(params["out"]) / name, data.items,
                    train={"note": "benchmark folder: " + (weights or "fitted")})
    return {"models": params["models"]}
