"""Suite "train": training speed of SASRec / GRU4Rec beside RecBole 1.2.1 (peers run in their own venv)."""

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tools.bench.common import PEER_SCRIPT, ROOT, Options, Timer, read_json, results_path, run_child, worker_argv

# suite: training speed (ours vs RecBole 1.2.1 on ml-100k)

# The fixed configurations: RecBole 1.2.1's defaults for each model where ours has the same knob.
TRAIN_MODELS = {
    "sasrec": {"params": {"max_len": 50, "dim": 64, "n_layers": 2, "n_heads": 2, "dropout": 0.2},
               "recbole": "SASRec", "recbole_config": "hidden_size 64, 2 layers, 2 heads, inner 256, max length 50, "
                                                     "dropout 0.5, CE loss, batch 2048 prefixes, lr 1e-3"},
    "gru4rec": {"params": {"max_len": 50, "emb_dim": 64, "hidden": 128, "n_layers": 1, "emb_dropout": 0.3,
                           "hidden_dropout": 0.3},
                "recbole": "GRU4Rec", "recbole_config": "embedding 64, hidden 128, 1 layer, dropout 0.3, CE loss, "
                                                       "batch 2048 prefixes, lr 1e-3"},
}
# RecBole 1.2.1's final (validation-selected) test figures on the same ml-100k split, and the CPU seconds its run
# took to the epoch it selected: ../shared/peers/recbole/results.md and raw_results/*.json. SASRec's first leg did
# not record CPU per epoch: 18 epochs to the selected one x 203.2 CPU s/epoch (its 1-thread 2-epoch run, this
# file's peer table) ~ 3,650 s, issue 15's figure. GRU4Rec: the sum of its recorded per-epoch CPU to epoch 17.
RECBOLE_FINAL = {
    "sasrec": {"test_hr@10": 0.1251, "test_ndcg@10": 0.0609, "selected_epoch": 18, "cpu_s_to_selected": 3650,
               "cpu_source": "18 epochs x 203.2 CPU s/epoch (RecBole's 2-epoch 1-thread run), issue 15"},
    "gru4rec": {"test_hr@10": 0.1082, "test_ndcg@10": 0.0488, "selected_epoch": 17, "cpu_s_to_selected": 1138,
                "cpu_source": "sum of train_epoch_cpu_seconds[:17] in raw_results/gru4rec_ml-100k.json"},
}
TARGETS_PER_STEP = 2048  # RecBole's train_batch_size: prefixes (= target positions) per optimiser step
# From ../shared/peers/recbole/README.md and ../shared/data/ANCHORS.md (same machine kind, measured 2026-11-22).
RECBOLE_REFERENCE = {
    "SASRec": {"median_s_per_epoch_tcmalloc": 127.0, "epoch0_s_anomaly_as_shipped_glibc": 393.5,
               "epoch0_s_anomaly_off_glibc": 252.8, "epoch0_s_anomaly_as_shipped_tcmalloc": 189.9,
               "epoch0_s_anomaly_off_tcmalloc": 127.9},
    "GRU4Rec": {"median_s_per_epoch_tcmalloc": 35.0},
}


def _ml100k_sequences(opts: Options) -> tuple[Path | None, str]:
    """ml-100k u.data -> `user i1 i2 ...` lines by timestamp (file order on ties), written once to the work dir."""
    u_data = opts.shared_data / "ml-100k" / "u.data"
    name = "ml-100k-quick.txt" if opts.quick else "ml-100k.txt"
    out = opts.work_dir / "train" / name
    if not u_data.is_file():
        return None, f"{u_data} not found"
    if not out.is_file():
        import pandas as pd

        df = pd.read_csv(u_data, sep="\t", names=["user", "item", "rating", "ts"])
        if opts.quick:
            df = df[df["user"] <= 60]
        df = df.sort_values(["user", "ts"], kind="stable")
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = (f"{u} " + " ".join(map(str, g["item"].tolist())) for u, g in df.groupby("user", sort=True))
        out.write_text("\n".join(lines) + "\n")
    return out, "ml-100k (shared/data/ml-100k/u.data), users' ratings by timestamp, leave-one-out"


