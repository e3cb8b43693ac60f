"""An upload's training in a child process (recsys.app.trainproc): the same result as in-process, the live lines
and scores streamed back, the child's priority, Stop and a child killed from outside leaving nothing, and the
child's errors coming back as the same kinds of error."""

import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest

from recsys.app import trainproc
from recsys.app import workbench as wb
from recsys.app.detect import read_head
from recsys.datasets.schema import DataError
from recsys.datasets.synthetic import generate_retailrocket_log

TINY = {"n_events": 3000, "n_items": 120, "n_categories": 12, "days": 8}


@pytest.fixture(scope="module")
def rr_log(tmp_path_factory) -> Path:
    return generate_retailrocket_log(tmp_path_factory.mktemp("rr"), **TINY)["events"]


@pytest.fixture()
def limits(tmp_path) -> wb.Limits:
    return wb.Limits(root=tmp_path / "work")


def upload(limits: wb.Limits, path: Path, name: str = "events.csv") -> str:
    token = wb.new_upload(limits, name)
    wb.store_file(limits, token, path)
    return token


def everything(limits: wb.Limits, token: str) -> list[str]:
    """The upload folder's entries other than the upload itself (its marker and input/)."""
    return sorted(p.name for p in (Path(limits.root) / token).iterdir() if p.name not in (wb.MARKER, "input"))


def request_for(rr_log: Path, baselines=("pop", "spop")) -> wb.TrainRequest:
    return wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", baselines=baselines)


def metrics(results: dict) -> dict:
    return {m: (e["valid"]["mrr@20"]["value"], e["test"]["hr@20"]["value"]) for m, e in results["models"].items()}


def test_the_child_trains_what_the_server_would(rr_log, limits):
    request = request_for(rr_log)
    here = wb.train(limits, upload(limits, rr_log, "My shop.csv"), request, log=lambda _: None)
    token = upload(limits, rr_log, "My shop.csv")
    lines, finished, pids, policy = [], [], [], []

    def log(line):
        lines.append(line)
        if len(lines) == 1 and hasattr(os, "sched_getscheduler"):  # the child is alive: look at it from outside
            policy.append(os.sched_getscheduler(pids[0]))

    there = trainproc.train(limits, token, request, log=log, on_model=lambda *a: finished.append(a),
                            options=trainproc.ChildOptions(nice=19, threads=1), on_start=pids.append)
    assert pids and pids[0] != os.getpid()
    idle = hasattr(os, "SCHED_IDLE")  # Linux: at nice 19 the child runs only on an otherwise idle core
    assert f"pid {pids[0]}, nice 19{', idle scheduling' * idle}, 1 thread" in lines[0]  # how it runs
    assert policy == ([os.SCHED_IDLE] if idle else policy)
    assert any(line.startswith("Reading 3,000 events") for line in lines)  # workbench.train's own lines
    assert [(name, done, total) for name, _, done, total in finished] == [("pop", 1, 2), ("spop", 2, 2)]
    assert there.scores == here.scores
    assert metrics(there.results) == metrics(here.results)
    assert (there.name, there.results["data"]) == (here.name, here.results["data"])
    assert there.run.parent.parent == Path(limits.root) / token
    assert everything(limits, token) == [there.run.parent.name]
    # what the server does next with it: register, zip, restore
    assert wb.restore(limits, token).run == there.run
    assert set(there.model_folders()) == {there.run / "pop", there.run / "spop"}
    with zipfile.ZipFile(wb.download(there)) as zf:
        assert "My-shop/results.md" in zf.namelist()


def test_the_child_options_come_from_the_environment():
    assert trainproc.ChildOptions.from_env({}) == trainproc.ChildOptions(19, 1)
    assert trainproc.ChildOptions.from_env({"RECSYS_TRAIN_NICE": "10", "RECSYS_TRAIN_THREADS": "2"}) == \
        trainproc.ChildOptions(10, 2)
    for bad, message in (({"RECSYS_TRAIN_NICE": "low"}, "RECSYS_TRAIN_NICE must be a whole number"),
                         ({"RECSYS_TRAIN_NICE": "20"}, "from 0 to 19"), ({"RECSYS_TRAIN_NICE": "-5"}, "from 0 to 19"),
                         ({"RECSYS_TRAIN_THREADS": "0"}, "RECSYS_TRAIN_THREADS must be a whole number from 1")):
        with pytest.raises(ValueError, match=message):
            trainproc.ChildOptions.from_env(bad)


def test_stop_ends_the_child_at_its_priority_and_leaves_nothing(rr_log, limits):
    token = upload(limits, rr_log)
    request = request_for(rr_log)
    earlier = trainproc.train(limits, token, request, log=lambda _: None)  # a finished run of this upload stays
    flag, pids, seen = threading.Event(), [], {}

    def log(line):  # the child is alive while it sends its lines: look at it from outside
        seen.setdefault("nice", os.getpriority(os.PRIO_PROCESS, pids[0]))
        try:
            environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
            seen.setdefault("omp", next((e for e in environ if e.startswith(b"OMP_NUM_THREADS=")), None))
        except OSError:
            pass
        if line.startswith("[spop] fitting"):
            flag.set()  # the user presses Stop while the second model trains

    with pytest.raises(wb.Cancelled):
        trainproc.train(limits, token, request, log=log, cancelled=flag, on_start=pids.append,
                        options=trainproc.ChildOptions(nice=7, threads=2))
    assert seen["nice"] == max(7, os.getpriority(os.PRIO_PROCESS, 0))
    assert seen.get("omp") in (None, b"OMP_NUM_THREADS=2")  # None: /proc not readable here
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # the child is gone (and reaped)
    assert everything(limits, token) == [earlier.run.parent.name]  # its staging folder removed, no new run


