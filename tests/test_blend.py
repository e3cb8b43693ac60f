"""The hybrid: a mixture of other models' next-item distributions, its weights chosen on validation only."""

import numpy as np
import pytest
import torch
from test_contract import cycling_dataset

import recsys
from recsys.models import FitOptions, build_model
from recsys.models.blend import BlendConfig, simplex_grid
from recsys.pipeline import RunConfig, run
from recsys.train import fit


@pytest.fixture(scope="module")
def data():
    return cycling_dataset()


def test_simplex_grid_covers_every_weighting_that_sums_to_one():
    grid = simplex_grid(3, 0.1)
    assert grid.shape == (66, 3) and np.allclose(grid.sum(axis=1), 1) and grid.min() >= 0
    assert {tuple(r) for r in simplex_grid(2, 0.5)} == {(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)}


@pytest.mark.parametrize("bad", [dict(components=("sr", "sr")), dict(components=("sr", "hybrid")),
                                 dict(components=("sr", "pop"), weights=(0.7, 0.7)),
                                 dict(components=("sr", "pop"), weights=(1.0,)),
                                 dict(components=("sr",), params={"pop": {}}), dict(grid_step=0.3),
                                 dict(select="auc@5"), dict(select="hr@20+"), dict(select="hr@20+auc@5")])
def test_bad_configs_fail_loudly(bad):
    with pytest.raises(ValueError):
        BlendConfig(**bad)


def test_unknown_part_or_part_parameter_fails_loudly(data):
    with pytest.raises(KeyError, match="unknown model"):
        build_model("hybrid", data.n_items, {"components": ["sr", "no_such_model"]})
    with pytest.raises(ValueError, match="unknown parameters for sr"):
        build_model("hybrid", data.n_items, {"components": ["sr"], "params": {"sr": {"no_such_knob": 1}}})


def test_scores_are_the_weighted_mixture_of_the_parts_distributions(data):
    model = build_model("hybrid", data.n_items, {"components": ["sr", "pop"], "weights": [0.25, 0.75]})
    fit(model, data, FitOptions(progress=False))
    sessions = [np.array([1, 2]), np.array([5])]
    with torch.no_grad():
        sr, pop = (model.part(p).score(sessions).float()[:, 1:].clamp_min(0) for p in ("sr", "pop"))
        expected = 0.25 * sr / sr.sum(1, keepdim=True) + 0.75 * pop / pop.sum(1, keepdim=True)
        got = model.score(sessions)
    assert torch.allclose(got[:, 1:], expected, atol=1e-6) and torch.all(got[:, 0] == 0)
    assert torch.allclose(got.sum(1), torch.ones(2), atol=1e-5)


def test_fit_chooses_the_weights_on_validation(data):
    """Pop cannot follow the cycle, SR can: validation must put (nearly) all weight on SR, and the choice is at
    least as good on validation as either part alone (each part alone is a grid point)."""
    model = build_model("hybrid", data.n_items, {"components": ["pop", "sr"], "grid_step": 0.25})
    info = fit(model, data, FitOptions(progress=False))
    weights = info["weights"]
    assert weights["sr"] > weights["pop"] and model.config.weights == (weights["pop"], weights["sr"])
    selection = info["selection"]
    assert selection["grid_points"] == 5 and selection["best"] >= max(selection["each_part_alone"].values())
    assert selection["each_part_alone"]["sr"] > selection["each_part_alone"]["pop"]


def test_a_hybrid_without_weights_or_validation_refuses_to_guess(data):
    import dataclasses

    from recsys.sessions import Sessions

    model = build_model("hybrid", data.n_items, {"components": ["pop", "sr"]})
    with pytest.raises(RuntimeError, match="no weights"):
        model.score([np.array([1])])
    with pytest.raises(ValueError, match="chooses them on validation"):
        fit(model, dataclasses.replace(data, valid=Sessions.from_lists([])), FitOptions(progress=False))


