"""Fit, evaluate and save every requested model the same way: the body of `scripts/train_and_eval.py`.

For each model: build it from the registry with its (possibly tuned) parameters, fit on train with
`recsys.train.fit` (neural models stop early on validation), evaluate on validation (for selection) and on
test with the one evaluator, and write its model folder and the results so far (results.json and results.md,
each replaced whole). Then add the paired tests and draw the comparison chart. The output folder and every
OUT/NAME are checked before any work (`check_run_folder`): nothing that is not a previous run's is overwritten.
"""

import dataclasses
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from recsys.atomic import (
    check_model_name,
    check_output,
    recover_children,
    remove_stale_files,
    safe_child,
    set_aside,
    write_text_atomic,
)
from recsys.data import Dataset
from recsys.evaluate import EvalResult, check_objective, evaluate, objective_report, paired_test, shard_of_process
from recsys.folder import ModelFolderError, load_folder, save_folder
from recsys.models import REGISTRY, FitOptions, build_model, model_class
from recsys.models.blend import Blend, BlendConfig
from recsys.report import comparison_chart, results_markdown
from recsys.sessions import Sessions
from recsys.train import fit

# What the app trains on a fresh machine: the baselines and the design card's three sequence models, briefly.
DEFAULT_APP_MODELS = ("pop", "spop", "itemknn", "sr", "sknn", "vsknn", "sasrec", "gru4rec", "lstm")
APP_MAX_EPOCHS = 2  # keeps the first start short on a 2-core CPU; `make train` trains fully
APP_TRAIN = {"val_max_cases": 2000, "patience": 2}  # per-epoch validation sample (best of the epochs kept)
APP_VALID_CASES = 2000  # selection between the models validates on this many evenly spaced cases; test is full
APP_BOOT = 200  # bootstrap resamples behind each CI of the first start's results
# torch threads while building the defaults (training and evaluation). On the shared 2-core machine at load 6,
# SASRec's 2 epochs took 319 s at torch's default of 2 threads and 36 s at 1 (a descheduled thread stalls every
# parallel op); on an idle machine 2 threads gain far less than that.
APP_THREADS = 1


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
    assets: Path | None = None  # also write the comparison chart (and training curves) here; None: neither
    refit: bool = False  # refit on train + valid after validation (neural: the selected epochs); see `refit`
    resume: bool = False  # neural models: continue from the last checkpoint in out/.work/<name> instead of anew
    select: str = "mrr@20"  # validation metric that picks the best model, or a mean of several: "hr@20+mrr@20"
    max_valid_cases: int | None = None  # validate on at most this many evenly spaced cases (None: all)
    log_phases: bool = False  # also log each neural epoch and each evaluation as it starts (the app's first start)
    # False: the test split is never scored (model folders and results hold validation only), for runs whose
    # only purpose is to choose on validation: trying variants, fitting a hybrid's parts (train_and_eval --no-test)
    score_test: bool = True

    def __post_init__(self):
        for name in self.models:
            check_model_name(name)  # names become folders: OUT/NAME, OUT/.work/NAME
        object.__setattr__(self, "select", "+".join(check_objective(self.select)))
        if self.max_valid_cases is not None and self.max_valid_cases < 1:
            raise ValueError(f"max_valid_cases must be at least 1, not {self.max_valid_cases}")


def load_params(paths: list[str | Path]) -> dict:
    """Merge tuned-parameter files written by scripts/tune.py: {"model": name, "params": {...}}."""
    out = {}
    for path in paths:
        spec = json.loads(Path(path).read_text())
        out[spec["model"]] = spec["params"]
    return out