def _window_counts(seq_file: Path, max_len: int) -> dict:
    """Training rows (windows of <= max_len targets) and target positions of the leave-one-out train split."""
    lengths = np.array([len(line.split()) - 1 for line in seq_file.read_text().splitlines() if line.strip()])
    lengths = lengths[lengths >= 3]
    targets = np.maximum(lengths - 2 - 1, 0)  # train = all but the last two items; each position after the first
    windows = -(-targets // max_len)
    return {"users": int(len(lengths)), "target_positions": int(targets.sum()), "windows": int(windows.sum()),
            "targets_per_window": round(float(targets.sum() / max(windows.sum(), 1)), 2)}


def suite_train(opts: Options) -> dict:
    previous = read_json(results_path(opts.results_dir, "train", opts.quick))
    if opts.peers_only and previous.get("ours"):
        ours, data_info = previous["ours"], previous.get("data")
    else:
        ours, data_info = _train_ours(opts)
        # runs at another thread count (another key), and models left out by --models, are kept from the previous
        # results, each with its own "ran"
        for name, runs in (previous.get("ours") or {}).items():
            if isinstance(runs, dict) and not ours.get("skipped"):
                ours[name] = {**{k: v for k, v in runs.items() if k not in ours.get(name, {})}, **ours.get(name, {})}
    peers = peer_results(opts)
    kept = (previous.get("peers") or {}).get("runs")
    if not peers["runs"] and kept:  # RecBole's runs are not on this machine: keep the ones measured before
        peers = {**previous["peers"], "status": f"kept from the previous results ({len(kept)} runs; their "
                 "result files are not in this machine's work folder)"}
    if opts.peers and not opts.quick:
        peers["launch"] = launch_peers(opts)
    quality = previous.get("quality") if opts.peers_only else _time_to_quality(opts, data_info,
                                                                               previous.get("quality") or {})
    comparison = []
    for name, spec in TRAIN_MODELS.items():
        for variant, run in (ours or {}).get(name, {}).items():
            if "median_s_per_epoch" not in run:
                continue
            theirs = matching_peer(peers.get("runs", {}), spec["recbole"], run.get("torch_threads"))
            row = {"model": name, "variant": variant, "threads": run.get("torch_threads"),
                   "ours_s_per_epoch": run["median_s_per_epoch"],
                   "ours_targets_per_s": run["targets_per_s"],
                   "ours_cpu_s_per_epoch": round(run["fit_cpu_s"] / run["epochs"], 1)}
            if theirs and theirs.get("median_train_epoch_s"):
                row |= {"recbole_file": theirs["file"], "recbole_s_per_epoch": theirs["median_train_epoch_s"],
                        "recbole_samples_per_s": theirs.get("samples_per_s"),
                        "ratio_ours_over_recbole": round(run["median_s_per_epoch"] / theirs["median_train_epoch_s"], 4)}
                cpu = theirs.get("time_v") or {}
                if "user_s" in cpu and theirs.get("epochs_run"):
                    row["recbole_cpu_s_per_epoch"] = round((cpu["user_s"] + cpu["sys_s"]) / theirs["epochs_run"], 1)
                    row["cpu_ratio_ours_over_recbole"] = round(row["ours_cpu_s_per_epoch"]
                                                               / row["recbole_cpu_s_per_epoch"], 4)
            comparison.append(row)
    return {"data": data_info, "ours": ours, "quality": quality, "peers": peers, "comparison": comparison,
            "checks": _quality_checks(quality)}


def _models(opts: Options) -> list[str]:
    """The suite's models that --models keeps (all of them without it)."""
    return [name for name in TRAIN_MODELS if not opts.models or name in opts.models]


def _time_to_quality(opts: Options, data_info: dict, previous: dict) -> dict:
    """SASRec and GRU4Rec with the default settings (registry config, recsys.recipe): trained to the end of the
    recipe, test evaluated after every epoch (not counted in the clocks), and when the validation-selected model
    first reached RecBole's final test NDCG@10. With --seeds N, each model trains with seeds 0..N-1: the entry is
    seed 0's run, with every seed's summary and their mean beside it. Models left out by --models keep their
    `previous` entry."""
    seq_file = data_info.get("file")
    if not seq_file:
        return {"skipped": "no data"}
    out = {name: run for name, run in previous.items() if name in TRAIN_MODELS and name not in _models(opts)}
    for name in _models(opts):
        reference = RECBOLE_FINAL[name]
        runs = []
        for seed in range(opts.seeds):
            params = {"seq_file": seq_file, "model": name, "params": {}, "train": None, "threads": opts.threads,
                      "epochs": (opts.epochs or 2) if opts.quick else opts.epochs, "probe_test": True,
                      "reach": {"test_ndcg@10": reference["test_ndcg@10"]}, "seed": seed}
            ran = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "command": opts.command}
            child = run_child(worker_argv("train", params), timeout=3 * 3600)
            if child.get("error"):
                runs.append({"skipped": f"failed: {child['error'][-400:]}", "ran": ran, "seed": seed})
                continue
            result = child.pop("result")
            runs.append({**result, "process": child, "ran": ran, "recbole": reference, "seed": seed})
            reached = result.get("time_to_quality") or {}
            print(f"[train] {name} default recipe, seed {seed}: {result['recipe']['line']}; selected epoch "
                  f"{result['best_epoch']} of {result['epochs']}: test HR@10 {100 * result['final']['test_hr@10']:.2f}"
                  f" NDCG@10 {100 * result['final']['test_ndcg@10']:.2f}; RecBole's NDCG@10 "
                  + (f"reached after {reached['cpu_s']:.0f} CPU s" if reached.get("reached") else "not reached"),
                  flush=True)
        out[name] = {**runs[0], **({"seeds": seed_summary(runs)} if len(runs) > 1 else {})}
    return {name: out[name] for name in TRAIN_MODELS if name in out}  # the suite's order, kept or not


