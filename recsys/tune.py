"""Hyperparameter search on the validation split (never test), with Optuna's seeded TPE sampler: the baselines.
Neural models are searched under a time budget by recsys.tune_neural (scripts/tune.py --budget-minutes).

Each model declares its search space next to its code, as a class attribute naming Config fields:

    search_space = {"k": ("int", 50, 1000, True),          # (kind, low, high[, log])
                    "alpha": ("float", 0.0, 1.0),
                    "decay": ("cat", ["div", "linear"])}    # (kind, choices)

Every trial builds `Config(**params)`, fits on `data.train` (recsys.train.fit) and scores `data.valid` with the
one evaluator. The result, `{"model", "params", "metric", "value", "trials", "history"}`, is what
`scripts/train_and_eval.py --params FILE` reads.
"""

import json
import logging
import sys
import time
from pathlib import Path

import optuna

from recsys.atomic import write_text_atomic
from recsys.config import check_keys
from recsys.evaluate import evaluate
from recsys.jsonfile import JSONFileError, read_json
from recsys.models import REGISTRY, FitOptions
from recsys.train import fit

MAX_RESULT_BYTES = 64 << 20  # a parameter file with its trial history is a few hundred kB at most


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """One value per search-space entry, checked against the declared kinds."""
    params = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "int":
            params[name] = trial.suggest_int(name, spec[1], spec[2], log=bool(spec[3:] and spec[3]))
        elif kind == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=bool(spec[3:] and spec[3]))
        elif kind == "cat":
            params[name] = trial.suggest_categorical(name, spec[1])
        else:
            raise ValueError(f"search space entry {name!r}: unknown kind {kind!r} (int, float or cat)")
    return params


def search_space(name: str) -> dict:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}")
    cls = REGISTRY[name]
    space = getattr(cls, "search_space", None)
    if not space:
        hint = " (a neural model: recsys.tune_neural searches it under a time budget)" if cls.trains_in_epochs else ""
        raise ValueError(f"{cls.__name__} declares no search_space to tune{hint}")
    check_keys(cls.Config, space, f"fields in {cls.__name__}.search_space")
    return space


def tune(name: str, data, n_trials: int, metric: str = "mrr@20", seed: int = 0, max_cases: int | None = None,
         fixed: dict | None = None, timeout: float | None = None, progress: bool = False) -> dict:
    """Search `name`'s space for the best validation `metric`; returns the JSON-ready result."""
    cls, space = REGISTRY[name], search_space(name)
    fixed = fixed or {}
    space = {k: v for k, v in space.items() if k not in fixed}
    valid, protocol = data.valid, data.protocol("valid")
    if len(valid) == 0:
        raise ValueError("the data set has no validation sessions to tune on")

    def objective(trial: optuna.Trial) -> float:
        params = {**suggest(trial, space), **fixed}
        model = cls(cls.Config(**params), data.n_items)
        start = time.perf_counter()
        fit(model, data, FitOptions(seed=seed, progress=False))
        metrics = evaluate(model, valid, protocol, max_cases=max_cases).metrics()
        if metric not in metrics:
            raise ValueError(f"unknown metric {metric!r}; the evaluator reports {sorted(metrics)}")
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
        return metrics[metric]

    # on a terminal, Optuna's bar and log; into a file or a pipe, one line of our own per trial (the bar's
    # carriage returns and Optuna's multi-line records made such logs unreadable)
    bar = progress and sys.stderr.isatty()
    if not bar:
        optuna.logging.set_verbosity(logging.WARNING)

    def log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        print(trial_line(study, trial, n_trials, metric), file=sys.stderr, flush=True)

    callbacks = [log_trial] if progress and not bar else []
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    # the defaults first: a search never reports something worse than the untuned model
    study.enqueue_trial({k: getattr(cls.Config(), k) for k in space})
    study.optimize(objective, n_trials=n_trials, timeout=timeout, show_progress_bar=bar, callbacks=callbacks)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "model": name,
        "params": {**study.best_params, **fixed},
        "metric": metric,
        "value": study.best_value,
        "trials": len(done),
        "history": [{"params": t.params, "value": t.value, "seconds": t.user_attrs.get("seconds")} for t in done],
    }


def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial, n_trials: int, metric: str) -> str:
    """`trial 3/30: mrr@20 0.2512 (best 0.2610, trial 1) in 4.2 s {...}`: one log line per finished trial."""
    head = f"trial {trial.number + 1}/{n_trials}"
    if trial.state != optuna.trial.TrialState.COMPLETE:
        return f"{head}: {trial.state.name.lower()} {trial.params}"
    best = study.best_trial
    return (f"{head}: {metric} {trial.value:.4f} (best {best.value:.4f}, trial {best.number + 1}) in "
            f"{trial.user_attrs.get('seconds', 0):.1f} s {trial.params}")


def check_result_path(out: str | Path) -> Path:
    """Refuse (ValueError) an output that is a link, a folder, or a file that is not a parameter file: the search
    would replace it. Called before any trial, so a bad --out loses no work."""
    out = Path(out)
    if out.is_symlink():
        raise ValueError(f"{out} is a symbolic link; give a plain file path for the parameters")
    if out.exists():
        if not out.is_file():
            raise ValueError(f"{out} exists and is not a file; give a file path for the parameters")
        try:
            old = read_json(out, MAX_RESULT_BYTES)
        except JSONFileError as err:
            raise ValueError(f"{out} exists and is not a parameter file ({err}); not replaced") from None
        if not isinstance(old.get("model"), str) or not isinstance(old.get("params"), dict):
            raise ValueError(f"{out} exists and is not a parameter file (no \"model\" and \"params\"); not replaced")
    return out


def write_result(result: dict, out: str | Path) -> Path:
    out = check_result_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out, json.dumps(result, indent=2) + "\n")
