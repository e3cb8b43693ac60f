"""Suite "data": preparation time and peak memory on RetailRocket- and YooChoose-size synthetic logs, in memory
and out of core (--engine streaming, issue 19: the same data set; `python -m tools.bench.scale prepare` measures
ten times YooChoose)."""

import functools
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tools.bench.common import (
    ROOT,
    Options,
    check,
    rss_mib,
    run_child,
    worker_argv,
)

# suite: data preparation

# RetailRocket: 2,756,101 events, 235,061 items, 1,669 categories, 1,407,580 visitors. YooChoose clicks:
# 33,003,944 events, 52,739 items (the generator needs visitors; it keeps its default n_events / 8).
DATA_SIZES = {
    "retailrocket-size": dict(n_events=2_756_101, n_items=235_061, n_categories=1_669, n_visitors=1_407_580),
    "yoochoose-size": dict(n_events=33_003_944, n_items=52_739, n_categories=340),
}
DATA_SIZES_QUICK = {
    "retailrocket-size": dict(n_events=40_000, n_items=3_000, n_categories=60, n_visitors=20_000),
    "yoochoose-size": dict(n_events=80_000, n_items=2_000, n_categories=60),
}
DATA_TARGETS = {"retailrocket-size": 15.0, "yoochoose-size": 180.0}  # seconds
DATA_MEMORY_TARGET_MIB = 8 * 1024