def test_a_child_killed_from_outside_gives_a_clear_error_and_leaves_nothing(rr_log, limits):
    token = upload(limits, rr_log)

    def kill_when_staging(line):  # killed once its staging folder holds the prepared data set
        if line.startswith("[pop] fitting"):
            assert [p for p in everything(limits, token) if p.startswith(".tmp-")]
            os.kill(pids[0], signal.SIGKILL)

    pids = []
    with pytest.raises(trainproc.ChildDied, match=r"killed by SIGKILL \(out of memory, or stopped from outside\); "
                                                  "nothing of it was kept"):
        trainproc.train(limits, token, request_for(rr_log), log=kill_when_staging, on_start=pids.append)
    assert everything(limits, token) == []


def test_the_parent_removes_only_what_the_child_made(tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    for name in (".tmp-old", "run-old", "input"):
        (folder / name).mkdir()
    before = {p.name for p in folder.iterdir()}
    (folder / ".tmp-new").mkdir()
    (folder / ".tmp-new" / "link").symlink_to(outside)
    (folder / "run-new").mkdir()
    (folder / ".tmp-link").symlink_to(outside)
    (folder / "other-new").mkdir()
    trainproc._remove_new_entries(folder, before)
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-old", "input", "other-new", "run-old"]
    assert (outside / "keep.txt").read_text() == "keep"


def test_the_childs_errors_come_back_as_the_same_kinds(rr_log, limits, tmp_path):
    token = upload(limits, rr_log)
    # a mapping that leaves nothing: the reader's DataError, its message unchanged
    request = wb.TrainRequest(columns={"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp"},
                              timestamp_unit="s", baselines=("pop",))
    with pytest.raises(DataError, match="looks like epoch ms"):
        wb.train(limits, token, request)
    with pytest.raises(DataError, match="looks like epoch ms"):
        trainproc.train(limits, token, request, log=lambda _: None)
    few = wb.Limits(root=limits.root, max_events=1000)
    with pytest.raises(DataError, match=r"over 1,000 events.*RECSYS_UPLOAD_EVENTS"):
        trainproc.train(few, token, request_for(rr_log), log=lambda _: None)
    with pytest.raises(DataError, match="no longer available"):
        trainproc.train(limits, "f" * 32, request_for(rr_log))
    assert everything(limits, token) == []


def test_the_request_survives_the_trip_as_json(limits):
    request = wb.TrainRequest(columns={"user_id": "u", "item_id": "i", "timestamp": "t", "event": "e"},
                              events=("view", "cart"), baselines=("pop", "sr"), neural="gru4rec", minutes=0.5,
                              item_columns={"item_id": "sku", "name": "title"}, split="loo")
    options = trainproc.ChildOptions(12, 3)
    text = trainproc._request_json(limits, "a" * 32, request, options)
    assert trainproc._from_json(json.loads(text)) == (limits, "a" * 32, request, options)



# ------------------------------------------------------------------------------------------------ through app.py


def _child_of(pid: int) -> int | None:
    """The pid of `pid`'s training child (python -m recsys.app.trainproc), from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"recsys.app.trainproc" in (stat.parent / "cmdline").read_bytes():
                return int(stat.parent.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


@pytest.mark.filterwarnings("ignore:The value passed into gr.Dropdown")  # choices set in the page, not here
def test_the_page_trains_in_a_child_and_says_plainly_when_it_dies(rr_log, tmp_path, monkeypatch):
    from conftest import fresh_app
    from test_app_logic import build_checkpoints

    from recsys.app.yourdata import NONE

    build_checkpoints(tmp_path / "checkpoints", models=("pop",))
    monkeypatch.setenv("RECSYS_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("RECSYS_TRAIN_NICE", "11")
    with fresh_app(monkeypatch, tmp_path / "checkpoints", tmp_path / "no-data") as app:
        assert app.TRAIN_CHILD == trainproc.ChildOptions(nice=11, threads=1)
        token = upload(app.LIMITS, rr_log)
        guess = read_head(rr_log).guess
        fields = [token, *(guess.get(role, NONE) for role in app.ROLES), "epoch milliseconds", "", "temporal", 30,
                  1, 1, ["pop", "spop"], NONE, 1]
        seen = {}

        def kill_once_staging():  # SIGKILL the child once its staging folder is there, as the OOM killer would
            while "pid" not in seen:
                child = _child_of(os.getpid())
                if child and any(p.startswith(".tmp-") for p in everything(app.LIMITS, token)):
                    seen["pid"], seen["nice"] = child, os.getpriority(os.PRIO_PROCESS, child)
                    os.kill(child, signal.SIGKILL)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_once_staging, daemon=True)
        killer.start()
        outputs = list(app.train_upload(*fields, progress=lambda *a, **k: None))
        killer.join(5)
        assert seen["nice"] == max(11, os.getpriority(os.PRIO_PROCESS, 0))
        final = outputs[-1][0].replace("\\", "")  # markdown escapes undone
        assert final.startswith("⚠️ Training failed: the training process was killed by SIGKILL (out of memory, "
                                "or stopped from outside); nothing of it was kept"), final
        assert "Traceback" not in final
        assert everything(app.LIMITS, token) == []
        # the same page trains it again, in a child, to the end
        outputs = list(app.train_upload(*fields, progress=lambda *a, **k: None))
        assert outputs[-1][0].startswith("**Trained 2 models on events**"), outputs[-1][0]
        assert [p for p in everything(app.LIMITS, token) if p.startswith("run-")]
        assert not [p for p in everything(app.LIMITS, token) if p.startswith(".tmp-")]