def seed_summary(runs: list[dict]) -> dict:
    """Each seed's run in brief (epochs, selected epoch, final test figures, time to RecBole's NDCG@10, CPU) and
    the mean and sample standard deviation of the final test figures over the seeds that finished."""
    each = [{"seed": r["seed"], "skipped": r["skipped"]} if r.get("skipped") else
            {"seed": r["seed"], "epochs": r["epochs"], "selected_epoch": r["final"]["epoch"],
             "test_hr@10": r["final"]["test_hr@10"], "test_ndcg@10": r["final"]["test_ndcg@10"],
             "time_to_quality": r.get("time_to_quality"), "fit_cpu_s": r.get("fit_cpu_s_without_probes")}
            for r in runs]
    done = [r for r in each if "skipped" not in r]
    summary = {"runs": each, "finished": len(done)}
    for metric in ("test_hr@10", "test_ndcg@10"):
        values = np.array([r[metric] for r in done], dtype=float)
        if len(values):
            summary[f"mean_{metric}"] = round(float(values.mean()), 6)
            summary[f"sd_{metric}"] = round(float(values.std(ddof=1)), 6) if len(values) > 1 else None
    return summary


def _quality_checks(quality: dict | None) -> list[dict]:
    """Issue 15's targets: RecBole's final test HR@10 and NDCG@10, within 10% of its CPU time to that model."""
    from tools.bench.common import check

    checks = []
    for name, run in (quality or {}).items():
        if not isinstance(run, dict) or "final" not in run:
            continue
        ref, seeds = run["recbole"], run.get("seeds") or {}
        for metric in ("test_hr@10", "test_ndcg@10"):
            if seeds.get("finished", 0) > 1:  # the mean over seeds, not one draw
                checks.append(check(f"{name} default settings, validation-selected {metric}, mean of "
                                    f"{seeds['finished']} seeds (RecBole's final)",
                                    round(100 * seeds[f"mean_{metric}"], 2), round(100 * ref[metric], 2), "%",
                                    le=False, note=f"sd {100 * seeds[f'sd_{metric}']:.2f}"))
                continue
            checks.append(check(f"{name} default settings, validation-selected {metric} (RecBole's final)",
                                round(100 * run["final"][metric], 2), round(100 * ref[metric], 2), "%", le=False))
        reached = run.get("time_to_quality") or {}
        note = "" if reached.get("reached") else "not reached within the run"
        if seeds.get("finished", 0) > 1:
            hits = sum(bool((r.get("time_to_quality") or {}).get("reached")) for r in seeds["runs"])
            note = "; ".join(x for x in (f"seed 0; {hits} of {seeds['finished']} seeds reached it", note) if x)
        line = check(f"{name}: CPU s until the selected model reaches RecBole's test NDCG@10 (10% of its "
                     f"{ref['cpu_s_to_selected']:,} s)", reached.get("cpu_s"), round(0.1 * ref["cpu_s_to_selected"]),
                     "s", note=note)
        checks.append({**line, "met": bool(reached.get("reached")) and line["met"]})
    return checks


