"""The generated blocks of docs/BENCHMARKS.md: one Markdown block per suite from its results JSON, plus the
targets summary and the machine table. Each suite's `render_*` takes that suite's results (`render_not_run` stands
in for a suite without results)."""

from tools.bench.accuracy import ACCURACY_METRICS, ANCHOR_ROWS, accuracy_checks, current_entry, default_and_best
from tools.bench.data import DATA_TARGETS

SERVING_MARKED = "40k"  # the catalogue size whose latency targets the serving table marks ✓ / ✗
HANDLER_NOTE = ("\"Handler alone\": `recsys.app.recommend_view`, what `/recommend` calls (`recsys.recommend`, whose "
                "one scoring pass also gives the 0-1 score scale), timed in a separate process without Gradio or HTTP "
                "(app.py runs it at 1 torch thread, `RECSYS_TORCH_THREADS`); the rest of the round trip is Gradio's "
                "queue, the HTTP/SSE transport and the client (gradio_client 2.7 polls for the server's messages "
                "every 50 ms).")

# ---------------------------------------------------------------------------------------------------------------
# formatting


def _n(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "–"


def _pct(entry: dict | None, ci: bool = True) -> str:
    if not entry:
        return "–"
    text = f"{100 * entry['value']:.2f}"
    if ci and entry.get("ci95"):
        lo, hi = entry["ci95"]
        text += f" ({100 * lo:.2f}–{100 * hi:.2f})"
    return text


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(r: dict) -> str:
    if r.get("quick"):
        return ("**Quick size (`--quick`): a smoke run of the code path, not the benchmark.** "
                f"Ran {r['timestamp']}.\n\n")
    base = r.get("merged_into")
    merged = f" Rows not marked otherwise: the run of {base['timestamp']}, `{base['command']}`." if base else ""
    return f"Ran {r['timestamp']}: `{r['command']}` ({_n(r['timing']['wall_s'], 0)} s).{merged}\n\n"


def render_not_run(suite: str) -> str:
    return f"Not run yet: `python scripts/benchmark.py {suite}`.\n"


# ---------------------------------------------------------------------------------------------------------------
# summary and machine


def _is_per_model(c: dict) -> bool:
    return c["what"].startswith("recommend() p")


def _is_floor(c: dict) -> bool:
    return c["what"].startswith("recommend() / floor")


def _floor_row(suite: str, floor: list[dict]) -> str:
    """One line for every neural model's recommend() / floor checks: which miss the target, at which size."""
    models = list(dict.fromkeys(c["what"].split(", ")[1] for c in floor))
    sizes = list(dict.fromkeys(c["what"].split(", ")[2].split()[0] for c in floor))
    missed = {}
    for c in floor:
        if c["met"] is False:
            missed.setdefault(c["what"].split(", ")[1], []).append(
                f"{c['measured']:.2f}x at {c['what'].split(', ')[2].split()[0]}")
    target = floor[0]["target"]
    return (f"| {suite} | recommend() for one session against its floor (one d-dim product with the item table + "
            f"top-20, same run), each neural model at {' and '.join(sizes)} items | p50 ≤ {target:g}x the floor's | "
            f"met by {len(models) - len(missed)} of {len(models)} models | "
            f"{'**met**' if not missed else '**not met** by ' + ', '.join(missed)} | "
            + "; ".join(f"{m}: {', '.join(v)}" for m, v in missed.items())
            + " (1 torch thread; the serving section has each ratio) |")


def _per_model_row(suite: str, per_model: list[dict]) -> str:
    """One line for every model's recommend() checks: which models miss p50 <= 5 ms or p99 <= 20 ms."""
    models = list(dict.fromkeys(c["what"].split(", ")[1] for c in per_model))
    missed = {}
    for c in per_model:
        if c["met"] is False:
            missed.setdefault(c["what"].split(", ")[1], []).append(
                f"{c['what'].split()[1].rstrip(',')} {c['measured']:.1f} ms")
    return (f"| {suite} | recommend() for one session at 40k items, each registry model | p50 ≤ 5 ms, "
            f"p99 ≤ 20 ms | met by {len(models) - len(missed)} of {len(models)} models | "
            f"{'**met**' if not missed else '**not met** by ' + ', '.join(missed)} | "
            + "; ".join(f"{m}: {', '.join(v)}" for m, v in missed.items())
            + " (1 torch thread; CPU time per call in the serving section) |")


def _check_row(suite: str, c: dict) -> str:
    op = "≤" if c.get("le", True) else "≥"
    met = {True: "**met**", False: "**not met**", None: "–"}[c["met"]]
    return (f"| {suite} | {c['what']} | {op} {_n(c['target'], 2 if c['unit'] == '%' else 1)} {c['unit']} | "
            f"{_n(c['measured'], 2)} {c['unit']} | {met} | {c.get('note', '')} |")


def render_summary(results: dict) -> str:
    rows = ["| suite | what | target | measured | met | note |", "|---|---|---|---|---|---|"]
    for suite, r in results.items():
        checks = r.get("checks", [])
        if suite == "accuracy" and "datasets" in r:  # derived from every run merged so far, not only the last
            checks = accuracy_checks(r["datasets"])
        per_model = [c for c in checks if _is_per_model(c)]
        if per_model:
            rows.append(_per_model_row(suite, per_model))
        floor = [c for c in checks if _is_floor(c)]
        if floor:
            rows.append(_floor_row(suite, floor))
        rows += [_check_row(suite, c) for c in checks if not _is_per_model(c) and not _is_floor(c)]
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


# ---------------------------------------------------------------------------------------------------------------
# data and eval


def _prepare_row(name: str, i: int, run: dict, target: str) -> str:
    ph = run.get("phases", {})
    phases = " / ".join(_n(ph.get(k, {}).get("wall_s"), 2) for k in ("read", "build", "save"))
    stats = run.get("stats") or {}
    sessions = sum(stats.get(x, {}).get("sessions", 0) for x in ("train", "valid", "test"))
    return (f"| {name} | {_n(run.get('raw_events'))} | {_n(stats.get('n_items'))} / {_n(sessions)} "
            f"| {i} | **{_n(run['prepare_wall_s'], 2)}** | {_n(run['prepare_cpu_s'], 2)} | {phases} | "
            f"{_n(run['wall_s'], 1)} ({_n(run['user_s'] + run['sys_s'], 1)}) | "
            f"{_n(run['peak_rss_mib'], 0)} | {_load(run['load_before'])} | {target} |")


def _generation_row(name: str, s: dict) -> str:
    g = s["generation"]
    params = ", ".join(f"{k}={v:,}" for k, v in s["generator"].items())
    return (f"| {name} | {params} | {_n(g['wall_s'], 1)} | {_n(g['user_s'] + g['sys_s'], 1)} | "
            f"{_n(g['peak_rss_mib'], 0)} | {_n(g['bytes']['events'] / 2**20, 0)} | "
            f"{'yes (generated ' + g['generated_at'] + ')' if g['cached'] else 'no'} |")


def render_data(r: dict) -> str:
    lines = [_header(r), "| log | events | items / sessions after filtering | run | read + build + save wall s | "
             "its CPU s | read / build / save wall s | whole process wall s (CPU s) | peak RSS MiB | load before | "
             "target |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    gen = ["", "Generation of the synthetic logs (once, before timing; not part of the target):", "",
           "| log | generator parameters | wall s | CPU s | peak RSS MiB | events.csv MiB | cached |",
           "|---|---|---|---|---|---|---|"]
    streamed = []
    for name, s in r["sizes"].items():
        target = "–" if r.get("quick") else f"≤ {DATA_TARGETS.get(name):.0f} s, ≤ 8 GiB"
        lines += [_prepare_row(name, i, run, target) for i, run in enumerate(s["runs"], 1)]
        gen.append(_generation_row(name, s))
        if s.get("streaming"):
            streamed.append(_streaming_row(name, s["streaming"]))
    if streamed:  # issue 19: the same logs out of core
        lines += ["", "The same logs out of core (`--engine streaming`, recsys/outofcore.py; `same`: its folder holds "
                      "the in-memory run's data set, session for session):", "",
                  "| log | prepare_data main() wall s | its CPU s | whole process wall s (CPU s) | peak RSS MiB: main()"
                  " (with the comparison) | same | load before |", "|---|---|---|---|---|---|---|", *streamed]
    return "\n".join(lines + gen) + "\n"


def _streaming_row(name: str, run: dict) -> str:
    return (f"| {name} | **{_n(run['main_wall_s'], 2)}** | {_n(run['main_cpu_s'], 2)} | {_n(run['wall_s'], 1)} "
            f"({_n(run['user_s'] + run['sys_s'], 1)}) | **{_n(run['main_rss_peak_mib'], 0)}** "
            f"({_n(run['peak_rss_mib'], 0)}) | {'yes' if run.get('same') else 'NO'} | {_load(run['load_before'])} |")


def render_eval(r: dict) -> str:
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
    sh = r.get("sharded")
    if sh:
        lines += ["", f"Under torch.distributed (`tools.bench.scale eval`): {sh['model']}, {_n(sh['cases'])} cases "
                  f"over {_n(sh['items'])} items, evaluated by rank 0 alone and sharded (`evaluate(..., shard=True)`), "
                  f"alternately, {sh['repeats']} times each; median wall time of rank 0, barrier to barrier.", "",
                  "| mode | wall s | CPU s rank 0 / rank 1 | same metrics | load before → after |",
                  "|---|---|---|---|---|",
                  f"| rank 0 alone | {_n(sh['rank0_only_wall_s'], 2)} | {sh['cpu_s_per_rank']['rank0'][0]} / "
                  f"{sh['cpu_s_per_rank']['rank0'][1]} | | {_load(sh['load_before'])} → {_load(sh['load_after'])} |",
                  f"| sharded | {_n(sh['sharded_wall_s'], 2)} (**{sh['ratio']}x**) | "
                  f"{sh['cpu_s_per_rank']['sharded'][0]} / {sh['cpu_s_per_rank']['sharded'][1]} | "
                  f"{'yes' if sh['same_mrr20'] else 'NO'} | |"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# serving


def _latency_cell(e: dict, marked: bool) -> str:
    """p50 / p99 of one model at one size; ✓ / ✗ against the targets where `marked`."""
    if "single" not in e:
        return "skipped" if e else "–"
    p50, p99 = e["single"]["p50_ms"], e["single"]["p99_ms"]
    mark = "" if not marked else " ✓" if p50 <= 5 and p99 <= 20 else " ✗"
    return f"{_n(p50, 2)} / {_n(p99, 2)}{mark}"


def _model_note(entries: list[dict]) -> str:
    """What the model's row is: random or mixed weights, and the run it comes from when not the last full one."""
    weights = next((e["weights"] for e in entries if e.get("weights")), None)
    note = "" if not weights else " (random weights)" if weights.startswith("random") else f" ({weights})"
    ran = next((e["run"] for e in entries if e.get("run")), None)
    return note + (f" (measured {ran['date']} by `{ran['command']}`)" if ran else "")


def _latency_rows(r: dict) -> list[str]:
    """One row per model: p50 / p99 at each catalogue size, then batch throughput at each; the skipped ones."""
    sizes = r["sizes"]
    labels = list(sizes)
    rows = [_row(["model", *(f"{lab} p50 / p99 ms" for lab in labels),
                  *(f"{lab} batch sessions/s" for lab in labels)]), "|---|" + "---|" * (2 * len(labels))]
    skipped = []
    for m in dict.fromkeys(m for s in sizes.values() for m in s["models"]):
        entries = [(lab, sizes[lab]["models"].get(m, {})) for lab in labels]
        lat = [_latency_cell(e, lab == SERVING_MARKED and not r.get("quick")) for lab, e in entries]
        thr = [_n(e["batch"]["sessions_per_s"], 0) if "single" in e else "–" for _, e in entries]
        skipped += [f"- {m} at {lab}: {e['skipped']}" for lab, e in entries if "single" not in e and e.get("skipped")]
        rows.append(_row([m + _model_note([e for _, e in entries]), *lat, *thr]))
    if not r.get("quick"):
        rows += ["", "✓ / ✗: the 40k targets (p50 ≤ 5 ms and p99 ≤ 20 ms) met / not met."]
    if skipped:
        rows += ["", "Skipped:", "", *skipped]
    return rows


def _floor_rows(r: dict) -> list[str]:
    """Each neural model's p50 beside its floor's, per catalogue size, with the ratio (marked at the target's
    sizes)."""
    sizes = r["sizes"]
    labels = [lab for lab, s in sizes.items() if any("floor" in e for e in s["models"].values())]
    if not labels:
        return []
    models = list(dict.fromkeys(m for lab in labels for m, e in sizes[lab]["models"].items() if "floor" in e))
    marked = set(r.get("floor_sizes", ("40k", "1M"))) if not r.get("quick") else set()
    target = r.get("floor_target", 1.5)
    rows = ["", f"**Against the floor** ({r.get('floor', 'one product with the item table, then the top 20')}). "
                f"p50 of {r['n_single']} calls each, ms; ✓ / ✗: recommend() within {target:g}x its floor / not.", "",
            _row(["model", "d", *(f"{lab} recommend / floor ms" for lab in labels),
                  *(f"{lab} ratio" for lab in labels)]), "|---|---|" + "---|" * (2 * len(labels))]
    for m in models:
        entries = [sizes[lab]["models"].get(m, {}) for lab in labels]
        dim = next(e["floor"]["dim"] for e in entries if "floor" in e)
        ms = [f"{_n(e['single']['p50_ms'], 2)} / {_n(e['floor']['p50_ms'], 2)}" if "floor" in e else "–"
              for e in entries]
        ratios = [f"{e['floor_ratio']:.2f}x" + ("" if lab not in marked else " ✓" if e["floor_ratio"] <= target
                                                 else " ✗") if "floor" in e else "–"
                  for lab, e in zip(labels, entries)]
        rows.append(_row([m, str(dim), *ms, *ratios]))
    return rows


def _thread_rows(sizes: dict) -> list[str]:
    """One torch thread against torch's default, at the marked size (the table appears when any size has both)."""
    measured = [(lab, m, e) for lab, s in sizes.items() for m, e in s["models"].items()
                if "single_default_threads" in e]
    # a run under OMP_NUM_THREADS=1 makes torch's default one thread too: nothing to compare
    same = sorted({m for lab, m, e in measured
                   if lab == SERVING_MARKED and e["single_default_threads"]["threads"] == 1})
    measured = [(lab, m, e) for lab, m, e in measured if e["single_default_threads"]["threads"] != 1]
    if not measured:
        return []
    rows = ["", "One torch thread against torch's default thread count (p50 of 50 calls, same sessions):", "",
            "| catalogue | model | p50 ms, 1 thread | p50 ms, default threads | default / 1 thread |",
            "|---|---|---|---|---|"]
    for lab, m, e in measured:
        if lab == SERVING_MARKED:
            one, dflt = e["single"]["p50_ms"], e["single_default_threads"]
            rows.append(f"| {lab} | {m} | {_n(one, 2)} | {_n(dflt['p50_ms'], 2)} ({dflt['threads']} threads) | "
                        f"{dflt['p50_ms'] / one:.1f}x |")
    if same:
        rows += ["", f"Not compared: {', '.join(same)} (measured where torch's default was one thread, "
                     "OMP_NUM_THREADS=1)."]
    return rows


def _fit_rows(sizes: dict) -> list[str]:
    fits = [f"{m} {lab}: {_n(e['fit']['wall_s'], 1)} s" for lab, s in sizes.items() for m, e in s["models"].items()
            if e.get("fit")]
    return ["", "Fit times of the baselines (wall): " + "; ".join(fits) + "."] if fits else []


def _app_rows(app: dict) -> list[str]:
    """The gradio_client round trip per model, beside the handler alone at each thread count."""
    lead = "**App round trip** (`gradio_client` → `python app.py` → `/recommend`): "
    if app.get("skipped"):
        return ["", lead + f"skipped: {app['skipped']}"]
    rows = ["", lead + (f"{app['n_items']:,}-item synthetic catalogue, {app['calls_per_model']} calls per model "
                        f"after a warm-up call, app start-up {app['startup_s']} s. Median of the per-model p50: "
                        f"**{_n(app['p50_ms'], 1)} ms** (target ≤ 150 ms). {app.get('note', '')}")]
    handler = (app.get("handler") or {}).get("models", {})
    threads = sorted({k.split(", ")[1] for k in handler})
    head = ["model", "round trip p50 ms", "p90 ms", "p99 ms", *(f"handler alone p50 ms, {t}" for t in threads)]
    rows += ["", _row(head), "|" + "---|" * len(head)]
    for m, e in app["models"].items():
        rows.append(_row([m, _n(e["p50_ms"], 1), _n(e["p90_ms"], 1), _n(e["p99_ms"], 1),
                          *(_n(handler.get(f"{m}, {t}", {}).get("p50_ms"), 1) for t in threads)]))
    return rows + (["", HANDLER_NOTE] if handler else [])


def _first_start_rows(first: dict) -> list[str]:
    if not first:
        return []
    lead = ("**First start** (`python app.py` in an empty folder: no processed data, no model folder; "
            "timed until the page answers): ")
    if first.get("skipped"):
        return ["", lead + f"skipped: {first['skipped']}"]
    if "seconds" not in first:  # a result from before the phases were recorded
        fits = "; ".join(f"{m} {_n(t, 1)} s" for m, t in first["fit_s"].items())
        return ["", lead + (f"**{_n(first['wall_s'], 1)} s** (target ≤ 180 s), {_n(first['cpu_s'], 1)} s CPU, "
                            f"load {first['load_before'][0]} before and {first['load_after'][0]} after. It generated "
                            f"the synthetic data set and fitted {', '.join(first['models'])} (fit times: {fits}), "
                            "evaluating each on validation and test, then served.")]
    ran = first.get("ran") or {}
    when = f" Ran {ran['timestamp']}: `{ran['command']}`" if ran else ""
    box = first.get("machine") or {}
    when += f" on {box['cpu']}, {box['cores']} cores." if box else "." if ran else ""
    valid = f"{_n(first['valid_cases'])} evenly spaced validation cases" if first.get("valid_cases") else "validation"
    rows = ["", lead + (f"**{_n(first['wall_s'], 1)} s** (target ≤ 180 s), {_n(first['cpu_s'], 1)} s CPU (the app "
                        f"process), load {_load(first['load_before'])} before and {_load(first['load_after'])} "
                        f"after.{when} It generated the synthetic data set, trained {', '.join(first['models'])} "
                        f"(neural models for {_n(max(e.get('epochs') or 0 for e in first['seconds'].values()))} "
                        f"epochs at 1 torch thread), evaluated each on {valid} and the full test split, "
                        "then served. Longest time without a progress line: "
                        f"{_n(first['longest_silence_s'], 1)} s."), "",
            "| phase (from the app's own progress lines) | wall s | of which fit / valid / test s |", "|---|---|---|"]
    for phase, secs in first["phases"].items():
        e = first["seconds"].get(phase.split(" ")[0], {})
        parts = f"{_n(e['fit'], 1)} / {_n(e['valid'], 1)} / {_n(e['test'], 1)}" if e else ""
        rows.append(f"| {phase} | {_n(secs, 1)} | {parts} |")
    return rows


def render_serving(r: dict) -> str:
    sizes = r["sizes"]
    intro = [_header(r), f"Call: `{r['call']}`; sessions: {r['session_lengths']}; {r['n_single']} single-session "
             f"calls per model. Weights: {r['weights']}.", "",
             "Catalogue sizes (items actually in the fitted vocabulary): " + ", ".join(
                 f"{lab} = {_n(s['n_items'])} (batch {s['batch_size']})" for lab, s in sizes.items()) + ".", ""]
    lines = [*intro, *_latency_rows(r), *_floor_rows(r), *_thread_rows(sizes), *_fit_rows(sizes),
             *_app_rows(r.get("app") or {}),
             *_first_start_rows(r.get("first_start") or {})]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# train


def _our_train_row(name: str, variant: str, run: dict, r: dict, per_window: float) -> str:
    if run.get("skipped"):
        return f"| {name} | {variant} | – | – | {run['skipped'][:120]} | | | | | | |"
    cfg = ", ".join(f"{k} {v}" for k, v in run["params"].items())
    approx = round(run["batch_windows"] * per_window)
    ran = run.get("ran") or {"timestamp": r["timestamp"], "command": r["command"]}
    return (f"| {name} | {variant} ({ran['timestamp'][:16]}, `{ran['command']}`) | {cfg}; full CE, "
            f"lr 1e-3 | {run['batch_windows']} (≈ {approx:,}) | "
            f"{', '.join(_n(s, 1) for s in run['train_seconds_per_epoch'])} | "
            f"{_n(run['median_s_per_epoch'], 2)} | {_n(run['targets_per_s'], 0)} | "
            f"{_n(run['windows_per_s'], 1)} | {_n(run['process']['peak_rss_mib'], 0)} | "
            f"{_n(run['fit_wall_s'], 1)} / {_n(run['fit_cpu_s'], 1)} | "
            f"{_load(run['load_before'])} → {_load(run['load_after'])} |")


def _peer_rows(runs: dict) -> list[str]:
    if not runs:
        return []
    rows = ["", "| RecBole model (results file) | started (UTC) | threads | epochs | s per epoch (each) | "
            "median s/epoch | prefix samples/s | peak RSS MiB | malloc | anomaly detection | load start → end |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in runs.values():
        rows.append(f"| {p['model']} ({p['file']}) | {p.get('started', '–')[:16]} | {p.get('torch_threads')} | "
                    f"{p['epochs_run']} | {', '.join(_n(s, 1) for s in p['train_epoch_seconds'])} | "
                    f"{_n(p['median_train_epoch_s'], 1)} | {_n(p['samples_per_s'], 0)} | "
                    f"{_n((p.get('time_v') or {}).get('peak_rss_mib') or p.get('peak_rss_mib'), 0)} | "
                    f"{p.get('ld_preload') or 'glibc'} | "
                    f"{'on' if p.get('anomaly_detection_during_run') else 'off'} | "
                    f"{_load(p.get('load_started'))} → {_load(p.get('load_finished'))} |")
    return rows


def _comparison_rows(comparison: list[dict]) -> list[str]:
    have = [c for c in comparison if "ratio_ours_over_recbole" in c]
    if not have:
        return []
    rows = ["", "Each of our runs beside the RecBole run with the same number of torch threads:", "",
            "| model | threads | ours (configuration) s/epoch | RecBole s/epoch | ours / RecBole (wall) | "
            "CPU s per epoch, ours / RecBole | ours / RecBole (CPU) |", "|---|---|---|---|---|---|---|"]
    for c in have:
        rows.append(f"| {c['model']} | {c.get('threads')} | {_n(c['ours_s_per_epoch'], 2)} ({c['variant']}) | "
                    f"{_n(c['recbole_s_per_epoch'], 1)} | {c['ratio_ours_over_recbole']:.3f} | "
                    f"{_n(c.get('ours_cpu_s_per_epoch'))} / {_n(c.get('recbole_cpu_s_per_epoch'))} | "
                    f"{_n(c.get('cpu_ratio_ours_over_recbole'), 3)} |")
    return rows + ["", "CPU seconds per epoch are whole-run CPU time (user + system) divided by the epochs: they "
                   "include setup and the per-epoch validation on both sides, so they are an upper bound, but "
                   "they depend far less on the machine's load than the wall times."]


def _reference_rows(ref: dict) -> list[str]:
    if not ref:
        return []
    s = ref.get("SASRec", {})
    return ["", "For reference, from `../shared/peers/recbole/README.md` (same machine kind, a quiet machine): "
            f"RecBole SASRec median {s.get('median_s_per_epoch_tcmalloc')} s/epoch with tcmalloc and anomaly "
            f"detection off over a full run; epoch 0 as shipped (anomaly detection on) "
            f"{s.get('epoch0_s_anomaly_as_shipped_glibc')} s vs {s.get('epoch0_s_anomaly_off_glibc')} s off "
            f"(glibc malloc), {s.get('epoch0_s_anomaly_as_shipped_tcmalloc')} s vs "
            f"{s.get('epoch0_s_anomaly_off_tcmalloc')} s with tcmalloc; GRU4Rec median "
            f"{ref.get('GRU4Rec', {}).get('median_s_per_epoch_tcmalloc')} s/epoch with tcmalloc. Our runs and "
            "the RecBole runs here use glibc malloc."]


def _quality_rows(quality: dict | None) -> list[str]:
    """Time to quality with the default settings (tools.bench.train._time_to_quality) beside RecBole's run."""
    runs = {k: v for k, v in (quality or {}).items() if isinstance(v, dict)}
    if not runs:
        return []
    rows = ["**Time to quality with the default settings** (registry configuration, the recipe recsys.recipe "
            "chose from the data; 1 torch thread unless said): the test split is evaluated after every epoch for "
            "this table only (its CPU is not counted), and each row gives when the model that validation NDCG@10 "
            "selects so far first reached RecBole's final test NDCG@10, and the validation-selected model at the "
            "end of the run. RecBole: its final (validation-selected) test figures and the CPU its run took to "
            "the epoch it selected.", "",
            "| model | recipe | epochs (selected) | final test HR@10 / NDCG@10, ours | RecBole's | reached "
            "RecBole's NDCG@10: epoch, CPU s, wall s | RecBole CPU s to its model | ours / RecBole CPU | fit wall "
            "/ CPU s (whole run, probes excluded) | load before → after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        if run.get("skipped"):
            rows.append(f"| {name} | skipped: {run['skipped'][:200]} |" + " |" * 8)
            continue
        ref, final = run["recbole"], run["final"]
        reached = run.get("time_to_quality") or {}
        when, ratio = "not reached", "–"
        if reached.get("reached"):
            when = f"{reached['epoch']} (selected {reached['selected_epoch']}), {_n(reached['cpu_s'], 0)}, " \
                   f"{_n(reached['wall_s'], 0)}"
            ratio = f"{reached['cpu_s'] / ref['cpu_s_to_selected']:.3f}"
        ran = run.get("ran") or {}
        rows.append(f"| {name} ({ran.get('timestamp', '')[:16]}, `{ran.get('command', '')}`) | "
                    f"{(run.get('recipe') or {}).get('line', 'given settings')} | {run['epochs']} ({final['epoch']}) | "
                    f"{100 * final['test_hr@10']:.2f} / {100 * final['test_ndcg@10']:.2f} | "
                    f"{100 * ref['test_hr@10']:.2f} / {100 * ref['test_ndcg@10']:.2f} | {when} | "
                    f"{_n(ref['cpu_s_to_selected'], 0)} (epoch {ref['selected_epoch']}) | {ratio} | "
                    f"{_n(run['fit_wall_s'], 0)} / {_n(run.get('fit_cpu_s_without_probes'), 0)} | "
                    f"{_load(run['load_before'])} → {_load(run['load_after'])} |")
    return [*rows, "", *_seed_rows(runs)]


def _seed_rows(runs: dict) -> list[str]:
    """The runs with several seeds (`--seeds N`): each seed's selected model and its mean over the seeds."""
    seeded = {name: run["seeds"] for name, run in runs.items() if (run.get("seeds") or {}).get("runs")}
    if not seeded:
        return []
    rows = ["The same default-settings runs with other seeds (`--seeds N`; the checks at the top use the mean):", "",
            "| model | seed | epochs (selected) | final test HR@10 / NDCG@10 | reached RecBole's NDCG@10 (CPU s) | "
            "fit CPU s |", "|---|---|---|---|---|---|"]
    for name, seeds in seeded.items():
        for r in seeds["runs"]:
            if r.get("skipped"):
                rows.append(f"| {name} | {r['seed']} | skipped: {r['skipped'][:200]} | | | |")
                continue
            reached = r.get("time_to_quality") or {}
            rows.append(f"| {name} | {r['seed']} | {r['epochs']} ({r['selected_epoch']}) | "
                        f"{100 * r['test_hr@10']:.2f} / {100 * r['test_ndcg@10']:.2f} | "
                        + (f"{_n(reached['cpu_s'], 0)} |" if reached.get("reached") else "not reached |")
                        + f" {_n(r.get('fit_cpu_s'), 0)} |")
        if "mean_test_ndcg@10" in seeds:
            sd = {m: seeds.get(f"sd_{m}") for m in ("test_hr@10", "test_ndcg@10")}
            spread = (f" (sd {100 * sd['test_hr@10']:.2f} / {100 * sd['test_ndcg@10']:.2f})"
                      if None not in sd.values() else "")
            rows.append(f"| **{name}, mean of {seeds['finished']}** | | | **{100 * seeds['mean_test_hr@10']:.2f} / "
                        f"{100 * seeds['mean_test_ndcg@10']:.2f}**{spread} | | |")
    return [*rows, ""]


def render_train(r: dict) -> str:
    data = r.get("data") or {}
    ours = r.get("ours") or {}
    if ours.get("skipped"):
        return _header(r) + f"Ours: skipped: {ours['skipped']}\n"
    lines = [_header(r), *_quality_rows(r.get("quality")),
             f"Data: {data.get('description')}: {_n(data.get('users'))} users, {_n(data.get('target_positions'))} "
             f"training target positions in {_n(data.get('windows'))} windows of ≤ 50 items "
             f"({data.get('targets_per_window')} targets per window); {data.get('epochs')} epoch(s) per run.", "",
             "| model | run | configuration | batch (windows ≈ target positions) | s per epoch (each) | "
             "median s/epoch | target positions/s | windows/s | peak RSS MiB | fit wall / CPU s | "
             "load before → after |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    per_window = data.get("targets_per_window") or 0
    lines += [_our_train_row(name, variant, run, r, per_window)
              for name, variants in ours.items() for variant, run in variants.items()]
    peers = r.get("peers") or {}
    lines += ["", f"**RecBole 1.2.1** ({peers.get('setup', '')}): {peers.get('status', '')}."]
    lines += [*_peer_rows(peers.get("runs")), *_comparison_rows(r.get("comparison") or []),
              *_reference_rows(peers.get("reference") or {})]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# accuracy


def _fit_note(e: dict, model: str = "") -> str:
    """How one model's row was fitted: parameters, fit time and epochs, refit, a hybrid's weights."""
    fit, epochs = e["fit"], e["fit"].get("epochs")
    refit = ""
    if e.get("refit") and epochs:
        info_r = e.get("refit_info") or {}
        refit = (f" (best: epoch {fit.get('best_epoch')}, on validation), then refitted on train + valid "
                 f"for {info_r.get('epochs', fit.get('best_epoch'))} epochs")
    elif e.get("refit"):
        refit = "; refitted on train + valid"
    if fit.get("weights"):  # a hybrid: its parts' weights, chosen on validation
        parts = ", ".join(f"{p} {w:g}" for p, w in fit["weights"].items())
        chosen = fit.get("selection", {}).get("metric")
        refit = f"; weights {parts}" + (f" (chosen by validation {chosen.upper()})" if chosen else "") + refit
    where = e.get("params_file") or "default parameters"
    if e.get("params_file") is None and model.endswith("@default"):
        where = "the default recipe (no parameter file)"
    took = f"fit {e['fit_seconds']:.0f} s" + (f", {epochs} epochs" if epochs else "")
    if e.get("device"):  # a run made elsewhere than the 2-core machine
        took += f" on {e['device']}"
    return f"this project, {where}; {took}{refit}; ran {str(e.get('timestamp', ''))[:10]}"


def _our_accuracy_rows(model: str, e: dict, scaled: bool, exclude_seen: bool = False) -> list[str]:
    """`exclude_seen`: the data set's protocol ranks only unseen items; a row measured otherwise says so."""
    metrics = ACCURACY_METRICS
    if e.get("skipped"):
        return [f"| **ours: {model}** | " + " | ".join("–" for _ in metrics) + f" | {e['skipped']} |"]
    label = f"**ours: {model}**" + (" (misses counted)" if scaled else "")
    other = ""
    if bool(e.get("exclude_seen", False)) != exclude_seen:
        other = ("; **seen items ranked too (an earlier protocol): not comparable with the published rows**"
                 if exclude_seen else "; seen items excluded")
    rows = [f"| {label} | " + " | ".join(_pct(e["test_scaled"].get(m)) for m in metrics)
            + f" | {_fit_note(e, model)}{other} |"]
    if scaled:
        rows.append(f"| ours: {model} (kept cases only) | "
                    + " | ".join(_pct(e["test_raw"].get(m), ci=False) for m in metrics) + " | raw |")
    return rows


def _dataset_rows(name: str, d: dict) -> list[str]:
    metrics = ACCURACY_METRICS
    lines = [f"### {name}", "", f"Protocol: {d.get('protocol')}."]
    if d.get("skipped"):
        return lines + ["", d["skipped"], ""]
    info = d.get("data", {})
    lines += ["", f"Test cases: {_n(info.get('test_cases_kept'))} kept of {_n(info.get('test_cases_total'))} "
              f"({100 * info.get('kept_fraction', 1):.2f}%); {_n(info.get('n_items'))} items; train "
              f"{_n(info.get('train', {}).get('sessions'))} sequences."
              + (" **Quick slice of the data (a smoke run).**" if info.get("quick") else ""), "",
              "| model | " + " | ".join(m.upper() for m in metrics) + " | source |",
              "|---|" + "---|" * (len(metrics) + 1)]
    for model, values, source in ANCHOR_ROWS.get(name, []):
        lines.append(f"| {model} | " + " | ".join(f"{values[m]:.2f}" if m in values else "–" for m in metrics)
                     + f" | {source} (ANCHORS.md) |")
    scaled = info.get("kept_fraction", 1) < 1
    for model, e in d.get("models", {}).items():
        lines += _our_accuracy_rows(model, e, scaled, bool(d.get("exclude_seen", False)))
    return lines + [""]


def render_accuracy(r: dict) -> str:
    lines = [_header(r) if r.get("quick") else
             "Merged from several runs of `python scripts/benchmark.py accuracy --models M --datasets D` (each "
             "model's row gives its parameters file and the day it ran); the latest: " + _header(r)[4:]]
    if r.get("skipped"):
        lines.append(f"{r['skipped']}\n")
    datasets = {name: current_entry(name, d) for name, d in r.get("datasets", {}).items()}
    for name, d in datasets.items():
        lines += _dataset_rows(name, d)
    return "\n".join(lines + _default_vs_best_rows(datasets)) + "\n"


def _test_pair(e: dict, k: int, metric: str) -> str:
    return f"{_pct(e['test_scaled'].get(f'hr@{k}'))} / {_pct(e['test_scaled'].get(metric))}"


def _default_vs_best_rows(datasets: dict) -> list[str]:
    """Each neural model's default-recipe row beside the row of that model validation chooses (issue 15)."""
    rows = []
    for name, d in datasets.items():
        k = d.get("main_k", 20)
        for c in default_and_best(d):
            metric, models = c["metric"], d["models"]
            default, best = models[c["default"]], models[c["best"]]

            ratio = default["test_scaled"][metric]["value"] / best["test_scaled"][metric]["value"]
            rows.append(f"| {name} | {c['model']} | `{c['default']}` | {100 * default['valid'][metric]:.2f} | "
                        f"{_test_pair(default, k, metric)} | `{c['best']}` (of {c['candidates']}) | "
                        f"{100 * best['valid'][metric]:.2f} | {_test_pair(best, k, metric)} | {100 * ratio:.1f}% |")
    if not rows:
        return []
    return ["### Neural models: the default recipe beside the best validated row", "",
            "Each neural model with a row trained under the default recipe (`MODEL` or `MODEL@default`, no parameter "
            "file), beside the row of the same model that the validation metric (MRR@20 on sessions, NDCG@10 on "
            "leave-one-out) chooses among all of its rows measured under the data set's protocol (the default's "
            "included); test HR@K / metric with 95% CIs, misses counted; the last column is the default's test "
            "metric over the chosen row's.", "",
            "| data set | model | default row | its validation | its test HR@K / metric | chosen on validation | "
            "its validation | its test HR@K / metric | default / chosen, test metric |",
            "|---|---|---|---|---|---|---|---|---|", *rows, ""]


RENDERERS = {"data": render_data, "eval": render_eval, "serving": render_serving, "train": render_train,
             "accuracy": render_accuracy}  # one block per suite, each from that suite's results
