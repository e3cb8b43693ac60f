"""A hybrid's parts take the parameter files given beside it, say which they used, and its long phases show
progress; tune.py writes one readable line per trial when its output is not a terminal."""

import importlib.util
import json
from pathlib import Path

import pytest
from test_contract import cycling_dataset

from recsys.models import FitOptions, build_model
from recsys.train import fit

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hybrid") / "data"
    cycling_dataset().save(path)
    return path


def write(path: Path, model: str, params: dict) -> str:
    path.write_text(json.dumps({"model": model, "params": params}))
    return str(path)


def run_cli(monkeypatch, data_dir, out, *params):
    script = load_script("train_and_eval", monkeypatch)
    argv = ["--data", str(data_dir), "--models", "hybrid", "--out", str(out), "--assets", str(out / "assets"),
            "--bootstrap", "20", "--quiet", "--params", *params]
    assert script.main(argv) == 0
    return json.loads((out / "results.json").read_text())["models"]["hybrid"]


def test_parts_take_the_given_files_and_the_hybrids_own_part_params_win(monkeypatch, tmp_path, data_dir, capsys):
    files = [write(tmp_path / "vsknn.json", "vsknn", {"k": 37, "sample_size": 123}),
             write(tmp_path / "sr.json", "sr", {"steps": 3}),
             write(tmp_path / "hybrid.json", "hybrid", {"components": ["pop", "sr", "vsknn"], "grid_step": 0.5,
                                                        "params": {"sr": {"steps": 2}}})]
    entry = run_cli(monkeypatch, data_dir, tmp_path / "run", *files)
    log = capsys.readouterr().out
    assert entry["params"]["params"]["vsknn"] == {"k": 37, "sample_size": 123}  # from its own file
    assert entry["params"]["params"]["sr"] == {"steps": 2}  # the hybrid's own part parameters win over sr.json
    config = json.loads((tmp_path / "run" / "hybrid" / "config.json").read_text())
    assert config["config"]["params"] == {"sr": {"steps": 2}, "vsknn": {"k": 37, "sample_size": 123}}
    parts = entry["fit"]["components"]
    assert parts["vsknn"]["params"]["k"] == 37 and parts["vsknn"]["params"]["sample_size"] == 123
    assert parts["sr"]["params"]["steps"] == 2
    assert "own parameter file" in parts["vsknn"]["params_from"]
    assert "hybrid" in parts["sr"]["params_from"] and "sr.json" not in parts["sr"]["params_from"]
    assert "defaults" in parts["pop"]["params_from"]
    # the fit report printed while running names each part's parameters and where they came from
    assert "part vsknn" in log and "k=37" in log and "part sr" in log and "steps=2" in log
    assert "part pop" in log and "defaults" in log


def test_a_part_without_any_file_says_it_runs_on_defaults(monkeypatch, tmp_path, data_dir, capsys):
    files = [write(tmp_path / "hybrid.json", "hybrid", {"components": ["pop", "sr"], "grid_step": 0.5})]
    entry = run_cli(monkeypatch, data_dir, tmp_path / "run", *files)
    assert entry["params"]["params"] == {}
    assert all("defaults" in p["params_from"] for p in entry["fit"]["components"].values())
    assert "part sr: defaults" in capsys.readouterr().out


def test_weight_selection_shows_progress_line_by_line(capsys):
    data = cycling_dataset()
    model = build_model("hybrid", data.n_items, {"components": ["pop", "sr"], "grid_step": 0.25,
                                                 "select_max_cases": None})
    fit(model, data, FitOptions(progress=True))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "weights" in line]
    assert lines and "\r" not in err, err
    assert "5 weightings" in lines[-1] and "2 parts" in lines[-1]
    fit(build_model("hybrid", data.n_items, {"components": ["pop", "sr"], "grid_step": 0.25}), data,
        FitOptions(progress=False))
    assert "weights" not in capsys.readouterr().err


def test_tune_to_a_pipe_writes_one_line_per_trial(monkeypatch, tmp_path, capfd):
    from test_baselines import graph_dataset

    graph_dataset(n_items=30, n_sessions=300).save(tmp_path / "data")
    script = load_script("tune", monkeypatch)
    assert script.main(["--model", "sr", "--data", str(tmp_path / "data"), "--trials", "3", "--max-cases", "50",
                        "--out", str(tmp_path / "sr.json")]) == 0
    out, err = capfd.readouterr()
    assert "\r" not in out + err
    trials = [line for line in (out + err).splitlines() if line.startswith("trial ")]
    assert len(trials) == 3 and all("mrr@20" in line and "best" in line for line in trials), out + err
    assert "Trial 0 finished" not in err  # Optuna's own per-trial log lines are silenced