def test_refit_keeps_the_chosen_weights_and_refits_the_neural_part_for_its_selected_epochs(data, tmp_path):
    params = {"hybrid": {"components": ["sasrec", "sr"], "grid_step": 0.5,
                         "params": {"sasrec": {"dim": 16, "n_layers": 1,
                                               "train": {"batch_size": 64, "lr": 0.01, "val_max_cases": 100}}}}}
    config = RunConfig(models=("hybrid",), out=tmp_path / "run", params=params, max_epochs=3, progress=False,
                       assets=None, refit=True, n_boot=20)
    entry = run(data, config, log=lambda *a: None)["models"]["hybrid"]
    best = entry["fit"]["components"]["sasrec"]["best_epoch"]
    assert entry["refit"]["data"] == "train+valid" and entry["refit"]["components"]["sasrec"]["epochs"] == best
    chosen = entry["fit"]["weights"]
    assert list(entry["params"]["weights"]) == [chosen["sasrec"], chosen["sr"]]
    assert entry["params"]["params"]["sasrec"]["train"]["max_epochs"] == best
    model = recsys.load(str(tmp_path / "run" / "hybrid"))  # the saved model is the refitted one, weights kept
    assert list(model.config.weights) == list(entry["params"]["weights"])
    again = recsys.evaluate(model, data.test, data.protocol("test")).metrics()["mrr@20"]
    assert again == pytest.approx(entry["test"]["mrr@20"]["value"])


def test_accuracy_suite_gives_a_hybrids_parts_the_data_sets_parameter_files(tmp_path, monkeypatch):
    """The suite hands run() the data set's files; run fills the parts in as for train_and_eval.py --params."""
    import json

    from recsys.pipeline import with_part_params
    from tools.bench import accuracy

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "sr.json").write_text(json.dumps({"model": "sr", "params": {"steps": 3}}))
    (tmp_path / "d" / "vsknn.json").write_text(json.dumps({"model": "vsknn", "params": {"k": 7}}))
    given = {"components": ["sr", "vsknn", "pop"], "params": {"vsknn": {"k": 50}}}
    (tmp_path / "d" / "hybrid.json").write_text(json.dumps({"model": "hybrid", "params": given}))
    monkeypatch.setattr(accuracy, "PARAMS_DIR", tmp_path)
    files = accuracy._dataset_params("d", "hybrid")
    filled, sources = with_part_params("hybrid", files["hybrid"], files)
    assert filled["params"] == {"sr": {"steps": 3}, "vsknn": {"k": 50}}  # the hybrid's own file wins; pop: none
    assert "hybrid" in sources["vsknn"] and "defaults" in sources["pop"]
    assert with_part_params("sr", {"steps": 5}, files) == ({"steps": 5}, {})  # not a hybrid: unchanged
    assert set(with_part_params("hybrid", {}, files)[0]["params"]) == {"vsknn"}  # default parts gru4rec, vsknn


def test_a_part_weighted_zero_is_not_scored(data, monkeypatch):
    model = build_model("hybrid", data.n_items, {"components": ["sr", "pop"], "weights": [1.0, 0.0]})
    fit(model, data, FitOptions(progress=False))
    expected = model.part("sr").score([np.array([1, 2])])
    monkeypatch.setattr(model.part("pop"), "score", lambda s: pytest.fail("a part weighted 0 was scored"))
    got = model.score([np.array([1, 2])])
    assert torch.equal(got[0].argmax(), expected[0, 1:].argmax() + 1)


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_weights_are_chosen_under_the_runs_protocol(data, exclude_seen):
    """With exclude_seen the choice ranks only unseen items, as the run's evaluation does: each part's score in the
    selection report equals that part's own evaluation under the same protocol (S-Pop puts the session's items
    first, so masking them changes its score)."""
    from recsys.evaluate import evaluate

    model = build_model("hybrid", data.n_items, {"components": ["spop", "sr"], "grid_step": 0.5,
                                                 "select_max_cases": None})
    info = fit(model, data, FitOptions(progress=False, exclude_seen=exclude_seen))
    alone = info["selection"]["each_part_alone"]
    assert info["selection"]["exclude_seen"] is exclude_seen
    for part in ("spop", "sr"):
        own = evaluate(model.part(part), data.valid, data.protocol("valid"), exclude_seen=exclude_seen)
        assert alone[part] == pytest.approx(own.metrics()["mrr@20"], abs=1e-9), part
    masked = evaluate(model.part("spop"), data.valid, data.protocol("valid"), exclude_seen=not exclude_seen)
    assert alone["spop"] != pytest.approx(masked.metrics()["mrr@20"], abs=1e-3)


