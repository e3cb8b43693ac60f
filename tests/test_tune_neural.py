"""The neural search (recsys.tune_neural, scripts/tune.py for neural models): it keeps to its time budget, prunes by
successive halving, chooses on validation only, and writes a parameter file scripts/train_and_eval.py reads."""

import dataclasses
import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_tune import Untouchable

from recsys.data import Dataset
from recsys.evaluate import evaluate
from recsys.models import REGISTRY, FitOptions, build_model
from recsys.recipe import RULES, Rules, choose_recipe
from recsys.sessions import Sessions
from recsys.train import fit
from recsys.tune_neural import model_params, trial_rules, tune_neural
from tests.test_neural import make_data

pytestmark = pytest.mark.usefixtures("one_cpu_thread")
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = {"dim": 16, "n_layers": 1}  # SASRec small enough for a test
N_ITEMS = 12


def cycle_data(test_direction: int = 1, seed: int = 0, n_train: int = 150) -> Dataset:
    """Sessions walking 1 -> 2 -> ... -> 12 -> 1 in train and validation; the test split walks the same way, or
    backwards (test_direction -1: what training teaches is then wrong on test)."""
    rng = np.random.default_rng(seed)

    def split(n, step):
        starts, lengths = rng.integers(0, N_ITEMS, n), rng.integers(3, 9, n)
        return Sessions.from_lists([(s + step * np.arange(k)) % N_ITEMS + 1 for s, k in zip(starts, lengths,
                                                                                              strict=True)])

    train, valid, test = split(n_train, 1), split(40, 1), split(40, test_direction)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(1, N_ITEMS + 1)],
                          "category_id": [f"c{i % 3}" for i in range(N_ITEMS)],
                          "popularity": np.bincount(train.items, minlength=N_ITEMS + 1)[1:]})
    return Dataset(train, valid, test, items, meta={"protocols": {"train": "all", "valid": "all", "test": "all"}})


