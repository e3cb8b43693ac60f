"""A run that excludes seen items (RunConfig.exclude_seen, FitOptions.exclude_seen) validates that way while it
trains too, so early stopping and the best epoch follow the protocol the run reports (issue 15: the ML-1M
accuracy protocol ranks only items the user has not rated, as the published setups do)."""

import pytest

from recsys.data import Dataset
from recsys.pipeline import RunConfig, run
from recsys.sessions import Sessions
from tests.test_neural import make_data

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def repeat_data() -> Dataset:
    """12 items; every validation and test target repeats the first item of its sequence."""
    data = make_data((40, 10, 10))
    repeats = Sessions.from_lists([[1 + i % 12, 1 + (i + 1) % 12, 1 + (i + 2) % 12, 1 + i % 12] for i in range(10)])
    return Dataset(data.train, repeats, repeats, data.items, {"protocols": {"train": "all", "valid": "last",
                                                                            "test": "last"}})


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_validation_while_training_follows_the_runs_exclude_seen(tmp_path, exclude_seen):
    params = {"sasrec": {"dim": 16, "n_layers": 1, "train": {"batch_size": 16}}}
    config = RunConfig(models=("sasrec",), out=tmp_path / "run", params=params, max_epochs=1, progress=False,
                       assets=None, n_boot=20, exclude_seen=exclude_seen)
    entry = run(repeat_data(), config, log=lambda *a: None)["models"]["sasrec"]
    assert entry["fit"]["epochs"] == 1
    # 11 real items: every target is in the top 20 unless it is excluded (a seen item is a miss)
    expected = 0.0 if exclude_seen else 1.0
    assert entry["fit"]["best_valid"]["hr@20"] == expected  # the per-epoch validation inside fit
    assert entry["valid"]["hr@20"]["value"] == expected  # the run's own validation, as before


def test_the_ml1m_accuracy_protocol_excludes_seen_items_and_older_rows_say_they_did_not():
    from tools.bench.accuracy import ACCURACY_DATASETS
    from tools.bench.render import _our_accuracy_rows

    # the leave-one-out sets never repeat a user-item pair and their published rows filter seen items; the session
    # sets, whose next item often repeats one of the session, rank them
    assert ACCURACY_DATASETS["ml-1m"].exclude_seen and ACCURACY_DATASETS["beauty"].exclude_seen
    assert not ACCURACY_DATASETS["yoochoose1_64"].exclude_seen and not ACCURACY_DATASETS["diginetica"].exclude_seen
    entry = {"test_scaled": {"hr@10": {"value": 0.2}}, "fit": {}, "fit_seconds": 1.0, "timestamp": "2026-11-30"}
    (old,) = _our_accuracy_rows("sasrec", entry, scaled=False, exclude_seen=True)
    assert "not comparable with the published rows" in old
    (new,) = _our_accuracy_rows("sasrec", {**entry, "exclude_seen": True}, scaled=False, exclude_seen=True)
    (plain,) = _our_accuracy_rows("sasrec", entry, scaled=False, exclude_seen=False)
    assert "seen items" not in new and "seen items" not in plain
