"""The default training recipe (recsys.recipe): its rules, its use by fit, and where it is written down."""

import dataclasses
import json
import math

import numpy as np
import pytest

from recsys.datamodule import PaddedSamples, position_windows
from recsys.models import REGISTRY, build_model
from recsys.recipe import RULES, Rules, choose_recipe, make_recipe, training_rows
from recsys.sessions import Sessions
from recsys.train import TrainConfig, fit
from tests.test_neural import DATA, QUIET, make_data, tiny

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_full_softmax_while_the_catalogue_is_small_sampled_with_logq_above():
    small = make_recipe(RULES.full_softmax_max_items, 100_000, 2_500)
    large = make_recipe(RULES.full_softmax_max_items + 1, 100_000, 2_500)
    assert small.n_negatives == 0 and small.train_config().n_negatives == 0
    assert large.n_negatives == RULES.sampled_negatives > 0
    config = large.train_config()
    assert config.n_negatives == RULES.sampled_negatives and config.logq and config.negative_sampling == "popularity"
    assert "full softmax" in small.line() and "sampled softmax" in large.line()


def test_the_epoch_budget_shrinks_as_the_data_grows_within_its_range():
    epochs = [make_recipe(1000, n, n // 10).max_epochs for n in (1_000, 50_000, 100_000, 400_000, 10**8)]
    assert epochs == sorted(epochs, reverse=True) and epochs[1] > epochs[3]
    assert epochs[0] == RULES.epoch_range[1] and epochs[-1] == RULES.epoch_range[0]
    # the larger of the two budgets: targets (many short rows) or rows (long sequences: ML-1M's windows)
    assert make_recipe(1000, 100_000, 100_000).max_epochs == round(RULES.target_visits / 100_000)  # 40 > 20
    assert make_recipe(1000, 1_000_000, 40_000).max_epochs == round(RULES.row_visits / 40_000)  # 50 > 4
    # patience is a share of the budget, so a long budget is not cut short on an early plateau
    recipe = make_recipe(1000, 50_000, 5_000)
    assert recipe.patience == max(RULES.min_patience, math.ceil(RULES.patience_fraction * recipe.max_epochs))


def test_the_batch_holds_about_targets_per_step_targets():
    long_rows = make_recipe(1000, 100_000, 2_500)  # 40 targets a row (ml-100k windows): 2048 / 40 -> 64 rows
    short_rows = make_recipe(1000, 100_000, 50_000)  # 2 targets a row (short sessions): capped at 512 rows
    assert long_rows.batch_size == 64 and short_rows.batch_size == RULES.batch_range[1]
    assert 1 <= long_rows.warmup <= long_rows.steps_per_epoch  # warm-up: at most one epoch
    with pytest.raises(ValueError, match="no training targets"):
        make_recipe(1000, 0, 0)


def test_training_rows_count_windows_or_prefixes():
    lengths = np.array([1, 2, 51, 52, 120])  # targets 0, 1, 50, 51, 119
    assert training_rows(lengths, 50, per_position=True) == (221, 0 + 1 + 1 + 2 + 3)
    assert training_rows(lengths, 50, per_position=False) == (221, 221)
    assert training_rows(lengths, 50, True, min_context=25) == (221, 0 + 1 + 2 + 3 + 5)  # stride 25


def test_choose_recipe_reads_the_model_and_the_data():
    recipe = choose_recipe(tiny("sasrec"), DATA)
    targets = int(np.maximum(DATA.train.lengths - 1, 0).sum())
    assert (recipe.n_items, recipe.n_targets, recipe.n_rows) == (DATA.n_items - 1, targets, len(DATA.train))
    bi = choose_recipe(tiny("lstm-bi"), DATA)  # trained on prefixes, not windows
    assert bi.n_rows == targets


def test_warmup_then_cosine_learning_rates(tmp_path):
    """The epoch-end rates of a cosine run: linear warm-up, then half a cosine down to ~0 at the last step."""
    data = make_data((64, 10, 10))
    config = TrainConfig(batch_size=16, lr=0.01, schedule="cosine", warmup=6, max_epochs=4, patience=10)
    rates = []
    fit(tiny("gru4rec"), data, dataclasses.replace(QUIET, max_epochs=4), config,
        on_epoch=lambda row, model: rates.append(row["lr"]))
    steps = math.ceil(64 / 16)  # 4 steps an epoch; rate after k steps = lr * factor(k)
    total = 4 * steps

    def factor(k):
        return (k + 1) / 6 if k < 6 else 0.5 * (1 + math.cos(math.pi * min(1.0, (k - 6) / (total - 6))))

    assert rates == pytest.approx([0.01 * factor(steps * e) for e in (1, 2, 3, 4)])
    assert rates[0] < 0.01 and rates[-1] == pytest.approx(0.0, abs=1e-9)  # warm-up: below the peak; ends at 0


def test_fit_uses_the_recipe_when_no_training_settings_are_given():
    model = tiny("sasrec")
    result = fit(model, DATA, QUIET)
    recipe = choose_recipe(model, DATA)
    assert result["recipe"]["line"] == recipe.line() and result["train_config"] == dataclasses.asdict(
        recipe.train_config())
    assert result["train_config"]["schedule"] == "cosine"


def test_given_training_settings_override_the_recipe():
    model = build_model("gru4rec", DATA.n_items, {"emb_dim": 16, "hidden": 32,
                                                  "train": {"batch_size": 16, "lr": 0.003}})
    result = fit(model, DATA, QUIET)
    assert "recipe" not in result
    assert result["train_config"] == dataclasses.asdict(TrainConfig(batch_size=16, lr=0.003))
    explicit = fit(tiny("gru4rec"), DATA, QUIET, TrainConfig(batch_size=8))  # an argument too
    assert "recipe" not in explicit and explicit["train_config"]["batch_size"] == 8


def test_refit_keeps_the_recipes_settings():
    model = tiny("sasrec")
    info = fit(model, DATA, dataclasses.replace(QUIET, max_epochs=2))
    params = model.refit_params({"dim": 32}, info)
    train = params["train"]
    assert train["batch_size"] == info["train_config"]["batch_size"] and train["schedule"] == "cosine"
    assert train["max_epochs"] == info["best_epoch"] and len(train["epoch_lrs"]) == info["best_epoch"]
    TrainConfig(**{**train, "epoch_lrs": tuple(train["epoch_lrs"])})  # a valid TrainConfig


def test_the_recipe_goes_into_config_json_and_the_model_card(tmp_path):
    from recsys.pipeline import RunConfig, run

    lines = []
    config = RunConfig(models=("sasrec",), out=tmp_path / "run", params={"sasrec": {"dim": 16, "n_layers": 1}},
                       max_epochs=1, progress=False, n_boot=20)
    run(DATA, config, log=lines.append)
    saved = json.loads((tmp_path / "run" / "sasrec" / "config.json").read_text())
    recipe = saved["train"]["recipe"]
    assert recipe["line"] == choose_recipe(tiny("sasrec"), DATA).line()  # the model size does not enter it
    assert any("training recipe (from the data)" in line and recipe["line"] in line for line in lines)
    card = (tmp_path / "run" / "sasrec" / "README.md").read_text()
    assert "## Training recipe" in card and recipe["line"] in card
    # with training settings given, there is no recipe to report
    given = RunConfig(models=("sasrec",), out=tmp_path / "run2", max_epochs=1, progress=False, n_boot=20,
                      params={"sasrec": {"dim": 16, "n_layers": 1, "train": {"batch_size": 32}}})
    run(DATA, given, log=lambda *a: None)
    assert "recipe" not in json.loads((tmp_path / "run2" / "sasrec" / "config.json").read_text())["train"]
    assert "## Training recipe" not in (tmp_path / "run2" / "sasrec" / "README.md").read_text()


@pytest.mark.parametrize("min_context", [0, 1, 3, 4])
def test_overlapping_windows_train_every_target_once_with_context(min_context):
    max_len = 5
    sessions = Sessions.from_lists([list(range(1, n + 1)) for n in (1, 2, 6, 7, 13, 21)])
    starts, lengths, context = position_windows(sessions, max_len, min_context)
    samples = PaddedSamples(sessions.items, starts, lengths, pad_side="left", context=context)
    x, y, n = samples.__getitems__(np.arange(len(samples)))
    trained = []  # (session start, target position) of every trained target, with the items it reads
    for row in range(len(samples)):
        for col in np.flatnonzero(y[row].numpy()):
            seen = x[row, : col + 1].numpy()
            seen = seen[seen > 0]
            target = int(y[row, col])
            assert list(seen) == list(range(target - len(seen), target))  # the items just before the target
            assert len(seen) >= min(min_context + 1, target - 1) or len(seen) == max_len
            trained.append(int(starts[row]) + col)
    expected = int(np.maximum(sessions.lengths - 1, 0).sum())
    assert len(trained) == expected  # every target once
    assert len(samples) == training_rows(sessions.lengths, max_len, True, min_context)[1]
    assert (n.numpy() <= max_len).all()


def test_min_context_reaches_the_training_batches():
    config = TrainConfig(batch_size=16, min_context=3)
    result = fit(tiny("sasrec", max_len=5), DATA, QUIET, config)
    assert result["train_config"]["min_context"] == 3
    with pytest.raises(ValueError, match="min_context"):
        TrainConfig(min_context=-1)


def test_rules_are_a_frozen_dataclass():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RULES.lr = 1.0  # type: ignore[misc]
    assert make_recipe(1000, 100_000, 2_500, Rules(lr=0.002)).lr == 0.002
    assert all(REGISTRY[k].trains_in_epochs for k in ("sasrec", "gru4rec", "lstm", "lstm-bi", "lstm-cat"))


def test_the_context_rule_is_capped_and_only_for_causal_models():
    rules = Rules(min_context=25)
    assert choose_recipe(tiny("sasrec", max_len=10), DATA, rules).min_context == 5  # at most max_len // 2
    assert choose_recipe(tiny("sasrec"), DATA, rules).min_context == 25
    assert choose_recipe(tiny("sasrec"), DATA, rules).train_config().min_context == 25
    assert choose_recipe(tiny("lstm-bi"), DATA, rules).min_context == 0  # trained on prefixes: no windows


def test_a_parameter_files_recipe_section_changes_the_rules_and_says_so():
    rules = {"lr": 0.002, "target_visits": 10_000}
    model = build_model("sasrec", DATA.n_items, {"dim": 32, "n_layers": 1, "recipe": rules})
    info = fit(model, DATA, QUIET)
    recipe = info["recipe"]
    assert recipe["lr"] == 0.002 and info["train_config"]["lr"] == 0.002
    assert dict(recipe["rules_changed"]) == {"lr": 0.002, "target_visits": 10_000}
    assert "rules changed: lr=0.002, target_visits=10000" in recipe["line"]
    assert choose_recipe(tiny("sasrec"), DATA).rules_changed == ()  # the default rules: nothing to say
    refit = model.refit_params({"dim": 32, "n_layers": 1, "recipe": rules}, info)  # train + valid: what it used
    assert "recipe" not in refit and refit["train"]["lr"] == 0.002
    assert build_model("sasrec", DATA.n_items, refit).train_config.lr == 0.002
    with pytest.raises(ValueError, match="recipe rules for sasrec"):
        build_model("sasrec", DATA.n_items, {"recipe": {"learning_rate": 0.1}})
    with pytest.raises(ValueError, match="both"):
        build_model("sasrec", DATA.n_items, {"recipe": {"lr": 0.1}, "train": {"max_epochs": 1}})
    with pytest.raises(ValueError, match="does not train in epochs"):
        build_model("pop", DATA.n_items, {"recipe": {"lr": 0.1}})


def test_the_learning_rate_is_the_models_own_unless_the_rules_give_one():
    assert choose_recipe(tiny("sasrec"), DATA).lr == REGISTRY["sasrec"].recipe_lr == 1e-3
    assert choose_recipe(tiny("gru4rec"), DATA).lr == choose_recipe(tiny("lstm"), DATA).lr == 3e-3
    assert choose_recipe(tiny("gru4rec"), DATA, Rules(lr=5e-4)).lr == 5e-4
    assert REGISTRY["gru4rec"].Config().cosine_scale == 16.0  # scaled-cosine logits by default (see rnn.py)


@pytest.mark.parametrize("min_context", [0, 2, 4])
@pytest.mark.parametrize("want", [1, 3, 5])
def test_short_context_share_counts_what_the_windows_give(min_context, want):
    from tools.window_context import short_context_share

    max_len = 5
    sessions = Sessions.from_lists([list(range(1, n + 1)) for n in (1, 2, 6, 7, 13, 21)])
    starts, lengths, context = position_windows(sessions, max_len, min_context)
    samples = PaddedSamples(sessions.items, starts, lengths, pad_side="left", context=context)
    x, y, _ = samples.__getitems__(np.arange(len(samples)))
    short = total = 0
    for row in range(len(samples)):
        for col in np.flatnonzero(y[row].numpy()):
            read = int((x[row, : col + 1] > 0).sum())
            before = int(y[row, col]) - 1  # items 1..n: the target's value minus one items precede it
            short += read < min(want, before)
            total += 1
    assert short_context_share(sessions, max_len, min_context, want) == (short, total)
    if min_context >= want - 1:
        assert short == 0
