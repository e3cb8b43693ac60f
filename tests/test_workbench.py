"""The "Your data" workbench without a browser (recsys.app.detect, workbench, yourdata): column detection, bad
files and limits with the readers' messages, a failed or cancelled run leaving nothing, two uploads kept apart,
clean-up touching only our folders, and the pipeline's folders loadable, zipped and reproduced by the commands.
"""

import gzip
import json
import os
import re
import shlex
import sys
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from recsys import load, recommend
from recsys.app import dashboard, yourdata
from recsys.app import workbench as wb
from recsys.app.detect import read_head
from recsys.app.service import AppService
from recsys.app.visitors import Visitors
from recsys.datasets.schema import DataError
from recsys.datasets.synthetic import generate_retailrocket_log

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_events": 3000, "n_items": 120, "n_categories": 12, "days": 8}


@pytest.fixture(scope="module")
def rr_log(tmp_path_factory) -> Path:
    return generate_retailrocket_log(tmp_path_factory.mktemp("rr"), **TINY)["events"]


def generic_frame(rr_log: Path) -> pd.DataFrame:
    """The same events as a shop might export them: other names, ISO dates, a category column."""
    rr = pd.read_csv(rr_log)
    return pd.DataFrame({"customer": rr["visitorid"], "product_sku": "p" + rr["itemid"].astype(str),
                         "when": pd.to_datetime(rr["timestamp"], unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S"),
                         "action": rr["event"], "category": "c" + (rr["itemid"] % 7).astype(str)})


@pytest.fixture()
def limits(tmp_path) -> wb.Limits:
    return wb.Limits(root=tmp_path / "work")


def upload(limits: wb.Limits, path: Path) -> str:
    token = wb.new_upload(limits, path.name)
    wb.store_file(limits, token, path)
    return token


def leftovers(limits: wb.Limits, token: str) -> list[str]:
    folder = Path(limits.root) / token
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".tmp-", "run-")))


# ------------------------------------------------------------------------------------------------ detection


def test_detects_the_retailrocket_layout(rr_log):
    head = read_head(rr_log)
    assert head.retailrocket and head.kind == "csv"
    assert head.guess == {"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp", "event": "event"}
    assert head.timestamp_unit == "ms"
    assert "view" in head.events()


