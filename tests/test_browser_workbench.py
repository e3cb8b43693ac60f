"""Issue 17's "Your data" tab in a real browser (Debian's chromium driven by Playwright): upload a generated log in
the RetailRocket layout and a generic CSV, correct a mapping, train the baselines, see the new models recommend to
the upload's visitors, download the zip, compare three of them side by side on a visitor, and a bad file's
message; another page never lists the upload's models.

The app serves the app tests' tiny folders; uploads go to a temporary RECSYS_WORK. With RECSYS_SCREENSHOTS set,
the RetailRocket test writes assets/app_your_data.png; otherwise the screenshot goes to the temporary folder.
Skipped when /usr/bin/chromium or playwright is missing (`apt-get install chromium`; never `playwright install`).
"""

import os
import re
import zipfile
from pathlib import Path

import pytest
from chromium import ARGS, CHROMIUM, playwright_or_skip
from test_app_logic import build_checkpoints, build_processed
from test_workbench import TINY, generic_frame

from recsys.datasets.synthetic import generate_retailrocket_log
from tools import loadtest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("uploads")
    events = generate_retailrocket_log(tmp / "rr", **TINY)["events"]
    shop = generic_frame(events).rename(columns={"product_sku": "thing"})  # "thing": no name says item
    shop.to_csv(tmp / "shop.csv", index=False)
    (tmp / "broken.csv").write_bytes(b"PK\x03\x04 a zip archive named .csv")
    return {"rr": events, "shop": tmp / "shop.csv", "broken": tmp / "broken.csv", "tmp": tmp}


def launch(tmp: Path, **env: str):
    """app.py over the app tests' tiny folders, uploads under tmp/work, with these environment variables."""
    env = {"RECSYS_WORK": str(tmp / "work"), **env}
    return loadtest.launch_app(build_checkpoints(tmp / "checkpoints"), build_processed(tmp / "data"),
                               tmp / "app.log", extra_env=env)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app_workbench")
    proc, url = launch(tmp, RECSYS_UPLOAD_MB="256", RECSYS_TRAIN_MINUTES="10", RECSYS_UPLOAD_EVENTS="5000000")
    yield url, tmp
    loadtest.stop_app(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, served):
    page = browser.new_page(viewport={"width": 1360, "height": 1100})
    page.set_default_timeout(90_000)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(served[0], wait_until="domcontentloaded")
    page.wait_for_function("() => (document.querySelector('#status') || {innerText: ''}).innerText.length > 40")
    yield page
    page.close()


def wait_text(page, selector: str, needle: str) -> str:
    page.wait_for_function("([s, n]) => (document.querySelector(s) || {innerText: ''}).innerText.includes(n)",
                           arg=[selector, needle])
    return page.locator(selector).inner_text()


def upload(page, path: Path) -> str:
    page.get_by_role("tab", name="Your data").click()
    page.locator("#wb-file input[type=file]").set_input_files(str(path))
    return wait_text(page, "#wb-status", "Read " if path.suffix == ".csv" and "broken" not in path.name else "⚠️")


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(option)}$")).first.click()


def train_and_wait(page, n_models: int) -> str:
    page.locator("#wb-train").click()
    return wait_text(page, "#wb-result", f"Trained {n_models} models")


def recommend_a_visitor(page) -> str:
    page.get_by_role("tab", name="Recommend").click()
    page.get_by_label("Visitor", exact=True).click()
    page.get_by_role("option").first.click()
    return wait_text(page, "#status", "Visitor")


def dashboard_of(page, name: str, n_models: int) -> str:
    """The Dashboard tab once it shows the upload's data set; its table's text."""
    page.get_by_role("tab", name="Dashboard").click()
    wait_text(page, "#dash-title", f"{n_models} models")
    assert f"{name} (your upload, {n_models} models)" in page.locator("#dash-dataset input").input_value()
    for metric in ("hr", "mrr", "ndcg"):  # Gradio's native plots, drawn in the page
        page.locator(f"#dash-bar-{metric} canvas, #dash-bar-{metric} svg").first.wait_for()
    return page.locator("#dash-table").inner_text()