def with_part_params(name: str, params: dict | None, files: dict) -> tuple[dict | None, dict[str, str]]:
    """A hybrid's parameters with each part's filled in from `files` (model name -> parameters, as load_params
    returns), unless the hybrid's own `params["params"]` names that part: those win. Returns the parameters
    and, per part, where its parameters came from; any other model's parameters come back unchanged.

    The one place this happens: scripts/train_and_eval.py --params and the accuracy suite both go through `run`.
    """
    if not issubclass(model_class(name), Blend):
        return params, {}
    params = dict(params or {})
    given = params.get("params") or {}
    filled, sources = {}, {}
    for part in params.get("components", BlendConfig.components):
        if part in given:
            filled[part] = given[part]
            sources[part] = "the hybrid's own params" + (f" ({part}'s own parameter file not used)"
                                                          if part in files else "")
        elif part in files:
            filled[part] = files[part]
            sources[part] = f"{part}'s own parameter file"
        else:
            sources[part] = "defaults (no parameters given)"
    return {**params, "params": filled}, sources


def _describe_part(params: dict | None) -> str:
    """`k=100, train={...}` for a log line: the parameters given to a part, not its whole config."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in (params or {}).items())


def _reuse_spec(params: dict | None) -> dict[str, str]:
    """A hybrid's parts to take already trained: part -> a run's model name or a folder path (its `folders`,
    and with `reuse`, each other part under its own name)."""
    params = params or {}
    folders = dict(params.get("folders") or {})
    if params.get("reuse"):
        folders = {part: part for part in params.get("components", BlendConfig.components)} | folders
    return folders


def _is_name(spec: str) -> bool:
    try:
        check_model_name(spec)
    except ValueError:
        return False
    return True


def load_part(folder: Path, data: Dataset):
    """A trained model folder for a hybrid's part, refused (ModelFolderError) unless it has `data`'s items."""
    model = load_folder(folder, REGISTRY)
    ids, want = [str(i) for i in model.item_info["item_ids"]], data.items["item_id"].astype(str).tolist()
    if ids != want:
        first = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
        raise ModelFolderError(f"{folder} was trained on another data set: its items.json lists {len(ids):,} items, "
                               f"the data {len(want):,}, first differing at position {first}; a hybrid reuses "
                               f"only models of the same data set")
    return model


def reuse_parts(model: Blend, spec: dict[str, str], out: Path, this_run: dict, data: Dataset,
                refit: bool) -> tuple[dict, dict]:
    """Hand `model` its already-trained parts (`_reuse_spec`): a name is this run's row of that name (fitted
    on train) or else the folder OUT/<name>, a path that folder. With `reuse`, a part with neither is fitted,
    and so is one whose folder was fitted on train+valid while the weights are still to be chosen on validation
    (named in `folders`, such a folder is refused).
    Returns part -> where it came from, and part -> (the model the refit takes, what it says about it)."""
    sources, for_refit = {}, {}
    for part, where in spec.items():
        explicit = part in model.config.folders  # named by the user: must exist
        refitted, note = None, None
        if _is_name(where) and where in this_run:
            loaded, refitted = this_run[where]
            source = f"this run's {where} row"
            note = (f"{source}, refitted on train+valid" if refitted is not None else
                    f"{source}, not refitted (it was fitted on train only)" if refit else None)
        else:
            folder = safe_child(out, where) if _is_name(where) else Path(where)
            if not folder.is_dir() and not explicit:
                continue  # `reuse` with nothing to reuse: the part is fitted as usual
            loaded = load_part(folder, data)
            source = f"folder {folder}"
            if (loaded.metrics.get("protocol") or {}).get("refit") and not model.config.weights:
                if not explicit:
                    continue  # `reuse`: a part trained on validation cannot help choose on it; fitted as usual
                raise ModelFolderError(f"{folder} was fitted on train+valid (its run had --refit), and this hybrid "
                                       "chooses its weights on validation: with that part it would choose on data "
                                       "the part was trained on. Name a folder fitted on train only, or give the "
                                       "weights")
            if refit:
                on_both = (loaded.metrics.get("protocol") or {}).get("refit")
                note = (f"{source}, fitted on train+valid (--refit or scripts/refit.py)" if on_both else
                        f"{source}, not refitted (it was fitted on train only)")
        model.use_part(part, loaded, source)
        sources[part] = source
        for_refit[part] = (refitted if refitted is not None else loaded, note or source)
    return sources, for_refit


def _log_epoch(log, name: str, max_epochs: int | None, row: dict, _model) -> None:
    """One line per trained epoch (fit's on_epoch): its time, loss and validation score."""
    of = f"/{max_epochs}" if max_epochs else ""
    valid = f", valid ndcg@10 {row['ndcg@10']:.4f} ({row['val_seconds']:.1f}s)" if "ndcg@10" in row else ""
    log(f"[{name}] epoch {row['epoch']}{of}: {row['train_seconds']:.1f}s, loss {row['train_loss']:.3f}{valid}")


def _card(name: str, model, metrics: dict, data: Dataset, recipe: dict | None = None) -> str | None:
    try:
        from recsys.card import model_card
    except ImportError:
        return None
    config = dataclasses.asdict(model.config)
    if recipe:  # the default training recipe fit chose from the data (recsys.recipe)
        config = {"model": name, "config": config, "train": {"recipe": recipe}}
    return model_card(name, config, metrics, data.stats(), None)


def run(data: Dataset, config: RunConfig, log=print) -> dict:
    """Fit, evaluate and save each model; returns the results dict also written to results.json."""
    out = Path(config.out)
    previous = check_run_folder(out, config.models, log=log)
    out.mkdir(parents=True, exist_ok=True)
    popularity = data.popularity()
    results = {"models": {}, "data": {**data.stats(), "source": data.meta.get("source"),
                                      "dropped_unknown_items": data.meta.get("dropped_unknown_items"),
                                      "truncated": data.meta.get("truncated")},
               "protocol": {"valid": data.protocol("valid"), "test": data.protocol("test"),
                            "ranking": "full ranking over every item, pessimistic ties",
                            "exclude_seen": config.exclude_seen, "refit": config.refit}}
    if config.max_valid_cases is not None:  # validation on an evenly spaced subset (as tune.py's max_cases)
        results["protocol"]["max_valid_cases"] = config.max_valid_cases
    tests: dict[str, EvalResult] = {}
    valids: dict[str, EvalResult] = {}
    filled = {name: with_part_params(name, config.params.get(name), config.params) for name in config.models}
    config = dataclasses.replace(config, params={**config.params, **{n: p for n, (p, _) in filled.items()
                                                                     if p is not None}})
    reusing = {n: _reuse_spec(config.params.get(n)) for n in config.models if filled[n][1]}
    reusing = {n: spec for n, spec in reusing.items() if spec}
    wanted = {where for spec in reusing.values() for where in spec.values()}
    this_run: dict[str, tuple] = {}  # a row a hybrid reuses: (fitted on train, refitted or None)
    for name in sorted(config.models, key=lambda n: n in reusing):  # a hybrid that reuses rows comes after them
        torch.manual_seed(config.seed)
        model = build_model(name, data.n_items, config.params.get(name))
        part_sources = dict(filled[name][1])
        reused_refit = {}
        if name in reusing:
            reused, reused_refit = reuse_parts(model, reusing[name], out, this_run, data, config.refit)
            for part, source in reused.items():
                log(f"[{name}] part {part}: reused as trained ({source}); not fitted again")
                part_sources[part] = f"reused: {source}"
        for part, source in part_sources.items():
            given = _describe_part(model.config.params.get(part))
            log(f"[{name}] part {part}: " + (f"{given} (from {source})" if given else source))
        workdir = safe_child(out / ".work", name)
        if not config.resume:
            _remove_workdir(workdir)  # a new run trains from scratch; --resume continues an interrupted one
        options = FitOptions(max_epochs=config.max_epochs, seed=config.seed, progress=config.progress,
                             workdir=str(workdir), exclude_seen=config.exclude_seen)
        log(f"[{name}] fitting on {len(data.train):,} sessions ...")
        start = time.perf_counter()
        on_epoch = partial(_log_epoch, log, name, config.max_epochs) if config.log_phases else None
        fit_info = fit(model, data, options, on_epoch=on_epoch) or {}
        fit_seconds = time.perf_counter() - start
        if fit_info.get("recipe"):
            log(f"[{name}] training recipe (from the data): {fit_info['recipe']['line']}")
        for part, source in part_sources.items():  # the fit report says what each part ran with, and why
            fit_info["components"][part].update(params=_params_of(model.part(part)), params_from=source)
        # > 0: another process of a data-parallel run (also for a model fitted after a DDP fit started the process
        # group); it trains (and refits) and scores its share of the validation and test cases, rank 0 writes
        worker = max(global_rank(fit_info), shard_of_process()[0])
        trained = model
        # shard: under torch.distributed every rank scores its share of the cases and all get every case's rank
        # (exactly one process's metrics); without it (one process) the same call scores them all
        eval_kw = dict(exclude_seen=config.exclude_seen, popularity=popularity, progress=config.progress,
                       shard=True)
        seconds = {"fit_seconds": fit_seconds}  # each phase timed on its own: fit, valid, refit, test
        if config.log_phases:
            log(f"[{name}] fitted in {fit_seconds:.1f}s; evaluating on validation and test ...")
        start = time.perf_counter()
        valid = evaluate(model, data.valid, data.protocol("valid"), desc=f"{name} valid",
                         max_cases=config.max_valid_cases, **eval_kw)
        valids[name] = valid
        seconds["valid_seconds"] = time.perf_counter() - start
        refit_info = None
        if config.refit:
            start = time.perf_counter()
            model, refit_info = refit(name, model, data, config, fit_info, options, reused_refit)
            seconds["refit_seconds"] = time.perf_counter() - start
        test = None
        if config.score_test:
            start = time.perf_counter()
            test = evaluate(model, data.test, data.protocol("test"), desc=f"{name} test", **eval_kw)
            seconds["test_seconds"] = time.perf_counter() - start
            tests[name] = test
        if worker:
            log(f"[{name}] rank {worker}: trained and scored its share of the validation and test cases; "
                "rank 0 saves")
            continue
        scores = {"valid": valid.report(config.n_boot)}
        if test is not None:
            scores["test"] = test.report(config.n_boot)
        entry = {**scores,
                 **{k: round(v, 2) for k, v in seconds.items()}, "params": _params_of(model),
                 "fit": {k: v for k, v in fit_info.items() if k != "history"}}
        if refit_info is not None:
            entry["refit"] = refit_info
        results["models"][name] = entry
        took = ", ".join(f"{k.removesuffix('_seconds')} {v:.1f}s" for k, v in seconds.items())
        scored = (f"test hr@20 {entry['test']['hr@20']['value']:.4f} mrr@20 {entry['test']['mrr@20']['value']:.4f}"
                  if test is not None else "test not scored (--no-test)")
        log(f"[{name}] {took}  valid mrr@20 {entry['valid']['mrr@20']['value']:.4f}  {scored}")
        curves = workdir / "training_curves.png"
        metrics = {**scores, "data": results["data"],
                   "protocol": results["protocol"], "history": fit_info.get("history", [])}
        save_folder(model, safe_child(out, name), data.items, metrics=metrics,
                    train={"fit_seconds": entry["fit_seconds"], "fit": entry["fit"], "seed": config.seed,
                           "data_source": data.meta.get("source"),
                           **({"recipe": fit_info["recipe"]} if fit_info.get("recipe") else {})},
                    card=_card(name, model, metrics, data, fit_info.get("recipe")),
                    extra_files={"training_curves.png": curves} if curves.is_file() else None)
        if curves.is_file() and config.assets is not None and Path(config.assets).resolve() != out.resolve():
            Path(config.assets).mkdir(parents=True, exist_ok=True)
            (Path(config.assets) / f"training_curves_{name}.png").write_bytes(curves.read_bytes())
        if name in wanted:
            this_run[name] = (trained, model if config.refit and model is not trained else None)
        # after each model, so results.json always lists the folders in `out` (a run cut short included)
        _write_results(out, results, previous)
    if not results["models"] and config.models:  # a non-zero rank of a data-parallel run: nothing to write
        return results
    results = _merged(out, results, previous)
    results["selection"] = select_model(results, valids, config.select, config.n_boot)
    results["paired_tests"] = _paired_against_best_baseline(tests, results)
    results = _write_results(out, results, None)
    if config.assets is not None and results["models"]:
        comparison_chart(results, Path(config.assets) / "model_comparison.png")
    return results


def check_run_folder(out: str | Path, models: tuple[str, ...], inputs=(), log=print) -> dict | None:
    """Refuse (OutputFolderError) an --out that the run must not write into, before any work; returns the
    previous results.json, or None (a damaged one is set aside with a warning, so it never fails a run).

    `out` must be a run folder (recsys.atomic.check_output) and each OUT/NAME it would replace a model folder;
    `inputs` (the data folder, parameter files) must not be among what it replaces.
    """
    out = Path(out)
    check_output(out, "run", inputs)
    recover_children(out, "model")  # a swap of any model folder a crash cut short, not only those run now
    for name in models:
        check_output(safe_child(out, name), "model", inputs)
        safe_child(out / ".work", name)
    remove_stale_files(out, ("results.json", "results.md"))
    path = out / "results.json"
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        set_aside(path, f"is not valid JSON ({err})", log)
        return None
    if not isinstance(previous, dict) or not isinstance(previous.get("models"), dict):
        set_aside(path, "is not a results file (no \"models\" object)", log)
        return None
    return previous


def _merged(out: Path, results: dict, previous: dict | None) -> dict:
    """`results` with, when `previous` has the same data and protocol, its other models' entries (while their
    folders exist), so runs of a few models add up."""
    if previous and previous.get("data") == results["data"] and previous.get("protocol") == results["protocol"]:
        kept = {n: e for n, e in previous["models"].items()
                if n not in results["models"] and (out / n / "config.json").is_file()}
        results = {**results, "models": {**kept, **results["models"]}}
    return results


def _write_results(out: Path, results: dict, previous: dict | None) -> dict:
    """Write results.json and results.md whole, with `previous`'s other models kept (see `_merged`)."""
    results = _merged(out, results, previous)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "results.md", results_markdown(results))
    return results


