"""Neural models and their trainer: smoke fit, the cycling contract, causality, save/load, resume, divergence."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import Dataset
from recsys.evaluate import evaluate
from recsys.folder import load_folder, save_folder
from recsys.models import REGISTRY, FitOptions
from recsys.models.base import pad_sessions
from recsys.models.neural import NeuralRecommender
from recsys.sessions import Sessions
from recsys.train import TrainConfig, TrainingDiverged, fit

NEURAL = sorted(k for k, cls in REGISTRY.items() if issubclass(cls, NeuralRecommender))
QUIET = FitOptions(max_epochs=1, progress=False, accelerator="cpu")


def make_data(sessions_per_split=(120, 30, 30), n_items=12, seed=0) -> Dataset:
    """Sessions walking the cycle 1 -> 2 -> ... -> n_items -> 1 from random starts; items in 3 categories."""
    rng = np.random.default_rng(seed)

    def split(n):
        starts, lengths = rng.integers(0, n_items, n), rng.integers(3, 9, n)
        return Sessions.from_lists([(s + np.arange(k)) % n_items + 1 for s, k in zip(starts, lengths, strict=True)])

    train, valid, test = (split(n) for n in sessions_per_split)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(1, n_items + 1)],
                          "category_id": [f"c{i % 3}" for i in range(n_items)],
                          "popularity": np.bincount(train.items, minlength=n_items + 1)[1:]})
    return Dataset(train, valid, test, items, meta={"protocols": {"train": "all", "valid": "all", "test": "all"}})


def tiny(key: str, **overrides) -> NeuralRecommender:
    """The registry class with a small config (its kind-defining defaults kept)."""
    cls = REGISTRY[key]
    size = SIZES.get(key, {"emb_dim": 16, "hidden": 32})
    return cls(dataclasses.replace(cls.Config(), **size, **overrides), DATA.n_items)


SIZES = {"sasrec": {"dim": 32, "n_layers": 1}, "srgnn": {"dim": 32}}  # the others are recurrent


def no_dropout(key: str) -> dict:
    return {"dropout": 0.0} if key in SIZES else {"emb_dropout": 0.0, "hidden_dropout": 0.0}


DATA = make_data()


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.mark.parametrize("key", NEURAL)
def test_one_epoch_smoke_fit_with_registry_defaults(key, tmp_path):
    data = make_data((40, 10, 10))
    model = REGISTRY[key](REGISTRY[key].Config(), data.n_items)
    result = fit(model, data, dataclasses.replace(QUIET, workdir=str(tmp_path)), TrainConfig(batch_size=16))
    assert result["epochs"] == 1 and result["best_epoch"] == 1 and len(result["history"]) == 1
    assert np.isfinite(result["history"][0]["train_loss"]) and "ndcg@10" in result["best_valid"]
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    scores = model.score([np.array([1, 2, 3]), np.array([5])])
    assert scores.shape == (2, data.n_items) and torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("key", NEURAL)
def test_cycling_sessions_rank_the_true_next_item_first(key):
    model = tiny(key, **no_dropout(key))
    options = dataclasses.replace(QUIET, max_epochs=10)  # early stopping ends it once validation is perfect
    fit(model, DATA, options, TrainConfig(batch_size=32, lr=1e-2, schedule="constant"))
    metrics = evaluate(model, DATA.test, "all", ks=(1,)).metrics()
    assert metrics["hr@1"] >= 0.9, metrics


def test_sasrec_is_causal():
    model = tiny("sasrec").eval()
    x = torch.tensor([[0, 0, 3, 4, 5, 6, 7]])
    changed = x.clone()
    changed[0, 5] = 11
    lengths = torch.tensor([5])
    with torch.no_grad():
        a, b = model.sequence_states(x, lengths), model.sequence_states(changed, lengths)
        torch.testing.assert_close(a[:, :5], b[:, :5])
        assert not torch.allclose(a[:, 5:], b[:, 5:])
        # the state at a position equals serving's state for the prefix ending there (positions from the start)
        prefix = model.score([np.array([3, 4, 5])])
        torch.testing.assert_close(model.logits(a[:, 4]), prefix)


def test_sasrec_explain_returns_attention_over_history():
    out = tiny("sasrec").explain(np.array([1, 2, 3, 4]), top=2)
    assert len(out["all_weights"]) == 4 and abs(sum(out["all_weights"]) - 1) < 1e-5
    assert len(out["items"]) == 2 and set(out["positions"]) <= {0, 1, 2, 3}


@pytest.mark.parametrize("key", ["sasrec", "gru4rec", "lstm-bi", "lstm-cat"])
def test_save_load_round_trip_gives_identical_scores(key, tmp_path):
    model = tiny(key, **({"use_categories": True} if key == "sasrec" else {}))
    fit(model, DATA, QUIET, TrainConfig(batch_size=32))
    assert model.config.use_categories is False or model.config.n_categories == 4  # 3 categories + unknown
    folder = save_folder(model, tmp_path / key, DATA.items)
    loaded = load_folder(folder, REGISTRY)
    seqs = [np.array([1, 2, 3]), np.array([7]), np.arange(1, 13)]
    torch.testing.assert_close(loaded.score(seqs), model.eval().score(seqs), rtol=0, atol=0)
    assert loaded.config == model.config


def test_tied_weights_survive_save_and_load(tmp_path):
    model = tiny("gru4rec")  # tied, with a projection from hidden 32 to embedding 16
    assert model.output_layer()[0] is model.item_emb.weight
    loaded = load_folder(save_folder(model, tmp_path / "m", DATA.items), REGISTRY)
    assert loaded.output_layer()[0].data_ptr() == loaded.item_emb.weight.data_ptr()
    torch.testing.assert_close(loaded.item_emb.weight, model.item_emb.weight)


def test_resume_from_last_checkpoint_continues_the_epoch_count(tmp_path):
    options = dataclasses.replace(QUIET, workdir=str(tmp_path))
    first = fit(tiny("gru4rec"), DATA, options, TrainConfig(batch_size=32))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    second = fit(tiny("gru4rec"), DATA, dataclasses.replace(options, max_epochs=2), TrainConfig(batch_size=32))
    assert second["epochs"] == 2 and [r["epoch"] for r in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]
    with pytest.raises(ValueError, match="another run"):  # a different model may not resume this run
        fit(tiny("sasrec"), DATA, dataclasses.replace(options, max_epochs=3), TrainConfig(batch_size=32))
    with pytest.raises(ValueError, match="another run"):  # nor the same model on other data
        fit(tiny("gru4rec"), make_data(seed=1), dataclasses.replace(options, max_epochs=3), TrainConfig(batch_size=32))


def test_a_rerun_after_an_early_stop_trains_no_more_unless_patience_grows(tmp_path):
    options = dataclasses.replace(QUIET, workdir=str(tmp_path), max_epochs=30)
    config = TrainConfig(batch_size=32, lr=1e-2, schedule="constant", patience=1)
    first = fit(tiny("gru4rec"), DATA, options, config)
    assert first["epochs"] < 30 and first["epochs"] - first["best_epoch"] == 1  # stopped early
    # as after a kill between the last checkpoint and the end of fit: the rerun resumes a run that had stopped
    again = fit(tiny("gru4rec"), DATA, options, config)
    assert again["history"] == first["history"]
    # patience may change on a resume: this run's, not the checkpoint's, decides when to stop
    more = fit(tiny("gru4rec"), DATA, options, dataclasses.replace(config, patience=3))
    assert more["epochs"] > first["epochs"] and more["epochs"] - more["best_epoch"] == 3


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    options = dataclasses.replace(QUIET, workdir=str(tmp_path))
    fit(tiny("gru4rec"), DATA, options, TrainConfig(batch_size=32))
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    model = tiny("gru4rec")
    model.project = lambda h: h.new_full((*h.shape[:-1], 16), torch.nan)  # every logit NaN
    with pytest.raises(TrainingDiverged, match="training loss is nan"):
        fit(model, DATA, dataclasses.replace(options, max_epochs=2), TrainConfig(batch_size=32))
    assert last.read_bytes() == before


def test_sampled_softmax_trains():
    model = tiny("sasrec", dropout=0.0)
    config = TrainConfig(batch_size=32, lr=1e-2, n_negatives=6, schedule="constant")
    result = fit(model, DATA, dataclasses.replace(QUIET, max_epochs=8), config)
    assert result["best_valid"]["hr@5"] > 0.8


def test_fit_is_deterministic_for_a_seed():
    a = fit(tiny("sasrec"), DATA, QUIET, TrainConfig(batch_size=32))
    b = fit(tiny("sasrec"), DATA, QUIET, TrainConfig(batch_size=32))
    assert a["history"][0]["train_loss"] == b["history"][0]["train_loss"]


def test_max_minutes_caps_the_fit_and_keeps_a_validated_epoch():
    # 1.8 s; 5,000 epochs (and as much patience) take far longer on any machine, so the clock ends the fit
    config = TrainConfig(batch_size=8, patience=5000, schedule="constant", max_minutes=0.03)
    result = fit(tiny("gru4rec"), DATA, dataclasses.replace(QUIET, max_epochs=5000), config)
    assert 1 <= result["epochs"] < 5000 and result["best_epoch"] is not None
    with pytest.raises(ValueError, match="max_minutes"):
        TrainConfig(max_minutes=0)


@pytest.mark.parametrize("key", ["sasrec", "gru4rec"])
def test_cosine_scale_scores_are_scaled_cosines_in_training_and_serving(key, tmp_path):
    model = tiny(key, cosine_scale=8.0)
    fit(model, DATA, QUIET, TrainConfig(batch_size=32, n_negatives=6))
    model.eval()
    sessions = [np.array([1, 2, 3]), np.array([5])]
    x, lengths = pad_sessions(sessions, model.config.max_len, model.pad_side)
    with torch.no_grad():
        z = model.project(model.final_state(x, lengths))
        weight = model.output_layer()[0]
        cosine = torch.nn.functional.cosine_similarity(z[:, None, :], weight[None, 1:, :], dim=-1)
        served = model.score(sessions)
    torch.testing.assert_close(served[:, 1:], 8.0 * cosine, atol=1e-4, rtol=1e-4)
    with torch.enable_grad():  # the training path (no cached table) gives the same logits
        torch.testing.assert_close(model.logits(model.final_state(x, lengths)).detach(), served, atol=1e-4, rtol=1e-4)
    save_folder(model, tmp_path / "m", DATA.items)
    torch.testing.assert_close(load_folder(tmp_path / "m", REGISTRY).score(sessions), served)


def test_epoch_lrs_replays_one_learning_rate_per_epoch_without_validation():
    no_valid = dataclasses.replace(DATA, valid=Sessions.from_lists([]))
    config = TrainConfig(batch_size=32, epoch_lrs=(0.01, 0.004, 0.002))
    with pytest.warns(UserWarning, match="no validation"):
        result = fit(tiny("gru4rec"), no_valid, dataclasses.replace(QUIET, max_epochs=3), config)
    assert [row["lr"] for row in result["history"]] == [0.01, 0.004, 0.002]


def test_train_config_rejects_zero_nodes():
    with pytest.raises(ValueError, match="num_nodes"):
        TrainConfig(num_nodes=0)