def test_retailrocket_log_trains_recommends_and_downloads(page, files, served):
    status = upload(page, files["rr"])
    assert "RetailRocket" in status and "epoch milliseconds" in status
    assert "visitorid" in page.locator("#wb-preview").inner_text()
    assert page.locator("#wb-col-item_id input").input_value() == "itemid"
    assert "256 MB" in page.locator("#wb-intro").inner_text()  # the limits are stated
    page.locator("#wb-events textarea, #wb-events input").first.fill("view")
    result = train_and_wait(page, 4)
    assert re.search(r"^sr( \(best on validation\))?\s+0\.\d{3}\s", result, re.M)  # each model's valid score
    commands = page.locator("#wb-commands").inner_text()
    assert "prepare_data.py" in commands and "--source retailrocket" in commands and "--events view" in commands
    shot = (ROOT / "assets" if os.environ.get("RECSYS_SCREENSHOTS") else files["tmp"]) / "app_your_data.png"
    page.screenshot(path=str(shot), full_page=True)
    with page.expect_download() as download:
        page.locator("#wb-zip a").first.click()
    target = files["tmp"] / "models.zip"
    download.value.save_as(target)
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
    assert {"events/sr/model.safetensors", "events/sr/config.json", "events/results.md", "events/commands.sh"} <= names
    table = dashboard_of(page, "events", 4)
    assert len(re.findall(r"0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", table)) == 4 * 6  # valid and test, with CIs
    assert all(name in table for name in ("pop", "spop", "sr", "vsknn"))
    assert "No training curves" in page.locator("#dash-curves-note").inner_text()
    assert not page.locator("#dash-validation").is_visible()
    assert "events · " in page.locator("#model input").input_value()
    status = recommend_a_visitor(page)
    assert "items" in status
    assert page.locator("#recs [role=row][data-index]").count() >= 5
    # Compare: the upload's three best models side by side on one of its visitors
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-visitor input").click()
    page.get_by_role("option").first.click()
    status = wait_text(page, "#cmp-status", "models on the same session")
    assert page.locator("#cmp-view .cmp-col").count() == 3
    assert page.locator("#cmp-view h4").all_inner_texts()[0].startswith("events · ")
    assert page.locator("#cmp-view .cmp-landed").count() == 3 and "highlighted" in status
    assert re.search(r"HR@10 0\.\d{3} \[", page.locator("#cmp-view .cmp-metrics").first.inner_text())
    if os.environ.get("RECSYS_SCREENSHOTS"):
        page.screenshot(path=str(ROOT / "assets" / "app_compare.png"), full_page=True)
    assert not page.errors


def test_generic_csv_with_a_corrected_mapping(page, browser, files, served):
    status = upload(page, files["shop"])
    assert "Please choose" in status and "item id" in status
    assert page.locator("#wb-col-user_id input").input_value() == "customer"
    choose(page, "Item id", "thing")
    choose(page, "Neural model", "gru4rec")
    page.locator("#wb-minutes input").fill("0.15")  # about 9 seconds
    result = train_and_wait(page, 5)
    assert "shop" in result
    assert "shop · " in page.locator("#model input").input_value()
    recommend_a_visitor(page)
    first = page.locator("#recs [role=row][data-index]").first.inner_text()
    assert re.search(r"\bp\d+\b", first)  # the upload's own item ids ("p…")
    # the dashboard: the upload's five models, and GRU4Rec's curves drawn in the page
    table = dashboard_of(page, "shop", 5)
    assert "gru4rec" in table and "gru4rec" in page.locator("#dash-curves-note").inner_text()
    page.locator("#dash-validation canvas, #dash-validation svg").first.wait_for()
    page.locator("#dash-loss canvas, #dash-loss svg").first.wait_for()
    if os.environ.get("RECSYS_SCREENSHOTS"):
        page.wait_for_timeout(1500)  # the plots' own rendering
        page.screenshot(path=str(ROOT / "assets" / "app_dashboard.png"), full_page=True)
    # the model card names the upload, not the reader
    page.get_by_role("tab", name="Recommend").click()
    page.locator("#about-model").get_by_text("About this model:").first.click()
    assert "Trained on shop." in wait_text(page, "#card", "Trained on")
    # a reload keeps this browser's upload and its models
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("tab", name="Your data").click()
    assert "5 models trained on shop" in wait_text(page, "#wb-result", "Welcome back")
    page.get_by_role("tab", name="Recommend").click()
    page.locator("#model input").click()
    assert any("shop · gru4rec" in o for o in page.get_by_role("option").all_inner_texts())
    page.keyboard.press("Escape")
    # another visitor of the site never sees this upload's models
    other = browser.new_page()
    other.goto(served[0], wait_until="domcontentloaded")
    other.wait_for_selector("#model input")
    other.locator("#model input").click()
    options = other.get_by_role("option").all_inner_texts()
    other.close()
    assert options and not any("shop ·" in o or "events ·" in o for o in options)