def _remove_workdir(workdir: Path) -> None:
    """Delete a training work folder (OUT/.work/NAME, its path checked by safe_child); a link is only unlinked."""
    if workdir.is_symlink():
        workdir.unlink()
    elif workdir.exists():
        shutil.rmtree(workdir)


def refit(name: str, model, data: Dataset, config: RunConfig, fit_info: dict, options: FitOptions,
          reused: dict | None = None):
    """After selection on validation, fit anew on train + valid with what validation chose.

    What is refitted with what is the model's `refit_params`: baselines keep their parameters; neural models
    train for the selected epoch count, replaying the learning rate each of those epochs had, with no validation
    (it is training data now) and no early stopping, keeping the last epoch's weights; a hybrid keeps its chosen
    weights and refits each part so, except a part reused as trained (`reused`: part -> (model, what it is), from
    `reuse_parts`), which is taken as it is. Returns (model, info); a model that cannot be refitted (a neural model
    that never finished a validated epoch) is returned as it was, with info saying so.
    """
    params = model.refit_params(config.params.get(name) or {}, fit_info)
    if params is None:
        return model, {"skipped": "no validated epoch to take the epoch count from"}
    fresh = build_model(name, data.n_items, params)
    for part, (part_model, source) in (reused or {}).items():
        fresh.use_part(part, part_model, source)
    no_valid = dataclasses.replace(data.with_valid_in_train(), valid=Sessions.from_lists([]))
    workdir = None
    if options.workdir:
        workdir = safe_child(Path(options.workdir).parent, Path(options.workdir).name + "-refit")
        if not config.resume:
            _remove_workdir(workdir)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no validation cases.*")
        result = fit(fresh, no_valid, dataclasses.replace(options, max_epochs=None,
                                                          workdir=str(workdir) if workdir else None)) or {}
    info = {"data": "train+valid", "seconds": round(time.perf_counter() - started, 2)}
    if "epoch_lrs" in params.get("train", {}):
        info.update(epochs=result["epochs"], epoch_lrs=list(params["train"]["epoch_lrs"]))
    if "components" in result:
        info["components"] = {k: {"epochs": v["epochs"]} if "epochs" in v else
                              {"reused": v["reused"]} if "reused" in v else {} for k, v in result["components"].items()}
    return fresh, info