@pytest.mark.parametrize("form", ["csv", "tsv", "gz", "parquet"])
def test_detects_a_generic_log_in_every_format(rr_log, tmp_path, form):
    frame = generic_frame(rr_log)
    path = tmp_path / f"log.{form}"
    if form == "parquet":
        frame.to_parquet(path)
    elif form == "gz":
        with gzip.open(path, "wt") as f:
            frame.to_csv(f, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if form == "tsv" else ",")
    head = read_head(path)
    assert head.guess == {"user_id": "customer", "item_id": "product_sku", "timestamp": "when", "event": "action",
                          "category_id": "category"}
    assert head.timestamp_unit is None and not head.retailrocket
    assert list(head.preview.columns) == list(frame.columns) and len(head.preview) == 8


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"PK\x03\x04rest of a zip", "zip archive"),
    (b"\xff\xfe\x00b\x00i\x00n\x00a\x00r\x00y\n", "not UTF-8"),
    (b"user,item,time\n", "no data rows"),
    (b"user,user,time\n1,2,3\n", "repeated column names"),
])
def test_bad_files_get_the_readers_message(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_head(path)


def test_size_and_event_limits(rr_log, tmp_path):
    small = wb.Limits(root=tmp_path / "work", max_mb=0.001)
    token = wb.new_upload(small, "log.csv")
    with pytest.raises(DataError, match=r"over this server's limit of 0.001 MB \(RECSYS_UPLOAD_MB\)"):
        wb.store_file(small, token, rr_log)
    few = wb.Limits(root=tmp_path / "work", max_events=1000)
    token = upload(few, rr_log)
    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", baselines=("pop",))
    with pytest.raises(DataError, match=r"over 1,000 events.*RECSYS_UPLOAD_EVENTS"):
        wb.train(few, token, request)
    assert leftovers(few, token) == []
    assert wb.Limits.from_env({"RECSYS_UPLOAD_MB": "5", "RECSYS_UPLOAD_EVENTS": "100", "RECSYS_TRAIN_MINUTES": "1",
                               "RECSYS_UPLOAD_HOURS": "2", "RECSYS_WORK": str(tmp_path)}) == wb.Limits(
        5.0, 100, 1.0, 2.0, tmp_path)
    with pytest.raises(ValueError, match="RECSYS_UPLOAD_MB must be a number"):
        wb.Limits.from_env({"RECSYS_UPLOAD_MB": "lots"})


def test_a_mapping_is_checked_before_anything_runs():
    with pytest.raises(DataError, match="map the item id and the time"):
        wb.TrainRequest(columns={"user_id": "u", "timestamp": "t"})
    with pytest.raises(DataError, match="session id or a user id"):
        wb.TrainRequest(columns={"item_id": "i", "timestamp": "t"})
    with pytest.raises(DataError, match="mapped to two roles"):
        wb.TrainRequest(columns={"user_id": "i", "item_id": "i", "timestamp": "t"})
    with pytest.raises(DataError, match="event filter needs an event type column"):
        wb.TrainRequest(columns={"user_id": "u", "item_id": "i", "timestamp": "t"}, events=("view",))
    wb.TrainRequest(columns={"user_id": "u", "item_id": "i", "timestamp": "t", "event": "e"}, events=("view",))
    with pytest.raises(DataError, match="leave-one-out needs a user id"):
        wb.TrainRequest(columns={"session_id": "s", "item_id": "i", "timestamp": "t"}, split="loo")


def test_a_mapping_that_leaves_nothing_fails_and_leaves_nothing(rr_log, limits):
    token = upload(limits, rr_log)
    # the transaction id as the item: almost always empty -> the reader names the first blank
    request = wb.TrainRequest(columns={"user_id": "visitorid", "item_id": "transactionid", "timestamp": "timestamp"},
                              timestamp_unit="ms", baselines=("pop",))
    with pytest.raises(DataError, match="missing value.*column 'transactionid'"):
        wb.train(limits, token, request)
    # times read as seconds: the reader says they look like milliseconds
    request = wb.TrainRequest(columns={"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp"},
                              timestamp_unit="s", baselines=("pop",))
    with pytest.raises(DataError, match="looks like epoch ms"):
        wb.train(limits, token, request)
    # a session gap so short that no session has two events: nothing left after filtering
    request = wb.TrainRequest(columns={"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp"},
                              timestamp_unit="ms", session_gap_minutes=1e-6, baselines=("pop",))
    with pytest.raises(DataError, match="no sessions left"):
        wb.train(limits, token, request)
    assert leftovers(limits, token) == []


def test_a_cancelled_run_leaves_nothing(rr_log, limits):
    token = upload(limits, rr_log)
    flag = threading.Event()
    seen = []

    def log(line):
        seen.append(line)
        if line.startswith("[sr] fitting"):
            flag.set()  # the user presses Stop while the second model trains

    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", retailrocket=True,
                              baselines=("pop", "sr", "vsknn"))
    with pytest.raises(wb.Cancelled):
        wb.train(limits, token, request, log=log, cancelled=flag)
    assert any(line.startswith("[pop]") for line in seen)  # pop had finished: it is removed too
    assert leftovers(limits, token) == []


# ------------------------------------------------------------------------------------------------ privacy, clean-up


