"""Benchmarks: run one suite, write benchmarks/results/<suite>.json, regenerate docs/BENCHMARKS.md and its plots.

    python scripts/benchmark.py data        # prepare_data on RetailRocket- and YooChoose-size synthetic logs
    python scripts/benchmark.py eval        # 60,000 prefixes x 43,000 items through recsys.evaluate
    python scripts/benchmark.py serving     # recommend() latency per registry model at 10k / 40k / 1M items, app
    python scripts/benchmark.py train       # ml-100k epochs of SASRec / GRU4Rec, beside RecBole 1.2.1
    python scripts/benchmark.py accuracy --models pop,spop --datasets beauty   # beside the ANCHORS rows
    python scripts/benchmark.py report      # only rewrite docs/BENCHMARKS.md and assets/bench_*.png

`--quick` runs a suite at a tiny size (a smoke test) and writes <suite>.quick.json instead. The suites live in
tools/bench/ (one module per suite); this script adds the command line and the report. The report's generated
blocks sit between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`; text outside them is
hand-written and kept.
"""

import argparse
import functools
import re
import sys
from pathlib import Path

import _path  # noqa: F401

from tools import bench

# ---------------------------------------------------------------------------------------------------------------
# report


TEMPLATE = """# Benchmarks

Speed, memory and accuracy of this project, measured on the machine it is developed on. Every number below comes
from a JSON file in `benchmarks/results/`, written by `python scripts/benchmark.py SUITE`; the blocks marked
"generated" are rewritten from those files by the same script (text outside them is written by hand and kept).

**Read the timings with the load average beside them.** The development machine has 2 CPU cores and is shared
with other jobs, so a wall time can be inflated by a busy machine; every result records the CPU time (user +
system) it used and the 1/5/15-minute load average before and after. A wall time close to the CPU time divided
by the threads in use means the program had the cores; a wall time well above it means it waited for them.

<!-- BEGIN generated:summary -->
<!-- END generated:summary -->

## Machine and commands

<!-- BEGIN generated:machine -->
<!-- END generated:machine -->

## Data preparation (`data`)

What is timed: `scripts/prepare_data.py --source retailrocket` itself (read the four RetailRocket files,
sessionize, filter, split, index, write the processed folder), run as a child process whose wall time, CPU time
and peak resident memory come from `os.wait4`. The inputs are synthetic logs in the RetailRocket layout
(`recsys.datasets.synthetic.generate_retailrocket_log`) at the size of RetailRocket and of the YooChoose click
log; they are generated to disk once, before timing, and the generation is reported separately. The target
applies to read + build + save (the three phases, timed inside the run); the whole process (starting Python
and importing the libraries, a few seconds of CPU) and its peak memory are shown beside it.

<!-- BEGIN generated:data -->
<!-- END generated:data -->

## Evaluation throughput (`eval`)

What is timed: `recsys.evaluate.evaluate` (full ranking over every item, pessimistic ties, top-20 lists) on
60,000 prefixes of 1-19 items over a 43,000-item catalogue (Diginetica's size), for a model whose scoring is
one matrix product: the last item's embedding times every item embedding (dim 64, random weights). The
evaluator scores `batch_size` cases at a time, so its memory should grow with the batch size, not with the
number of cases: each batch size runs in its own process and reports its peak RSS.

<!-- BEGIN generated:eval -->
<!-- END generated:eval -->

## Serving latency (`serving`)

What is timed: `recsys.models.base.recommend(model, session, k=20)`, the call the app makes, for one session of
5-20 items at a time (200 calls after 5 warm-up calls, each timed alone), and for a batch of sessions
(throughput), with **one torch thread** (`torch.set_num_threads(1)`): on this 2-core machine, shared with other
jobs, torch's default of 2 intra-op threads makes a small call 10-300 times slower whenever the cores are busy
(the two OpenMP workers wait for each other), so a 50-call column at the default thread count is shown too.
Every registry model is measured at three catalogue sizes. Baselines are fitted on synthetic data
of that size; **neural models use random initial weights** (`REGISTRY[name](Config(), n_items)`, not trained),
which costs the same per call as trained weights. The 1M-item point uses a random catalogue of 500,000
sessions; a model whose fit does not finish within the stated limit there is listed as skipped.
The app round trip runs `python app.py` in a subprocess and calls its `/recommend` endpoint with
`gradio_client` from this process, so client and server share the 2 cores.

<!-- BEGIN generated:serving -->
<!-- END generated:serving -->

## Training speed (`train`)

What is timed: one to two epochs (not full training) of SASRec and GRU4Rec on ml-100k leave-one-out (943 users,
1,682 items; every user's ratings ordered by timestamp; the last item is test, the second to last validation),
with full-softmax cross-entropy, beside RecBole 1.2.1 running its own SASRec and GRU4Rec on the same data with
its defaults. Both sides train on the same 97,171 target positions per epoch, but not the same way:
RecBole feeds each of the 97,171 prefixes as its own padded sequence (batch 2,048 prefixes), while ours feeds each
user's training sequence once, in windows of up to 50 items, and trains every position of a window in the same
pass (the "recbole-batch" run sizes its batches so a step sees about 2,048 target positions, as a RecBole step
does). So ours does far fewer forward passes per epoch for the same supervision: the seconds per epoch compare
the cost of an epoch as each project defines it, not the cost of the same arithmetic. Times exclude the
per-epoch validation. RecBole runs in its own virtual environment (see `benchmarks/peers/run_recbole.sh`).
Each of our runs is compared with the RecBole run at the same torch thread count (`--threads 1` here,
`THREADS=1` there): at 2 threads both sides slow down by an order of magnitude when other jobs use the cores,
so only runs made under similar load can be compared at 2 threads.

<!-- BEGIN generated:train -->
<!-- END generated:train -->

## Accuracy against published numbers (`accuracy`)

Protocols from `../shared/data/ANCHORS.md`: full ranking over every training item, pessimistic ties, repeats
allowed. Session data sets use the SR-GNN plain splits (every prefix of a test session predicts its next item;
validation is the last 10% of the training sessions, used for early stopping and selection only); Beauty uses
leave-one-out. Test pairs whose label never occurs in training cannot be recommended by any model; the papers
count them as misses, so the main rows scale each metric by kept / total test pairs ("misses counted") and the
raw value over kept pairs only is shown beside it. Every model is refitted on train + validation after
validation (as the ANCHORS baseline rows were; neural models for the epoch count chosen on validation, replaying
each epoch's learning rate; the fit time covers both fits); tuned parameters come from
`benchmarks/params/<data set>/<model>.json` (written by `scripts/tune.py` on validation, or by hand with a note
saying how they were chosen on validation) when present, else the model's defaults. CIs are 95% percentile
bootstrap intervals over test cases (for the scaled rows, the raw interval times the same factor).

<!-- BEGIN generated:accuracy -->
<!-- END generated:accuracy -->

## Plots

<!-- BEGIN generated:plots -->
<!-- END generated:plots -->
"""