def global_rank(fit_info: dict) -> int:
    """The process's rank in a data-parallel fit (0 when not data-parallel), from a fit report or its parts'."""
    parts = fit_info.get("components", {}).values()
    return max([fit_info.get("global_rank", 0), *(global_rank(p) for p in parts)])


def _params_of(model) -> dict:
    params = dataclasses.asdict(model.config)
    if getattr(model, "train_config", None) is not None:
        params["train"] = dataclasses.asdict(model.train_config)
    return params


def _paired_against_best_baseline(tests: dict[str, EvalResult], results: dict) -> list[dict]:
    """Each model against the one chosen on validation (`select_model`; never test), on the test cases and the
    selection metric; when the chosen model was kept from an earlier run, against the best of this run's."""
    if len(tests) < 2:
        return []
    selection = results["selection"]
    best = selection["best"]
    if best not in tests:
        best = max(tests, key=lambda n: selection["valid"][n]["value"])
    return [{"a": name, "b": best, **paired_test(tests[name], tests[best], selection["metric"], n_boot=200)}
            for name in tests if name != best]


def select_model(results: dict, valids: dict[str, EvalResult], metric: str = "mrr@20", n_boot: int = 1000,
                 alpha: float = 0.05) -> dict | None:
    """The model with the best validation `metric` (an objective: "hr@20+mrr@20" is the mean of the two), each
    model's validation value and 95% CI, and which models the data cannot tell from the best.

    A model is within noise of the best when a paired test on the same validation cases (`valids`, this run's)
    finds no significant difference (p >= alpha); for a model kept from an earlier run (only its reported
    values), when its CI overlaps the best's. Selection never looks at test.
    """
    parts = check_objective(metric)
    scores = {}
    for name, entry in results["models"].items():
        if name in valids:
            scores[name] = objective_report(valids[name], metric, n_boot)
        elif all(p in entry["valid"] for p in parts):  # the mean of the parts' bounds: an approximate CI
            scores[name] = {"value": sum(entry["valid"][p]["value"] for p in parts) / len(parts)}
            if all("ci95" in entry["valid"][p] for p in parts):
                scores[name]["ci95"] = [sum(entry["valid"][p]["ci95"][i] for p in parts) / len(parts)
                                        for i in (0, 1)]
    if not scores:
        return None
    best = max(scores, key=lambda n: scores[n]["value"])
    paired, within = {}, []
    for name in scores:
        if name == best:
            continue
        if name in valids and best in valids and len(valids[name].ranks) == len(valids[best].ranks):
            paired[name] = paired_test(valids[name], valids[best], metric, n_boot=n_boot)
            if paired[name]["p_value"] >= alpha:
                within.append(name)
        elif "ci95" in scores[name] and "ci95" in scores[best] and scores[name]["ci95"][1] >= scores[best]["ci95"][0]:
            within.append(name)
    ways = []
    if paired:
        ways.append(f"paired test on the {len(valids[best].ranks):,} validation cases at the {alpha:.0%} level")
    if len(paired) < len(scores) - 1:  # some compared only by their reported CIs
        ways.append("overlap of validation 95% CIs" + (" for models from an earlier run" if paired else ""))
    how = "; ".join(ways)
    if within:
        note = (f"{', '.join(within)} {'is' if len(within) == 1 else 'are'} within noise of {best} ({how}): the "
                "choice between them is not supported by the data.")
    elif len(scores) > 1:
        note = f"Every other model is clearly worse than {best} on validation ({how})."
    else:
        note = f"{best} is the only model evaluated."
    return {"metric": metric, "best": best, "valid": scores, "within_noise": within, "paired_valid": paired,
            "note": note}


