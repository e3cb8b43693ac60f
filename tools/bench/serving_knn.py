"""`python scripts/benchmark.py serving --knn`: the kNN baselines (itemknn, sr, sknn, vsknn, stan) at a catalogue of
1,000,000 items (issue 19, "Big catalogues"): each model's fit (wall and CPU seconds, peak resident memory) and
recommend() latency for one session, each model in a child process of its own, so the peak RSS is that model's
(and the data it was fitted on), not the suite's. Results go to benchmarks/results/serving_knn.json, beside
serving.json (which this run leaves alone).

The data: synthetic sessions over exactly `n_items` items whose popularity follows Zipf's law. A session draws a
"topic" rank r with P(r) ~ 1/r (continuous power law, inverse CDF) and its items near it (r plus a uniform offset
within +-200 ranks, so kNN models find co-occurrences), through one random permutation of the item ids. Session
lengths: 2 + Poisson(3) (mean 5, at most 50); the serving sessions: 5-20 items, drawn the same way.

Memory bounds stated (and checked) per model:
- the whole child process (data loaded, fit, calls) within KNN_PEAK_LIMIT_MIB, the issue's 8 GiB budget;
- recommend() for one session, on top of the fitted model: at most SCORE_ROWS score rows of n_items float32
  (the scores, their mask and top-k's temporaries; 61 MiB at 1M items) plus 8 MiB of slack, measured by
  resetting the process's peak RSS (/proc/self/clear_refs) after the fit;
- the fitted state itself, by formula (`state_bound_bytes`): item-to-item models keep (n_items, K) neighbour ids
  and weights (8 bytes a cell) and a popularity vector; session-kNN models keep 12 bytes per distinct
  (session, item) event, 8 per session and 12 per item.
"""

import dataclasses
import gc
import json
import time

import numpy as np

from tools.bench.common import (
    Options,
    Timer,
    check,
    load_avg,
    percentiles_ms,
    plain_items,
    rss_mib,
    run_child,
    worker_argv,
)

KNN_MODELS = ("itemknn", "sr", "sknn", "vsknn", "stan")
KNN_ITEMS = 1_000_000
KNN_SESSIONS = 4_000_000  # ~20 M training events: ~92% of the 1 M items occur; the slowest fit (itemknn) ~1 min
KNN_QUICK = {"items": 2_000, "sessions": 10_000}
ZIPF_EXPONENT = 1.0
TOPIC_WINDOW = 200  # a session's items lie within this many popularity ranks of its topic
KNN_SINGLE = 200  # single-session calls timed per model (after 5 warm-up calls)
KNN_K = 20
KNN_PEAK_LIMIT_MIB = 8192  # the memory budget for one machine's job
SCORE_ROWS = 16  # recommend()'s stated working memory: this many (n_items,) float32 rows ...
RSS_SLACK_MIB = 8.0  # ... plus this much for the allocator and Python's own objects
CHILD_TIMEOUT_S = 1200  # per model: load, fit, calls


def zipf_sessions(n_items: int, n_sessions: int, rng, mean_length: float = 5.0, lengths=None,
                  permutation=None):
    """`n_sessions` sessions over items 1..n_items (see the module docstring); `permutation` maps popularity ranks
    to item ids (the same one for every split of a data set)."""
    from recsys.sessions import Sessions

    if lengths is None:
        lengths = np.minimum(2 + rng.poisson(mean_length - 2, n_sessions), 50)
    lengths = np.asarray(lengths, dtype=np.int64)
    u = rng.random(n_sessions)
    if ZIPF_EXPONENT == 1.0:
        rank = np.exp(u * np.log(n_items + 1))
    else:
        a = 1.0 - ZIPF_EXPONENT
        rank = (1.0 + u * ((n_items + 1) ** a - 1.0)) ** (1.0 / a)
    topic = np.minimum(rank.astype(np.int64) - 1, n_items - 1)
    window = min(TOPIC_WINDOW, n_items // 4)
    ranks = np.abs(np.repeat(topic, lengths) + rng.integers(-window, window + 1, int(lengths.sum()))) % n_items
    items = (permutation[ranks] if permutation is not None else ranks) + 1
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sessions(items.astype(np.int32), offsets)


def zipf_catalogue(n_items: int, n_sessions: int, seed: int = 0):
    """A data set over exactly `n_items` items: `n_sessions` training sessions, 2,000 valid and 2,000 test sessions
    of 5-20 items."""
    from recsys.data import Dataset

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_items)
    train = zipf_sessions(n_items, n_sessions, rng, permutation=perm)
    valid, test = (zipf_sessions(n_items, 2_000, rng, lengths=rng.integers(5, 21, 2_000), permutation=perm)
                   for _ in range(2))
    meta = {"source": "zipf-catalogue", "protocols": {"train": "all", "valid": "all", "test": "all"},
            "dropped_unknown_items": {}}
    return Dataset(train, valid, test, plain_items(n_items, train), meta)


