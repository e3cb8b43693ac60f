"""The train suite's default-settings runs over several seeds (`scripts/benchmark.py train --seeds N`): each seed in
brief, their mean and spread, checks on the mean, and the report's table (tools/bench/train.py, render.py)."""

import importlib.util
from pathlib import Path

import pytest

from tools.bench.render import _quality_rows
from tools.bench.train import RECBOLE_FINAL, _quality_checks, seed_summary

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run(seed, hr, ndcg, reached_cpu=None):
    reach = {"reached": True, "epoch": 5, "selected_epoch": 5, "cpu_s": reached_cpu, "wall_s": reached_cpu} \
        if reached_cpu else {"reached": False}
    return {"seed": seed, "epochs": 40, "best_epoch": 20, "final": {"epoch": 20, "test_hr@10": hr,
                                                                   "test_ndcg@10": ndcg, "valid_ndcg@10": 0.1},
            "time_to_quality": reach, "fit_cpu_s_without_probes": 300.0, "fit_wall_s": 320.0,
            "load_before": [1, 1, 1], "load_after": [1, 1, 1], "recbole": RECBOLE_FINAL["sasrec"],
            "ran": {"timestamp": "2026-12-01T14:00:00", "command": "c"}}


def test_the_summary_gives_each_seed_and_the_mean_of_those_that_finished():
    runs = [run(0, 0.12, 0.06), run(1, 0.13, 0.065, reached_cpu=200.0), {"seed": 2, "skipped": "failed: x"}]
    summary = seed_summary(runs)
    assert summary["finished"] == 2 and [r["seed"] for r in summary["runs"]] == [0, 1, 2]
    assert summary["mean_test_hr@10"] == pytest.approx(0.125) and summary["mean_test_ndcg@10"] == pytest.approx(0.0625)
    assert summary["sd_test_hr@10"] == pytest.approx(0.00707107, abs=1e-6)
    assert summary["runs"][1]["time_to_quality"]["cpu_s"] == 200.0 and summary["runs"][2] == {"seed": 2,
                                                                                               "skipped": "failed: x"}
    assert seed_summary([run(0, 0.1, 0.05)])["sd_test_hr@10"] is None  # one seed: no spread to state


def test_the_checks_use_the_mean_over_seeds_and_say_how_many_reached_the_quality():
    first = run(0, 0.120, 0.059)  # seed 0 alone misses RecBole's 12.51 / 6.09 ...
    entry = {**first, "seeds": seed_summary([first, run(1, 0.131, 0.064, reached_cpu=150.0)])}  # ... the mean meets
    checks = {c["what"]: c for c in _quality_checks({"sasrec": entry})}
    hr = next(c for w, c in checks.items() if "test_hr@10, mean of 2 seeds" in w)
    ndcg = next(c for w, c in checks.items() if "test_ndcg@10, mean of 2 seeds" in w)
    assert hr["measured"] == 12.55 and hr["met"] is True and ndcg["measured"] == 6.15 and ndcg["met"] is True
    assert hr["note"].startswith("sd ")
    cpu = next(c for w, c in checks.items() if "CPU s until" in w)
    assert cpu["met"] is False and "1 of 2 seeds reached it" in cpu["note"]  # seed 0's clock: not reached
    single = {c["what"] for c in _quality_checks({"sasrec": first})}
    assert not any("mean of" in w for w in single)


def test_the_report_lists_every_seed_and_the_mean():
    first = run(0, 0.120, 0.059)
    entry = {**first, "recipe": {"line": "full softmax"},
             "seeds": seed_summary([first, run(1, 0.131, 0.064, reached_cpu=150.0)])}
    text = "\n".join(_quality_rows({"sasrec": entry}))
    assert "| sasrec | 0 | 40 (20) | 12.00 / 5.90 | not reached | 300 |" in text
    assert "| sasrec | 1 | 40 (20) | 13.10 / 6.40 | 150 | 300 |" in text
    assert "**sasrec, mean of 2** | | | **12.55 / 6.15** (sd 0.78 / 0.35)" in text
    assert "other seeds" not in "\n".join(_quality_rows({"sasrec": first}))  # one seed: no seed table


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_seeds_must_be_a_positive_whole_number(value, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPTS / "benchmark.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["train", "--seeds", value])
    assert exit_info.value.code == 2 and "--seeds" in capsys.readouterr().err