def _train_ours(opts: Options) -> tuple[dict, dict]:
    seq_file, description = _ml100k_sequences(opts)
    if seq_file is None:
        if not opts.quick:
            return {"skipped": f"ml-100k not available ({description})"}, {"description": description}
        seq_file = _synthetic_sequences(opts)
        description = "synthetic user sequences (ml-100k not available; --quick only)"
    epochs = opts.epochs or (1 if opts.quick else 2)
    counts = _window_counts(seq_file, 50)
    matched = max(1, round(TARGETS_PER_STEP / counts["targets_per_window"]))
    variants = {"recbole-batch": matched} if opts.quick else {"recbole-batch": matched, "cpu-default": 256}
    import torch

    threads = opts.threads or torch.get_num_threads()
    ours = {}
    for name in _models(opts):
        spec = TRAIN_MODELS[name]
        ours[name] = {}
        for variant, batch in variants.items():
            params = {"seq_file": str(seq_file), "model": name, "params": spec["params"], "epochs": epochs,
                      "threads": opts.threads,
                      "train": {"batch_size": batch, "lr": 1e-3, "n_negatives": 0, "patience": 100,
                                "schedule": "constant"}}
            key = f"{variant}, {threads} thread{'s' if threads > 1 else ''}"
            ran = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "command": opts.command}
            child = run_child(worker_argv("train", params), timeout=3600)
            if child.get("error"):
                ours[name][key] = {"skipped": f"failed: {child['error'][-400:]}", "ran": ran}
                print(f"[train] {name} {variant}: FAILED {child['error'][-400:]}", flush=True)
                continue
            result = child.pop("result")
            ours[name][key] = {**result, "process": child, "batch_windows": batch, "ran": ran,
                               "params": spec["params"], "train_config": params["train"]}
            print(f"[train] {name} {variant} (batch {batch} windows): {result['median_s_per_epoch']:.1f} s/epoch, "
                  f"{result['targets_per_s']:.0f} target positions/s, peak {child['peak_rss_mib']:.0f} MiB, "
                  f"load {child['load_before']}", flush=True)
    return ours, {"description": description, "file": str(seq_file), "epochs": epochs, **counts,
                  "matched_batch_windows": matched, "threads": opts.threads}


