"""Hyperparameter search for a neural model under a wall-clock budget, on the validation split only.

    result = tune_neural("sasrec", data, budget_minutes=10)   # JSON-ready; scripts/tune.py writes it

What it searches, around the default recipe (recsys.recipe) and the model's Config (`Space`):
- `lr`: log-uniform from a third to three times the recipe's rate;
- `dropout`: uniform over 0.05-0.5 (SASRec's `dropout`; an RNN's `emb_dropout` and `hidden_dropout` together);
- `dim`: half, the same or twice the embedding size (SASRec's `dim`; an RNN's `emb_dim`, its `hidden` scaled alike);
- `n_negatives`: a quarter, the same or four times the recipe's shared negatives, only where the recipe
  chooses the sampled softmax (a catalogue above `Rules.full_softmax_max_items`).
Everything else is the recipe's: each trial trains with `choose_recipe` under the rules with its lr and
negatives (and `max_epochs`), so batch, warm-up, cosine schedule, epoch budget and patience are what a default
run under those rules uses. Values are kept to 3 significant digits, so the file says exactly what was trained.

How (successive halving over epochs, Optuna's SuccessiveHalvingPruner, reduction factor 3): every trial is
given the full epoch budget, and after `min_epochs`, 3x and 9x as many epochs it continues only if its best
validation score so far is among the top third of the scores the trials before it had at that epoch (while
fewer than three have been there: only if it is the best). So many configurations get a few epochs and the
promising ones the whole budget. The defaults (and `try_first`) are tried first; the rest come from Optuna's
seeded TPE sampler.

Budget: wall clock, as the user sets it. No trial starts once less time is left than the first rung took; a
running trial is cut at the deadline (TrainConfig.max_minutes: the best validated epoch so far is kept and
counts). A trial that diverges counts as failed and the search goes on.

Selection: the trial with the best validation NDCG@10 (the metric and the epoch the training itself selects)
among those not pruned; the test split is never read. The result's "params" are Config fields plus
{"recipe": every Rules field of the chosen trial}, what `scripts/train_and_eval.py --params FILE` reads: it trains
with the recipe under those rules (so a later change of the default rules does not change it), and the model
card's recipe line names those that differ from the defaults.
"""

import dataclasses
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from recsys.config import check_keys
from recsys.models import REGISTRY, FitOptions
from recsys.recipe import RULES, Recipe, Rules, choose_recipe
from recsys.train import TrainingDiverged, fit
from recsys.trainconfig import METRICS, TrainConfig

SEARCHED = ("lr", "dropout", "dim", "n_negatives")
MONITOR = TrainConfig().monitor  # the validation metric training selects epochs by; the search maximises it
REDUCTION = 3  # successive halving: a third of the trials at a rung go on


@dataclass(frozen=True)
class Space:
    """The search space: ranges (low, high) and choices; an empty `negatives` means full softmax."""

    lr: tuple[float, float]
    dropout: tuple[float, float]
    dims: tuple[int, ...]
    negatives: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return {"lr": {"log-uniform": list(self.lr)}, "dropout": {"uniform": list(self.dropout)},
                "dim": {"choices": list(self.dims)},
                **({"n_negatives": {"choices": list(self.negatives)}} if self.negatives else {})}


def _dim_field(config) -> str:
    names = {f.name for f in dataclasses.fields(config)}
    for name in ("dim", "emb_dim"):
        if name in names:
            return name
    raise ValueError(f"{type(config).__name__} has no embedding size to search")


def _dropout(config) -> float:
    return config.dropout if hasattr(config, "dropout") else config.emb_dropout