def test_two_concurrent_uploads_are_isolated(rr_log, tmp_path, limits):
    generic = tmp_path / "shop.csv"
    generic_frame(rr_log).to_csv(generic, index=False)
    service = AppService(checkpoints_dir=str(tmp_path / "none"))
    tokens = [upload(limits, rr_log), upload(limits, generic)]
    requests = [wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", retailrocket=True,
                                baselines=("pop", "sr")),
                wb.TrainRequest(columns=read_head(generic).guess, baselines=("pop", "spop"))]
    results, errors = {}, []

    def go(i):
        try:
            results[i] = wb.train(limits, tokens[i], requests[i], log=lambda _: None)
            wb.register(service, results[i])
        except Exception as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    mine = [yourdata.private_choices(service, t) for t in tokens]
    assert [sorted(label.split(" — ")[0] for label, _ in m) for m in mine] == [
        ["events · pop", "events · sr"], ["shop · pop", "shop · spop"]]
    assert all(tokens[0] not in key for _, key in mine[1]) and all(tokens[1] not in key for _, key in mine[0])
    assert yourdata.private_choices(service, None) == []  # a page that uploaded nothing lists no upload's models
    # each serves its own data: the generic upload's items are its own "p…" ids, with their own visitors
    served = service.served(mine[1][0][1])
    assert all(str(i).startswith("p") for i in served.model.item_info["item_ids"])
    assert service.visitors_for(mine[1][0][1]) is not service.visitors_for(mine[0][0][1])
    assert results[0].run.parent.parent != results[1].run.parent.parent
    assert oct((Path(limits.root) / tokens[0]).stat().st_mode & 0o777) == "0o700"


def test_tokens_are_checked(limits):
    for bad in ("../etc", "0" * 31, None, 7, "A" * 32):
        with pytest.raises(DataError, match="no longer available"):
            wb.upload_folder(limits, bad)
    token = wb.new_upload(limits, "x.csv")
    (Path(limits.root) / token / wb.MARKER).unlink()
    with pytest.raises(DataError, match="no longer available"):
        wb.upload_folder(limits, token)