def load_script():
    spec = importlib.util.spec_from_file_location("tune_script", SCRIPTS / "tune.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_search_stops_at_its_budget_and_cuts_a_running_trial():
    data = cycle_data(n_train=3000)
    data.test = Untouchable()
    budget = 0.1  # 6 s; a 5,000-epoch trial takes far longer, so the deadline cuts the first one
    # patience as long as the budget: early stopping cannot end the trial first, however fast the machine (a fast
    # CI machine once ran the 100 epochs of a quarter-budget patience inside the 6 s)
    never_stops = dataclasses.replace(RULES, patience_fraction=1.0)
    started = time.monotonic()
    result = tune_neural("sasrec", data, budget, fixed=TINY, max_epochs=5000, min_epochs=5000, rules=never_stops)
    elapsed = time.monotonic() - started
    assert elapsed < budget * 60 + 6, elapsed  # the deadline, one more epoch and the trainer's teardown
    first = result["history"][0]
    assert first["state"] == "cut by the budget" and 1 <= first["epochs"] < 5000
    assert result["trials"] >= 1 and result["search"]["wall_seconds"] <= elapsed + 0.1
    assert result["search"]["cpu_seconds"] > 0


def test_successive_halving_prunes_a_poor_setting_at_the_first_rung():
    data = cycle_data()
    data.test = Untouchable()
    with warnings.catch_warnings():  # lr 1e-6 lies outside the space: Optuna warns and tries it anyway
        warnings.simplefilter("ignore")
        lines = []
        result = tune_neural("sasrec", data, 1.0, fixed=TINY, max_epochs=9, min_epochs=3, max_trials=4,
                             try_first=({"lr": 1e-6},), log=lines.append)
    first, hopeless = result["history"][:2]
    finished = [line for line in lines if line.startswith("trial ") and "goes on" not in line]
    assert [line.split(":")[0] for line in finished] == ["trial 1", "trial 2", "trial 3", "trial 4"]
    assert "pruned after 3/9 epochs" in finished[1] and "lr 1e-06" in finished[1]  # progress: a line a trial
    assert first["params"]["lr"] == choose_recipe(REGISTRY["sasrec"](REGISTRY["sasrec"].Config(**TINY),
                                                                     data.n_items), data).lr  # the defaults first
    assert first["state"] in ("complete", "early-stopped") and first["epochs"] > 3
    assert hopeless["params"]["lr"] == 1e-6 and hopeless["state"] == "pruned" and hopeless["epochs"] == 3
    assert result["search"]["rungs"] == [3] and len(result["history"]) == 4
    assert "dim" not in result["search"]["space"]  # held by `fixed`: not searched
    assert result["value"] == max(t["value"] for t in result["history"] if t["state"] != "pruned")


def test_it_chooses_on_validation_even_where_test_disagrees():
    """Validation walks forward, test backward: training helps on validation and hurts on test. The search must
    pick the trained setting, though the barely trained one scores better on test."""
    data = cycle_data(test_direction=-1)
    test = data.test
    data.test = Untouchable()  # never read during the search
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tune_neural("sasrec", data, 1.0, fixed=TINY, max_epochs=30, min_epochs=30, max_trials=2,
                             try_first=({"lr": 1e-6},))
    data.test = test
    by_lr = {t["params"]["lr"]: t for t in result["history"]}
    good, poor = by_lr[result["search"]["chosen"]["lr"]], by_lr[1e-6]
    assert good["params"]["lr"] != 1e-6 and good["value"] > poor["value"]  # validation prefers the trained one

    def test_score(point):  # the trial retrained (same seed), then scored on test
        model = build_model("sasrec", data.n_items, model_params(REGISTRY["sasrec"].Config(**TINY), TINY, point))
        train = choose_recipe(model, data, trial_rules(Rules(), point, 30)).train_config()
        fit(model, data, FitOptions(seed=0, progress=False), train)
        return evaluate(model, data.test, data.protocol("test")).metrics()["ndcg@10"]

    assert test_score(poor["params"]) > test_score(good["params"])  # test would have chosen the other one


def test_sampled_softmax_searches_the_negatives_and_the_file_keeps_the_rules():
    data = cycle_data()
    rules = Rules(full_softmax_max_items=5, sampled_negatives=8)  # 12 items > 5: sampled softmax
    result = tune_neural("gru4rec", data, 1.0, fixed={"emb_dim": 16, "hidden": 16}, max_epochs=3, max_trials=3,
                         rules=rules)
    assert result["search"]["space"]["n_negatives"] == {"choices": [2, 8, 12]}  # capped at the catalogue
    assert all(t["params"]["n_negatives"] in (2, 8, 12) for t in result["history"])
    section = result["params"]["recipe"]
    assert section["full_softmax_max_items"] == 5 and section["epoch_range"] == [3, 3]
    model = build_model("gru4rec", data.n_items, result["params"])
    point = result["search"]["chosen"]  # the file holds every rule, so a later default change does not move it
    assert model.recipe_rules == Rules(full_softmax_max_items=5, sampled_negatives=point["n_negatives"],
                                       lr=point["lr"], epoch_range=(3, 3))
    assert set(section) == {f.name for f in dataclasses.fields(Rules)}
    chosen = choose_recipe(model, data, model.recipe_rules)
    assert chosen.n_negatives == result["search"]["chosen"]["n_negatives"]
    assert chosen.lr == result["search"]["chosen"]["lr"]
    with pytest.raises(ValueError, match="sampled softmax only"):
        tune_neural("gru4rec", data, 1.0, fixed={"n_negatives": 64})


def test_an_rnn_scales_its_state_with_its_embeddings_and_shares_one_dropout():
    config = REGISTRY["lstm"].Config()  # emb_dim 64, hidden 128, dropouts 0.3
    params = model_params(config, {}, {"dim": 32, "dropout": 0.1})
    assert params == {"emb_dim": 32, "hidden": 64, "emb_dropout": 0.1, "hidden_dropout": 0.1}
    assert model_params(config, {"hidden": 100}, {"dim": 128})["hidden"] == 100  # a held field stays
    sasrec = model_params(REGISTRY["sasrec"].Config(), {}, {"dim": 128, "dropout": 0.5})
    assert sasrec == {"dim": 128, "dropout": 0.5}


def test_the_script_writes_a_file_train_and_eval_trains_from(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    make_data((120, 30, 30)).save(tmp_path / "data")
    out = tmp_path / "sasrec.params.json"
    assert load_script().main(["--model", "sasrec", "--data", str(tmp_path / "data"), "--budget-minutes", "0.3",
                               "--max-epochs", "3", "--trials", "3", "--fixed", json.dumps(TINY),
                               "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "sasrec" and result["metric"] == "ndcg@10" and result["trials"] >= 1
    assert result["params"]["recipe"]["epoch_range"] == [3, 3] and result["params"]["n_layers"] == 1
    spec = importlib.util.spec_from_file_location("train_and_eval", SCRIPTS / "train_and_eval.py")
    train_and_eval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_and_eval)
    run = tmp_path / "run"
    assert train_and_eval.main(["--data", str(tmp_path / "data"), "--models", "sasrec", "--params", str(out),
                                "--out", str(run), "--bootstrap", "20", "--quiet"]) == 0
    saved = json.loads((run / "sasrec" / "config.json").read_text())
    chosen = result["search"]["chosen"]
    assert saved["config"]["dim"] == chosen["dim"] and saved["config"]["dropout"] == chosen["dropout"]
    recipe = saved["train"]["recipe"]
    assert recipe["lr"] == chosen["lr"] and recipe["max_epochs"] == 3
    card = (run / "sasrec" / "README.md").read_text()
    assert "## Training recipe" in card and "rules changed:" in card and "epoch_range=(3, 3)" in card


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "sasrec"], "give the search a wall-clock budget"),
    (["--model", "sr", "--budget-minutes", "1"], "only neural models take --budget-minutes"),
    (["--model", "sasrec", "--budget-minutes", "1", "--timeout", "5"], "--timeout is for baselines"),
    (["--model", "sasrec", "--budget-minutes", "1", "--metric", "mrr@20"], "tuned on ndcg@10"),
    (["--model", "sasrec", "--budget-minutes", "1", "--fixed", "{oops"], "--fixed is not valid JSON"),
    (["--model", "sasrec", "--budget-minutes", "1", "--fixed", "[1]"], "must be a JSON object"),
    (["--model", "sasrec", "--budget-minutes", "1", "--fixed", '{"k": 3}'], "unknown fixed fields for sasrec"),
    (["--model", "nope", "--budget-minutes", "1"], "unknown model"),
    (["--model", "gru4rec", "--budget-minutes", "1", "--fixed", '{"dim": "big"}'], "fixed dim must be a positive"),
    (["--model", "lstm", "--budget-minutes", "1", "--fixed", '{"dropout": 1.5}'], "fixed dropout must be"),
    (["--model", "sasrec", "--budget-minutes", "1", "--fixed", '{"dim": 48, "n_heads": 5}'], "divisible"),
])
def test_bad_input_is_refused_with_one_clear_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    make_data((30, 10, 10)).save(tmp_path / "data")
    out = tmp_path / "p.json"
    assert load_script().main([*args, "--data", str(tmp_path / "data"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ten"])
def test_a_budget_that_is_not_a_positive_number_is_refused(value, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(["--model", "sasrec", "--data", str(tmp_path), "--budget-minutes", value])
    assert exit_info.value.code == 2 and "--budget-minutes" in capsys.readouterr().err


def test_an_output_it_did_not_write_or_a_missing_data_set_is_refused_before_any_trial(tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    script = load_script()
    make_data((30, 10, 10)).save(tmp_path / "data")
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    base = ["--model", "gru4rec", "--budget-minutes", "1", "--data", str(tmp_path / "data")]
    assert script.main([*base, "--out", str(notes)]) == 2
    assert "is not a parameter file" in capsys.readouterr().err and notes.read_text() == '{"mine": true}'
    assert script.main([*base, "--out", str(tmp_path)]) == 2
    assert "not a file" in capsys.readouterr().err
    link = tmp_path / "link.json"
    link.symlink_to(notes)
    assert script.main([*base, "--out", str(link)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert script.main(["--model", "gru4rec", "--budget-minutes", "1", "--data", str(tmp_path / "none"),
                        "--out", str(tmp_path / "p.json")]) == 2
    assert "not a processed data set folder" in capsys.readouterr().err


def test_the_api_refuses_a_baseline_a_bad_budget_and_bad_epochs():
    data = cycle_data()
    with pytest.raises(ValueError, match="not a neural model"):
        tune_neural("sr", data, 1.0)
    for budget in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of minutes"):
            tune_neural("sasrec", data, budget)
    with pytest.raises(ValueError, match="max_epochs must be a positive whole number"):
        tune_neural("sasrec", data, 1.0, max_epochs=0)
    empty = dataclasses.replace(data, valid=Sessions.from_lists([]))
    with pytest.raises(ValueError, match="no validation sessions"):
        tune_neural("sasrec", empty, 1.0)
