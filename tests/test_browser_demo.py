"""Issue 14 in a real browser (Debian's chromium driven by Playwright): names first in every view, the name
picker, the held-out check on a repeat, a reason per item, the model's data set, and each defect of the audit
(K out of range, one paste-safe visitor search, the Hub banner, plain toasts, chart labels at K = 100, unbroken
headers, no gap under "About this model", a first screen with content, "Clear session"'s message, no console
error, the true count of a 5,000-item paste, a 300,000-character paste, the footer).

The app serves the app tests' tiny Pop / S-Pop / item-kNN folders, their items named as the synthetic catalogue
names them, recorded as trained on synthetic data with repeats allowed, and sample visitors that include a
repeat and a "17415:0"-style id. Screenshots: with RECSYS_SCREENSHOTS=<checkpoints folder> (e.g. one that
`make demo` built; visitors from RECSYS_SCREENSHOTS_DATA, default data/processed/synthetic) the last test serves
that folder and writes assets/app_*.png; otherwise it takes them of the test app into a temporary folder.

Skipped when /usr/bin/chromium or playwright is missing (`apt-get install chromium`; never `playwright install`).
"""

import json
import os
import re
from pathlib import Path

import pytest
from chromium import ARGS, CHROMIUM, playwright_or_skip
from test_app_logic import CATEGORY, NAMES, RAW, N, build_checkpoints, build_processed

from recsys.app.visitors import Visitors
from tools import loadtest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
REPEAT = ["101", "102", "103", "104", "102"]  # visitor repeat:3 ends on an item of their session

sync_api = playwright_or_skip()


def build_demo_app(tmp: Path) -> tuple[Path, Path]:
    """Named folders recorded as trained on synthetic data with repeats allowed, and the sample visitors."""
    checkpoints, data = build_checkpoints(tmp / "checkpoints"), build_processed(tmp / "data")
    for folder in checkpoints.iterdir():
        metrics_path = folder / "metrics.json"
        metrics = json.loads(metrics_path.read_text())
        metrics.update(data={"source": "synthetic", "n_items": N}, protocol={"exclude_seen": False})
        metrics_path.write_text(json.dumps(metrics))
    broken = checkpoints / "broken"  # listed (it has a config.json) but cannot be loaded
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model": "pop"}))
    visitors = Visitors.from_processed(data).sessions
    visitors.update({"repeat:3": REPEAT, "17415:0": ["105", "106", "107"]})
    (checkpoints / "sample_sessions.json").write_text(json.dumps(visitors))
    return checkpoints, data


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app_demo")
    proc, url = loadtest.launch_app(*build_demo_app(tmp), tmp / "app.log")
    yield url, tmp / "app.log"
    loadtest.stop_app(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, served):
    """A fresh page on the first screen, recording console errors and toasts."""
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    page.set_default_timeout(60_000)
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(served[0], wait_until="domcontentloaded")
    wait_status(page, "Cold start")
    yield page
    page.close()


def status_text(page) -> str:
    return page.locator("#status").inner_text()


def wait_status(page, needle: str) -> str:
    page.wait_for_function("n => (document.querySelector('#status') || {innerText: ''}).innerText.includes(n)",
                           arg=needle)
    return status_text(page)


def recommend_and_wait(page, needle: str) -> str:
    """Press Recommend and wait for a new answer containing `needle`."""
    before = status_text(page)
    page.locator("#recommend").click()
    page.wait_for_function("([n, b]) => { const s = document.querySelector('#status').innerText;"
                           " return s.includes(n) && s !== b; }", arg=[needle, before],
                           timeout=120_000)  # a 300,000-character paste on a busy 2-core machine
    return status_text(page)


def table_rows(page) -> list[list[str]]:
    rows = page.locator("#recs [role=row][data-index]")
    return [[c.strip() for c in rows.nth(i).locator("[role=gridcell]").all_inner_texts()]
            for i in range(rows.count())]


def toasts(page) -> list[str]:
    return page.locator("[data-testid='toast-body']").all_inner_texts()


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=re.compile(option)).first.click()


# ---------------------------------------------------------------------------------------------------------------
# names, reasons, scores, the held-out check, the data set


