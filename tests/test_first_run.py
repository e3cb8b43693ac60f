"""A user's first run on their own log (issue 16): what preparation cut is said, each phase is timed on its own,
and a run's plots go into its own folder, never over the repository's assets/. And the app's first start on a
fresh machine (issue 14): the baselines and the three sequence models, timed progress lines, sample visitors.

The scripts run in this process (their main()) on a small synthetic data set.
"""

import json
import re
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


# ---------------------------------------------------------------------------------------------------------------
# The app's first start (issue 14): the design card's three sequence models beside the baselines, progress shown,
# sample visitors written for a deployed Space.

TIMED_LINE = re.compile(r"^ *(\d+\.\d)s  (.+)$")
NEURAL = ("sasrec", "gru4rec", "lstm")


@pytest.fixture(scope="module")
def first_start(tmp_path_factory):
    """ensure_default_models with its default model list on a tiny synthetic log, one epoch per neural model."""
    root = tmp_path_factory.mktemp("first")
    lines = []
    folders = recsys.pipeline.ensure_default_models(root / "checkpoints", progress=lines.append,
                                                    data_dir=root / "data", max_epochs=1, n_events=6000,
                                                    n_items=300)
    return {"root": root, "lines": lines, "folders": folders}


def test_the_first_start_trains_the_three_sequence_models_beside_the_baselines(first_start):
    assert set(NEURAL) <= set(recsys.pipeline.DEFAULT_APP_MODELS)
    assert [f.name for f in first_start["folders"]] == sorted(recsys.pipeline.DEFAULT_APP_MODELS)
    ckpt = first_start["root"] / "checkpoints"
    results = json.loads((ckpt / "results.json").read_text())
    assert set(results["models"]) == set(recsys.pipeline.DEFAULT_APP_MODELS)
    for name in NEURAL:
        metrics = json.loads((ckpt / name / "metrics.json").read_text())
        assert len(metrics["history"]) == 1  # max_epochs: trained briefly
        assert results["models"][name]["test"]["hr@20"]["value"] > 0
        assert (ckpt / name / "training_curves.png").is_file()
    # selection validates on a sample (said in the protocol); test is evaluated in full
    assert results["protocol"]["max_valid_cases"] == recsys.pipeline.APP_VALID_CASES


def test_every_progress_line_says_the_time_since_the_start(first_start):
    lines = first_start["lines"]
    timed = [TIMED_LINE.match(line) for line in lines]
    assert all(timed), [line for line, m in zip(lines, timed, strict=True) if not m]
    seconds = [float(m.group(1)) for m in timed]
    assert seconds == sorted(seconds)
    text = "\n".join(m.group(2) for m in timed)
    assert text.splitlines()[0].startswith("Generating the synthetic event log")
    assert "Data set ready: " in text
    for name in recsys.pipeline.DEFAULT_APP_MODELS:  # a line as each model starts, evaluates and ends
        assert f"[{name}] fitting on " in text and f"[{name}] fitted in " in text
        assert re.search(rf"^\[{name}\] fit [\d.]+s, valid [\d.]+s, test [\d.]+s ", text, flags=re.M)
    for name in NEURAL:  # each epoch of a sequence model as it ends
        assert re.search(rf"^\[{name}\] epoch 1/1: [\d.]+s, loss [\d.]+, valid ndcg@10 ", text, flags=re.M)
    assert re.search(r"^Default models ready in [\d.]+s wall, [\d.]+s CPU", text.splitlines()[-1])


def test_a_space_gets_the_visitors_the_first_start_shows(first_start, tmp_path):
    from recsys.app.visitors import Visitors, load_visitors
    from recsys.samples import check_sample_file, write_sample_sessions

    root = first_start["root"]
    assert not (root / "checkpoints" / "sample_sessions.json").exists()  # locally: the data set's test split
    from_data = Visitors.from_processed(root / "data")
    samples = tmp_path / "sample_sessions.json"  # what deploy_space.py uploads for a Space
    assert write_sample_sessions(root / "data", samples) == check_sample_file(samples) == len(from_data) > 0
    visitors = load_visitors(None, samples)  # a Space: no data folder, only the file
    assert visitors.sessions == from_data.sessions and visitors.samples == from_data.samples
    lines = list(first_start["lines"])
    recsys.pipeline.ensure_default_models(root / "checkpoints", progress=lines.append, data_dir=root / "data")
    assert lines == first_start["lines"]  # nothing missing: nothing done, nothing said


