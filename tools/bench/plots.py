"""The report's three plots (matplotlib Figure objects, no pyplot state): recommend() latency against catalogue
size, test accuracy beside the published anchors, and seconds per training epoch beside RecBole."""

from pathlib import Path

from tools.bench.accuracy import ANCHOR_ROWS, current_entry
from tools.bench.train import TRAIN_MODELS, matching_peer


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
        metric, rows = accuracy_bars(name, d)
        for i, (_, value, kind, ci) in enumerate(rows):
            err = [[value - ci[0]], [ci[1] - value]] if ci else None
            ax.barh(i, value, color=BAR_COLOURS[kind], xerr=err, capsize=3,
                    hatch="//" if kind == "ours, earlier protocol" else None)
            ax.text(ci[1] if ci else value, i, f" {value:.2f}", va="center", fontsize=7)
        ax.set_yticks(list(range(len(rows))), [row[0] for row in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel=f"test {metric.upper()} (%)", title=name)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Test accuracy beside ANCHORS.md (dark grey: published; light grey: baselines measured there; "
                 "blue: ours, 95% CI, misses counted;\nhatched: ours under an earlier protocol, not comparable)",
                 fontsize=10)
    return _save(fig, path)


BAR_COLOURS = {"published": "dimgrey", "measured": "silver", "ours": "tab:blue", "ours, earlier protocol": "lightblue"}


def accuracy_bars(name: str, d: dict) -> tuple[str, list[tuple]]:
    """A data set's panel: its main metric and (label, value %, kind, 95% CI or None) for each anchor row and each
    of our tested rows. A row of ours measured under another protocol than the data set's today (e.g. ML-1M rows
    that ranked the user's own films) is kind "ours, earlier protocol" and says so in its label."""
    d = current_entry(name, d)
    metric = f"hr@{d.get('main_k', 20)}"
    rows = [(m, v[metric], "measured" if "measured" in src else "published", None)
            for m, v, src in ANCHOR_ROWS.get(name, []) if metric in v]
    for model, e in d["models"].items():
        if "test_scaled" in e:
            v = e["test_scaled"][metric]
            ci = [100 * c for c in v.get("ci95", [v["value"]] * 2)]
            same = bool(e.get("exclude_seen", False)) == bool(d.get("exclude_seen", False))
            rows.append((f"ours: {model}" + ("" if same else " (earlier protocol)"), 100 * v["value"],
                         "ours" if same else "ours, earlier protocol", ci))
    return metric, rows


def _train_bars(r: dict) -> list[tuple]:
    """(label, wall s/epoch, CPU s/epoch or None, colour) for each of our runs and its matching RecBole run."""
    ours = r.get("ours") or {}
    if not ours or ours.get("skipped"):
        return []
    bars = []
    for name, variants in ours.items():
        for variant, run in variants.items():
            if "median_s_per_epoch" in run:
                bars.append((f"ours {name}\n{variant}", run["median_s_per_epoch"],
                             run["fit_cpu_s"] / run["epochs"], "tab:blue"))
        threads = next((run.get("torch_threads") for run in variants.values()), None)
        peer = matching_peer((r.get("peers") or {}).get("runs", {}), TRAIN_MODELS[name]["recbole"], threads)
        if peer and peer.get("median_train_epoch_s"):
            cpu = peer.get("time_v") or {}
            bars.append((f"RecBole\n{TRAIN_MODELS[name]['recbole']}", peer["median_train_epoch_s"],
                         (cpu["user_s"] + cpu["sys_s"]) / peer["epochs_run"] if "user_s" in cpu else None,
                         "tab:orange"))
    return bars


def plot_train(r: dict, path: Path) -> Path | None:
    from matplotlib.figure import Figure

    bars = _train_bars(r)
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