def test_an_upload_path_must_be_gradios(tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    for value in ({"path": str(outside), "orig_name": "x.csv"}, str(outside), {"path": "/etc/passwd"}, {}, None):
        with pytest.raises(DataError):
            yourdata.uploaded_path(value)


def test_cleanup_removes_only_our_old_folders(limits, tmp_path):
    old, young = wb.new_upload(limits, "old.csv"), wb.new_upload(limits, "young.csv")
    root = Path(limits.root)
    marker = root / old / wb.MARKER
    marker.write_text(json.dumps({"created": time.time() - 25 * 3600, "name": "old"}))
    elsewhere = tmp_path / "elsewhere"  # a folder of ours outside the root, reached through a link
    elsewhere.mkdir()
    (elsewhere / wb.MARKER).write_text(json.dumps({"created": 0}))
    (elsewhere / "keep.txt").write_text("keep")
    (root / ("b" * 32)).symlink_to(elsewhere)
    stranger = root / ("c" * 32)  # a token-named folder without our marker
    stranger.mkdir()
    (stranger / "keep.txt").write_text("keep")
    other = root / "notes"  # not token-named
    other.mkdir()
    os.utime(other, (0, 0))
    inner_target = tmp_path / "target.txt"  # a link inside an old upload: removed, its target kept
    inner_target.write_text("keep")
    (root / old / "link").symlink_to(inner_target)
    assert wb.cleanup(limits) == [old]
    assert not (root / old).exists() and (root / young).is_dir()
    assert (elsewhere / "keep.txt").is_file() and (stranger / "keep.txt").is_file() and other.is_dir()
    assert inner_target.read_text() == "keep"


# ------------------------------------------------------------------------------------------------ the pipeline


def test_the_pipeline_makes_loadable_folders_a_zip_and_reproducible_commands(rr_log, limits, tmp_path, monkeypatch):
    token = upload(limits, rr_log)
    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", retailrocket=True,
                              events=("view",), baselines=("pop", "sr"))
    finished = []
    trained = wb.train(limits, token, request, log=lambda _: None, on_model=lambda *a: finished.append(a))
    assert [(name, done, total) for name, _, done, total in finished] == [("pop", 1, 2), ("sr", 2, 2)]
    assert leftovers(limits, token) == [trained.run.parent.name]
    for folder in trained.model_folders():
        model = load(str(folder))
        ids, _ = recommend(model, [1, 2], k=5)  # item indices
        assert len(ids) == 5
    archive = wb.download(trained)
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert {"events/pop/config.json", "events/pop/model.safetensors", "events/sr/items.json", "events/results.md",
            "events/commands.sh"} <= names
    assert not any(".work" in n for n in names)
    # the commands, run as they are shown, give the same test metrics
    script = (trained.run.parent / "commands.sh").read_text().replace("\\\n", " ")
    commands = [shlex.split(line) for line in script.splitlines() if line.startswith("python scripts/")]
    assert [c[1] for c in commands] == ["scripts/prepare_data.py", "scripts/train_and_eval.py",
                                        "scripts/push_to_hub.py"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.csv").write_bytes(rr_log.read_bytes())
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("prepare_data", None)
    sys.modules.pop("train_and_eval", None)
    import prepare_data
    import train_and_eval

    assert prepare_data.main(commands[0][2:]) == 0
    assert train_and_eval.main([*commands[1][2:], "--quiet"]) == 0
    again = json.loads((tmp_path / "runs" / "events" / "results.json").read_text())
    for name in ("pop", "sr"):
        assert again["models"][name]["test"]["mrr@20"] == trained.results["models"][name]["test"]["mrr@20"]


def test_the_page_fields_become_a_request(rr_log, limits):
    token = upload(limits, rr_log)
    columns = {"session_id": "(none)", "user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp",
               "event": "event", "category_id": "(none)"}
    request = yourdata.request(limits, token, columns, "epoch milliseconds", "view, addtocart", "temporal (last days)",
                               30, "2", 1, ["pop", "evil"], "(none)", 99)
    assert request.uses_retailrocket and request.events == ("view", "addtocart") and request.test_days == 2.0
    assert request.baselines == ("pop",) and request.neural is None and request.minutes == limits.train_minutes
    with pytest.raises(DataError, match="no column 'nope'"):
        yourdata.request(limits, token, {**columns, "item_id": "nope"}, "ISO dates", "", "temporal", 30, 1, 1,
                         ["pop"], None, 1)
    with pytest.raises(DataError, match="upload an event log first"):
        yourdata.request(limits, None, columns, "ISO dates", "", "temporal", 30, 1, 1, ["pop"], None, 1)
    with pytest.raises(DataError, match="session gap must be a number"):
        yourdata.request(limits, token, columns, "ISO dates", "", "temporal", "soon", 1, 1, ["pop"], None, 1)


# ------------------------------------------------------------------------------------------------ compare


def test_compare_shows_three_models_side_by_side(rr_log, limits, tmp_path):
    from recsys.app import load_visitor
    from recsys.app.compare import compare_view

    token = upload(limits, rr_log)
    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", retailrocket=True,
                              baselines=("pop", "sr", "vsknn"))
    trained = wb.train(limits, token, request, log=lambda _: None)
    service = AppService(checkpoints_dir=str(tmp_path / "none"))
    keys = wb.register(service, trained)
    visitors = service.visitors_for(keys[0])
    vid = next(v for v in visitors.samples if len(visitors.sessions[v]) >= 3)
    session, target, _ = load_visitor(service, vid, keys[0])
    view, status = compare_view(service, keys, session, 10, target)
    assert view.count("class='cmp-col'") == 3
    for name in ("pop", "sr", "vsknn"):
        assert f"<h4>events · {name}</h4>" in view
    assert re.search(r"HR@10 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", view)  # test metrics with their CI
    assert view.count("Held-out next item") == 3
    shared = int(re.search(r"\*\*(\d+)\*\* items appear in more than one list", status).group(1))
    assert view.count("class='cmp-shared'") >= shared > 0
    assert compare_view(service, keys[:1], session)[1] == "Choose two or three models to compare."
    # a name from the data is text, never markup
    service.private[keys[0]] = replace(service.private[keys[0]], title="<img src=x onerror=alert(1)>")
    view, _ = compare_view(service, keys, session, 5, target)
    assert "<img" not in view and "&lt;img" in view


