"""Suite "batch": every Diginetica test prefix (60,858) through `scripts/recommend.py` (recsys.batch), per model.

The data is the SR-GNN plain split of ../shared/data/diginetica/plain (README "Results on real data"), prepared
as `prepare_data.py --source sessions` prepares it; the input is its test_pairs.tsv prefixes as a Parquet
sessions table (session_id = the line number, items = the prefix). V-SKNN is fitted with its tuned parameters
(benchmarks/params/diginetica/vsknn.json); GRU4Rec (its tuned parameters) is trained for ONE epoch: scoring
costs the same whatever the weights, so a short training is enough for timing (its accuracy is not the point).
Each run is the script itself in a child process (`--quiet`), timed from outside: wall, CPU (user + sys),
peak RSS and the load average before and after.
"""

import sys
from pathlib import Path

from tools.bench.common import PARAMS_DIR, ROOT, Options, check, run_child, worker_argv

BATCH_MODELS = ("gru4rec", "vsknn")
BATCH_TARGETS_S = {"gru4rec": 15.0, "vsknn": 30.0}
# (workers, torch threads per process) tried per model in this order, until one meets the target (two torch threads
# in one process were the slower setting in every run so far, by 1.2-2.3x on the busy machine)
BATCH_SETTINGS = ((2, 1), (1, 2))
SPLIT = ("diginetica/plain/train_sessions.txt", "diginetica/plain/test_pairs.tsv")


def batch_paths(opts: Options) -> dict:
    root = opts.work_dir / "batch"
    return {"root": root, "data": root / "diginetica", "prefixes": root / "test_prefixes.parquet",
            "models": root / "models"}