def test_names_first_in_every_view(page):
    choose(page, "Visitor", r"^alice:0$")
    status = wait_status(page, "Visitor alice:0")
    session = page.locator("#session textarea").input_value().split("\n")
    assert session[0] == f"{NAMES['105']} (105)" and len(session) == 5  # the session box: "name (id)" per line
    assert f"“{NAMES['110']}”" in status and f"“{NAMES['109']}”" in status  # held out; most recent item
    rows = table_rows(page)
    assert rows and all(r[1] == NAMES[r[2]] for r in rows)  # the table: name, then id
    assert {r[5] for r in rows} <= set(CATEGORY.values()) and rows[0][6].endswith(".90")  # category, price
    labels = page.locator("#chart .bar-label").all_inner_texts()
    assert labels[0] == f"1. {NAMES[rows[0][2]]}"  # chart labels are names
    assert NAMES["109"] in page.locator("#why").inner_text()  # the explanation names items too


def test_items_are_added_by_name_with_suggestions(page):
    page.get_by_role("tab", name="Type items").click()
    box = page.locator("#additem input")
    box.click()
    box.press_sequentially("beanie, na", delay=30)
    options = page.get_by_role("option").all_inner_texts()
    assert options == [f"{NAMES['106']} (106)"]  # only names that exist in the loaded model, filtered as typed
    page.get_by_role("option").first.click()
    status = wait_status(page, "from 1 item")
    assert page.locator("#session textarea").input_value() == f"{NAMES['106']} (106)"
    assert f"“{NAMES['106']}”" in status
    # typed names (with commas) and ids work in the session box too; the placeholder shows existing items
    assert page.locator("#session textarea").get_attribute("placeholder").split("\n")[1] == f"{NAMES['101']} (101)"
    page.locator("#session textarea").fill(f"{NAMES['103'].upper()}, 104")
    assert "Personalised" in recommend_and_wait(page, "from 2 items")


def test_every_item_has_a_reason_and_a_comparable_score(page):
    page.locator("#session textarea").fill("101\n103")
    recommend_and_wait(page, "from 2 items")
    rows = table_rows(page)
    assert all(r[4] for r in rows) and any(r[4].startswith("often viewed with “") for r in rows)
    assert sum(float(r[3].rstrip("%<")) for r in rows) <= 100.5 and "probability" in page.locator("#hint").inner_text()
    choose(page, "Model", r"^pop ")
    status = wait_status(page, "pop uses")
    assert "Not personalised" in status and "popularity only" in status  # what Pop used, said plainly
    assert all(r[4].startswith("popular in ") for r in table_rows(page))


def test_held_out_next_item_that_repeats_a_session_item(page):
    assert "computed with repeats allowed" in page.locator("#exclude").inner_text()
    assert not page.locator("#exclude input").is_checked()  # the default is how the metrics were computed
    search = page.locator("#search input")
    search.fill("repeat:3")
    search.press("Enter")
    status = wait_status(page, "Visitor repeat:3")
    assert "actually viewed" in status and "**rank" not in status and re.search(r"rank \d+ in this list", status)
    page.locator("#exclude input").check()  # hiding the session's items hides the held-out repeat
    status = wait_status(page, "repeats an item of the session")
    assert "not in this top 10" in status and "computed with repeats allowed, where it ranks" in status


def test_the_page_says_which_data_each_model_learned_from(page):
    banner = page.locator("#data").inner_text()
    assert "Trained on: synthetic" in banner and "not real" in banner
    page.get_by_role("button", name=re.compile("^About this model")).click()
    card = page.locator("#card").inner_text()
    assert "Trained on synthetic data" in card and "95% CI" in card and "hyperparameter" in card
    assert "README.md" in card


# ---------------------------------------------------------------------------------------------------------------
# the audit's defects


@pytest.mark.parametrize(("typed", "note"), [("0", "K must be at least 1 (got 0); using 1."),
                                             ("-5", "K must be at least 1 (got -5); using 1."),
                                             ("1000", "K is capped at 100 (got 1000).")])
def test_k_out_of_range_gets_the_apps_own_message(page, served, typed, note):
    box = page.locator("#k input")
    box.fill(typed)
    box.press("Enter")
    status = wait_status(page, note)
    assert "Error" not in status and not toasts(page) and not page.errors
    assert "Traceback" not in served[1].read_text()