def test_a_combined_objective_picks_the_best_mean_of_its_metrics(data):
    """select "hr@20+mrr@20": the chosen weighting's reported value is the mean of the two metrics, and no grid
    point has a higher mean (each part alone is a grid point)."""
    model = build_model("hybrid", data.n_items, {"components": ["pop", "sr"], "grid_step": 0.5,
                                                 "select": "hr@20+mrr@20", "select_max_cases": None})
    info = fit(model, data, FitOptions(progress=False))
    sel = info["selection"]
    assert sel["metric"] == "hr@20+mrr@20" and sel["best"] >= max(sel["each_part_alone"].values())
    from recsys.evaluate import evaluate
    sr = evaluate(model.part("sr"), data.valid, data.protocol("valid")).metrics()
    assert sel["each_part_alone"]["sr"] == pytest.approx((sr["hr@20"] + sr["mrr@20"]) / 2, abs=1e-9)


def test_bucket_of_cuts_by_length_and_repeats():
    from recsys.models.blend import bucket_of

    sessions = [np.array([1]), np.array([1, 2]), np.array([1, 1]), np.array([1, 2, 3, 4, 5]),
                np.array(list(range(1, 12))), np.array([1, 2, 3, 2])]
    # edges (2, 3, 4, 6, 10): slot 0 for length 1, 1 for 2, 2 for 3, 3 for 4-5, 4 for 6-9, 5 for 10+
    assert bucket_of(sessions, (2, 3, 4, 6, 10)).tolist() == [0, 2, 3, 6, 10, 7]


@pytest.mark.parametrize("bad", [dict(mix_by="length"), dict(length_edges=()), dict(length_edges=(3, 3)),
                                 dict(length_edges=(1, 4)), dict(length_edges=tuple(range(2, 40))),
                                 dict(mix_by="length-repeat", weights=(0.5, 0.5), components=("sr", "pop"),
                                      bucket_weights=((1.0, 0.0),)),
                                 dict(components=("sr", "pop"), weights=(0.5, 0.5),
                                      bucket_weights=((1.0, 0.0),) * 12),
                                 dict(mix_by="length-repeat", weights=(0.5, 0.5), components=("sr", "pop"),
                                      bucket_weights=((0.7, 0.7),) * 12)])
def test_bad_bucket_configs_fail_loudly(bad):
    with pytest.raises(ValueError):
        BlendConfig(**bad)


def test_each_bucket_mixes_with_its_own_weights_and_survives_a_round_trip(data, tmp_path):
    from recsys.folder import load_folder, save_folder
    from recsys.models import REGISTRY
    from recsys.models.blend import bucket_of

    buckets = [(1.0, 0.0), (0.0, 1.0)] * 6  # no repeat: all sr; a repeat: all spop
    model = build_model("hybrid", data.n_items, {"components": ["sr", "spop"], "weights": [0.5, 0.5],
                                                 "mix_by": "length-repeat", "bucket_weights": buckets})
    fit(model, data, FitOptions(progress=False))
    sessions = [np.array([1, 2, 3]), np.array([4, 5, 4]), np.array([7])]
    assert bucket_of(sessions, model.config.length_edges).tolist() == [4, 5, 0]
    with torch.no_grad():
        got = model.score(sessions)
        for row, part in zip(range(3), ("sr", "spop", "sr")):
            alone = build_model("hybrid", data.n_items, {"components": ["sr", "spop"],
                                                         "weights": [1.0, 0.0] if part == "sr" else [0.0, 1.0]})
            alone.use_part("sr", model.part("sr"), "memory")
            alone.use_part("spop", model.part("spop"), "memory")
            assert torch.allclose(got[row], alone.score([sessions[row]])[0])
    save_folder(model, tmp_path / "h", data.items)
    again = load_folder(tmp_path / "h", REGISTRY)
    assert again.config.bucket_weights == model.config.bucket_weights
    assert torch.equal(again.score(sessions), got)


def test_bucketed_choice_is_each_buckets_best(data):
    """Every bucket gets the grid weighting that is best on its own validation cases, so the bucketed mixture is at
    least as good on validation as the one overall weighting."""
    model = build_model("hybrid", data.n_items, {"components": ["pop", "sr"], "grid_step": 0.25,
                                                 "mix_by": "length-repeat", "select_max_cases": None})
    info = fit(model, data, FitOptions(progress=False))
    sel = info["selection"]
    assert len(model.config.bucket_weights) == 12 and len(sel["buckets"]) == 12
    assert sum(b["cases"] for b in sel["buckets"]) == sel["cases"]
    assert sel["best_by_bucket"] >= sel["best"] - 1e-12
    empty = [b for b in sel["buckets"] if not b["cases"]]
    assert empty and all(tuple(b["weights"]) == model.config.weights for b in empty)  # no cases: the overall one
    assert len(info["bucket_weights"]) == 12