def _generated_log(opts: Options, name: str, params: dict) -> dict:
    """The synthetic RetailRocket-layout log of this size on disk (generated once, in a child; then reused)."""
    folder = opts.work_dir / "logs" / (name + ("-quick" if opts.quick else ""))
    spec_path = folder / "spec.json"
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text())
        if spec.get("params") == params and all(Path(p).is_file() for p in spec.get("paths", {}).values()):
            return {**spec, "cached": True}
    child = run_child(worker_argv("generate", {"out": str(folder), "params": params}))
    if child.get("error"):
        raise RuntimeError(f"generating the {name} log failed: {child['error']}")
    paths = child["result"]["paths"]
    spec = {"params": params, "paths": paths, "bytes": {k: Path(p).stat().st_size for k, p in paths.items()},
            "generation": {k: child[k] for k in ("wall_s", "user_s", "sys_s", "peak_rss_mib", "load_before",
                                                 "load_after")},
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    spec_path.write_text(json.dumps(spec, indent=2))
    return {**spec, "cached": False}


def suite_data(opts: Options) -> dict:
    sizes = DATA_SIZES_QUICK if opts.quick else DATA_SIZES
    out, checks = {}, []
    for name, params in sizes.items():
        log = _generated_log(opts, name, params)
        inputs = [log["paths"][k] for k in ("events", "item_properties_part1", "item_properties_part2",
                                            "category_tree")]
        processed = opts.work_dir / "processed" / (name + ("-quick" if opts.quick else ""))
        repeats = opts.repeats or (2 if name == "retailrocket-size" and not opts.quick else 1)
        runs = []
        for _ in range(repeats):
            child = run_child(worker_argv("prepare", {"inputs": inputs, "out": str(processed)}))
            if child.get("error"):
                raise RuntimeError(f"preparing the {name} log failed: {child['error']}")
            result = child.pop("result")
            phases = result["phases"]
            result["prepare_wall_s"] = round(sum(phases[k]["wall_s"] for k in ("read", "build", "save")), 3)
            result["prepare_cpu_s"] = round(sum(phases[k]["cpu_s"] for k in ("read", "build", "save")), 3)
            runs.append({**child, **result})
            print(f"[data] {name}: read+build+save {result['prepare_wall_s']:.1f} s wall / "
                  f"{result['prepare_cpu_s']:.1f} s CPU; process {child['wall_s']:.1f} s wall, "
                  f"{child['user_s'] + child['sys_s']:.1f} s CPU, peak {child['peak_rss_mib']:.0f} MiB, "
                  f"load {child['load_before']}", flush=True)
        best = min(runs, key=lambda r: r["prepare_wall_s"])
        out[name] = {"generator": params, "generation": {**log["generation"], "cached": log["cached"],
                                                         "generated_at": log["generated_at"],
                                                         "bytes": log["bytes"]},
                     "command": "python scripts/prepare_data.py --source retailrocket --input " + " ".join(
                         Path(p).name for p in inputs) + " --out DIR",
                     "runs": runs, "best_prepare_wall_s": best["prepare_wall_s"],
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
        # the same log out of core (issue 19): the same data set, its memory and time beside the in-memory run's
        child = run_child(worker_argv("prepare", {"inputs": inputs, "out": str(processed) + "-streaming",
                                                  "engine": "streaming", "same_as": str(processed)}))
        if child.get("error"):
            raise RuntimeError(f"preparing the {name} log out of core failed: {child['error']}")
        streamed = {**child, **child.pop("result")}
        out[name]["streaming"] = {**streamed, "command": out[name]["command"] + " --engine streaming"}
        print(f"[data] {name} --engine streaming: read+build+save {streamed['main_wall_s']:.1f} s wall / "
              f"{streamed['main_cpu_s']:.1f} s CPU, peak {streamed['main_rss_peak_mib']:.0f} MiB, "
              f"same data set: {streamed['same']}, load {streamed['load_before']}", flush=True)
        checks.append(check(f"prepare {name} log out of core (--engine streaming): the same data set", 
                            int(streamed["same"]), 1, "", le=False))
        if not opts.quick:
            checks.append(check(f"prepare {name} log out of core, peak memory", streamed["main_rss_peak_mib"],
                                out[name]["peak_rss_mib"], "MiB", note="target: below the in-memory run's"))
            checks.append(check(f"prepare {name} log ({params['n_events']:,} events): read + build + save",
                                best["prepare_wall_s"], DATA_TARGETS[name], "s",
                                note=f"{best['prepare_cpu_s']:.1f} s CPU; load {best['load_before'][0]}"))
            checks.append(check(f"prepare {name} log, peak memory", out[name]["peak_rss_mib"],
                                DATA_MEMORY_TARGET_MIB, "MiB"))
    return {"sizes": out, "checks": checks}


def worker_generate(params: dict) -> dict:
    from recsys.datasets.synthetic import generate_retailrocket_log

    paths = generate_retailrocket_log(params["out"], **params["params"])
    return {"paths": {k: str(v) for k, v in paths.items()}}


def worker_prepare(params: dict) -> dict:
    """`scripts/prepare_data.py --source retailrocket` itself, with its three phases timed from outside."""
    sys.path.insert(0, str(ROOT / "scripts"))
    started = time.perf_counter()
    import prepare_data  # the script's main(); imports recsys.prepare

    import recsys.data
    import recsys.prepare

    imported = time.perf_counter() - started
    phases = {}

    def timed(name, fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = {"wall_s": round(time.perf_counter() - wall, 3),
                                "cpu_s": round(time.process_time() - cpu, 3), "rss_peak_mib": rss_mib("VmHWM")}
        return inner

    recsys.prepare.load_events = timed("read", recsys.prepare.load_events)
    recsys.prepare.build_dataset = timed("build", recsys.prepare.build_dataset)
    recsys.data.Dataset.save = timed("save", recsys.data.Dataset.save)
    engine = ["--engine", params["engine"]] if params.get("engine") else []
    wall, cpu = time.perf_counter(), time.process_time()
    rc = prepare_data.main(["--source", "retailrocket", "--input", *params["inputs"], "--out", params["out"], *engine])
    if rc != 0:
        raise RuntimeError(f"prepare_data exited with {rc}")
    meta = json.loads((Path(params["out"]) / "meta.json").read_text())
    out = {"imports_s": round(imported, 3), "phases": phases, "raw_events": meta.get("raw_events"),
           "events_after_filter": meta.get("events_after_filter"), "stats": meta.get("stats"),
           "main_wall_s": round(time.perf_counter() - wall, 3), "main_cpu_s": round(time.process_time() - cpu, 3),
           "main_rss_peak_mib": rss_mib("VmHWM")}  # before the comparison below
    if params.get("same_as"):  # the folder the in-memory run wrote: the same sessions, items, labels and splits
        import numpy as np

        a, b = recsys.data.Dataset.load(params["same_as"]), recsys.data.Dataset.load(params["out"])
        out["same"] = bool(all(np.array_equal(a.split(n).items, b.split(n).items) and np.array_equal(
            a.split(n).offsets, b.split(n).offsets) and a.info[n].equals(b.info[n]) for n in recsys.data.SPLITS)
            and a.items.equals(b.items))
    return out