def ensure_default_models(checkpoints_dir: str | Path = "checkpoints", progress=print,
                          models: tuple[str, ...] = DEFAULT_APP_MODELS, data_dir: str | Path | None = None,
                          max_epochs: int = APP_MAX_EPOCHS, **synthetic) -> list[Path]:
    """On a fresh machine: build the synthetic data set and quickly train the app's models.

    Only models without a folder are trained, so an interrupted first start resumes where it stopped.
    Neural models get a short schedule (`max_epochs`, default APP_MAX_EPOCHS, validated on APP_TRAIN's sample each
    epoch); selection validates on APP_VALID_CASES evenly spaced cases (stated in results.json's protocol); test
    is evaluated in full. `make train` (scripts/train_and_eval.py) trains them fully. Every line of `progress`
    starts with the seconds since the call began: the data set, each model's epochs, evaluations and result, the
    total. The app shows the data set's test sessions as visitors (no sample visitors file is written here: one
    left in the checkpoints folder would outlive a retraining on other data; scripts/deploy_space.py writes one
    for a Space).
    """
    from recsys.prepare import DEFAULT_DATA, load_or_prepare_default

    started, cpu_started = time.perf_counter(), time.process_time()

    def say(message: str) -> None:
        progress(f"{time.perf_counter() - started:6.1f}s  {message}")

    checkpoints_dir, data_dir = Path(checkpoints_dir), Path(data_dir or DEFAULT_DATA)
    wanted = tuple(m for m in models if m in REGISTRY)
    missing = tuple(m for m in wanted if not (checkpoints_dir / m / "config.json").is_file())
    if missing:
        data = load_or_prepare_default(data_dir, progress=say, **synthetic)
        stats = data.stats()
        say(f"Data set ready: {stats['n_items']:,} items; {stats['train']['sessions']:,} / "
            f"{stats['valid']['sessions']:,} / {stats['test']['sessions']:,} train / valid / test sessions")
        neural = [m for m in missing if REGISTRY[m].trains_in_epochs]
        epochs = f"{max_epochs} epoch{'s' if max_epochs > 1 else ''} each"
        say(f"Training {', '.join(missing)} on the synthetic data set into {checkpoints_dir}/ "
            + (f"({', '.join(neural)}: {epochs}) ..." if neural else "..."))
        params = {m: {"train": APP_TRAIN} for m in neural}
        threads = torch.get_num_threads()
        torch.set_num_threads(APP_THREADS)
        try:
            run(data, RunConfig(models=missing, out=checkpoints_dir, max_epochs=max_epochs, n_boot=APP_BOOT,
                                params=params, progress=False, assets=None, max_valid_cases=APP_VALID_CASES,
                                log_phases=True), log=say)
        finally:
            torch.set_num_threads(threads)
        say(f"Default models ready in {time.perf_counter() - started:.1f}s wall, "
            f"{time.process_time() - cpu_started:.1f}s CPU (this process)")
    return sorted(p.parent for p in checkpoints_dir.glob("*/config.json"))