def test_a_neural_model_trains_under_its_time_budget(rr_log, tmp_path):
    limits = wb.Limits(root=tmp_path / "work", train_minutes=0.05)  # the server's cap: 3 seconds
    token = upload(limits, rr_log)
    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", retailrocket=True,
                              baselines=("pop",), neural="gru4rec", minutes=5)
    trained = wb.train(limits, token, request, log=lambda _: None)
    spec = json.loads((trained.run / "gru4rec.params.json").read_text())
    assert spec == {"model": "gru4rec", "params": {"train": {"max_minutes": 0.05, "val_max_cases": wb.VALID_CASES}}}
    fit = trained.results["models"]["gru4rec"]["fit"]
    assert fit["epochs"] >= 1 and trained.results["models"]["gru4rec"]["fit_seconds"] < 60
    assert trained.results["models"]["gru4rec"]["params"]["train"]["max_minutes"] == 0.05
    assert load(str(trained.run / "gru4rec")).n_items == load(str(trained.run / "pop")).n_items
    assert "--params gru4rec.params.json" in (trained.run.parent / "commands.sh").read_text()
    # the dashboard of the upload: both models compared, the table with CIs, the neural model's curves
    service = AppService(checkpoints_dir=str(tmp_path / "none"))
    wb.register(service, trained)
    prefix = f"{wb.KEY_PREFIX}{token}/"
    assert dashboard.choices(service, token) == [("events (your upload, 2 models)", prefix)]
    board = dashboard.build(service, prefix, token)
    assert sorted(board.order) == ["gru4rec", "pop"] and set(board.bars) == {"test HR@10", "test MRR@20",
                                                                            "test NDCG@10"}
    for frame in board.bars.values():
        assert list(frame["model"]) == board.order and re.fullmatch(r"0\.\d{3} – [01]\.\d{3}", frame["95% CI"][0])
    expected = trained.results["models"]["gru4rec"]["test"]["hr@10"]
    row = board.table[board.table["model"].str.startswith("gru4rec")].iloc[0]
    assert row["test HR@10"] == f"{expected['value']:.3f} [{expected['ci95'][0]:.3f}, {expected['ci95'][1]:.3f}]"
    assert row["valid MRR@20"].startswith(f"{trained.scores['gru4rec']:.3f} [")
    history = json.loads((trained.run / "gru4rec" / "metrics.json").read_text())["history"]
    assert len(history) == fit["epochs"] >= 1
    assert set(board.validation["model"]) == {"gru4rec"} == set(board.loss["model"])  # pop has no epochs
    assert len(board.loss) == len(history) and board.epochs == [str(h["epoch"]) for h in history]
    assert board.validation.query("metric == 'NDCG@10'")["value"].tolist() == [h["ndcg@10"] for h in history]
    assert "gru4rec" in board.curves_note
    # another page's token sees nothing of it
    other = "0" * 32
    assert dashboard.choices(service, other) == [] and dashboard.build(service, prefix, other).table.empty