def worker_knn_data(params: dict) -> dict:
    """Build and save the data set; say what it holds."""
    data = zipf_catalogue(params["n_items"], params["n_sessions"])
    data.save(params["out"])
    train = data.train
    pop = np.bincount(train.items, minlength=data.n_items)[1:]
    return {"n_items": data.n_items - 1, "train_sessions": len(train), "train_events": int(len(train.items)),
            "items_seen": int((pop > 0).sum()), "items_seen_share": round(float((pop > 0).mean()), 4),
            "top_item_events": int(pop.max()), "median_item_events": float(np.median(pop)),
            "mean_length": round(float(train.lengths.mean()), 3)}


def state_bytes(model) -> int:
    """Bytes of the model's buffers and parameters: what serving keeps in memory."""
    return int(sum(t.numel() * t.element_size() for t in (*model.buffers(), *model.parameters())))


def state_bound_bytes(name: str, config, n_items: int, train) -> int:
    """The stated upper bound of a fitted model's state (see the module docstring)."""
    if name in ("itemknn", "sr"):
        return n_items * config.k_neighbors * 8 + n_items * 4
    events = int(len(train.items))  # distinct (session, item) events are at most the events
    return 12 * events + 8 * (len(train) + 1) + 12 * n_items + 8


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker_knn(params: dict) -> dict:
    import torch

    from recsys.data import Dataset
    from recsys.models import REGISTRY, FitOptions, recommend
    from tools.bench.servedata import serving_sessions

    torch.set_num_threads(1)
    name = params["model"]
    data = Dataset.load(params["data"])
    gc.collect()
    out = {"data_rss_mib": rss_mib(), "data_peak_rss_mib": rss_mib("VmHWM")}
    cls = REGISTRY[name]
    model = cls(cls.Config(), data.n_items)
    with Timer() as t:
        info = model.fit(data, FitOptions(progress=False))
    gc.collect()
    model.eval()
    out["fit"] = {**t.as_dict(), "info": info}
    out["fit_peak_rss_mib"] = rss_mib("VmHWM")
    out["fitted_rss_mib"] = rss_mib()
    out["state_mib"] = round(state_bytes(model) / 2**20, 1)
    out["state_bound_mib"] = round(state_bound_bytes(name, model.config, data.n_items, data.train) / 2**20, 1)
    out["config"] = dataclasses.asdict(model.config)
    if name in ("itemknn", "sr"):
        out["neighbours_width"] = int(model.neighbors.shape[1])
    sessions = serving_sessions(data, params["n_single"], np.random.default_rng(0))
    for s in sessions[:5]:
        recommend(model, s, k=KNN_K)
    gc.collect()
    before = rss_mib()
    # the peak so far (data, fit, warm-up): resetting it below also resets what os.wait4 reports to the parent
    out["peak_before_calls_mib"] = rss_mib("VmHWM")
    out["peak_reset"] = _reset_peak_rss()
    times, cpu, load_before = [], 0.0, load_avg()
    for s in sessions:
        c0, t0 = time.process_time(), time.perf_counter()
        recommend(model, s, k=KNN_K)
        times.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    out["single"] = {**percentiles_ms(times), "cpu_ms_per_call": round(1000 * cpu / len(sessions), 3),
                     "load_before": load_before, "load_after": load_avg()}
    if out["peak_reset"]:
        out["recommend_extra_peak_mib"] = round(rss_mib("VmHWM") - before, 1)
    out["n_items"] = data.n_items - 1
    return out


