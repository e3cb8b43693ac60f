"""Fit, evaluate and save every requested model the same way: the body of `scripts/train_and_eval.py`.

For each model: build it from the registry with its (possibly tuned) parameters, fit on train (neural models
stop early on validation), evaluate on validation (for selection) and on test with the one evaluator, and
write its model folder. Then write results.json, results.md and the comparison chart.
"""

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recsys.data import Dataset
from recsys.evaluate import EvalResult, evaluate, paired_test
from recsys.folder import save_folder
from recsys.models import REGISTRY, FitOptions
from recsys.report import comparison_chart, results_markdown

# What the app trains on a fresh machine: quick to fit, and covering each family.
DEFAULT_APP_MODELS = ("pop", "spop", "itemknn", "sknn", "gru4rec", "sasrec")
APP_MAX_EPOCHS = 8


@dataclass(frozen=True)
class RunConfig:
    models: tuple[str, ...]
    out: Path = Path("checkpoints")
    params: dict = field(default_factory=dict)  # model name -> {config field: value}
    max_epochs: int | None = None  # passed to every model that trains in epochs
    exclude_seen: bool = False
    n_boot: int = 1000
    seed: int = 0
    progress: bool = True
    assets: Path | None = Path("assets")
    refit: bool = False  # baselines: refit on train + valid after validation (for comparison with papers)


def build_model(name: str, n_items: int, params: dict | None = None):
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(REGISTRY)}")
    cls = REGISTRY[name]
    base = cls.Config()
    known = {f.name for f in dataclasses.fields(base)}
    unknown = set(params or {}) - known
    if unknown:
        raise ValueError(f"unknown parameters for {name}: {sorted(unknown)} (known: {sorted(known)})")
    return cls(dataclasses.replace(base, **(params or {})), n_items)


def load_params(paths: list[str | Path]) -> dict:
    """Merge tuned-parameter files written by scripts/tune.py: {"model": name, "params": {...}}."""
    out = {}
    for path in paths:
        spec = json.loads(Path(path).read_text())
        out[spec["model"]] = spec["params"]
    return out


def _card(name: str, model, metrics: dict, data: Dataset) -> str | None:
    try:
        from recsys.card import model_card
    except ImportError:
        return None
    return model_card(name, dataclasses.asdict(model.config), metrics, data.stats(), None)


def run(data: Dataset, config: RunConfig, log=print) -> dict:
    """Fit, evaluate and save each model; returns the results dict also written to results.json."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    popularity = data.popularity()
    results = {"models": {}, "data": {**data.stats(), "source": data.meta.get("source"),
                                      "dropped_unknown_items": data.meta.get("dropped_unknown_items")},
               "protocol": {"valid": data.protocol("valid"), "test": data.protocol("test"),
                            "ranking": "full ranking over every item, pessimistic ties",
                            "exclude_seen": config.exclude_seen, "refit": config.refit}}
    tests: dict[str, EvalResult] = {}
    for name in config.models:
        torch.manual_seed(config.seed)
        model = build_model(name, data.n_items, config.params.get(name))
        workdir = out / ".work" / name
        options = FitOptions(max_epochs=config.max_epochs, seed=config.seed, progress=config.progress,
                             workdir=str(workdir))
        log(f"[{name}] fitting on {len(data.train):,} sessions ...")
        start = time.perf_counter()
        fit_info = model.fit(data, options) or {}
        fit_seconds = time.perf_counter() - start
        eval_kw = dict(exclude_seen=config.exclude_seen, popularity=popularity, progress=config.progress)
        valid = evaluate(model, data.valid, data.protocol("valid"), desc=f"{name} valid", **eval_kw)
        if config.refit and not model.trains_in_epochs:
            model = build_model(name, data.n_items, config.params.get(name))
            model.fit(data.with_valid_in_train(), options)
            fit_seconds = time.perf_counter() - start
        test = evaluate(model, data.test, data.protocol("test"), desc=f"{name} test", **eval_kw)
        tests[name] = test
        entry = {"valid": valid.report(config.n_boot), "test": test.report(config.n_boot),
                 "fit_seconds": round(fit_seconds, 2), "params": dataclasses.asdict(model.config),
                 "fit": {k: v for k, v in fit_info.items() if k != "history"}}
        results["models"][name] = entry
        log(f"[{name}] {fit_seconds:.1f}s  valid mrr@20 {entry['valid']['mrr@20']['value']:.4f}  "
            f"test hr@20 {entry['test']['hr@20']['value']:.4f} mrr@20 {entry['test']['mrr@20']['value']:.4f}")
        curves = workdir / "training_curves.png"
        metrics = {"valid": entry["valid"], "test": entry["test"], "data": results["data"],
                   "protocol": results["protocol"], "history": fit_info.get("history", [])}
        save_folder(model, out / name, data.items, metrics=metrics,
                    train={"fit_seconds": entry["fit_seconds"], "fit": entry["fit"], "seed": config.seed,
                           "data_source": data.meta.get("source")},
                    card=_card(name, model, metrics, data),
                    extra_files={"training_curves.png": curves} if curves.is_file() else None)
        if curves.is_file() and config.assets is not None:
            Path(config.assets).mkdir(parents=True, exist_ok=True)
            (Path(config.assets) / f"training_curves_{name}.png").write_bytes(curves.read_bytes())
    results["paired_tests"] = _paired_against_best_baseline(tests, results)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_markdown(results))
    if config.assets is not None and results["models"]:
        comparison_chart(results, Path(config.assets) / "model_comparison.png")
    return results


def _paired_against_best_baseline(tests: dict[str, EvalResult], results: dict) -> list[dict]:
    """Each model against the best model by validation MRR@20 (selection on validation, never test)."""
    if len(tests) < 2:
        return []
    best = max(tests, key=lambda n: results["models"][n]["valid"]["mrr@20"]["value"])
    return [{"a": name, "b": best, **paired_test(tests[name], tests[best], "mrr@20", n_boot=200)}
            for name in tests if name != best]


def ensure_default_models(checkpoints_dir: str | Path = "checkpoints", progress=print,
                          models: tuple[str, ...] = DEFAULT_APP_MODELS) -> list[Path]:
    """On a fresh machine: build the synthetic data set and quickly train a few models for the app."""
    from recsys.prepare import load_or_prepare_default

    checkpoints_dir = Path(checkpoints_dir)
    existing = sorted(p.parent for p in checkpoints_dir.glob("*/config.json"))
    if existing:
        return existing
    data = load_or_prepare_default(progress=progress)
    wanted = tuple(m for m in models if m in REGISTRY)
    progress(f"No models in {checkpoints_dir}/: training {', '.join(wanted)} on the synthetic data set ...")
    run(data, RunConfig(models=wanted, out=checkpoints_dir, max_epochs=APP_MAX_EPOCHS, n_boot=200,
                        progress=False), log=progress)
    return sorted(p.parent for p in checkpoints_dir.glob("*/config.json"))
