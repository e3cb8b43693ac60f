"""Suite "serving": recommend() latency per registry model at 10k / 40k / 1M items (or the sizes of `--items`), each
neural model beside its floor (one product of a query with its item table, plus the top 20) timed in the same
loop, then the app round trip and first start (tools/bench/app_timing.py) on data and models from
tools/bench/servedata.py."""

import gc
import time
from datetime import UTC, datetime

import numpy as np

from tools.bench.app_timing import APP_TARGET_MS, FIRST_START_TARGET_S, app_round_trip, first_start
from tools.bench.common import (
    Options,
    Timer,
    check,
    load_avg,
    percentiles_ms,
    read_json,
    results_path,
    rss_mib,
    run_child,
    worker_argv,
)
from tools.bench.servedata import servable, serving_sessions, serving_sizes, synthetic_processed
from tools.bench.serving_knn import suite_serving_knn

SERVING_SINGLE = 200  # single-session calls per model (after 5 warm-up calls)
SERVING_THREADS = 1  # torch intra-op threads while timing: 2 threads on 2 busy cores make one call 10-20x slower
SERVING_TARGETS = {"p50_ms": 5.0, "p99_ms": 20.0}  # at 40k
FLOOR_TARGET = 1.5  # a neural model's recommend() p50 within this multiple of its floor's p50 ...
FLOOR_SIZES = ("40k", "1M")  # ... at these catalogue sizes
SERVING_K = 20  # recommend(model, session, k=SERVING_K) and the floor's top-k
CHILD_TIMEOUT_1M_S = 300  # per model at 1M items: load, fit and the timed calls


def suite_serving(opts: Options) -> dict:
    from recsys.models import REGISTRY

    if opts.knn:
        return suite_serving_knn(opts)
    if opts.first_start_only:
        return first_start_only(opts)
    sizes = serving_sizes(opts.items, opts.quick)
    models = list(opts.models or REGISTRY)
    # `--models` measures those models again and keeps the other rows as they were; `--no-app` keeps the app's
    previous = read_json(results_path(opts.results_dir, "serving", opts.quick)) if opts.models or not opts.app else {}
    n_single = 10 if opts.quick else SERVING_SINGLE
    results, checks = {}, []
    for label, n in sizes.items():
        path = synthetic_processed(opts, n)
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
                                       f"batch {e['batch']['sessions_per_s']:.0f} sessions/s" + (
                                           f"; floor p50 {e['floor']['p50_ms']:.2f} ms, {e['floor_ratio']:.2f}x"
                                           if "floor" in e else ""))
            print(f"[serving] {label} {m}: {msg}", flush=True)
            if opts.models:  # a run of some models only: its rows are merged into the last full run's
                e["run"] = {"command": opts.command, "date": datetime.now(UTC).date().isoformat()}
        kept = {} if not opts.models else previous.get("sizes", {}).get(label, {}).get("models", {})
        results[label] = {"n_items": n_real, "batch_size": base["batch_size"], "models": {**kept, **entries}}
        if label in FLOOR_SIZES and not opts.quick:
            checks += floor_checks(label, results[label]["models"])
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
           "merged_into": None if not opts.models else previous.get("merged_into") or (
               {k: previous[k] for k in ("timestamp", "command")} if previous.get("timestamp") else None),
           "session_lengths": "5-20 items (test sessions of the synthetic data cut to a random length)",
           "call": f"recsys.models.base.recommend(model, session, k={SERVING_K}) (repeats allowed, the library "
                   "default)",
           "floor": FLOOR_WHAT, "floor_target": FLOOR_TARGET, "floor_sizes": list(FLOOR_SIZES),
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
        checks += first_start_checks(out["first_start"])
    else:
        out["app"] = out["first_start"] = {"skipped": "not requested (--no-app)"}
    return out


FLOOR_WHAT = (f"one product of a random query of the model's dimension d with the (d, n_items) table its scores come "
              f"from (NeuralRecommender.serving_table), then torch.topk of {SERVING_K}: what serving one session "
              "cannot do without, its encoding aside; timed right after each recommend() call of the single-session "
              "loop, at the same thread count")


def floor_checks(label: str, models: dict) -> list[dict]:
    """One check per neural model measured beside its floor at this size: recommend() p50 / floor p50."""
    return [check(f"recommend() / floor, {m}, {label} items", e["floor_ratio"], FLOOR_TARGET, "x",
                  note=f"{e['single']['p50_ms']:.2f} / {e['floor']['p50_ms']:.2f} ms p50; CPU "
                       f"{e['single']['cpu_ms_per_call']:.2f} / {e['floor']['cpu_ms_per_call']:.2f} ms per call")
            for m, e in models.items() if "floor" in e]


FIRST_START_CHECK = "first start on a fresh machine (python app.py until it serves)"