@pytest.mark.parametrize("form", ["gz", "parquet", "tsv"])
def test_compressed_parquet_and_tsv_logs_train(rr_log, tmp_path, limits, form):
    frame = generic_frame(rr_log)
    path = tmp_path / f"shop.{'csv.gz' if form == 'gz' else form}"
    if form == "parquet":
        frame.to_parquet(path)
    elif form == "gz":
        with gzip.open(path, "wt") as f:
            frame.to_csv(f, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t")
    token = upload(limits, path)
    trained = wb.train(limits, token, wb.TrainRequest(columns=read_head(path).guess, baselines=("pop",)),
                       log=lambda _: None)
    assert trained.name == "shop" and [p.name for p in trained.model_folders()] == ["pop"]
    assert trained.results["data"]["source"] == "csv"


def test_the_models_name_their_data_set_after_the_upload(rr_log, limits):
    token = wb.new_upload(limits, "My shop log (Nov).csv")
    wb.store_file(limits, token, rr_log)
    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", baselines=("pop",))
    trained = wb.train(limits, token, request, log=lambda _: None)
    assert trained.name == "My-shop-log-Nov" and trained.results["data"]["name"] == trained.name
    assert trained.results["data"]["source"] == "csv"  # the reader stays recorded
    assert json.loads((trained.run / "results.json").read_text())["data"]["name"] == trained.name
    assert json.loads((trained.run / "pop" / "metrics.json").read_text())["data"]["name"] == trained.name
    assert "on My-shop-log-Nov" in (trained.run / "pop" / "README.md").read_text()
    results_md = (trained.run / "results.md").read_text()  # regenerated with the name, the reader kept
    assert "Data: My-shop-log-Nov (read as csv) — " in results_md and "Data: csv" not in results_md
    from recsys.app.cards import model_card

    service = AppService(checkpoints_dir=str(Path(limits.root) / "none"))
    keys = wb.register(service, trained)
    card = model_card(service, keys[0])
    assert "Trained on **My\\-shop\\-log\\-Nov**" in card and "**csv**" not in card


def test_an_upload_is_restored_after_a_restart_until_its_time_limit(rr_log, limits, tmp_path):
    token = upload(limits, rr_log)
    assert wb.restore(limits, token) is None  # uploaded, never trained
    request = wb.TrainRequest(columns=read_head(rr_log).guess, timestamp_unit="ms", baselines=("pop", "sr"))
    trained = wb.train(limits, token, request, log=lambda _: None)
    # a new process: an empty service, the same work folder
    service = AppService(checkpoints_dir=str(tmp_path / "none"))
    again = wb.restore(limits, token)
    assert (again.run, again.data, again.name) == (trained.run, trained.data, trained.name)
    assert set(again.scores) == {"pop", "sr"}  # from results.json (the log line had them to 4 places)
    assert all(abs(again.scores[m] - trained.scores[m]) < 1e-4 for m in again.scores)
    keys = wb.register(service, again)
    assert [service.private[k].title for k in keys][0] == "events · sr"  # best on validation first
    assert len(service.visitors_for(keys[0])) == len(Visitors.from_processed(trained.data))
    assert 23.9 < wb.expires_in_hours(limits, token) <= 24
    with pytest.raises(DataError, match="no longer available"):
        wb.restore(limits, "f" * 32)
    with pytest.raises(DataError, match="no longer available"):
        wb.restore(limits, "../" + token)
    assert wb.cleanup(limits, now=time.time() + 24 * 3600 + 60) == [token]
    with pytest.raises(DataError, match="no longer available"):
        wb.restore(limits, token)


def test_the_dashboard_of_the_apps_own_models(tmp_path):
    from tools.loadtest import build_demo_checkpoints

    root = build_demo_checkpoints(tmp_path / "checkpoints")  # placeholder metrics: no "data" block, no history
    metrics = json.loads((root / "spop" / "metrics.json").read_text())
    metrics["data"] = {"source": "csv", "name": "<b>shop</b>"}  # a name from a folder is text, never markup
    (root / "spop" / "metrics.json").write_text(json.dumps(metrics))
    service = AppService.from_env({"RECSYS_CHECKPOINTS": str(root), "RECSYS_DATA": str(tmp_path / "none")})
    assert dashboard.choices(service) == [("(data set not recorded) (2 models)", "data:(data set not recorded)"),
                                          ("<b>shop</b> (1 model)", "data:<b>shop</b>")]
    board = dashboard.build(service, "data:(data set not recorded)")
    assert board.order == ["itemknn", "pop"]  # best on validation MRR@20 first
    assert board.table["model"].tolist() == ["itemknn ★", "pop"]
    assert board.table["valid HR@10"].tolist() == ["0.400", "0.200"]  # bare numbers: no CI recorded
    assert board.table["test HR@10"].tolist() == ["0.400 [0.350, 0.450]", "0.200 [0.150, 0.250]"]
    assert board.bars["test MRR@20"]["95% CI"].tolist() == ["not recorded"] * 2
    assert board.validation.empty and board.loss.empty and "No training curves" in board.curves_note
    shop = dashboard.build(service, "data:<b>shop</b>")
    assert shop.order == ["spop"] and "<b>" not in shop.title and "&lt;b&gt;" in shop.title
    assert dashboard.build(service, "data:nothing").table.empty
    assert dashboard.build(service, f"{wb.KEY_PREFIX}{'a' * 32}/").table.empty  # no token: no upload