def test_a_bad_file_gets_the_readers_message(page, files):
    status = upload(page, files["broken"])
    assert "zip archive" in status and "Traceback" not in status


def test_a_bad_mapping_is_refused_before_any_work(page, files):
    upload(page, files["shop"])
    choose(page, "Item id", "when")  # the time column again: refused before any work
    page.locator("#wb-train").click()
    result = wait_text(page, "#wb-result", "⚠️")
    assert "two roles" in result


def test_a_file_over_the_size_limit_is_refused_in_the_page(browser, files, tmp_path):
    proc, url = launch(tmp_path, RECSYS_UPLOAD_MB="0.02")  # 20 kB; the log is about 85 kB
    try:
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Your data").click()
        assert "0.02 MB" in page.locator("#wb-intro").inner_text()
        page.locator("#wb-file input[type=file]").set_input_files(str(files["rr"]))
        page.wait_for_function("() => /exceed/i.test(document.body.innerText)")
        text = page.locator("body").inner_text()
        page.close()
    finally:
        loadtest.stop_app(proc)
    assert re.search(r'exceed the maximum allowed size of [\d.]+ Kb: "events.csv"', text), text[-2000:]
    assert not list((tmp_path / "work").glob("*/input/*"))  # nothing was stored


def reopen(page, url: str, tries: int = 3) -> None:
    """Load `url` again in `page`. The old page's Gradio client, reconnecting to the restarted server, can navigate
    the frame itself at that moment and abort ours (net::ERR_ABORTED, seen once in CI): try again a few times."""
    from playwright.sync_api import Error

    for attempt in range(tries):
        try:
            page.goto(url, wait_until="domcontentloaded")
            return
        except Error:
            if attempt == tries - 1:
                raise
            page.wait_for_timeout(1000)


def test_an_upload_survives_a_server_restart(browser, files, tmp_path, monkeypatch):
    proc, url = launch(tmp_path)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    page.set_default_timeout(90_000)
    try:
        page.goto(url, wait_until="domcontentloaded")
        upload(page, files["rr"])
        train_and_wait(page, 4)
    finally:
        loadtest.stop_app(proc)
    monkeypatch.setattr(loadtest, "free_port", lambda: port)  # the same address: the browser's storage is per site
    proc, url = launch(tmp_path)
    try:
        reopen(page, url)
        page.get_by_role("tab", name="Your data").click()
        assert "4 models trained on events" in wait_text(page, "#wb-result", "Welcome back")
        table = dashboard_of(page, "events", 4)
        assert "vsknn" in table
        page.get_by_role("tab", name="Recommend").click()  # a restored model serves
        page.locator("#model input").click()
        page.get_by_role("option", name=re.compile(r"^events · sr")).first.click()
        page.locator("#about-model").get_by_text("About this model:").first.click()
        assert "Trained on events." in wait_text(page, "#card", "Trained on events")
        wait_text(page, "#status", "Cold start")
        page.locator("#recs [role=row][data-index]").nth(4).wait_for()
    finally:
        page.close()
        loadtest.stop_app(proc)