def test_one_visitor_search_that_reads_a_paste_and_explains_ids(page):
    search = page.locator("#search input")
    search.fill("visitor:")  # a paste: no keystroke follows
    page.wait_for_function("() => document.querySelector('#visitor').innerText.includes('3 visitors match')")
    search.fill("7415")
    search.press("Enter")  # part of an id that one visitor has: that visitor
    status = wait_status(page, "Visitor 17415:0")
    assert "the only visitor id containing it is 17415:0" in status and "session 0 of visitor 17415" in status
    search.fill("visitor:")
    search.press("Enter")  # several: say which, load none
    assert "3 ids contain it" in wait_status(page, "ids contain it")
    assert "visitor:n: the visitor, then which of their sessions this is" in page.locator("body").inner_text()
    assert page.locator("input[aria-label='Visitor'], #visitor input").count() == 1  # one box to type in


def test_plain_toasts(page):
    page.locator("#exclude input").check()
    wait_status(page, "Cold start")
    page.locator("#session textarea").fill(", ".join(RAW))  # every item seen: nothing left to recommend
    page.locator("#recommend").click()
    page.wait_for_selector("[data-testid='toast-body']")
    text = " ".join(toasts(page))
    assert "nothing left to recommend" in text and "`" not in text and "**" not in text and "\\" not in text


def test_chart_labels_do_not_overlap_at_k_100(page):
    box = page.locator("#k input")
    box.fill("100")
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelectorAll('#chart .bar-row').length === {N}")  # all 20 items
    rects = page.locator("#chart .bar-label").evaluate_all("els => els.map(e => e.getBoundingClientRect().toJSON())")
    assert len(rects) == N and all(r["height"] < 30 for r in rects)
    assert all(a["bottom"] <= b["top"] + 0.5 for a, b in zip(rects, rects[1:], strict=False))  # one row each
    page.locator("#k input").fill("10")


def test_why_headers_do_not_break_mid_word(page):
    page.locator("#session textarea").fill("101\n103\n105")
    recommend_and_wait(page, "from 3 items")
    broken = page.evaluate("""() => [...document.querySelectorAll('#why th')].flatMap(th => {
        const out = [], text = th.firstChild ? th.innerText : '';
        const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          for (const m of node.textContent.matchAll(/\\S+/g)) {
            const r = document.createRange(); r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
            if (r.getClientRects().length > 1) out.push(m[0]);
          }
        }
        return out; })""")
    assert page.locator("#why th").count() >= 2 and broken == []


def test_about_this_model_opens_without_a_gap(page):
    tabs_before = page.locator("#search").bounding_box()["y"]
    page.get_by_role("button", name=re.compile("^About this model")).click()
    page.wait_for_selector("#card table")
    about = page.locator("#about-model").bounding_box()
    tabs = page.locator("#search").bounding_box()
    assert tabs["y"] > tabs_before  # the inputs move below the opened card ...
    assert tabs["y"] - (about["y"] + about["height"]) < 150  # ... right below it: no blank gap


def test_first_screen_has_content(page):
    assert page.locator("#chart .bar-row").count() == 10  # the popular items, drawn: no empty chart frame
    assert "Popularity fallback" in page.locator("#why").inner_text()  # no empty panel
    assert len(table_rows(page)) == 10 and not page.errors


def test_clear_session_keeps_its_message(page):
    page.locator("#session textarea").fill("101, 102")
    recommend_and_wait(page, "from 2 items")
    page.locator("#clear").click()
    wait_status(page, "Session cleared")
    page.wait_for_timeout(1500)  # nothing that follows overwrites it
    assert "Session cleared" in status_text(page) and page.locator("#session textarea").input_value() == ""


def test_an_unknown_model_gives_no_console_error(page):
    box = page.locator("#model input")
    box.click()
    box.fill("no-such-model")
    box.press("Enter")
    page.keyboard.press("Tab")
    page.wait_for_timeout(1500)
    assert not page.errors and "Unknown model" not in status_text(page)  # only listed models can be chosen
    assert box.input_value().startswith("itemknn")
    choose(page, "Model", r"^broken ")  # listed, but its folder cannot be loaded: a message, no console error
    status = wait_status(page, "could not be loaded")
    page.wait_for_selector("[data-testid='toast-body']")
    assert "broken" in status and not page.errors and "`" not in " ".join(toasts(page))
    page.get_by_role("button", name=re.compile("^About this model")).click()
    assert "could not be loaded" in page.locator("#card").inner_text()