def first_start_checks(fs: dict) -> list[dict]:
    if fs.get("wall_s") is None:
        return []
    neural = ", ".join(f"{m} {e['fit']:.0f} s" for m, e in fs["seconds"].items() if e.get("epochs"))
    return [check(FIRST_START_CHECK, fs["wall_s"], FIRST_START_TARGET_S, "s",
                  note=f"{fs['cpu_s']:.0f} s CPU; load {fs['load_before'][0]} before, {fs['load_after'][0]} after; "
                       f"{len(fs['models'])} models, neural fits: {neural or 'none'}")]


def first_start_only(opts: Options) -> dict:
    """`--first-start-only`: time the first start again and keep every other number of the last serving run
    (its rows, checks, timestamp, command and machine; the first start carries its own command, time and
    machine)."""
    if opts.quick:
        raise ValueError("--first-start-only times the full first start: not with --quick")
    previous = read_json(results_path(opts.results_dir, "serving", False))
    if not previous.get("sizes"):
        raise ValueError("--first-start-only keeps the last full serving run's other numbers, and there is none: "
                         "run `python scripts/benchmark.py serving` first")
    fs = first_start(opts)
    checks = [c for c in previous.get("checks", []) if c["what"] != FIRST_START_CHECK] + first_start_checks(fs)
    kept = {k: v for k, v in previous.items() if k not in ("suite", "quick", "first_start", "checks")}
    return {**kept, "first_start": fs, "checks": checks}


def worker_serving(params: dict) -> dict:
    import torch

    from recsys.data import Dataset
    from recsys.models import REGISTRY, recommend

    data = Dataset.load(params["data"])
    default_threads = torch.get_num_threads()
    torch.set_num_threads(params["threads"])
    rng = np.random.default_rng(0)
    sessions = serving_sessions(data, params["n_single"], rng)
    batch = serving_sessions(data, params["batch_size"], rng)
    out = {}
    for name in params["models"]:
        cls = REGISTRY[name]
        gc.collect()
        rss_before = rss_mib()
        entry = {"trained": not cls.trains_in_epochs}
        try:
            torch.manual_seed(0)
            with Timer() as t:
                model, weights = servable(cls, data)
            if weights:
                entry["weights"] = weights
            if not cls.trains_in_epochs:
                entry["fit"] = t.as_dict()
            model.eval()
            entry["model_rss_mib"] = round(rss_mib() - rss_before, 1)
            floor, dim = floor_call(model) if cls.trains_in_epochs else (None, None)
            for s in sessions[:5]:  # warm-up
                recommend(model, s, k=SERVING_K)
                if floor:
                    floor()
            times, floor_times, cpu, floor_cpu = [], [], 0.0, 0.0
            load_before = load_avg()
            for s in sessions:  # each call timed alone; the floor right after it, under the same conditions
                c0, t0 = time.process_time(), time.perf_counter()
                recommend(model, s, k=SERVING_K)
                t1, c1 = time.perf_counter(), time.process_time()
                times.append(t1 - t0)
                cpu += c1 - c0
                if floor:
                    floor()
                    floor_times.append(time.perf_counter() - t1)
                    floor_cpu += time.process_time() - c1
            entry["single"] = {**percentiles_ms(times), "cpu_ms_per_call": round(1000 * cpu / len(sessions), 3),
                               "load_before": load_before, "load_after": load_avg()}
            if floor:
                entry["floor"] = {**percentiles_ms(floor_times), "dim": dim,
                                  "cpu_ms_per_call": round(1000 * floor_cpu / len(sessions), 3)}
                entry["floor_ratio"] = round(entry["single"]["p50_ms"] / entry["floor"]["p50_ms"], 3)
            recommend(model, batch[:8], k=SERVING_K)
            with Timer() as t:
                for _ in range(params["n_batches"]):
                    recommend(model, batch, k=SERVING_K)
            entry["batch"] = {"batch_size": len(batch), "batches": params["n_batches"],
                              "sessions_per_s": round(len(batch) * params["n_batches"] / t.wall, 1),
                              "cpu_s": round(t.cpu, 3), "wall_s": round(t.wall, 3), "load_after": t.load_after}
            if params["n_default_threads"]:
                torch.set_num_threads(default_threads)
                times = []
                for s in sessions[: params["n_default_threads"]]:
                    t0 = time.perf_counter()
                    recommend(model, s, k=SERVING_K)
                    times.append(time.perf_counter() - t0)
                torch.set_num_threads(params["threads"])
                entry["single_default_threads"] = {**percentiles_ms(times), "threads": default_threads}
        except Exception as err:  # one model failing must not hide the others
            entry = {"skipped": f"failed: {type(err).__name__}: {err}"[:300]}
        out[name] = entry
        model = None
    return {"n_items": data.n_items - 1, "models": out, "torch_threads": params["threads"],
            "default_threads": default_threads}


def floor_call(model):
    """The floor of a neural model's one-session recommend() (see FLOOR_WHAT): a call, and the dimension d."""
    import torch

    table, _ = model.serving_table()  # the model's own table: the same memory recommend() reads
    query = torch.randn(1, table.shape[0], generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def call():
        return torch.topk(query @ table, SERVING_K, dim=1)

    return call, int(table.shape[0])