def worker_batch_data(params: dict) -> dict:
    """The processed split and the prefixes table (built once)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from recsys.prepare import prepare

    data, prefixes = Path(params["data"]), Path(params["prefixes"])
    if not (data / "meta.json").is_file():
        prepare("sessions", params["inputs"], data)
    if not prefixes.is_file():
        pairs = pcsv.read_csv(params["inputs"][1], parse_options=pcsv.ParseOptions(delimiter="\t"),
                              convert_options=pcsv.ConvertOptions(column_types={"prefix": pa.string(),
                                                                                "label": pa.string()}))
        n = pairs.num_rows
        table = pa.table({"session_id": pa.array([f"p{i}" for i in range(n)]),
                          "items": pc.split_pattern(pairs.column("prefix"), " ")})
        pq.write_table(table, prefixes, row_group_size=16384)
    return {"prefixes": pq.ParquetFile(prefixes).metadata.num_rows}


def worker_batch_models(params: dict) -> dict:
    """V-SKNN fitted, GRU4Rec trained for one epoch, both with their tuned Diginetica parameters."""
    import time

    import torch

    from recsys.data import Dataset
    from recsys.folder import save_folder
    from recsys.models import FitOptions, build_model
    from recsys.pipeline import load_params
    from recsys.train import fit

    data = Dataset.load(params["data"])
    out = {}
    for name in params["models"]:
        folder = Path(params["out"]) / name
        if (folder / "config.json").is_file():
            continue
        torch.manual_seed(0)
        model = build_model(name, data.n_items, load_params([PARAMS_DIR / "diginetica" / f"{name}.json"])[name])
        began = time.perf_counter()
        fit(model, data, FitOptions(max_epochs=1, progress=False, accelerator="cpu",
                                    workdir=str(Path(params["out"]) / ".work" / name)))
        out[name] = round(time.perf_counter() - began, 1)
        save_folder(model, folder, data.items, train={"note": "batch benchmark: " + (
            "ONE epoch, for timing only" if model.trains_in_epochs else "fitted"), "fit_seconds": out[name]})
    return {"fit_s": out}


def suite_batch(opts: Options) -> dict:
    paths = batch_paths(opts)
    paths["root"].mkdir(parents=True, exist_ok=True)
    inputs = [str(opts.shared_data / p) for p in SPLIT]
    if not all(Path(p).is_file() for p in inputs):
        return {"skipped": f"the Diginetica split is not in {opts.shared_data}/diginetica/plain"}
    child = run_child(worker_argv("batch_data", {"data": str(paths["data"]), "prefixes": str(paths["prefixes"]),
                                                 "inputs": inputs}))
    if child.get("error"):
        raise RuntimeError(f"preparing the batch benchmark data failed: {child['error'][-500:]}")
    n_prefixes = child["result"]["prefixes"]
    models = [m for m in (opts.models or BATCH_MODELS)]
    child = run_child(worker_argv("batch_models", {"data": str(paths["data"]), "out": str(paths["models"]),
                                                   "models": models}))
    if child.get("error"):
        raise RuntimeError(f"fitting the batch benchmark models failed: {child['error'][-500:]}")
    runs, checks = {}, []
    for name in models:
        runs[name] = []
        for workers, threads in BATCH_SETTINGS:
            out = paths["root"] / f"recs-{name}.parquet"
            argv = [sys.executable, str(ROOT / "scripts" / "recommend.py"), "--model", str(paths["models"] / name),
                    "--input", str(paths["prefixes"]), "--k", "20", "--out", str(out), "--quiet",
                    "--workers", str(workers), "--threads", str(threads)]
            child = run_child(argv, timeout=600)
            entry = {"workers": workers, "threads": threads,
                     "command": " ".join(["python", "scripts/recommend.py", "--model", f"MODELS/{name}", "--input",
                                          "test_prefixes.parquet", "--k", "20", "--out", f"recs-{name}.parquet",
                                          "--quiet", "--workers", str(workers), "--threads", str(threads)]),
                     **{k: child[k] for k in ("wall_s", "user_s", "sys_s", "peak_rss_mib", "load_before",
                                              "load_after")}}
            if child.get("error"):
                entry["error"] = child["error"][-500:]
            else:
                report = child["result"]
                entry["report"] = {k: report.get(k) for k in ("sessions", "fallback", "unknown_items", "rows",
                                                              "seconds", "sessions_per_s")}
            runs[name].append(entry)
            met = "error" not in entry and entry["wall_s"] <= BATCH_TARGETS_S[name]
            print(f"[batch] {name} workers {workers} threads {threads}: {entry['wall_s']} s wall, "
                  f"{entry['user_s'] + entry['sys_s']:.1f} s CPU, load {entry['load_before'][0]}", flush=True)
            if met:
                break
        done = [r for r in runs[name] if "error" not in r]
        if done:
            best = min(done, key=lambda r: r["wall_s"])
            checks.append(check(f"batch scoring, {n_prefixes:,} Diginetica prefixes, {name}", best["wall_s"],
                                BATCH_TARGETS_S[name], "s",
                                note=f"--workers {best['workers']} --threads {best['threads']}; "
                                     f"{best['user_s'] + best['sys_s']:.1f} s CPU; load {best['load_before'][0]} "
                                     f"before"))
    return {"n_prefixes": n_prefixes, "runs": runs, "checks": checks,
            "weights": "vsknn: fitted, tuned parameters; gru4rec: tuned parameters, trained ONE epoch (timing only)"}


def render_batch(r: dict) -> str:
    """The block of docs/BENCHMARKS.md for this suite."""
    if r.get("skipped"):
        return f"Not run: {r['skipped']}\n"
    rows = [f"Ran {r['timestamp']}: `{r['command']}` ({r['timing']['wall_s']:.0f} s in all). "
            f"{r['n_prefixes']:,} prefixes, k = 20. Weights: {r['weights']}.", "",
            "| model | workers × torch threads | wall s | of which read + score + write s | CPU s (user + sys) | "
            "prefixes/s | peak RSS MiB | popularity fallbacks / unknown ids | load before → after |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, runs in r["runs"].items():
        for e in runs:
            if "error" in e:
                rows.append(f"| {name} | {e['workers']} × {e['threads']} | failed: {e['error'][-120:]} ||||||| ")
                continue
            rep = e["report"]
            target = r.get("targets", BATCH_TARGETS_S).get(name)
            mark = "" if target is None else (" ✓" if e["wall_s"] <= target else " ✗")
            rows.append(f"| {name} | {e['workers']} × {e['threads']} | **{e['wall_s']:.2f}**{mark} | "
                        f"{rep['seconds']:.2f} | {e['user_s'] + e['sys_s']:.2f} | "
                        f"{rep['sessions'] / e['wall_s']:,.0f} | "
                        f"{e['peak_rss_mib']:,.0f} | {rep['fallback']:,} / {rep['unknown_items']:,} | "
                        f"{'/'.join(map(str, e['load_before']))} → {'/'.join(map(str, e['load_after']))} |")
    rows += ["", "✓ / ✗: the targets (GRU4Rec ≤ 15 s, V-SKNN ≤ 30 s) met / not met. Wall time counts the whole "
                 "script; the next column is `score_file` alone (reading, scoring, writing), the rest is the start-up: "
                 "Python, torch and recsys imports and `recsys.load`."]
    return "\n".join(rows) + "\n"