def test_a_5000_item_paste_reports_its_true_count(page):
    page.locator("#session textarea").fill(", ".join(RAW[i % N] for i in range(5000)))
    status = recommend_and_wait(page, "most recent of")
    assert "Only the 200 most recent of 5,000 items were used." in status


def test_a_300000_character_paste_gets_a_kind_message(page, served):
    page.locator("#session textarea").fill("x" * 300_000 + ", 101")
    status = recommend_and_wait(page, "very long")
    assert "only its last 80,000 characters were read" in status and "from 1 item" in status
    log = served[1].read_text()  # no request refused by the body limit (a log time's milliseconds may read 413)
    assert not toasts(page) and not page.errors and " 413" not in log and "Request body over" not in log


def test_the_footer_is_shown(page):
    assert page.get_by_text("Use via API").is_visible()


def test_hub_banner_without_backslashes_or_blame(browser, tmp_path):
    """A Hub repo the Hub cannot list, HF_HUB_OFFLINE unset: the banner names the address as written and does
    not blame the offline switch."""
    checkpoints, data = build_demo_app(tmp_path)
    env = {"RECSYS_MODELS": "nobody/x", "HF_ENDPOINT": f"http://127.0.0.1:{loadtest.free_port()}",
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    proc, url = launch_with_hub(tmp_path, checkpoints, data, env)
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("[data-testid=markdown].note")
        banner = page.locator("[data-testid=markdown].note").inner_text()
        assert "nobody/x" in banner and env["HF_ENDPOINT"] in banner and "cannot be reached" in banner
        assert "\\" not in banner and "HF_HUB_OFFLINE" not in banner
        page.close()
    finally:
        loadtest.stop_app(proc)


def launch_with_hub(tmp: Path, checkpoints: Path, data: Path, env: dict):
    """app.py with Hub repos (loadtest.launch_app clears RECSYS_MODELS and sets HF_HUB_OFFLINE)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = loadtest.free_port()
    full = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
            "RECSYS_CHECKPOINTS": str(checkpoints), "RECSYS_DATA": str(data), "GRADIO_ANALYTICS_ENABLED": "False",
            **env}
    log = open(tmp / "hub-app.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "hub-app.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("app.py did not start")


def test_screenshots(browser, served, tmp_path):
    """assets/app_screenshot.png (a visitor, the table, the chart, the reasons) and assets/app_model_card.png
    (About this model), of the app serving $RECSYS_SCREENSHOTS (written into assets/), else of the test app (into
    a temporary folder)."""
    target = os.environ.get("RECSYS_SCREENSHOTS")
    proc = None
    if target:
        data = os.environ.get("RECSYS_SCREENSHOTS_DATA") or str(ROOT / "data" / "processed" / "synthetic")
        proc, url = loadtest.launch_app(Path(target), Path(data), tmp_path / "app.log")
        out = ROOT / "assets"
    else:
        url, out = served[0], tmp_path
    try:
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        wait_status(page, "Cold start")
        page.get_by_label("Model", exact=True).click()
        sasrec = page.get_by_role("option", name=re.compile(r"^sasrec "))
        if sasrec.count():  # the design card's model when it is served, else the default
            sasrec.first.click()
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(1500)
        choose(page, "Visitor", r".")
        wait_status(page, "actually viewed")
        page.wait_for_timeout(800)
        page.screenshot(path=str(out / "app_screenshot.png"), full_page=True)
        page.get_by_role("button", name=re.compile("^About this model")).click()
        page.wait_for_selector("#card table")
        page.wait_for_timeout(800)
        page.screenshot(path=str(out / "app_model_card.png"), full_page=False)
        page.close()
    finally:
        if proc is not None:
            loadtest.stop_app(proc)
    assert all((out / name).stat().st_size > 20_000 for name in ("app_screenshot.png", "app_model_card.png"))