BLOCK = re.compile(r"(<!-- BEGIN generated:(?P<name>[\w-]+) -->\n).*?(\n?<!-- END generated:(?P=name) -->)", re.S)


def fill_blocks(text: str, blocks: dict[str, str]) -> str:
    """Replace every generated block's content; append blocks the text has no markers for."""
    seen = set()

    def repl(m):
        seen.add(m["name"])
        return m.group(1) + blocks.get(m["name"], "").rstrip() + "\n" + m.group(3).lstrip("\n")

    text = BLOCK.sub(repl, text)
    for name, body in blocks.items():
        if name not in seen:
            text += f"\n<!-- BEGIN generated:{name} -->\n{body.rstrip()}\n<!-- END generated:{name} -->\n"
    return text


def load_results(results_dir: Path) -> dict[str, dict]:
    """Each suite's full result, or its quick one when there is no full one."""
    out = {}
    for suite in bench.SUITES:
        for quick in (False, True):
            data = bench.read_json(bench.results_path(results_dir, suite, quick))
            if data:
                out[suite] = data
                break
    return out


def _n(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "–"


def _header(r: dict) -> str:
    if r.get("quick"):
        return ("**Quick size (`--quick`): a smoke run of the code path, not the benchmark.** "
                f"Ran {r['timestamp']}.\n\n")
    base = r.get("merged_into")
    merged = f" Rows not marked otherwise: the run of {base['timestamp']}, `{base['command']}`." if base else ""
    return f"Ran {r['timestamp']}: `{r['command']}` ({_n(r['timing']['wall_s'], 0)} s).{merged}\n\n"


def _not_run(suite: str) -> str:
    return f"Not run yet: `python scripts/benchmark.py {suite}`.\n"


def render_summary(results: dict) -> str:
    rows = ["| suite | what | target | measured | met | note |", "|---|---|---|---|---|---|"]
    for suite, r in results.items():
        if suite == "accuracy" and "datasets" in r:  # derived from every run merged so far, not only the last
            r = {**r, "checks": bench.accuracy_checks(r["datasets"])}
        checks = [c for c in r.get("checks", []) if not c["what"].startswith("recommend() p")]
        per_model = [c for c in r.get("checks", []) if c["what"].startswith("recommend() p")]
        if per_model:  # one line for all models: which ones miss p50 <= 5 ms or p99 <= 20 ms
            models = list(dict.fromkeys(c["what"].split(", ")[1] for c in per_model))
            missed = {}
            for c in per_model:
                if c["met"] is False:
                    missed.setdefault(c["what"].split(", ")[1], []).append(
                        f"{c['what'].split()[1].rstrip(',')} {c['measured']:.1f} ms")
            rows.append(f"| {suite} | recommend() for one session at 40k items, each registry model | p50 ≤ 5 ms, "
                        f"p99 ≤ 20 ms | met by {len(models) - len(missed)} of {len(models)} models | "
                        f"{'**met**' if not missed else '**not met** by ' + ', '.join(missed)} | "
                        + "; ".join(f"{m}: {', '.join(v)}" for m, v in missed.items())
                        + " (1 torch thread; CPU time per call in the serving section) |")
        for c in checks:
            op = "≤" if c.get("le", True) else "≥"
            met = {True: "**met**", False: "**not met**", None: "–"}[c["met"]]
            rows.append(f"| {suite} | {c['what']} | {op} {_n(c['target'], 2 if c['unit'] == '%' else 1)} {c['unit']} | "
                        f"{_n(c['measured'], 2)} {c['unit']} | {met} | {c.get('note', '')} |")
    if len(rows) == 2:
        return "## Targets\n\nNo full-size results yet.\n"
    return ("## Targets\n\nEach line from the latest full-size run of its suite (wall times on the shared "
            "machine; see the load averages in each section).\n\n" + "\n".join(rows) + "\n")


def render_machine(results: dict) -> str:
    if not results:
        return "No results yet.\n"
    rows = ["| suite | ran (UTC) | command | CPU | cores | memory | Python / torch (threads) | load before → after |",
            "|---|---|---|---|---|---|---|---|"]
    for suite, r in results.items():
        m, t = r["machine"], r["timing"]
        rows.append(f"| {suite}{' (quick)' if r.get('quick') else ''} | {r['timestamp']} | `{r['command']}` | "
                    f"{m['cpu']} | {m['cores']} | {m['memory_gib']} GiB | {m['python']} / {m['torch']} "
                    f"({m['torch_threads']}) | {_load(t['load_before'])} → {_load(t['load_after'])} |")
    return "\n".join(rows) + "\n"


def render_data(r: dict | None) -> str:
    if not r:
        return _not_run("data")
    lines = [_header(r), "| log | events | items / sessions after filtering | run | read + build + save wall s | "
             "its CPU s | read / build / save wall s | whole process wall s (CPU s) | peak RSS MiB | load before | "
             "target |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    gen = ["", "Generation of the synthetic logs (once, before timing; not part of the target):", "",
           "| log | generator parameters | wall s | CPU s | peak RSS MiB | events.csv MiB | cached |",
           "|---|---|---|---|---|---|---|"]
    for name, s in r["sizes"].items():
        target = bench.DATA_TARGETS.get(name)
        for i, run in enumerate(s["runs"], 1):
            ph = run.get("phases", {})
            phases = " / ".join(_n(ph.get(k, {}).get("wall_s"), 2) for k in ("read", "build", "save"))
            stats = run.get("stats") or {}
            sessions = sum(stats.get(x, {}).get("sessions", 0) for x in ("train", "valid", "test"))
            lines.append(f"| {name} | {_n(run.get('raw_events'))} | {_n(stats.get('n_items'))} / {_n(sessions)} "
                         f"| {i} | **{_n(run['prepare_wall_s'], 2)}** | {_n(run['prepare_cpu_s'], 2)} | {phases} | "
                         f"{_n(run['wall_s'], 1)} ({_n(run['user_s'] + run['sys_s'], 1)}) | "
                         f"{_n(run['peak_rss_mib'], 0)} | {_load(run['load_before'])} | "
                         f"{'–' if r.get('quick') else f'≤ {target:.0f} s, ≤ 8 GiB'} |")
        g = s["generation"]
        params = ", ".join(f"{k}={v:,}" for k, v in s["generator"].items())
        gen.append(f"| {name} | {params} | {_n(g['wall_s'], 1)} | {_n(g['user_s'] + g['sys_s'], 1)} | "
                   f"{_n(g['peak_rss_mib'], 0)} | {_n(g['bytes']['events'] / 2**20, 0)} | "
                   f"{'yes (generated ' + g['generated_at'] + ')' if g['cached'] else 'no'} |")
    return "\n".join(lines + gen) + "\n"


def render_eval(r: dict | None) -> str:
    if not r:
        return _not_run("eval")
    spec = r["spec"]
    lines = [_header(r), f"{_n(spec['n_cases'])} cases, {_n(spec['n_items'])} items, model: {r['model']}; "
             f"call: `{r['call']}`.", "",
             "| batch size | evaluate wall s | CPU s | cases/s | peak RSS MiB (process) | RSS before evaluate MiB | "
             "one score chunk MiB | load before → after |", "|---|---|---|---|---|---|---|---|"]
    for run in r["runs"]:
        lines.append(f"| {run['batch_size']:,} | {_n(run['evaluate_wall_s'], 2)} | {_n(run['evaluate_cpu_s'], 2)} | "
                     f"{_n(run['cases_per_s'], 0)} | {_n(run['peak_rss_mib'], 0)} | {_n(run['rss_before_mib'], 0)} | "
                     f"{_n(run['score_chunk_mib'], 0)} | {_load(run['load_before'])} → {_load(run['load_after'])} |")
    if len(r["runs"]) >= 2:
        a, b = r["runs"][0], r["runs"][-1]
        lines += ["", f"Memory above the pre-evaluation level: {_n(a['peak_rss_mib'] - a['rss_before_mib'], 0)} MiB at "
                  f"batch {a['batch_size']:,} and {_n(b['peak_rss_mib'] - b['rss_before_mib'], 0)} MiB at batch "
                  f"{b['batch_size']:,} (one float32 score chunk is {_n(a['score_chunk_mib'], 0)} and "
                  f"{_n(b['score_chunk_mib'], 0)} MiB): it follows the batch size, not the "
                  f"{_n(spec['n_cases'])} cases."]
    return "\n".join(lines) + "\n"


def render_serving(r: dict | None) -> str:
    if not r:
        return _not_run("serving")
    sizes = r["sizes"]
    labels = list(sizes)
    lines = [_header(r), f"Call: `{r['call']}`; sessions: {r['session_lengths']}; {r['n_single']} single-session "
             f"calls per model. Weights: {r['weights']}.", "",
             "Catalogue sizes (items actually in the fitted vocabulary): " + ", ".join(
                 f"{lab} = {_n(s['n_items'])} (batch {s['batch_size']})" for lab, s in sizes.items()) + ".", "",
             "| model | " + " | ".join(f"{lab} p50 / p99 ms" for lab in labels) + " | " +
             " | ".join(f"{lab} batch sessions/s" for lab in labels) + " |",
             "|---|" + "---|" * (2 * len(labels))]
    models = list(dict.fromkeys(m for s in sizes.values() for m in s["models"]))
    skipped = []
    for m in models:
        lat, thr = [], []
        for lab in labels:
            e = sizes[lab]["models"].get(m, {})
            if "single" in e:
                mark = "" if lab != "40k" or r.get("quick") else (
                    " ✓" if e["single"]["p50_ms"] <= 5 and e["single"]["p99_ms"] <= 20 else " ✗")
                lat.append(f"{_n(e['single']['p50_ms'], 2)} / {_n(e['single']['p99_ms'], 2)}{mark}")
                thr.append(_n(e["batch"]["sessions_per_s"], 0))
            else:
                lat.append("skipped" if e else "–")
                thr.append("–")
                if e.get("skipped"):
                    skipped.append(f"- {m} at {lab}: {e['skipped']}")
        weights = next((sizes[lab]["models"][m]["weights"] for lab in labels
                        if sizes[lab]["models"].get(m, {}).get("weights")), None)
        rnd = "" if not weights else " (random weights)" if weights.startswith("random") else f" ({weights})"
        ran = next((sizes[lab]["models"][m]["run"] for lab in labels if sizes[lab]["models"].get(m, {}).get("run")),
                   None)
        if ran:
            rnd += f" (measured {ran['date']} by `{ran['command']}`)"
        lines.append(f"| {m}{rnd} | " + " | ".join(lat) + " | " + " | ".join(thr) + " |")
    if not r.get("quick"):
        lines += ["", "✓ / ✗: the 40k targets (p50 ≤ 5 ms and p99 ≤ 20 ms) met / not met."]
    if skipped:
        lines += ["", "Skipped:", "", *skipped]
    threads = [(lab, m, e) for lab in labels for m, e in sizes[lab]["models"].items() if "single_default_threads" in e]
    if threads:
        lines += ["", "One torch thread against torch's default thread count (p50 of 50 calls, same sessions):", "",
                  "| catalogue | model | p50 ms, 1 thread | p50 ms, default threads | default / 1 thread |",
                  "|---|---|---|---|---|"]
        for lab, m, e in threads:
            if lab != "40k":
                continue
            one, dflt = e["single"]["p50_ms"], e["single_default_threads"]
            lines.append(f"| {lab} | {m} | {_n(one, 2)} | {_n(dflt['p50_ms'], 2)} ({dflt['threads']} threads) | "
                         f"{dflt['p50_ms'] / one:.1f}x |")
    fit_rows = []
    for lab in labels:
        for m, e in sizes[lab]["models"].items():
            if e.get("fit"):
                fit_rows.append(f"{m} {lab}: {_n(e['fit']['wall_s'], 1)} s")
    if fit_rows:
        lines += ["", "Fit times of the baselines (wall): " + "; ".join(fit_rows) + "."]
    app = r.get("app") or {}
    lines += ["", "**App round trip** (`gradio_client` → `python app.py` → `/recommend`): "]
    if app.get("skipped"):
        lines[-1] += f"skipped: {app['skipped']}"
    else:
        lines[-1] += (f"{app['n_items']:,}-item synthetic catalogue, {app['calls_per_model']} calls per model after a "
                      f"warm-up call, app start-up {app['startup_s']} s. Median of the per-model p50: "
                      f"**{_n(app['p50_ms'], 1)} ms** (target ≤ 150 ms). {app.get('note', '')}")
        handler = (app.get("handler") or {}).get("models", {})
        threads = sorted({k.split(", ")[1] for k in handler})
        head = ["model", "round trip p50 ms", "p90 ms", "p99 ms", *(f"handler alone p50 ms, {t}" for t in threads)]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, e in app["models"].items():
            cells = [m, _n(e["p50_ms"], 1), _n(e["p90_ms"], 1), _n(e["p99_ms"], 1),
                     *(_n(handler.get(f"{m}, {t}", {}).get("p50_ms"), 1) for t in threads)]
            lines.append("| " + " | ".join(cells) + " |")
        if handler:
            lines += ["", "\"Handler alone\": `recsys.app_logic.recommend_view`, what `/recommend` calls, timed in a "
                      "separate process without Gradio or HTTP (app.py runs it at 1 torch thread, "
                      "`RECSYS_TORCH_THREADS`); the rest of the round trip is Gradio's queue, the HTTP/SSE transport "
                      "and the client (gradio_client 2.7 polls for the server's messages every 50 ms)."]
    first = r.get("first_start") or {}
    if first:
        lines += ["", "**First start** (`python app.py` in an empty folder: no processed data, no model folder; "
                  "timed until the page answers): "]
        if first.get("skipped"):
            lines[-1] += f"skipped: {first['skipped']}"
        else:
            fits = "; ".join(f"{m} {_n(t, 1)} s" for m, t in first["fit_s"].items())
            lines[-1] += (f"**{_n(first['wall_s'], 1)} s** (target ≤ 180 s), {_n(first['cpu_s'], 1)} s CPU, "
                          f"load {first['load_before'][0]} before and {first['load_after'][0]} after. It generated "
                          f"the synthetic data set and fitted {', '.join(first['models'])} (fit times: {fits}), "
                          "evaluating each on validation and test, then served.")
    return "\n".join(lines) + "\n"


def render_train(r: dict | None) -> str:
    if not r:
        return _not_run("train")
    data = r.get("data") or {}
    ours = r.get("ours") or {}
    lines = [_header(r)]
    if ours.get("skipped"):
        return "".join(lines) + f"Ours: skipped: {ours['skipped']}\n"
    lines += [f"Data: {data.get('description')}: {_n(data.get('users'))} users, {_n(data.get('target_positions'))} "
              f"training target positions in {_n(data.get('windows'))} windows of ≤ 50 items "
              f"({data.get('targets_per_window')} targets per window); {data.get('epochs')} epoch(s) per run.", "",
              "| model | run | configuration | batch (windows ≈ target positions) | s per epoch (each) | "
              "median s/epoch | target positions/s | windows/s | peak RSS MiB | fit wall / CPU s | "
              "load before → after |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, variants in ours.items():
        for variant, run in variants.items():
            if run.get("skipped"):
                lines.append(f"| {name} | {variant} | – | – | {run['skipped'][:120]} | | | | | | |")
                continue
            cfg = ", ".join(f"{k} {v}" for k, v in run["params"].items())
            approx = round(run["batch_windows"] * (data.get("targets_per_window") or 0))
            ran = run.get("ran") or {"timestamp": r["timestamp"], "command": r["command"]}
            lines.append(f"| {name} | {variant} ({ran['timestamp'][:16]}, `{ran['command']}`) | {cfg}; full CE, "
                         f"lr 1e-3 | {run['batch_windows']} (≈ {approx:,}) | "
                         f"{', '.join(_n(s, 1) for s in run['train_seconds_per_epoch'])} | "
                         f"{_n(run['median_s_per_epoch'], 2)} | {_n(run['targets_per_s'], 0)} | "
                         f"{_n(run['windows_per_s'], 1)} | {_n(run['process']['peak_rss_mib'], 0)} | "
                         f"{_n(run['fit_wall_s'], 1)} / {_n(run['fit_cpu_s'], 1)} | "
                         f"{_load(run['load_before'])} → {_load(run['load_after'])} |")
    peers = r.get("peers") or {}
    lines += ["", f"**RecBole 1.2.1** ({peers.get('setup', '')}): {peers.get('status', '')}."]
    if peers.get("runs"):
        lines += ["", "| RecBole model (results file) | started (UTC) | threads | epochs | s per epoch (each) | "
                  "median s/epoch | prefix samples/s | peak RSS MiB | malloc | anomaly detection | load start → end |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in peers["runs"].values():
            lines.append(f"| {p['model']} ({p['file']}) | {p.get('started', '–')[:16]} | {p.get('torch_threads')} | "
                         f"{p['epochs_run']} | {', '.join(_n(s, 1) for s in p['train_epoch_seconds'])} | "
                         f"{_n(p['median_train_epoch_s'], 1)} | {_n(p['samples_per_s'], 0)} | "
                         f"{_n((p.get('time_v') or {}).get('peak_rss_mib') or p.get('peak_rss_mib'), 0)} | "
                         f"{p.get('ld_preload') or 'glibc'} | "
                         f"{'on' if p.get('anomaly_detection_during_run') else 'off'} | "
                         f"{_load(p.get('load_started'))} → {_load(p.get('load_finished'))} |")
    if r.get("comparison"):
        have = [c for c in r["comparison"] if "ratio_ours_over_recbole" in c]
        if have:
            lines += ["", "Each of our runs beside the RecBole run with the same number of torch threads:", "",
                      "| model | threads | ours (configuration) s/epoch | RecBole s/epoch | ours / RecBole (wall) | "
                      "CPU s per epoch, ours / RecBole | ours / RecBole (CPU) |", "|---|---|---|---|---|---|---|"]
            for c in have:
                lines.append(f"| {c['model']} | {c.get('threads')} | {_n(c['ours_s_per_epoch'], 2)} ({c['variant']}) | "
                             f"{_n(c['recbole_s_per_epoch'], 1)} | {c['ratio_ours_over_recbole']:.3f} | "
                             f"{_n(c.get('ours_cpu_s_per_epoch'))} / {_n(c.get('recbole_cpu_s_per_epoch'))} | "
                             f"{_n(c.get('cpu_ratio_ours_over_recbole'), 3)} |")
            lines += ["", "CPU seconds per epoch are whole-run CPU time (user + system) divided by the epochs: they "
                      "include setup and the per-epoch validation on both sides, so they are an upper bound, but "
                      "they depend far less on the machine's load than the wall times."]
    ref = (peers.get("reference") or {})
    if ref:
        s = ref.get("SASRec", {})
        lines += ["", "For reference, from `../shared/peers/recbole/README.md` (same machine kind, a quiet machine): "
                  f"RecBole SASRec median {s.get('median_s_per_epoch_tcmalloc')} s/epoch with tcmalloc and anomaly "
                  f"detection off over a full run; epoch 0 as shipped (anomaly detection on) "
                  f"{s.get('epoch0_s_anomaly_as_shipped_glibc')} s vs {s.get('epoch0_s_anomaly_off_glibc')} s off "
                  f"(glibc malloc), {s.get('epoch0_s_anomaly_as_shipped_tcmalloc')} s vs "
                  f"{s.get('epoch0_s_anomaly_off_tcmalloc')} s with tcmalloc; GRU4Rec median "
                  f"{ref.get('GRU4Rec', {}).get('median_s_per_epoch_tcmalloc')} s/epoch with tcmalloc. Our runs and "
                  "the RecBole runs here use glibc malloc."]
    return "\n".join(lines) + "\n"


def _pct(entry: dict | None, ci: bool = True) -> str:
    if not entry:
        return "–"
    text = f"{100 * entry['value']:.2f}"
    if ci and entry.get("ci95"):
        lo, hi = entry["ci95"]
        text += f" ({100 * lo:.2f}–{100 * hi:.2f})"
    return text


def render_accuracy(r: dict | None) -> str:
    if not r:
        return _not_run("accuracy")
    lines = [_header(r) if r.get("quick") else
             "Merged from several runs of `python scripts/benchmark.py accuracy --models M --datasets D` (each "
             "model's row gives its parameters file and the day it ran); the latest: " + _header(r)[4:]]
    if r.get("skipped"):
        lines.append(f"{r['skipped']}\n")
    metrics = bench.ACCURACY_METRICS
    for name, d in r.get("datasets", {}).items():
        lines += [f"### {name}", "", f"Protocol: {d.get('protocol')}."]
        if d.get("skipped"):
            lines += ["", d["skipped"], ""]
            continue
        info = d.get("data", {})
        lines += ["", f"Test cases: {_n(info.get('test_cases_kept'))} kept of {_n(info.get('test_cases_total'))} "
                  f"({100 * info.get('kept_fraction', 1):.2f}%); {_n(info.get('n_items'))} items; train "
                  f"{_n(info.get('train', {}).get('sessions'))} sequences."
                  + (" **Quick slice of the data (a smoke run).**" if info.get("quick") else ""), "",
                  "| model | " + " | ".join(m.upper() for m in metrics) + " | source |",
                  "|---|" + "---|" * (len(metrics) + 1)]
        for row in bench.ANCHOR_ROWS.get(name, []):
            model, values, source = row
            lines.append(f"| {model} | " + " | ".join(f"{values[m]:.2f}" if m in values else "–" for m in metrics)
                         + f" | {source} (ANCHORS.md) |")
        for model, e in d.get("models", {}).items():
            if e.get("skipped"):
                lines.append(f"| **ours: {model}** | " + " | ".join("–" for _ in metrics) + f" | {e['skipped']} |")
                continue
            where = e.get("params_file") or "default parameters"
            epochs = e["fit"].get("epochs")
            fit = f"fit {e['fit_seconds']:.0f} s" + (f", {epochs} epochs" if epochs else "")
            scaled = info.get("kept_fraction", 1) < 1
            label = f"**ours: {model}**" + (" (misses counted)" if scaled else "")
            refit = ""
            if e.get("refit") and epochs:
                info_r = e.get("refit_info") or {}
                refit = (f" (best: epoch {e['fit'].get('best_epoch')}, on validation), then refitted on train + valid "
                         f"for {info_r.get('epochs', e['fit'].get('best_epoch'))} epochs")
            elif e.get("refit"):
                refit = "; refitted on train + valid"
            if e["fit"].get("weights"):  # a hybrid: its parts' weights, chosen on validation
                parts = ", ".join(f"{p} {w:g}" for p, w in e["fit"]["weights"].items())
                chosen = e["fit"].get("selection", {}).get("metric")
                refit = f"; weights {parts}" + (f" (chosen by validation {chosen.upper()})" if chosen else "") + refit
            lines.append(f"| {label} | " + " | ".join(_pct(e["test_scaled"].get(m)) for m in metrics)
                         + f" | this project, {where}; {fit}{refit}; ran {str(e.get('timestamp', ''))[:10]} |")
            if scaled:
                lines.append(f"| ours: {model} (kept cases only) | "
                             + " | ".join(_pct(e["test_raw"].get(m), ci=False) for m in metrics) + " | raw |")
        lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# plots (matplotlib Figure, no pyplot state)


def plot_latency(r: dict, path: Path) -> Path | None:
    import matplotlib
    from matplotlib.figure import Figure

    sizes = r["sizes"]
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    models = list(dict.fromkeys(m for s in sizes.values() for m in s["models"]))
    colours = matplotlib.colormaps["tab20"]
    for ax, key, target in zip(axes, ("p50_ms", "p99_ms"), (5.0, 20.0)):
        for i, m in enumerate(models):
            entries = [s["models"].get(m, {}) for s in sizes.values()]
            pts = [(s["n_items"], e["single"][key]) for s, e in zip(sizes.values(), entries) if "single" in e]
            neural = any("weights" in e for e in entries)
            if pts:
                ax.plot(*zip(*pts), marker="s" if neural else "o", linestyle="--" if neural else "-",
                        color=colours(i % 20), label=m + (" (random weights)" if neural else ""))
        ax.axhline(target, color="black", linestyle=":", linewidth=1, label="target at 40k items")
        ax.set(xscale="log", yscale="log", xlabel="catalogue size (items)",
               title=f"recommend() {key[:3]}, one session (target {target:g} ms at 40k)",
               ylabel="milliseconds per call")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return _save(fig, path)


def plot_accuracy(r: dict, path: Path) -> Path | None:
    from matplotlib.figure import Figure

    panels = [(n, d) for n, d in r.get("datasets", {}).items() if d.get("models") and not d.get("skipped")]
    if not panels:
        return None
    cols = min(2, len(panels))
    n_rows = -(-len(panels) // cols)
    fig = Figure(figsize=(6.5 * cols, 3.8 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (name, d) in zip(axes, panels):
        metric = f"hr@{d.get('main_k', 20)}"
        rows = [(m, v[metric], "measured" if "measured" in src else "published")
                for m, v, src in bench.ANCHOR_ROWS.get(name, []) if metric in v]
        for model, e in d["models"].items():
            if "test_scaled" in e:
                v = e["test_scaled"][metric]
                rows.append((f"ours: {model}", 100 * v["value"], [100 * c for c in v.get("ci95", [v["value"]] * 2)]))
        y = range(len(rows))
        for i, (_, value, kind) in enumerate(rows):
            ours = not isinstance(kind, str)
            err = [[value - kind[0]], [kind[1] - value]] if ours else None
            colour = "tab:blue" if ours else {"published": "dimgrey", "measured": "silver"}[kind]
            ax.barh(i, value, color=colour, xerr=err, capsize=3)
            ax.text(kind[1] if ours else value, i, f" {value:.2f}", va="center", fontsize=7)
        ax.set_yticks(list(y), [row[0] for row in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel=f"test {metric.upper()} (%)", title=name)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Test accuracy beside ANCHORS.md (dark grey: published; light grey: baselines measured there; "
                 "blue: ours, 95% CI, misses counted)", fontsize=10)
    return _save(fig, path)


def plot_train(r: dict, path: Path) -> Path | None:
    from matplotlib.figure import Figure

    ours = r.get("ours") or {}
    if not ours or ours.get("skipped"):
        return None
    bars = []  # (label, wall s/epoch, CPU s/epoch or None, colour)
    for name, variants in ours.items():
        for variant, run in variants.items():
            if "median_s_per_epoch" in run:
                bars.append((f"ours {name}\n{variant}", run["median_s_per_epoch"],
                             run["fit_cpu_s"] / run["epochs"], "tab:blue"))
        threads = next((run.get("torch_threads") for run in variants.values()), None)
        peer = bench.matching_peer((r.get("peers") or {}).get("runs", {}), bench.TRAIN_MODELS[name]["recbole"],
                                   threads)
        if peer and peer.get("median_train_epoch_s"):
            cpu = peer.get("time_v") or {}
            bars.append((f"RecBole\n{bench.TRAIN_MODELS[name]['recbole']}", peer["median_train_epoch_s"],
                         (cpu["user_s"] + cpu["sys_s"]) / peer["epochs_run"] if "user_s" in cpu else None,
                         "tab:orange"))
    if not bars:
        return None
    fig = Figure(figsize=(max(8, 2.2 * len(bars)), 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, what in ((axes[0], 1, "wall seconds per epoch (median)"),
                          (axes[1], 2, "CPU seconds per epoch (whole run / epochs)")):
        values = [b[col] or 0 for b in bars]
        ax.bar(range(len(bars)), values, color=[b[3] for b in bars])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
        ax.set(yscale="log", title=what)
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0].set_ylabel("seconds (log scale)")
    fig.suptitle("ml-100k, one training epoch: ours vs RecBole 1.2.1 on the shared 2-core CPU "
                 "(load averages in the report)", fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


PLOTS = {"serving": ("bench_latency.png", plot_latency, "recommend() latency against catalogue size"),
         "accuracy": ("bench_accuracy.png", plot_accuracy, "accuracy beside the published anchors"),
         "train": ("bench_train.png", plot_train, "seconds per training epoch, ours and RecBole")}


def write_report(results_dir: Path, doc: Path, assets: Path | None) -> Path:
    results = load_results(results_dir)
    plots = []
    if assets is not None:
        for suite, (name, fn, caption) in PLOTS.items():
            if suite in results and not results[suite].get("quick"):
                made = fn(results[suite], Path(assets) / name)
                if made:
                    rel = Path("..") / made.resolve().relative_to(bench.ROOT) if made.resolve().is_relative_to(
                        bench.ROOT) else made
                    plots.append(f"![{caption}]({rel.as_posix()})")
    renderers = {"summary": lambda: render_summary(results), "machine": lambda: render_machine(results),
                 **{suite: functools.partial(fn, results.get(suite)) for suite, fn in (
                     ("data", render_data), ("eval", render_eval), ("serving", render_serving),
                     ("train", render_train), ("accuracy", render_accuracy))}}
    blocks = {}
    for name, render in renderers.items():
        try:
            blocks[name] = render()
        except (KeyError, TypeError, ValueError) as err:  # a results file from an older version of this script
            blocks[name] = f"Could not render this block ({type(err).__name__}: {err}); rerun the suite.\n"
    blocks["plots"] = "\n\n".join(plots) + "\n" if plots else "No full-size results to plot yet.\n"
    text = doc.read_text() if doc.is_file() else TEMPLATE
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(fill_blocks(text, blocks))
    return doc


# ---------------------------------------------------------------------------------------------------------------


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", choices=(*bench.SUITES, "report"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test; writes <suite>.quick.json")
    p.add_argument("--results-dir", type=Path, default=bench.RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, default=bench.WORK_DIR, help="scratch: generated data, model folders")
    p.add_argument("--doc", default=str(bench.DOC), help="report to regenerate ('' for none)")
    p.add_argument("--assets", type=Path, default=bench.ASSETS, help="where the bench_*.png plots go")
    p.add_argument("--shared-data", type=Path, default=bench.shared_data_dir())
    p.add_argument("--models", help="serving / accuracy: comma separated registry keys")
    p.add_argument("--datasets", help=f"accuracy: comma separated, from {','.join(bench.ACCURACY_DATASETS)}")
    p.add_argument("--max-epochs", type=int, help="accuracy: epoch cap for neural models")
    p.add_argument("--time-budget", type=float, help="accuracy: minutes per data set; later models are skipped")
    p.add_argument("--no-refit", action="store_true", help="accuracy: do not refit baselines on train + valid")
    p.add_argument("--no-app", action="store_true", help="serving: skip the gradio_client round trip")
    p.add_argument("--epochs", type=int, help="train: epochs per run (default 2, quick 1)")
    p.add_argument("--threads", type=int, help="train: torch intra-op threads (default: torch's default)")
    p.add_argument("--peers", action="store_true", help="train: start the RecBole runs in the background (nohup)")
    p.add_argument("--peers-only", action="store_true", help="train: keep our last numbers, refresh RecBole's")
    p.add_argument("--repeats", type=int, help="data: preparation runs per size")
    args = p.parse_args(argv)
    opts = bench.Options(quick=args.quick, results_dir=args.results_dir, work_dir=args.work_dir,
                         shared_data=args.shared_data, models=_names(args.models), datasets=_names(args.datasets),
                         max_epochs=args.max_epochs, time_budget_min=args.time_budget, refit=not args.no_refit,
                         app=not args.no_app, epochs=args.epochs, threads=args.threads, peers=args.peers,
                         peers_only=args.peers_only,
                         repeats=args.repeats)
    if args.suite != "report":
        try:
            bench.run_suite(args.suite, opts, argv)
        except (ValueError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.doc:
        doc = write_report(args.results_dir, Path(args.doc), args.assets)
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
