"""Suite "serving": recommend() latency per registry model at 10k / 40k / 1M items, the app round trip and
first start."""

import gc
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tools.bench.common import (
    ROOT,
    Options,
    Timer,
    check,
    load_avg,
    percentiles_ms,
    plain_items,
    read_json,
    results_path,
    rss_mib,
    run_child,
    worker_argv,
)

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
    return Dataset(train, valid, test, plain_items(n_items, train), meta)


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
    # `--models` measures those models again and keeps the other rows (and, with --no-app, the app's) as they were
    previous = read_json(results_path(opts.results_dir, "serving", opts.quick)) if opts.models else {}
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
        for m, e in entries.items():
            msg = e.get("skipped") or (f"p50 {e['single']['p50_ms']:.2f} ms, p99 {e['single']['p99_ms']:.2f} ms, "
                                       f"batch {e['batch']['sessions_per_s']:.0f} sessions/s")
            print(f"[serving] {label} {m}: {msg}", flush=True)
            if opts.models:  # a run of some models only: its rows are merged into the last full run's
                e["run"] = {"command": opts.command, "date": datetime.now(UTC).date().isoformat()}
        kept = {} if not opts.models else previous.get("sizes", {}).get(label, {}).get("models", {})
        results[label] = {"n_items": n_real, "batch_size": base["batch_size"], "models": {**kept, **entries}}
        if label == "40k":
            for m, e in results[label]["models"].items():
                if "single" in e:
                    note = (f"{e['single']['cpu_ms_per_call']:.2f} ms CPU per call, {SERVING_THREADS} thread; "
                            f"load {e['single']['load_before'][0]}")
                    checks.append(check(f"recommend() p50, {m}, 40k items", e["single"]["p50_ms"],
                                        SERVING_TARGETS["p50_ms"], "ms", note=note))
                    checks.append(check(f"recommend() p99, {m}, 40k items", e["single"]["p99_ms"],
                                        SERVING_TARGETS["p99_ms"], "ms", note=note))
    out = {"sizes": results, "checks": checks, "n_single": n_single,
           # the run whose other rows this one kept (a run of some models merges into it)
           "merged_into": previous.get("merged_into") or ({k: previous[k] for k in ("timestamp", "command")}
                                                           if previous.get("timestamp") else None),
           "session_lengths": "5-20 items (test sessions of the synthetic data cut to a random length)",
           "call": "recsys.models.base.recommend(model, session, k=20) (repeats allowed, the library default)",
           "threads": f"torch.set_num_threads({SERVING_THREADS}) for the timed calls; 'default threads' column: "
                      "torch's default on this machine (2), 50 calls",
           "weights": "neural models: random initial weights (REGISTRY[name](Config(), n_items)), not trained; "
                      "the others: fitted on the synthetic data of that size"}
    if not opts.app and previous.get("app"):
        out["app"], out["first_start"] = previous["app"], previous.get("first_start", {})
        checks += [c for c in previous.get("checks", []) if not c["what"].startswith("recommend()")]
    elif opts.app:
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

    def fit_part(part, data, options):  # Blend.fit's part-fitter: recsys.train.fit, but no training
        return _random_weights(part, data) if part.trains_in_epochs else part.fit(data, options)

    model.fit(data, FitOptions(progress=False), fit_part=fit_part)
    neural = [p for p in parts if model.part(p).trains_in_epochs]
    return model, f"equal weights; {', '.join(neural)} random (not trained)" if neural else None


def _random_weights(model, data) -> None:
    """A neural model as recsys.train.fit starts it (category table sized to the data), without training."""
    model.initialize(data)


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