def knn_data_path(opts: Options, n_items: int, n_sessions: int):
    return opts.work_dir / "serving" / f"zipf-{n_items}-{n_sessions}"


def suite_serving_knn(opts: Options) -> dict:
    """Each kNN model at `--items` (default 1M) items: fit and one-session latency in a child of its own."""
    if opts.items and len(opts.items) > 1:
        raise ValueError("serving --knn measures one catalogue size: give one --items value")
    models = list(opts.models or KNN_MODELS)
    unknown = [m for m in models if m not in KNN_MODELS]
    if unknown:
        raise ValueError(f"serving --knn measures the kNN models {', '.join(KNN_MODELS)}, not {', '.join(unknown)}")
    n_items = opts.items[0] if opts.items else KNN_QUICK["items"] if opts.quick else KNN_ITEMS
    n_sessions = KNN_QUICK["sessions"] if opts.quick else max(10_000, round(KNN_SESSIONS * n_items / KNN_ITEMS))
    path = knn_data_path(opts, n_items, n_sessions)
    spec_file = path / "knn_spec.json"
    if spec_file.is_file():
        spec = json.loads(spec_file.read_text())
    else:
        child = run_child(worker_argv("knn_data", {"n_items": n_items, "n_sessions": n_sessions, "out": str(path)}))
        if child.get("error"):
            raise RuntimeError(f"building the {n_items}-item Zipf data set failed: {child['error'][-300:]}")
        spec = {**child["result"], "generation": {k: child[k] for k in ("wall_s", "user_s", "sys_s",
                                                                        "peak_rss_mib")}}
        spec_file.write_text(json.dumps(spec))
    n_single = 10 if opts.quick else KNN_SINGLE
    entries = {}
    for name in models:
        child = run_child(worker_argv("knn", {"data": str(path), "model": name, "n_single": n_single}),
                          timeout=CHILD_TIMEOUT_S, env={"OMP_NUM_THREADS": "1"})
        process = {k: child[k] for k in ("wall_s", "user_s", "sys_s", "peak_rss_mib", "load_before", "load_after")}
        if child.get("result"):  # the worker resets its peak RSS before the timed calls: the peak is the larger
            process["peak_rss_mib"] = max(process["peak_rss_mib"], child["result"].get("peak_before_calls_mib") or 0)
        if child.get("error"):
            entries[name] = {"skipped": f"did not finish within {CHILD_TIMEOUT_S} s" if child["timed_out"]
                             else child["error"].strip().splitlines()[-1][:300], "process": process}
            print(f"[serving --knn] {name}: {entries[name]['skipped']}", flush=True)
            continue
        e = entries[name] = {**child["result"], "process": process}
        print(f"[serving --knn] {name}: fit {e['fit']['wall_s']:.1f} s wall / {e['fit']['cpu_s']:.1f} s CPU, "
              f"peak {process['peak_rss_mib']:,.0f} MiB; recommend p50 {e['single']['p50_ms']:.2f} ms, "
              f"p99 {e['single']['p99_ms']:.2f} ms", flush=True)
    return {"n_items": n_items, "data": {**spec, "sessions": n_sessions, "zipf_exponent": ZIPF_EXPONENT,
                                         "topic_window": TOPIC_WINDOW, "generator": "tools.bench.serving_knn."
                                                                                    "zipf_catalogue, seed 0"},
            "models": entries, "checks": knn_checks(n_items, entries), "n_single": n_single, "k": KNN_K,
            "torch_threads": 1, "peak_limit_mib": KNN_PEAK_LIMIT_MIB, "score_rows": SCORE_ROWS,
            "recommend_bound_mib": recommend_bound_mib(n_items)}


def recommend_bound_mib(n_items: int) -> float:
    """recommend()'s stated working memory above the fitted model: SCORE_ROWS score rows, plus allocator slack."""
    return round(SCORE_ROWS * (n_items + 1) * 4 / 2**20 + RSS_SLACK_MIB, 1)


