"""Output folders never destroy what is not ours (recsys/atomic.py): refused targets, names from user text,
crash recovery of the folder swap, damaged results files, a full disk, and the modes of what is written.

The scripts run in this process (their main()) on a small synthetic data set, except where a crash must kill
the process: that runs in a child.
"""

import errno
import importlib.util
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import recsys
from recsys.atomic import OutputFolderError, atomic_folder, check_output, safe_child
from recsys.data import Dataset
from recsys.pipeline import RunConfig, check_run_folder
from recsys.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # for their `import _path`


def script_module(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_data, train_and_eval = script_module("prepare_data"), script_module("train_and_eval")

SYNTHETIC = ["--source", "synthetic", "--n-events", "4000"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare("synthetic", out=out, synthetic={"n_events": 4000})
    return out


@pytest.fixture
def shop(tmp_path):
    """A user's folder: an orders export (a valid csv source) and an unrelated note."""
    from recsys.datasets.synthetic import generate_events

    folder = tmp_path / "shop"
    folder.mkdir()
    events = generate_events(n_events=3000)[["user_id", "item_id", "timestamp"]]
    events.to_csv(folder / "orders.csv", index=False)
    (folder / "notes.txt").write_text("do not delete")
    return folder


def csv_args(orders: Path, out) -> list[str]:
    columns = "user_id=user_id,item_id=item_id,timestamp=timestamp"
    return ["--source", "csv", "--input", str(orders), "--columns", columns, "--out", str(out)]


def train(data, out, models="pop", *extra):
    return train_and_eval.main(["--data", str(data), "--models", models, "--out", str(out), "--assets",
                                str(Path(out).parent / "assets"), "--bootstrap", "20", "--quiet", *map(str, extra)])


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- prepare_data --out


def test_prepare_refuses_the_folder_of_its_input(shop, capsys):
    before = snapshot(shop)
    assert prepare_data.main(csv_args(shop / "orders.csv", shop)) == 2
    err = capsys.readouterr().err
    assert "holds the input" in err and "refusing" in err and "Traceback" not in err
    assert snapshot(shop) == before


def test_prepare_refuses_a_parent_of_its_inputs(tmp_path, shop, capsys):
    before = snapshot(tmp_path)
    assert prepare_data.main(csv_args(shop / "orders.csv", tmp_path)) == 2
    assert "holds the input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", [".", "absolute"])
def test_prepare_refuses_the_working_folder(shop, monkeypatch, capsys, how):
    monkeypatch.chdir(shop)
    before = snapshot(shop)
    out = "." if how == "." else str(shop)
    assert prepare_data.main([*SYNTHETIC, "--out", out]) == 2
    assert "working folder" in capsys.readouterr().err
    assert snapshot(shop) == before and sorted(p.name for p in shop.iterdir()) == ["notes.txt", "orders.csv"]


def test_prepare_refuses_an_unrelated_folder_before_reading_anything(tmp_path, shop, capsys, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")

    def never(*args, **kwargs):
        raise AssertionError("the input was read before the output folder was checked")

    monkeypatch.setattr("recsys.prepare.load_events", never)
    assert prepare_data.main(csv_args(shop / "orders.csv", other)) == 2
    err = capsys.readouterr().err
    assert "not a dataset folder" in err and "notes.txt" in err
    assert (other / "notes.txt").read_text() == "mine"


def test_prepare_replaces_a_previous_processed_folder(tmp_path, shop):
    out = tmp_path / "processed"
    assert prepare_data.main([*SYNTHETIC, "--seed", "1", "--out", str(out)]) == 0
    assert prepare_data.main(csv_args(shop / "orders.csv", out)) == 0
    assert Dataset.load(out).meta["source"] == "csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "shop"]  # nothing left beside it


def test_a_symlinked_output_folder_is_refused(tmp_path, data_dir):
    link = tmp_path / "link"
    link.symlink_to(data_dir)
    with pytest.raises(OutputFolderError, match="symbolic link"):
        check_output(link, "dataset")
    with pytest.raises(OutputFolderError, match="root folder"):
        check_output("/", "dataset")
    with pytest.raises(OutputFolderError, match="home folder|root folder"):
        check_output(Path.home(), "run")


# ---------------------------------------------------------------- train_and_eval --out and model names


def test_train_refuses_an_unrelated_out_folder(data_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "pop").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "pop" / "notes.txt").write_text("also mine")
    before = snapshot(out)
    assert train(data_dir, out) == 2
    assert "not a previous run" in capsys.readouterr().err
    assert snapshot(out) == before


def test_train_refuses_to_replace_a_model_named_folder_that_is_not_a_model(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(data_dir, out, "spop") == 0  # a real run folder ...
    (out / "pop").mkdir()
    (out / "pop" / "notes.txt").write_text("mine")  # ... holding a folder of the user's named like a model
    before = snapshot(out)
    assert train(data_dir, out, "pop,spop") == 2
    err = capsys.readouterr().err
    assert "pop" in err and "not a model folder" in err
    assert snapshot(out) == before


def test_a_variant_cannot_leave_the_out_folder(data_dir, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    assert train(data_dir, tmp_path / "a" / "b" / "runs", "pop@/../../../../victim") == 2
    assert "variant" in capsys.readouterr().err
    assert (victim / "keep.txt").read_text() == "precious" and not (tmp_path / "a").exists()


@pytest.mark.parametrize("name", ["pop@..", "pop@.", "pop@", "pop@a/b", "pop@x y"])
def test_bad_variant_names_exit_2_before_any_work(data_dir, tmp_path, capsys, name):
    assert train(data_dir, tmp_path / "run", name) == 2
    assert "variant" in capsys.readouterr().err and not (tmp_path / "run").exists()
    with pytest.raises(OutputFolderError, match="variant"):
        RunConfig(models=(name,))


def test_safe_child_stays_inside_its_root(tmp_path):
    root = tmp_path / "run"
    (root / ".work").mkdir(parents=True)
    (root / ".work" / "pop").symlink_to(tmp_path)
    assert safe_child(root, "sr@one_step") == root / "sr@one_step"
    with pytest.raises(OutputFolderError, match="leads outside"):
        safe_child(root / ".work", "pop")
    for bad in ("..", "../x", "/etc", ""):
        with pytest.raises(OutputFolderError):
            safe_child(root, bad)


def test_train_refuses_its_data_folder_and_a_results_file_that_is_not_a_file(data_dir, tmp_path, capsys):
    assert train(data_dir, data_dir, "pop") == 2
    assert "is or holds the input" in capsys.readouterr().err
    (tmp_path / "run" / "results.json").mkdir(parents=True)
    with pytest.raises(OutputFolderError, match="not a plain file"):
        check_run_folder(tmp_path / "run", ("pop",))


def test_the_repository_checkpoints_folder_with_only_its_readme_is_a_run_folder(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "README.md").write_text("# checkpoints/")
    assert check_run_folder(tmp_path / "checkpoints", ("pop",)) is None


# ---------------------------------------------------------------- results.json


def test_a_truncated_results_file_is_set_aside_before_training_and_the_run_completes(data_dir, tmp_path,
                                                                                       capsys, monkeypatch):
    from recsys.models.pop import Pop

    out = tmp_path / "run"
    assert train(data_dir, out, "pop,spop") == 0
    text = (out / "results.json").read_text()
    (out / "results.json").write_text(text[: len(text) // 2])  # what a crash mid-write of the old code left
    set_aside_before_fit, real_fit = [], Pop.fit

    def fit(self, *args, **kwargs):
        set_aside_before_fit.append(bool(list(out.glob("results.json.corrupt-*"))))
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Pop, "fit", fit)
    capsys.readouterr()
    assert train(data_dir, out, "pop") == 0
    printed = capsys.readouterr().out
    assert "warning" in printed and "not valid JSON" in printed and "set aside" in printed
    assert set_aside_before_fit == [True]
    aside = list(out.glob("results.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == text[: len(text) // 2]  # kept, never deleted
    assert "pop" in json.loads((out / "results.json").read_text())["models"]


def test_results_files_are_replaced_whole(tmp_path, monkeypatch):
    from recsys.atomic import write_text_atomic

    path = write_text_atomic(tmp_path / "results.json", '{"models": {}}')
    monkeypatch.setattr(os, "fsync", enospc)  # the new text is written, but never reaches the disk
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(path, json.dumps({"models": {"pop": {}}}))
    monkeypatch.undo()
    assert path.read_text() == '{"models": {}}' and [p.name for p in tmp_path.iterdir()] == ["results.json"]


# ---------------------------------------------------------------- a full disk


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "somewhere/file")


def test_full_disk_in_prepare_is_a_clear_error_and_keeps_the_previous_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    assert prepare_data.main([*SYNTHETIC, "--seed", "1", "--out", str(out)]) == 0
    before = snapshot(out)
    monkeypatch.setattr("recsys.data._write_split", enospc)
    assert prepare_data.main([*SYNTHETIC, "--seed", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "Traceback" not in err
    assert snapshot(out) == before and [p.name for p in tmp_path.iterdir()] == ["ds"]


@pytest.mark.parametrize("where", ["recsys.folder.save_model", "recsys.pipeline.write_text_atomic"])
def test_full_disk_in_train_is_a_clear_error_and_keeps_the_previous_run(data_dir, tmp_path, monkeypatch, capsys,
                                                                        where):
    out = tmp_path / "run"
    assert train(data_dir, out, "pop") == 0
    before = snapshot(out)
    monkeypatch.setattr(where, enospc)
    assert train(data_dir, out, "pop") == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "Traceback" not in err
    monkeypatch.undo()
    if where.endswith("save_model"):  # the model folder was never replaced
        assert snapshot(out) == before
    else:  # the model folder was replaced (whole); results.json is the previous one, whole
        assert (out / "results.json").read_bytes() == before["results.json"]
    assert recsys.load(str(out / "pop")).name == "pop"
    assert sorted(p.name for p in out.iterdir()) == ["pop", "results.json", "results.md"]


def test_full_disk_after_tuning_prints_what_the_trials_found(data_dir, tmp_path, monkeypatch, capsys):
    tune_script = script_module("tune")
    monkeypatch.setattr(tune_script, "write_result", enospc)
    assert tune_script.main(["--model", "sr", "--data", str(data_dir), "--trials", "1", "--max-cases", "50",
                             "--out", str(tmp_path / "sr.params.json")]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and '"model": "sr"' in err and "Traceback" not in err


# ---------------------------------------------------------------- the swap: crashes and leftovers

CRASH_BETWEEN_RENAMES = """
import os, sys
sys.path.insert(0, {scripts!r})
real_rename = os.rename

def rename(src, dst):
    real_rename(src, dst)
    if ".old-" in os.fspath(dst):
        os._exit(9)  # killed right after the old folder was moved aside, before the new one is moved in

os.rename = rename
import {script}
{script}.main({argv!r})
"""


def crash_between_renames(script: str, argv: list[str]):
    code = CRASH_BETWEEN_RENAMES.format(scripts=str(ROOT / "scripts"), script=script, argv=argv)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 9, proc.stderr


def test_a_crash_between_the_renames_is_undone_by_the_next_run(data_dir, tmp_path):
    out = tmp_path / "run"
    assert train(data_dir, out, "pop,spop") == 0
    crash_between_renames("train_and_eval", ["--data", str(data_dir), "--models", "pop", "--out", str(out),
                                             "--assets", str(tmp_path / "assets"), "--quiet", "--bootstrap", "20"])
    assert not (out / "pop").exists() and len(list(out.glob(".pop.old-*"))) == 1  # the state a crash leaves
    with pytest.warns(UserWarning, match="restored"):
        assert train(data_dir, out, "spop") == 0
    assert recsys.load(str(out / "pop")).name == "pop"
    assert set(json.loads((out / "results.json").read_text())["models"]) == {"pop", "spop"}
    assert sorted(p.name for p in out.iterdir()) == ["pop", "results.json", "results.md", "spop"]


def test_a_crash_between_the_renames_of_a_data_folder_is_undone_by_the_next_check(tmp_path):
    out = tmp_path / "ds"
    assert prepare_data.main([*SYNTHETIC, "--seed", "1", "--out", str(out)]) == 0
    before = snapshot(out)
    crash_between_renames("prepare_data", [*SYNTHETIC, "--seed", "2", "--out", str(out)])
    assert not out.exists()
    with pytest.warns(UserWarning, match="restored"):
        check_output(out, "dataset")
    assert snapshot(out) == before and [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, data_dir, monkeypatch):
    out = tmp_path / "ds"
    Dataset.load(data_dir).save(out)
    before = snapshot(out)
    real_rename, calls = os.rename, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(OSError, match="I/O error"):
        Dataset.load(data_dir).save(out)
    monkeypatch.undo()
    assert snapshot(out) == before and [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_leftovers_of_crashed_runs_are_cleaned_and_nothing_else(tmp_path, data_dir):
    out = tmp_path / "ds"
    Dataset.load(data_dir).save(out)
    pid = dead_pid()
    ours = [f".ds.tmp-{pid}-0123abcd", f".ds.old-{pid}-89abcdef", ".ds.tmp-a1b2c3d_", ".ds.old-0123abcd"]
    for name in ours:
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.parquet").write_bytes(b"partial")
    for name in ours[1::2]:  # an old folder is a whole one: it has its marker
        (tmp_path / name / "meta.json").write_text('{"format_version": 1}')
    live = f".ds.tmp-{os.getpid()}-0123abcd"  # a writer still running (here: this process)
    not_ours = [live, ".ds.tmp-mine", f".other.old-{pid}-89abcdef", f".ds.old-{pid}-fedcba98"]
    for name in not_ours:
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("mine")
    Dataset.load(data_dir).save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ds", *not_ours])


def test_new_folders_and_files_follow_the_umask(tmp_path, data_dir):
    data = Dataset.load(data_dir)
    for umask, folder_mode, file_mode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        previous = os.umask(umask)
        try:
            out = data.save(tmp_path / f"ds-{umask:o}")
            with atomic_folder(tmp_path / f"m-{umask:o}", kind="model") as tmp:
                (tmp / "config.json").write_text('{"format_version": 1}')
            from recsys.atomic import write_text_atomic

            written = write_text_atomic(tmp_path / f"results-{umask:o}.json", "{}")
        finally:
            os.umask(previous)
        assert stat.S_IMODE(out.stat().st_mode) == folder_mode
        assert stat.S_IMODE((tmp_path / f"m-{umask:o}").stat().st_mode) == folder_mode
        assert stat.S_IMODE(written.stat().st_mode) == file_mode