def make_space(config, recipe: Recipe, rules: Rules = RULES) -> Space:
    """The space around a model Config and its default recipe (the module docstring)."""
    dim = getattr(config, _dim_field(config))
    heads = getattr(config, "n_heads", 1)
    dims = tuple(sorted({d for d in (dim // 2, dim, dim * 2) if d >= heads and d % heads == 0}))
    drop = _dropout(config)
    negatives = ()
    if recipe.n_negatives:
        n = rules.sampled_negatives
        negatives = tuple(sorted({max(1, min(k, recipe.n_items)) for k in (n // 4, n, n * 4)}))
    return Space(lr=(_round(min(recipe.lr / 3, recipe.lr)), _round(max(recipe.lr * 3, recipe.lr))),
                 dropout=(min(0.05, drop), max(0.5, drop)), dims=dims, negatives=negatives)


def model_params(config, base: dict, point: dict) -> dict:
    """Config fields for a point of the space: `base` (fields held fixed) with the point's dim and dropout."""
    params = dict(base)
    field = _dim_field(config)
    if "dim" in point:
        params[field] = point["dim"]
        if field == "emb_dim" and "hidden" not in base:  # an RNN: its state grows with its embeddings
            params["hidden"] = max(1, round(config.hidden * point["dim"] / config.emb_dim))
    if "dropout" in point:
        fields = ("dropout",) if hasattr(config, "dropout") else ("emb_dropout", "hidden_dropout")
        params.update({f: point["dropout"] for f in fields})
    return params


def trial_rules(rules: Rules, point: dict, max_epochs: int | None) -> Rules:
    """The recipe rules a trial trains under: `rules` with the point's lr and negatives (and `max_epochs`)."""
    return dataclasses.replace(rules, lr=point["lr"],
                               sampled_negatives=point.get("n_negatives", rules.sampled_negatives),
                               epoch_range=(max_epochs, max_epochs) if max_epochs else rules.epoch_range)


def recipe_section(rules: Rules) -> dict:
    """A parameter file's {"recipe": {...}}: every Rules field the trial trained under (JSON-ready), so that a later
    change of the default rules does not change what the file trains (the card lists those off the defaults)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(rules).items()}


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


HELD_CHECKS = {"lr": (lambda v: _number(v) and v > 0, "a positive number"),
               "dropout": (lambda v: _number(v) and 0 <= v < 1, "a number from 0 to below 1"),
               "dim": (_whole, "a positive whole number"), "n_negatives": (_whole, "a positive whole number")}


def _check(name: str, data, budget_minutes: float, metric: str, fixed: dict, max_epochs, min_epochs,
           max_trials) -> type:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}")
    cls = REGISTRY[name]
    if not cls.trains_in_epochs:
        raise ValueError(f"{name} is not a neural model: tune it with --trials (no time budget needed)")
    if not (isinstance(budget_minutes, int | float) and math.isfinite(budget_minutes) and budget_minutes > 0):
        raise ValueError(f"the time budget must be a positive number of minutes, not {budget_minutes!r}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    if metric != MONITOR:
        raise ValueError(f"a neural model is tuned on {MONITOR}, the validation metric its training selects epochs "
                         f"by (the recipe's); {metric!r} is for the baselines")
    for label, value in (("max_epochs", max_epochs), ("min_epochs", min_epochs), ("max_trials", max_trials)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{label} must be a positive whole number, not {value!r}")
    check_keys(cls.Config, {k: v for k, v in fixed.items() if k not in SEARCHED},
               f"fixed fields for {name} (besides {', '.join(SEARCHED)})")
    for key, (ok, what) in HELD_CHECKS.items():
        if key in fixed and not ok(fixed[key]):
            raise ValueError(f"fixed {key} must be {what}, not {fixed[key]!r}")
    if len(data.valid) == 0:
        raise ValueError("the data set has no validation sessions to tune on")
    return cls


def tune_neural(name: str, data, budget_minutes: float, metric: str = MONITOR, seed: int = 0,
                fixed: dict | None = None, max_epochs: int | None = None, min_epochs: int | None = None,
                max_trials: int | None = None, max_cases: int | None = None, rules: Rules = RULES,
                try_first: tuple[dict, ...] = (), progress: bool = False,
                log: Callable[[str], None] | None = None) -> dict:
    """Search `name`'s space (module docstring) for the best validation `metric` within `budget_minutes` of wall
    clock. `fixed`: Config fields and searched names (lr, dropout, dim, n_negatives) held fixed; `max_epochs`:
    each trial's epoch budget (default: the recipe's); `min_epochs`: the first rung (default: about a 27th of
    the budget); `max_cases`: validate on an evenly spaced subset; `try_first`: points tried after the
    defaults. Returns the JSON-ready result."""
    fixed = dict(fixed or {})
    cls = _check(name, data, budget_minutes, metric, fixed, max_epochs, min_epochs, max_trials)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    base = {k: v for k, v in fixed.items() if k in fields}  # held Config fields (SASRec's dim and dropout too)
    config = cls.Config(**base)
    recipe = choose_recipe(cls(config, data.n_items), data, rules)
    space = make_space(config, recipe, rules)
    defaults = {"lr": recipe.lr, "dropout": _dropout(config), "dim": getattr(config, _dim_field(config)),
                **({"n_negatives": rules.sampled_negatives} if space.negatives else {})}
    held = {k: fixed[k] for k in defaults if k in fixed}
    if "n_negatives" in fixed and not space.negatives:
        raise ValueError(f"n_negatives applies to the sampled softmax only; with {recipe.n_items:,} items (<= "
                         f"{rules.full_softmax_max_items:,}) the recipe trains with the full softmax")
    epochs = choose_recipe(cls(config, data.n_items), data, trial_rules(rules, defaults, max_epochs)).max_epochs
    first_rung = min_epochs or max(1, round(epochs / REDUCTION ** 3))
    deadline = time.monotonic() + budget_minutes * 60
    started_wall, started_cpu = time.monotonic(), time.process_time()
    epoch_seconds: list[float] = []  # wall seconds of every trained epoch (with its validation)
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def suggest(trial: optuna.Trial) -> dict:
        # 3 significant digits: what the parameter file says is exactly what the trial trained with
        draw = {"lr": lambda: _round(trial.suggest_float("lr", *space.lr, log=True)),
                "dropout": lambda: _round(trial.suggest_float("dropout", *space.dropout)),
                "dim": lambda: trial.suggest_categorical("dim", list(space.dims)),
                "n_negatives": lambda: trial.suggest_categorical("n_negatives", list(space.negatives))}
        return {k: held[k] if k in held else draw[k]() for k in defaults}

    def objective(trial: optuna.Trial) -> float:
        point = suggest(trial)
        trial.set_user_attr("point", point)
        model = cls(cls.Config(**model_params(config, base, point)), data.n_items)
        # what a parameter file with this point's {"recipe": rules} trains with, cut at the deadline
        left = deadline - time.monotonic()
        train = dataclasses.replace(choose_recipe(model, data, trial_rules(rules, point, max_epochs)).train_config(),
                                    max_minutes=max(left, 1.0) / 60,
                                    **({"val_max_cases": max_cases} if max_cases else {}))
        best, last = -math.inf, [time.monotonic()]
        wall, cpu = time.monotonic(), time.process_time()
        trial.set_user_attr("epochs", 0)

        def on_epoch(row: dict, _model) -> None:
            nonlocal best
            now = time.monotonic()
            epoch_seconds.append(now - last[0])
            last[0] = now
            best = max(best, row.get(metric, -math.inf))
            trial.set_user_attr("epochs", row["epoch"])
            trial.set_user_attr("seconds", round(now - wall, 2))
            trial.set_user_attr("cpu_seconds", round(time.process_time() - cpu, 2))
            trial.report(best, row["epoch"])
            if row["epoch"] < train.max_epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after {row['epoch']} epochs")
            if (progress or log) and row["epoch"] in rungs:  # a sign of life within a long trial
                say(f"trial {trial.number + 1}: {row['epoch']}/{train.max_epochs} epochs, best {metric} {best:.4f}, "
                    f"goes on; {max(0.0, deadline - now) / 60:.1f} min left")

        info = fit(model, data, FitOptions(seed=seed, progress=False), train, on_epoch=on_epoch)
        trial.set_user_attr("seconds", round(time.monotonic() - wall, 2))
        trial.set_user_attr("cpu_seconds", round(time.process_time() - cpu, 2))
        trial.set_user_attr("best_epoch", info["best_epoch"])
        trial.set_user_attr("cut_by_budget", info["epochs"] < train.max_epochs and time.monotonic() >= deadline)
        trial.set_user_attr("early_stopped", info["epochs"] < train.max_epochs and not
                            trial.user_attrs["cut_by_budget"])
        if metric not in info["best_valid"]:  # the deadline came before its first validation
            raise optuna.TrialPruned("cut by the budget before its first validation")
        return info["best_valid"][metric]

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress or log:
            say(trial_line(study, trial, metric, epochs, deadline))
        if max_trials and len(_finished(study)) >= max_trials:
            study.stop()
        # too little time left for another trial's first rung: stop rather than start one the deadline cuts
        if epoch_seconds and deadline - time.monotonic() < first_rung * statistics.median(epoch_seconds):
            study.stop()

    searched = {k: v for k, v in space.as_dict().items() if k not in held}
    rungs = _rungs(first_rung, epochs)
    optuna.logging.set_verbosity(logging.WARNING)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung, reduction_factor=REDUCTION)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    for point in (defaults, *try_first):
        study.enqueue_trial({k: v for k, v in point.items() if k in defaults and k not in held}, skip_if_exists=True)
    if progress or log:
        say(f"tuning {name} for {budget_minutes:g} min on validation {metric}: {epochs} epochs a trial, "
            + (f"pruned unless in the top 1/{REDUCTION} after {', '.join(map(str, rungs))} epochs" if rungs else
               "no pruning (the first rung is the whole budget)")
            + f"; space {searched}{f', fixed {held}' if held else ''}")
    study.optimize(objective, timeout=budget_minutes * 60, callbacks=[after_trial], catch=(TrainingDiverged,))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"no trial finished within {budget_minutes:g} minutes; give the search more time")
    best = max(done, key=lambda t: t.value)
    point = best.user_attrs["point"]
    params = model_params(config, base, point)
    chosen_rules = trial_rules(rules, point, max_epochs)
    chosen = choose_recipe(cls(cls.Config(**params), data.n_items), data, chosen_rules)
    wall, cpu = time.monotonic() - started_wall, time.process_time() - started_cpu
    return {
        "model": name,
        "params": {**params, "recipe": recipe_section(chosen_rules)},
        "metric": metric,
        "value": best.value,
        "trials": len(done),
        "history": [_trial_record(t) for t in _finished(study)],
        "search": {"chosen": point, "trial": best.number + 1, "recipe": chosen.line(),
                   "line": search_line(name, metric, best, len(_finished(study)), budget_minutes, point),
                   "budget_minutes": budget_minutes, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                   "epochs_per_trial": epochs, "rungs": rungs, "space": searched,
                   "fixed": fixed, "seed": seed, "scheme": f"successive halving (Optuna SuccessiveHalvingPruner, "
                   f"reduction factor {REDUCTION}) + TPE; selection on validation only"},
    }


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that ran (not those still queued when the search stopped)."""
    return [t for t in study.trials if t.state.is_finished()]


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def _rungs(first: int, epochs: int) -> list[int]:
    rungs, r = [], first
    while r < epochs:
        rungs.append(r)
        r *= REDUCTION
    return rungs


def _trial_record(t: optuna.trial.FrozenTrial) -> dict:
    state = t.state.name.lower()
    if state == "complete" and t.user_attrs.get("cut_by_budget"):
        state = "cut by the budget"
    elif state == "complete" and t.user_attrs.get("early_stopped"):
        state = "early-stopped"
    value = t.value if t.value is not None else (max(t.intermediate_values.values()) if t.intermediate_values
                                                 else None)
    return {"trial": t.number + 1, "params": t.user_attrs.get("point", t.params), "state": state, "value": value,
            "epochs": t.user_attrs.get("epochs"), "best_epoch": t.user_attrs.get("best_epoch"),
            "seconds": t.user_attrs.get("seconds"), "cpu_seconds": t.user_attrs.get("cpu_seconds")}


def _point_text(point: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in point.items())


def trial_line(study: optuna.Study, t: optuna.trial.FrozenTrial, metric: str, epochs: int, deadline: float) -> str:
    """`trial 3: pruned after 2/41 epochs, ndcg@10 0.0512 (best 0.0610, trial 1), 9.1 s; 7.2 min left {...}`."""
    record = _trial_record(t)
    left = max(0.0, deadline - time.monotonic()) / 60
    score = f", {metric} {record['value']:.4f}" if record["value"] is not None else ""
    done = [s for s in study.trials if s.state == optuna.trial.TrialState.COMPLETE]
    best = max(done, key=lambda s: s.value) if done else None
    lead = f" (best {best.value:.4f}, trial {best.number + 1})" if best else ""
    return (f"trial {t.number + 1}: {record['state']} after {record['epochs']}/{epochs} epochs{score}{lead}, "
            f"{record['seconds'] or 0:.1f} s; {left:.1f} min left; {_point_text(record['params'])}")


def search_line(name: str, metric: str, best: optuna.trial.FrozenTrial, n_trials: int, budget: float,
                point: dict) -> str:
    """One line for logs and the model card: what the search chose and how."""
    return (f"{_point_text(point)}: validation {metric} {best.value:.4f}, the best of {n_trials} trials "
            f"(scripts/tune.py, successive halving over epochs, {budget:g}-minute budget; trial {best.number + 1})")
