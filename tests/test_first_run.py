"""A user's first run on their own log (issue 16): what preparation cut is said, each phase is timed on its own,
and a run's plots go into its own folder, never over the repository's assets/.

The scripts run in this process (their main()) on a small synthetic data set.
"""

import json
import time

import pytest
from test_output_safety import prepare_data, train_and_eval  # the scripts, loaded as modules

import recsys.pipeline
from recsys.prepare import SYNTHETIC_SPLIT, config_from_options, prepare


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """The synthetic log with sessions cut to their 5 most recent items, so that every split loses some."""
    out = tmp_path_factory.mktemp("data") / "short"
    prepare("synthetic", out=out, config=config_from_options(**SYNTHETIC_SPLIT, max_length=5),
            synthetic={"n_events": 20000})
    return out


def train(data, out, *extra) -> int:
    return train_and_eval.main(["--data", str(data), "--models", "pop", "--out", str(out), "--bootstrap", "20",
                                "--quiet", *map(str, extra)])


def test_preparation_prints_and_records_what_keeping_the_most_recent_items_cut(tmp_path, capsys):
    full, short = tmp_path / "full", tmp_path / "short"
    argv = ["--source", "synthetic", "--n-events", "20000"]
    assert prepare_data.main([*argv, "--out", str(full)]) == 0
    assert "no session longer than 50 items: nothing cut" in capsys.readouterr().out
    assert prepare_data.main([*argv, "--out", str(short), "--max-length", "5"]) == 0
    printed = capsys.readouterr().out
    meta = {name: json.loads((d / "meta.json").read_text()) for name, d in (("full", full), ("short", short))}
    cut = meta["short"]["truncated"]
    assert cut["max_length"] == 5 and all(cut[s]["sessions"] > 0 for s in ("train", "valid", "test"))
    for split in ("train", "valid", "test"):  # the events counted as cut are exactly the ones missing
        lost = meta["full"]["stats"][split]["events"] - meta["short"]["stats"][split]["events"]
        assert cut[split]["events"] == lost
        assert f"{split} {cut[split]['sessions']:,} sessions / {lost:,} events" in printed
    assert cut["test"]["cases_dropped"] == cut["test"]["events"]  # protocol "all": each cut position was a case
    assert f"{cut['test']['prefixes_cut']:,} prefixes shortened" in printed
    assert "cut to the most recent 5 items" in printed.splitlines()[-1]  # said last, where the user looks


def test_a_pre_split_source_counts_the_test_prefixes_it_cut(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("".join(f"{i} {i + 1} {i + 2} {i + 3} {i + 4} {i + 5}\n" for i in range(9)))
    (tmp_path / "test.tsv").write_text("prefix\tlabel\n1 2 3 4 5 6 7\t8\n2 3\t4\n")
    out = tmp_path / "ds"
    assert prepare_data.main(["--source", "sessions", "--input", str(tmp_path / "train.txt"),
                              str(tmp_path / "test.tsv"), "--out", str(out), "--max-length", "4"]) == 0
    cut = json.loads((out / "meta.json").read_text())["truncated"]
    assert cut["test"] == {"sessions": 1, "events": 3, "cases_dropped": 0, "prefixes_cut": 1}
    assert cut["train"]["sessions"] > 0
    assert "test 1 sessions / 3 events (1 prefixes shortened)" in capsys.readouterr().out


def test_the_results_say_what_preparation_cut(short, tmp_path, capsys):
    assert train(short, tmp_path / "run") == 0
    meta = json.loads((short / "meta.json").read_text())
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["data"]["truncated"] == meta["truncated"]
    line = f"train {meta['truncated']['train']['sessions']:,} sessions"
    assert line in (tmp_path / "run" / "results.md").read_text()
    assert line in capsys.readouterr().out


def test_fit_validation_refit_and_test_are_timed_separately(short, tmp_path, monkeypatch):
    evaluate = recsys.pipeline.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(0.5)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(recsys.pipeline, "evaluate", slow_evaluate)
    assert train(short, tmp_path / "run", "--refit") == 0
    entry = json.loads((tmp_path / "run" / "results.json").read_text())["models"]["pop"]
    assert entry["fit_seconds"] < 0.5 and entry["refit_seconds"] < 0.5  # popularity counts: no evaluation inside
    assert entry["valid_seconds"] >= 0.5 and entry["test_seconds"] >= 0.5
    head = (tmp_path / "run" / "results.md").read_text().split("## Test")[1].strip().splitlines()[0]
    assert head.endswith("| fit s | valid s | refit s | test s |")


def test_plots_go_into_the_run_folder_not_the_working_folders_assets(short, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a relative assets/ would be written
    assert recsys.pipeline.RunConfig(models=("pop",)).assets is None  # the library writes no plots unasked
    assert train(short, tmp_path / "run") == 0
    assert not (tmp_path / "assets").exists()
    assert (tmp_path / "run" / "model_comparison.png").stat().st_size > 1000
    assert train(short, tmp_path / "run2", "--assets", tmp_path / "plots") == 0  # still there when asked for
    assert (tmp_path / "plots" / "model_comparison.png").is_file()