def test_a_space_holding_only_its_sample_visitors_trains_into_that_folder(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    uploaded = '{"sessions": [{"session_id": "a", "items": ["1", "2", "3"]}]}'
    (ckpt / "sample_sessions.json").write_text(uploaded)  # deploy_space.py sent it; no model folder
    lines = []
    folders = recsys.pipeline.ensure_default_models(ckpt, progress=lines.append, models=("pop",),
                                                    data_dir=tmp_path / "data", n_events=3000)
    assert [f.name for f in folders] == ["pop"]
    assert (ckpt / "sample_sessions.json").read_text() == uploaded  # the deployed visitors are kept
    assert not any("sample visitors" in line for line in lines)


def test_the_serving_suite_splits_the_first_start_into_phases_and_renders_them(tmp_path):
    from tools.bench.app_timing import first_start_phases, longest_silence
    from tools.bench.common import Options
    from tools.bench.render import _first_start_rows
    from tools.bench.serving import first_start_only

    printed = [(4.0, "No model found in c/: building the default models (one-off)..."),
               (9.0, "   0.0s  Generating the synthetic event log and preparing d ..."),
               (9.5, "   0.5s  Data set ready: 10 items"), (9.6, "   0.6s  Training pop, sasrec ..."),
               (9.7, "   0.7s  [pop] fitting on 9 sessions ..."),
               (10.9, "   1.9s  [pop] fit 0.0s, valid 0.1s, test 0.1s"),
               (11.0, "   2.0s  [sasrec] fitting on 9 sessions ..."), (20.0, "  11.0s  [sasrec] epoch 1/2: 4.0s"),
               (31.0, "  22.0s  Wrote 3 sample visitors"), (31.1, "  22.1s  Default models ready in 22.1s wall")]
    phases = first_start_phases(printed, 36.0)
    assert longest_silence(printed, 36.0) == 11.0 and longest_silence([], 5.0) == 5.0
    assert list(phases) == ["imports (Python, torch, Gradio, Lightning) and app start-up",
                            "data set (generate, prepare, load)", "pop (fit, evaluations, saving)",
                            "sasrec (fit, evaluations, saving)", "building the page, starting the server"]
    assert phases["sasrec (fit, evaluations, saving)"] == 20.1 and abs(sum(phases.values()) - 36.0) < 0.05
    first = {"wall_s": 36.0, "cpu_s": 30.0, "load_before": [1.0, 1.0, 1.0], "load_after": [1.5, 1.0, 1.0],
             "models": ["pop", "sasrec"], "phases": phases, "longest_silence_s": 11.0, "valid_cases": 2000,
             "seconds": {"pop": {"fit": 0.0, "valid": 0.1, "test": 0.1, "epochs": None},
                         "sasrec": {"fit": 15.0, "valid": 1.0, "test": 2.0, "epochs": 2}},
             "ran": {"command": "python scripts/benchmark.py serving --first-start-only", "timestamp": "t"}}
    text = "\n".join(_first_start_rows(first))
    assert "**36.0 s** (target ≤ 180 s), 30.0 s CPU" in text and "for 2 epochs" in text
    assert "| sasrec (fit, evaluations, saving) | 20.1 | 15.0 / 1.0 / 2.0 |" in text
    assert "`python scripts/benchmark.py serving --first-start-only`" in text
    with pytest.raises(ValueError, match="run `python scripts/benchmark.py serving` first"):
        first_start_only(Options(results_dir=tmp_path, work_dir=tmp_path, first_start_only=True))
