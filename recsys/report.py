"""Human-readable results: the comparison table (markdown and terminal) and the comparison chart."""

from pathlib import Path

from recsys.sessionize import describe_truncation

TABLE_METRICS = ("hr@10", "hr@20", "mrr@10", "mrr@20", "ndcg@10", "ndcg@20", "coverage@20", "popularity@20")
# Seconds of each phase of a model's run (pipeline.run), in the order they run; refit only under --refit.
TIMES = (("fit_seconds", "fit s"), ("valid_seconds", "valid s"), ("refit_seconds", "refit s"),
         ("test_seconds", "test s"))


def _fmt(entry: dict | None, ci: bool) -> str:
    if entry is None:
        return "–"
    value = 100 * entry["value"]
    if ci and "ci95" in entry:
        lo, hi = (100 * v for v in entry["ci95"])
        return f"{value:.2f} ({lo:.2f}–{hi:.2f})"
    return f"{value:.2f}"


def results_table(results: dict, split: str = "test", ci: bool = True, metrics=TABLE_METRICS) -> str:
    """Markdown table of one split, models in order of validation MRR@20 (best first), values in percent, then
    the seconds each phase took (fit, validation, refit, test; "–" where a model has no such time). Models
    without that split (test under --no-test) are left out."""
    models = {n: e for n, e in results["models"].items() if split in e}  # test is absent from --no-test rows
    order = sorted(models, key=lambda n: -models[n]["valid"].get("mrr@20", {"value": 0})["value"])
    times = [(k, label) for k, label in TIMES if any(k in e for e in models.values())]
    head = "| model | " + " | ".join([*metrics, *(label for _, label in times)]) + " |"
    rows = [head, "|" + "---|" * (len(metrics) + len(times) + 1)]
    for name in order:
        m = models[name][split]
        cells = [_fmt(m.get(k), ci and not k.startswith(("coverage", "popularity"))) for k in metrics]
        cells += [f"{models[name][k]:.1f}" if k in models[name] else "–" for k, _ in times]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def describe_selection(selection: dict | None) -> list[str]:
    """`Chosen by validation mrr@20: X (28.89, 95% CI 28.10–29.61)` and, when the data cannot tell other models
    from X, `within noise of X on validation: A, B — the choice between them is not supported by the data`."""
    if not selection:
        return []
    best = selection["best"]
    score = selection["valid"][best]
    ci = ", 95% CI {:.2f}–{:.2f}".format(*(100 * v for v in score["ci95"])) if "ci95" in score else ""
    lines = [f"Chosen by validation {selection['metric']}: {best} ({100 * score['value']:.2f}{ci})"]
    if selection["within_noise"]:
        lines.append(f"within noise of {best} on validation: {', '.join(selection['within_noise'])} — the choice "
                     "between them is not supported by the data")
    return lines


def _data_name(data: dict) -> str:
    """The data set's name (an upload's, set by recsys.app.workbench.name_data_set) with the reader that read it,
    or the reader's name alone."""
    name, source = data.get("name"), data.get("source")
    return f"{name} (read as {source})" if name and source and name != source else str(name or source)


NOT_SCORED = ("Test not scored: the run had --no-test, so these models were compared on validation only. Score "
              "the one validation chooses with a run without --no-test.")


def has_split(results: dict, split: str) -> bool:
    """Whether any model of the run was scored on `split` (test is not under --no-test)."""
    return any(split in e for e in results["models"].values())


def results_markdown(results: dict) -> str:
    proto = results["protocol"]
    data = results["data"]
    lines = [
        "# Results",
        "",
        f"Data: {_data_name(data)} — {data['n_items']:,} items; train {data['train']['sessions']:,} sessions, "
        f"valid {data['valid']['sessions']:,}, test {data['test']['sessions']:,}; "
        f"{describe_truncation(data.get('truncated'))}.",
        f"Protocol: {proto['ranking']}; valid cases '{proto['valid']}', test cases '{proto['test']}' "
        f"('all' = every prefix predicts its next item, 'last' = last item only); "
        f"seen items {'excluded' if proto['exclude_seen'] else 'allowed (repeats count)'}"
        + (f"; validation on at most {proto['max_valid_cases']:,} evenly spaced cases" if proto.get("max_valid_cases")
           else "") + ".",
        "Values in percent with bootstrap 95% confidence intervals; models ordered by validation MRR@20 "
        "(selection never looks at test).",
        "",
        "## Test",
        "",
        results_table(results, "test") if has_split(results, "test") else NOT_SCORED,
        "",
        "## Validation",
        "",
        results_table(results, "valid", ci=False),
    ]
    if results.get("selection"):
        selection = results["selection"]
        lines += ["", "## Selection (validation only)", "", *describe_selection(selection), "",
                  "| model | valid " + selection["metric"] + " (95% CI) |", "|---|---|"]
        for name, score in sorted(selection["valid"].items(), key=lambda kv: -kv[1]["value"]):
            lines.append(f"| {name} | {_fmt(score, True)} |")
        lines += ["", selection["note"]]
    if results.get("paired_tests"):
        metric = results["paired_tests"][0]["metric"]
        lines += ["", f"## Paired tests (test {metric}, against the model chosen on validation)", "",
                  "| model | vs | mean diff | 95% CI | p |", "|---|---|---|---|---|"]
        for t in results["paired_tests"]:
            lines.append(f"| {t['a']} | {t['b']} | {100 * t['mean_diff']:+.2f} | "
                         f"{100 * t['ci95'][0]:+.2f}…{100 * t['ci95'][1]:+.2f} | {t['p_value']:.2g} |")
    return "\n".join(lines) + "\n"


def comparison_chart(results: dict, path: Path, metrics=("hr@20", "mrr@20", "ndcg@10")) -> Path:
    """Grouped bar chart of test metrics per model with 95% CI error bars (validation's when the run scored no
    test: --no-test)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    split = "test" if has_split(results, "test") else "valid"
    models = {n: e for n, e in results["models"].items() if split in e}
    names = sorted(models, key=lambda n: -models[n][split]["mrr@20"]["value"])
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4))
    for j, metric in enumerate(metrics):
        vals = np.array([100 * models[n][split][metric]["value"] for n in names])
        ci = np.array([[100 * c for c in models[n][split][metric].get("ci95", [v / 100, v / 100])]
                       for n, v in zip(names, vals)])
        err = np.abs(ci.T - vals)
        ax.bar(x + (j - (len(metrics) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=metric.upper())
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("percent (test, 95% CI)" if split == "test" else "percent (validation, 95% CI; test not scored)")
    ax.set_title(f"Model comparison on {results['data'].get('source')} (full ranking)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