def knn_checks(n_items: int, entries: dict) -> list[dict]:
    """Two summary lines: the largest whole-process peak against the 8 GiB budget, and the largest recommend()
    working memory against its bound (a model that did not finish counts as not met)."""
    done = {m: e for m, e in entries.items() if "skipped" not in e}
    failed = [m for m in entries if m not in done]
    note = "; ".join(f"{m} {e['process']['peak_rss_mib']:,.0f} MiB (fit {e['fit']['wall_s']:.0f} s)"
                     for m, e in done.items()) + (f"; did not finish: {', '.join(failed)}" if failed else "")
    peak = None if failed or not done else max(e["process"]["peak_rss_mib"] for e in done.values())
    out = [check(f"kNN fits at {n_items:,} items ({', '.join(entries)}): largest whole-process peak RSS (data, fit, "
                 "calls)", peak, KNN_PEAK_LIMIT_MIB, "MiB", note=note)]
    extra = [e["recommend_extra_peak_mib"] for e in done.values() if "recommend_extra_peak_mib" in e]
    if extra and not failed:
        out.append(check(f"kNN recommend() at {n_items:,} items: largest working memory above the fitted model",
                         max(extra), recommend_bound_mib(n_items), "MiB",
                         note="; ".join(f"{m} {e['recommend_extra_peak_mib']:.1f} MiB, p50 "
                                        f"{e['single']['p50_ms']:.1f} ms" for m, e in done.items())))
    return out


def render_serving_knn(r: dict) -> str:
    """The block of docs/BENCHMARKS.md for `serving --knn`."""
    quick = "**Quick size (`--quick`): a smoke run of the code path, not the benchmark.** " if r.get("quick") else ""
    d = r["data"]
    lines = [f"{quick}Ran {r['timestamp']}: `{r['command']}` ({r['timing']['wall_s']:.0f} s in all). Data: "
             f"{r['n_items']:,} items, {d['train_sessions']:,} training sessions, {d['train_events']:,} events "
             f"(mean length {d['mean_length']}); Zipf popularity (exponent {d['zipf_exponent']}), "
             f"{d['items_seen']:,} items ({100 * d['items_seen_share']:.1f}%) occur in training, the most popular "
             f"{d['top_item_events']:,} times, the median {d['median_item_events']:.0f}; generated in "
             f"{d['generation']['wall_s']:.0f} s. Each model in a child process of its own, 1 torch thread; "
             f"{r['n_single']} single-session calls of `recommend(model, session, k={r['k']})` (5-20 items).", "",
             "| model | fit wall s | fit CPU s | peak RSS MiB: data loaded / whole process | fitted state MiB "
             "(bound) | recommend() p50 / p99 ms | CPU ms a call | recommend() extra peak MiB (bound) | "
             "load before → after |",
             "|---|---|---|---|---|---|---|---|---|"]
    bound = r["recommend_bound_mib"]
    for name, e in r["models"].items():
        p = e["process"]
        load = f"{'/'.join(map(str, p['load_before']))} → {'/'.join(map(str, p['load_after']))}"
        if "skipped" in e:
            lines.append(f"| {name} | skipped: {e['skipped']} | | {p['peak_rss_mib']:,.0f} | | | | | {load} |")
            continue
        s = e["single"]
        extra = e.get("recommend_extra_peak_mib")
        lines.append(f"| {name} | **{e['fit']['wall_s']:.1f}** | {e['fit']['cpu_s']:.1f} | "
                     f"{e['data_peak_rss_mib']:,.0f} / **{p['peak_rss_mib']:,.0f}** | {e['state_mib']:,.0f} "
                     f"({e['state_bound_mib']:,.0f}) | **{s['p50_ms']:.2f} / {s['p99_ms']:.2f}** | "
                     f"{s['cpu_ms_per_call']:.2f} | {'–' if extra is None else f'{extra:,.1f}'} ({bound:,.0f}) | "
                     f"{load} |")
    lines += ["", f"Bounds: the whole process within {r['peak_limit_mib']:,} MiB; recommend() within "
                  f"{r['score_rows']} score rows of n_items float32 (+ {RSS_SLACK_MIB:.0f} MiB) above the fitted "
                  "model (peak RSS reset after the fit); the fitted state within its formula (item-to-item: "
                  "n_items × k_neighbors × 8 B + n_items × 4 B; session-kNN: 12 B an event + 8 B a session + 12 B "
                  "an item)."]
    return "\n".join(lines) + "\n"