def _synthetic_sequences(opts: Options) -> Path:
    path = opts.work_dir / "train" / "synthetic-sequences.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for u in range(60):
        start = int(rng.integers(1, 300))
        lines.append(f"{u} " + " ".join(str((start + 3 * j) % 300 + 1) for j in range(int(rng.integers(5, 80)))))
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_train(params: dict) -> dict:
    """Train one model on the sequences file; params["train"] None: the default recipe (recsys.recipe).

    With params["probe_test"], the test split is evaluated after every epoch (its CPU time subtracted from the
    clocks) so that the run says when the validation-selected model reached a test quality (`time_to_quality`).
    """
    import torch

    from recsys.datasets.presplit import read_user_sequences
    from recsys.evaluate import evaluate
    from recsys.models import FitOptions
    from recsys.pipeline import build_model
    from recsys.train import TrainConfig, fit

    if params.get("threads"):
        torch.set_num_threads(params["threads"])
    data = read_user_sequences(params["seq_file"], max_length=10**6)  # no truncation: every position trains
    model = build_model(params["model"], data.n_items, params["params"])
    lengths = data.train.lengths
    targets = int(np.maximum(lengths - 1, 0).sum())
    windows = int((-(-np.maximum(lengths - 1, 0) // model.config.max_len)).sum())
    epochs = params.get("epochs")
    config, recipe = None, None
    if params.get("train") is not None:
        config = TrainConfig(**{"max_epochs": epochs or TrainConfig.max_epochs, **params["train"]})
    elif params.get("rules"):  # the default recipe under other rules (tools.bench.recipe_runs)
        from recsys.recipe import Rules, choose_recipe

        recipe = choose_recipe(model, data, Rules(**params["rules"]))
        config = recipe.train_config()
    probes, spent = [], {"cpu": 0.0, "wall": 0.0}  # test evaluations, and the time they took (not training's)
    started_cpu, started_wall = time.process_time(), time.perf_counter()

    def probe(row: dict, trained) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        test = evaluate(trained, data.test, data.protocol("test")).metrics()
        probes.append({"epoch": row["epoch"], "cpu_s": round(cpu - started_cpu - spent["cpu"], 2),
                       "wall_s": round(wall - started_wall - spent["wall"], 2), "lr": row["lr"],
                       "valid_ndcg@10": row.get("ndcg@10"), "valid_hr@10": row.get("hr@10"),
                       "test_ndcg@10": test["ndcg@10"], "test_hr@10": test["hr@10"]})
        spent["cpu"] += time.process_time() - cpu
        spent["wall"] += time.perf_counter() - wall

    with Timer() as t:
        info = fit(model, data, FitOptions(max_epochs=epochs, progress=False, seed=params.get("seed", 0)),
                   config, on_epoch=probe if params.get("probe_test") else None)
    history = info["history"]
    per_epoch = [round(r["train_seconds"], 3) for r in history]
    median = float(np.median(per_epoch))
    out = {"epochs": len(history), "train_seconds_per_epoch": per_epoch, "median_s_per_epoch": round(median, 3),
           "valid_seconds_per_epoch": [round(r.get("val_seconds", 0.0), 3) for r in history],
           "train_loss": [round(r["train_loss"], 4) for r in history], "target_positions": targets,
           "windows": windows, "targets_per_s": round(targets / median, 1),
           "windows_per_s": round(windows / median, 2),
           "fit_wall_s": round(t.wall, 3), "fit_cpu_s": round(t.cpu, 3), "load_before": t.load_before,
           "load_after": t.load_after, "n_parameters": sum(p.numel() for p in model.parameters()),
           "n_items": data.n_items - 1, "users": len(data.test), "torch_threads": torch.get_num_threads(),
           "valid_ndcg@10": [round(r.get("ndcg@10", float("nan")), 5) for r in history],
           "best_epoch": info["best_epoch"], "train_config": info["train_config"],
           "recipe": info.get("recipe") or (recipe.as_dict() if recipe else None)}
    if probes:
        out["probe_cpu_s"] = round(spent["cpu"], 2)
        out["fit_cpu_s_without_probes"] = round(t.cpu - spent["cpu"], 2)
        out["per_epoch"] = probes
        out["selected"] = selected_curve(probes)
        final = out["selected"][-1]
        out["final"] = {"epoch": final["selected_epoch"], "test_hr@10": final["test_hr@10"],
                        "test_ndcg@10": final["test_ndcg@10"], "valid_ndcg@10": final["valid_ndcg@10"]}
        if params.get("reach"):
            out["time_to_quality"] = time_to_quality(out["selected"], params["reach"])
    return out


def selected_curve(probes: list[dict], monitor: str = "valid_ndcg@10") -> list[dict]:
    """After each epoch, the model validation would select so far (the first best epoch, as fit keeps) and its
    test figures, with the clock at that epoch's end."""
    rows, best = [], None
    for p in probes:
        if best is None or (p[monitor] is not None and p[monitor] > best[monitor]):
            best = p
        rows.append({"epoch": p["epoch"], "cpu_s": p["cpu_s"], "wall_s": p["wall_s"], "selected_epoch": best["epoch"],
                     "valid_ndcg@10": best[monitor], "test_hr@10": best["test_hr@10"],
                     "test_ndcg@10": best["test_ndcg@10"]})
    return rows


def time_to_quality(selected: list[dict], reach: dict) -> dict:
    """The first epoch at which the validation-selected model's test figures reach every `reach` value
    (fractions, e.g. {"test_ndcg@10": 0.0609}); its CPU and wall seconds, or None when never reached."""
    for row in selected:
        if all(row[k] >= v for k, v in reach.items()):
            return {"reached": True, "epoch": row["epoch"], "cpu_s": row["cpu_s"], "wall_s": row["wall_s"],
                    "selected_epoch": row["selected_epoch"], "target": reach}
    return {"reached": False, "target": reach}


def matching_peer(runs: dict, model: str, threads: int | None) -> dict | None:
    """The RecBole run of `model` with the same torch thread count as ours (most epochs first)."""
    same = [r for r in runs.values() if r["model"] == model and r.get("torch_threads") == threads]
    return max(same, key=lambda r: r.get("epochs_run") or 0) if same else None


def peer_output_dir(opts: Options) -> Path:
    return Path(os.environ.get("PEER_OUT") or opts.work_dir / "peers")


def peer_results(opts: Options) -> dict:
    """What the RecBole runs (benchmarks/peers/run_recbole.sh) left in benchmarks/work/peers/results."""
    folder = peer_output_dir(opts) / "results"
    runs = {}
    # <model>_ml-100k_<E>ep[_<N>t].json (run_recbole.sh's names; other files there, e.g. *_loaded.json, are not read)
    for path in sorted([*folder.glob("*_ml-100k_*ep.json"), *folder.glob("*_ml-100k_*ep_*t.json")]):
        d = read_json(path)
        if not d.get("model"):
            continue
        epochs = d.get("train_epoch_seconds") or []
        median = d.get("median_train_epoch_s") or (float(np.median(epochs)) if epochs else None)
        runs[path.stem] = {
            "model": d["model"], "file": path.name, "epochs_run": d.get("epochs_run"), "train_epoch_seconds": epochs,
            "median_train_epoch_s": median, "n_train_samples": d.get("n_train_samples"),
            "samples_per_s": round(d["n_train_samples"] / median, 1) if median and d.get("n_train_samples") else None,
            "train_losses": d.get("train_losses"), "peak_rss_mib": d.get("peak_rss_mib_getrusage"),
            "valid_epoch_seconds": d.get("valid_epoch_seconds"), "ld_preload": d.get("ld_preload"),
            "anomaly_detection_during_run": d.get("anomaly_detection_during_run"),
            "torch_threads": d.get("torch_threads"), "versions": d.get("versions"),
            "time_v": _time_v(path.parent.parent / (path.stem + ".err")),
            **_peer_loads(peer_output_dir(opts) / "nohup.log", path.stem)}
    status = "results found" if runs else (
        "no results yet: run `nohup bash benchmarks/peers/run_recbole.sh all > benchmarks/work/peers/nohup.log "
        "2>&1 &` (or `python scripts/benchmark.py train --peers`), then `python scripts/benchmark.py train "
        "--peers-only`")
    log = peer_output_dir(opts) / "nohup.log"
    return {"runs": runs, "status": status, "reference": RECBOLE_REFERENCE,
            "log_tail": log.read_text(errors="replace")[-1500:] if log.is_file() else None,
            "setup": "RecBole 1.2.1 in its own venv (~/.cache/recsys-peers/recbole-venv) installed as "
                     "../shared/peers/recbole/README.md says (torch==2.13.0 first, recbole --no-deps, its "
                     "requirements.txt); runner called by path; anomaly detection off; glibc malloc"}


def _peer_loads(log: Path, name: str) -> dict:
    """Start/end times and load averages run_recbole.sh logged for one run (the last such run in the log)."""
    out = {}
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("start", "done") and parts[2] == name:
                when = "started" if parts[1] == "start" else "finished"
                out[when] = parts[0]
                out[f"load_{when}"] = [float(x.strip("()")) for x in parts[-3:]]
    return out


def _time_v(path: Path) -> dict | None:
    """Peak RSS, wall and CPU from /usr/bin/time -v output, if present."""
    if not path.is_file():
        return None
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size"):
            out["peak_rss_mib"] = round(int(line.rsplit(":", 1)[1]) / 1024, 1)
        elif line.startswith("User time"):
            out["user_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("System time"):
            out["sys_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("Elapsed (wall"):
            out["wall"] = line.split("):", 1)[1].strip()
    return out or None


def launch_peers(opts: Options) -> dict:
    """Start benchmarks/peers/run_recbole.sh in the background (nohup) unless results exist or it runs already."""
    out_dir = peer_output_dir(opts)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid_file = out_dir / "run.pid"
    if pid_file.is_file():
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, 0)
            return {"status": f"already running (pid {pid})"}
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    log = open(out_dir / "nohup.log", "a")  # noqa: SIM115 - handed to the detached process
    proc = subprocess.Popen(["nohup", "bash", str(PEER_SCRIPT), "all"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ,
                                                                                   "PEER_OUT": str(out_dir)})
    pid_file.write_text(str(proc.pid))
    return {"status": f"started in the background (pid {proc.pid}); log {out_dir / 'nohup.log'}"}
