"""Gradio demo: next-item recommendations for a shopper's session, from any trained model folder.

    python app.py          # serves on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 127.0.0.1:7860)

Models: every `$RECSYS_CHECKPOINTS/<name>/` folder (default `checkpoints/`) and every model of the Hub repos in
`$RECSYS_MODELS` (comma-separated repo ids). Sample visitors: `$RECSYS_SAMPLES` (default
`<checkpoints>/sample_sessions.json`) or the test split of the processed data set `$RECSYS_DATA`
(default `data/processed/synthetic`). On a machine with no model at all, `python app.py` first builds the
default ones (recsys.pipeline.ensure_default_models), then serves. Requests run at `$RECSYS_TORCH_THREADS` torch
threads each (default 1).

All logic lives in recsys/app/; the handlers here only adapt it to Gradio and never raise:
errors come back as a status message (and a toast), never as a traceback; the typed API endpoints, which have no
status line, answer with an error message instead. Every request value reaches its handler as sent (Gradio's
preprocessing is off) through `logic.bounded`: text cut to a few times its cap before any work, types checked, a
number that is not one noted (K) or refused (limit). build_demo refuses a handler wired any other way.

Memory: Gradio keeps a SessionState (~75 KB: a copy of every component's config) for each session hash it has
seen, up to `state_session_capacity` sessions (10,000 by default), and one-shot API callers bring a new session
per request. The app keeps at most `$RECSYS_SESSIONS` (default 500) of them, the least recently used going first,
and Gradio's per-event analytics to 1,000 events (docs/BENCHMARKS.md, load test). A request body over 256 KiB
is refused before it is parsed (BodyLimit).
"""

import functools
import inspect
import logging
import os
import threading
import time
from pathlib import Path

# read when the queue is made: Gradio keeps this many events' timings for its monitoring page (10,000 by default)
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")
if __name__ == "__main__":  # the imports below take ~10 s on a 2-core machine: no silent start
    print("Starting the recsys app: loading torch, Gradio and the models ...", flush=True)

import gradio as gr  # noqa: E402 - after the setting above
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from recsys import app as logic  # noqa: E402
from recsys.app import compare, dashboard, trainproc, workbench, yourdata  # noqa: E402
from recsys.app.detect import ROLES  # noqa: E402
from recsys.datasets.schema import DataError  # noqa: E402

log = logging.getLogger("recsys.app")
MAX_SESSIONS = int(os.environ.get("RECSYS_SESSIONS") or 500)  # Gradio session states kept (see the docstring)
# a 20,000-character session is at most 240 KB of JSON (12 bytes per escaped emoji); Gradio also keeps each
# session's last input values in its SessionState, so this bounds that too: 500 sessions x 256 KiB at worst
MAX_REQUEST_BYTES = 256 << 10

SERVICE = logic.AppService.from_env()  # load at import: catalogue, visitors; models load on first use (cached)

CSS = """
.gradio-container {max-width: 1280px !important; margin: auto;}
#status {min-height: 3em;}
#caps, #hint, .hint {opacity: 0.8; font-size: 0.85em;}
#recs table {font-family: ui-sans-serif, system-ui, sans-serif; font-size: 0.9em;}
#why th, #recs th {word-break: normal; overflow-wrap: normal; hyphens: none;}
#why td:first-child {white-space: nowrap;}
.bars {display: flex; flex-direction: column; gap: 3px; font-size: 0.85em; padding: 4px 0;}
.bar-row {display: grid; grid-template-columns: minmax(10em, 22em) 1fr 4.5em; align-items: center; gap: 8px;}
.bar-label {white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}
.bar-track {background: var(--neutral-100, #f3f4f6); border-radius: 3px; height: 0.9em;}
.bar {display: block; height: 100%; border-radius: 3px; background: var(--color-accent, #6366f1);}
.bar-value {text-align: right; font-variant-numeric: tabular-nums;}
.bar-caption {opacity: 0.75; margin-top: 4px;}
"""


# system fonts only: the app must render offline (the default themes fetch Google Fonts)
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def guarded(n_outputs: int, fallback=None):
    """Catch anything a handler raises: show a short message (toast + status), log the traceback server-side.
    A value refused by `logic.bounded` (logic.BadInput) is reported as such, without a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except logic.BadInput as err:
                message = f"Bad input: {err}"
                log.info("handler %s refused a value: %s", fn.__name__, message)
            except Exception as err:
                log.exception("handler %s failed", fn.__name__)
                message = f"Something went wrong: {logic.md(err, 200)}"
            gr.Warning(message)
            out = fallback(message) if fallback else (gr.skip(),) * n_outputs
            return out if n_outputs > 1 else out[0]

        return inner

    return wrap


def api_endpoint(fn):
    """A typed API endpoint (it has no status line of its own): a refused value or a failure reaches the caller as
    an error with a message (gr.Error), never as Gradio's bare {"error": null}."""

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except logic.BadInput as err:
            raise gr.Error(f"Bad input: {err}", print_exception=False) from None
        except Exception as err:
            log.exception("endpoint %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong: {logic.md(err, 200)}", print_exception=False) from None

    return inner


class BodyLimit:
    """ASGI middleware: a request body longer than `max_bytes` is refused (413) before anything parses it, by its
    declared Content-Length at once, a body sent without one as soon as that many bytes have arrived. The
    handlers cut every text value anyway (logic.bounded); this keeps Gradio from decoding megabytes of JSON for
    a value that would be cut to a few thousand characters."""

    def __init__(self, app, max_bytes: int, upload_bytes: int | None = None):
        self.app, self.max_bytes = app, max_bytes
        self.upload_bytes = upload_bytes or max_bytes  # Gradio's file upload route ("Your data"): its own limit
        self.message = (f"Request body over {max_bytes:,} bytes; the app reads at most "
                        f"{logic.MAX_INPUT_CHARS:,} characters of a session.")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, text = self.max_bytes, self.message
        if scope.get("path", "").endswith("/gradio_api/upload"):
            limit = self.upload_bytes
            text = (f"File over {limit / 1e6:.0f} MB, this server's upload limit (RECSYS_UPLOAD_MB); use the "
                    "command-line scripts for larger logs.")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await JSONResponse({"detail": text}, 413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI answers an HTTPException raised while it reads the body
                raise HTTPException(413, text)
            return message

        await self.app(scope, limited, send)


def _outputs(r: logic.Recommendations, status: str | None = None):
    """Recommendations -> (table, chart HTML, status markdown, explanation markdown)."""
    return r.table, logic.bar_chart(r.chart), status or r.status, r.explanation


def _error_outputs(message):
    return _outputs(logic.error_result(message))


def _target(held, session):
    """The held-out next item of a loaded visitor, while the session is still that visitor's history."""
    if isinstance(held, dict) and held.get("session") == session:
        return held.get("target")
    return None


def _warn(r: logic.Recommendations) -> None:
    if r.mode == "error":  # a toast shows text as it is: no markdown marks in it
        gr.Warning(logic.plain(r.status.removeprefix("⚠️ ")))


# ---------------------------------------------------------------------------------------------------------------
# handlers (each takes plain values and returns plain values; the session travels with the request)


@guarded(4, _error_outputs)
@logic.bounded
def recommend(model: str, session: str, k: float = logic.DEFAULT_K, category: str | None = None,
              exclude_seen: bool = True, held=None):
    """Top-K items for a session: table, chart, status and explanation."""
    r = logic.recommend_view(SERVICE, model, session, k, category, exclude_seen, _target(held, session))
    _warn(r)
    return _outputs(r)


def _visitor_outputs(visitor, model, k, category, exclude_seen):
    session, target, note = logic.load_visitor(SERVICE, visitor, model)
    r = logic.recommend_view(SERVICE, model, session, k, category, exclude_seen, target)
    _warn(r)
    return session, {"session": session, "target": target}, *_outputs(r, f"{note}\n\n{r.status}")


@guarded(6, lambda m: (gr.skip(), gr.skip(), *_error_outputs(m)))
@logic.bounded
def recommend_visitor(visitor: str | None, model: str, k: float = logic.DEFAULT_K, category: str | None = None,
                      exclude_seen: bool = True):
    """A visitor's session (their last item held out) and its recommendations; unknown visitor -> cold start.
    A part of an id that only one visitor's id contains loads that visitor."""
    return _visitor_outputs(visitor, model, k, category, exclude_seen)


@guarded(1)
@logic.bounded
def suggest_visitors(query: str, model: str | None = None):
    """The visitors whose id contains what is typed (or pasted) in the search box; the samples when it is empty.
    An uploaded log's model searches that upload's visitors."""
    visitors = SERVICE.visitors_for(model)
    matches = visitors.search(query, 50)
    text = logic.clean_text(query, logic.MAX_TOKEN_CHARS)
    if not text:
        info = f"Sample visitors ({len(visitors):,} in all): pick one, or search above."
    elif not matches:
        info = f"No visitor id contains {text!r}."
    elif len(matches) == 1:
        info = f"1 visitor matches {text!r}: pick it, or press Enter in the search box."
    else:
        info = f"{len(matches)}{'+' if len(matches) == 50 else ''} visitors match {text!r}: pick one."
    return gr.Dropdown(choices=matches, value=None, info=info)


@guarded(7, lambda m: (gr.skip(), gr.skip(), gr.skip(), *_error_outputs(m)))
@logic.bounded
def pick_searched(query: str, model: str, k: float = logic.DEFAULT_K, category: str | None = None,
                  exclude_seen: bool = True):
    """Enter in the search box: load that visitor, or the one visitor whose id contains it, or say why not."""
    session, held, *rest = _visitor_outputs(query, model, k, category, exclude_seen)
    vid = logic.clean_text(query, logic.MAX_TOKEN_CHARS)
    visitors = SERVICE.visitors_for(model)
    found = vid if vid in visitors.sessions else (visitors.search(vid, 2) if vid else [])
    found = found if isinstance(found, str) else (found[0] if len(found) == 1 else None)
    return (gr.Dropdown(value=found) if found else gr.skip()), session, held, *rest


@guarded(1)
@logic.bounded
def append_clicked(session: str, evt: gr.SelectData):
    """Append the clicked recommendation (any cell of its row) to the session, as "name (id)"."""
    row = evt.row_value if isinstance(evt.row_value, list) else []  # sent by the browser: untrusted
    if len(row) <= logic.ID_COLUMN:
        return gr.skip()
    item = logic.bounded_text(row[logic.ID_COLUMN], logic.SLACK * logic.MAX_TOKEN_CHARS)
    name = logic.bounded_text(row[1], logic.SLACK * logic.MAX_TOKEN_CHARS)
    item, name = logic.clean_text(item, logic.MAX_TOKEN_CHARS), logic.clean_text(name, logic.MAX_TOKEN_CHARS)
    if not item:
        return gr.skip()
    return logic.append_item(session, f"{name} ({item})" if name and name != item else item)


@guarded(1)
@logic.bounded
def add_picked(session: str, item: str | None):
    """An item chosen (or typed) in the item picker, appended to the session."""
    if not logic.clean_text(item, logic.MAX_TOKEN_CHARS):
        return gr.skip()
    return logic.append_item(session, item)


def _exclude_box(model: str | None, value: bool | None = None):
    """The "hide items already in the session" box, set as the model's metrics were computed and saying so."""
    try:
        seen = logic.protocol_exclude_seen(SERVICE.served(model).model) if model else None
    except LookupError:
        seen = None
    how = ("hidden" if seen else "allowed") if seen is not None else "allowed (the evaluator's default)"
    return gr.Checkbox(value=bool(seen) if value is None else value,
                       info=f"This model's test metrics were computed with repeats {how}.")


@guarded(8, lambda m: (f"⚠️ {m}", *(gr.skip(),) * 7))
@logic.bounded
def model_info(model: str | None):
    """About the chosen model (what it uses, its data, metrics, hyperparameters, model card, training curves), its
    categories for the cold-start picker, the item picker's names, the session box's example, the repeats box."""
    curves = logic.training_curves(SERVICE, model)
    card = logic.model_card(SERVICE, model)
    full = logic.full_card(SERVICE, model)
    return (card, gr.Markdown(full), gr.Accordion(visible=bool(full)),
            gr.Image(value=curves, visible=curves is not None),
            gr.Dropdown(choices=logic.categories(SERVICE, model), value=None),
            gr.Dropdown(choices=logic.suggestions(SERVICE, model), value=None),
            gr.Textbox(placeholder=logic.placeholder(SERVICE, model)),
            _exclude_box(model))


@guarded(8, lambda m: (gr.skip(), gr.skip(), gr.skip(), gr.skip(), *_error_outputs(m)))
@logic.bounded
def clear_session(model: str, k: float = logic.DEFAULT_K, category: str | None = None, exclude_seen: bool = True):
    """An empty session: the popular items, and a message that says what happened."""
    r = logic.recommend_view(SERVICE, model, "", k, category, exclude_seen)
    message = "Session cleared: recommendations fall back to popular items until you add one."
    return "", None, None, "", *_outputs(r, f"{message}\n\n{r.status}")



# ---------------------------------------------------------------------------------------------------------------
# "Your data": upload a log, train on it with the project's pipeline, take the models home (recsys.app.yourdata)

LIMITS = workbench.Limits.from_env()
TRAIN_CHILD = trainproc.ChildOptions.from_env()  # trainings run in a child process at this nice value
# BrowserState encrypts what it keeps in localStorage with this key, which the page itself receives: it hides
# nothing from the browser, it only has to stay the same across restarts (a random one per start would lose every
# browser's upload on a restart). The token it keeps is the secret: 128 random bits, checked where it is used.
BROWSER_SECRET = "recsys-upload-token-v1"
ROLE_INPUTS = ("col_session", "col_user", "col_item", "col_time", "col_event", "col_category")


def _scrub(err, token=None) -> str:
    """An error for the page: the server's folders left out of file names."""
    text = str(err)
    if token:
        text = text.replace(str(Path(LIMITS.root) / str(token) / "input") + "/", "")
    return logic.md(text.replace(str(LIMITS.root) + "/", ""), 500)


_CLEANED = {"at": float("-inf")}
_CLEAN_LOCK = threading.Lock()
CLEAN_EVERY_SECONDS = 60.0  # every page load and upload asks; the work folder is read at most this often


def _clean_up() -> None:
    """Delete the uploads past their time limit and forget their models (at most once a minute)."""
    with _CLEAN_LOCK:
        if time.monotonic() - _CLEANED["at"] < CLEAN_EVERY_SECONDS:
            return
        _CLEANED["at"] = time.monotonic()
    for token in workbench.cleanup(LIMITS):
        SERVICE.forget_private(f"{workbench.KEY_PREFIX}{token}/")


@guarded(11, lambda m: (gr.skip(), f"⚠️ {m}", *(gr.skip(),) * 9))
@logic.bounded
def inspect_upload(upload):
    """An uploaded event log: stored in a new private folder; its first rows and the guessed columns. The token
    changes only when a file was read: a cleared or refused file leaves the browser's last upload (and its
    trained models) where they were."""
    _clean_up()
    if upload is None:
        return (gr.skip(), "Upload an event log to start.", None, *(gr.Dropdown(choices=[], value=None),) * 6,
                gr.skip(), gr.skip())
    try:
        found = yourdata.inspect(LIMITS, upload)
    except (DataError, OSError) as err:
        return (gr.skip(), f"⚠️ {_scrub(err)}", None, *(gr.Dropdown(choices=[], value=None),) * 6, gr.skip(),
                gr.skip())
    choices = [yourdata.NONE, *found.columns]
    dropdowns = [gr.Dropdown(choices=choices, value=found.guess.get(role, yourdata.NONE)) for role in ROLES]
    seen = ", ".join(found.events[:8])
    return (found.token, found.status, found.preview, *dropdowns, gr.Radio(value=found.unit),
            gr.Textbox(value="", info=f"Seen in the first rows: {seen}." if seen else "No event column found."))


@guarded(1, lambda m: f"⚠️ {m}")
@logic.bounded
def attach_catalogue(items_file, token=None):
    """An optional item catalogue (names, categories, ...) for the uploaded log."""
    if items_file is None:
        return gr.skip()
    try:
        return yourdata.attach_items(LIMITS, token, items_file)
    except (DataError, OSError) as err:
        return f"⚠️ {_scrub(err, token)}"


def _training_view(lines: list[str], scores: dict, total: int) -> str:
    done = "\n".join(f"- **{logic.md(n, 30)}** done: validation MRR@20 {s:.3f}" for n, s in scores.items())
    return f"Training {len(scores)} of {total} models done.\n\n{done}\n\n`{logic.md(lines[-1], 160) if lines else ''}`"


TRAIN_OUTPUTS = 8  # result, model, visitor, zip, commands, Compare's models and visitor, the dashboard's data set


def _train_fallback(message):
    return f"⚠️ {message}", *(gr.skip(),) * (TRAIN_OUTPUTS - 1)


@logic.bounded
def _train_steps(token, col_session, col_user, col_item, col_time, col_event, col_category, unit, events, split,
                 gap, test_days, valid_days, baselines, neural, minutes, progress=gr.Progress()):
    roles = dict(zip(ROLES, (col_session, col_user, col_item, col_time, col_event, col_category), strict=True))
    try:
        request = yourdata.request(LIMITS, token, roles, unit, events, split, gap, test_days, valid_days, baselines,
                                   neural, minutes)
    except (DataError, OSError) as err:
        yield _train_fallback(_scrub(err, token))
        return
    flag = workbench.cancel_flag(token)
    lines, scores, outcome = [], {}, {}
    total = len(request.models)

    def work():
        try:
            outcome["trained"] = trainproc.train(LIMITS, token, request, log=lines.append, cancelled=flag,
                                                 on_model=lambda n, s, _d, _t: scores.__setitem__(n, s),
                                                 options=TRAIN_CHILD)
        except BaseException as err:  # reported in the page below
            outcome["error"] = err

    worker = threading.Thread(target=work, name=f"train-{token[:6]}", daemon=True)
    worker.start()
    progress(0, desc="Reading the log …")
    shown = None
    while worker.is_alive():
        worker.join(0.5)
        if shown == (len(lines), len(scores)):
            continue  # nothing new: no update sent, none for the browser to draw
        shown = (len(lines), len(scores))
        progress(len(scores) / total, desc=f"{len(scores)}/{total} models trained"
                 + (f" · last: {list(scores)[-1]} {list(scores.values())[-1]:.3f}" if scores else ""))
        yield _training_view(lines, scores, total), *(gr.skip(),) * (TRAIN_OUTPUTS - 1)
    if "error" in outcome:
        err = outcome["error"]
        if isinstance(err, workbench.Cancelled):
            yield _train_fallback("Training stopped; nothing of it was kept.")
        elif isinstance(err, (DataError, ValueError, OSError)):
            yield _train_fallback(_scrub(err, token))
        elif isinstance(err, trainproc.ChildDied):  # killed or crashed: its exit says how, no traceback to show
            log.warning("training an upload: %s", err)
            yield _train_fallback(f"Training failed: {_scrub(err, token)}")
        else:
            log.error("training an upload failed", exc_info=err)
            yield _train_fallback(f"Training failed: {_scrub(err, token)}")
        return
    trained = outcome["trained"]
    keys = workbench.register(SERVICE, trained)
    visitors = SERVICE.visitors_for(keys[0])
    zipped = workbench.download(trained)
    commands = (trained.run.parent / "commands.sh").read_text()
    choices = yourdata.private_choices(SERVICE, token)
    yield (yourdata.summary(trained, keys),
           gr.Dropdown(choices=choices, value=keys[0]),
           gr.Dropdown(choices=visitors.samples, value=None,
                       info=f"Sample visitors of {trained.name} ({len(visitors):,} test sessions): pick one."),
           str(zipped), commands, gr.Dropdown(choices=choices, value=keys[:3]),
           gr.Dropdown(choices=visitors.samples, value=None),
           gr.Dropdown(choices=dashboard.choices(SERVICE, token), value=f"{workbench.KEY_PREFIX}{token}/"))


def train_upload(*args, **kwargs):
    """Train the chosen models on the upload, yielding progress; never raises into Gradio."""
    try:
        yield from _train_steps(*args, **kwargs)
    except logic.BadInput as err:
        yield _train_fallback(f"Bad input: {err}")
    except Exception as err:
        log.exception("train_upload failed")
        yield _train_fallback(f"Something went wrong: {logic.md(err, 200)}")


train_upload.__signature__ = inspect.signature(_train_steps.__wrapped__)
train_upload.bounded = True


@guarded(1, lambda m: f"⚠️ {m}")
@logic.bounded
def stop_training(token=None):
    return ("Stopping …" if workbench.cancel(token) else "No training is running.")


RESTORE_OUTPUTS = 7  # result, zip, commands, model, Compare's models, the dashboard's data set, the token


@guarded(RESTORE_OUTPUTS, lambda m: (f"⚠️ {m}", *(gr.skip(),) * (RESTORE_OUTPUTS - 1)))
@logic.bounded
def restore_upload(token=None):
    """On page load: this browser's last upload and its models, while the server keeps them (a reload or a
    server restart loses nothing before the time limit); a token whose upload is gone is forgotten."""
    _clean_up()
    if not token:
        return (gr.skip(),) * RESTORE_OUTPUTS
    try:
        if workbench.expires_in_hours(LIMITS, token) <= 0:  # past its limit, not yet removed (see _clean_up)
            raise DataError("expired")
        trained = workbench.restore(LIMITS, token)
    except (DataError, OSError):
        return ("Your last upload was deleted after its time limit; upload the log again to train on it.",
                *(gr.skip(),) * (RESTORE_OUTPUTS - 2), None)
    if trained is None:  # uploaded, never trained: the mapping was not kept
        return (gr.skip(),) * RESTORE_OUTPUTS
    prefix = workbench.model_key(token, trained.run, "")
    keys = [k for k in SERVICE.private if k.startswith(prefix)] or workbench.register(SERVICE, trained)
    zipped = trained.run.parent / f"{trained.name}-models.zip"
    zipped = zipped if zipped.is_file() and not zipped.is_symlink() else workbench.download(trained)
    choices = yourdata.private_choices(SERVICE, token)
    hours = workbench.expires_in_hours(LIMITS, token)
    note = (f"**Welcome back.** The {len(keys)} models trained on {logic.md(trained.name, 40)} are in the model "
            f"selectors (Recommend, Compare, Dashboard) for this browser, until they are deleted in about "
            f"{hours:.0f} hour{'s' * (round(hours) != 1)}.")
    return (note, str(zipped), (trained.run.parent / "commands.sh").read_text(), gr.Dropdown(choices=choices),
            gr.Dropdown(choices=choices),
            gr.Dropdown(choices=dashboard.choices(SERVICE, token), value=f"{workbench.KEY_PREFIX}{token}/"), gr.skip())


DASHBOARD_OUTPUTS = 8  # title, three bar charts, table, curves note, two line charts


def _dashboard_outputs(d: dashboard.Dashboard):
    bars = []
    for _, label in logic.HEADLINE:
        frame = d.bars.get(f"test {label}")
        bars.append(gr.BarPlot(value=frame, sort=[m for m in d.order if frame is not None
                                                   and m in set(frame["model"])] or None,
                               visible=frame is not None))
    curves = len(d.validation) > 0
    return (d.title, *bars, gr.Dataframe(value=d.table, visible=len(d.table) > 0), d.curves_note,
            gr.LinePlot(value=d.validation if curves else None, sort=d.epochs or None, visible=curves),
            gr.LinePlot(value=d.loss if len(d.loss) else None, sort=d.epochs or None, visible=len(d.loss) > 0))


@guarded(DASHBOARD_OUTPUTS, lambda m: (f"⚠️ {m}", *(gr.skip(),) * (DASHBOARD_OUTPUTS - 1)))
@logic.bounded
def show_dashboard(dataset=None, token=None):
    """The metrics dashboard of one data set: test scores compared, the results table, training curves."""
    return _dashboard_outputs(dashboard.build(SERVICE, dataset, token))


@guarded(3, lambda m: ("", f"⚠️ {m}", gr.skip()))
@logic.bounded
def compare_models(models, visitor=None, session="", k=10):
    """Two or three models side by side on one session: the chosen visitor's while the box holds their session
    (their next item held out and marked), else the typed one."""
    target = None
    if logic.clean_text(visitor, logic.MAX_TOKEN_CHARS):
        theirs, their_target, _ = logic.load_visitor(SERVICE, visitor, models[0] if models else None)
        if not session.strip() or session == theirs:
            session, target = theirs, their_target
    view, status = compare.compare_view(SERVICE, models, session, k, target)
    return view, status, session


@guarded(3, lambda m: ("", f"⚠️ {m}", gr.skip()))
@logic.bounded
def compare_visitor(models, visitor=None, k=10):
    """A visitor picked in the Compare tab: the models side by side on their session."""
    return compare_models(models, visitor, "", k)


def compare_tab(service: logic.AppService) -> dict:
    """The "Compare" tab's components."""
    c = {}
    keys = [key for _, key in service.choices]
    c["models"] = gr.Dropdown(service.choices, value=keys[:3], multiselect=True, max_choices=compare.MAX_COMPARED,
                              label="Models (two or three)", elem_id="cmp-models")
    with gr.Row(equal_height=False):
        c["visitor"] = gr.Dropdown(service.visitors.samples, value=None, label="Visitor", elem_id="cmp-visitor",
                                   info="A sample visitor: their last item is held out and marked where it lands.",
                                   filterable=False, scale=2)
        c["k"] = gr.Number(10, label=f"How many items (K, 1–{logic.MAX_K})", precision=0, elem_id="cmp-k", scale=1)
    c["session"] = gr.Textbox(label="Or type a session (one item per line, oldest first)", lines=3, max_lines=6,
                              elem_id="cmp-session")
    c["go"] = gr.Button("Compare", variant="primary", elem_id="cmp-go")
    c["status"] = gr.Markdown(elem_id="cmp-status")
    c["view"] = gr.HTML("", elem_id="cmp-view")
    return c


def dashboard_tab(service: logic.AppService) -> dict:
    """The "Dashboard" tab's components: Gradio's native plots of recsys.app.dashboard's frames."""
    c = {}
    options = dashboard.choices(service)
    first = dashboard.build(service, options[0][1]) if options else dashboard.Dashboard("No model found.")
    c["dataset"] = gr.Dropdown(options, value=options[0][1] if options else None, label="Data set",
                               elem_id="dash-dataset", info="The models trained on one data set (your upload's "
                                                            "appear here after training).")
    c["title"] = gr.Markdown(first.title, elem_id="dash-title")
    c["bars"] = []
    with gr.Row(equal_height=True):
        for _, label in logic.HEADLINE:
            y = f"test {label}"
            frame = first.bars.get(y)
            c["bars"].append(gr.BarPlot(frame, x="model", y=y, color="model", tooltip=["model", y, "95% CI"],
                                        y_lim=[0, None], colors_in_legend=[], x_title="", x_label_angle=-30,
                                        sort=[m for m in first.order if frame is not None
                                              and m in set(frame["model"])] or None,
                                        title=y, height=300, visible=frame is not None, min_width=240,
                                        elem_id=f"dash-bar-{label.split('@')[0].lower()}"))
    c["table"] = gr.Dataframe(first.table, label="Validation and test scores, [95% bootstrap CI]", interactive=False,
                              wrap=True, visible=len(first.table) > 0, elem_id="dash-table",
                              column_widths=["10%", *["13.5%"] * 6, "9%"])
    c["curves_note"] = gr.Markdown(first.curves_note, elem_id="dash-curves-note")
    with gr.Row(equal_height=True):
        c["validation"] = gr.LinePlot(first.validation if len(first.validation) else None, x="epoch", y="value",
                                      y_title="validation score", color="series",
                                      title="Validation score after each epoch", height=300,
                                      sort=first.epochs or None,
                                      visible=len(first.validation) > 0, elem_id="dash-validation")
        c["loss"] = gr.LinePlot(first.loss if len(first.loss) else None, x="epoch", y="training loss",
                                color="model", title="Training loss per epoch", height=300, sort=first.epochs or None,
                                visible=len(first.loss) > 0, elem_id="dash-loss")
    return c


def your_data_tab() -> dict:
    """The "Your data" tab's components."""
    c = {}
    gr.Markdown("Upload your shop's event log (CSV, TSV, Parquet, or gzip-compressed CSV: one row per event with a "
                "session or user id, an item id and a time). The app guesses the columns; correct them, then train "
                "the baselines (and one neural model if you like) with the same pipeline as "
                "`scripts/train_and_eval.py`. Your upload and its models are private to this browser (a reload "
                "or a server restart keeps them) and deleted after the time limit.\n\n" + LIMITS.describe(),
                elem_id="wb-intro")
    with gr.Row(equal_height=False):
        c["upload"] = gr.File(label="Event log", file_types=[".csv", ".tsv", ".txt", ".gz", ".parquet", ".pq"],
                              elem_id="wb-file", scale=2)
        c["items"] = gr.File(label="Item catalogue (optional: item_id, name, category, price, ...)",
                             file_types=[".csv", ".tsv", ".gz", ".parquet"], elem_id="wb-items", scale=1)
    c["status"] = gr.Markdown("Upload an event log to start.", elem_id="wb-status")
    c["preview"] = gr.Dataframe(label="First rows", interactive=False, elem_id="wb-preview", max_height=260)
    with gr.Row():
        c["roles"] = [gr.Dropdown([], value=None, label=yourdata.ROLE_LABELS[role], elem_id=f"wb-col-{role}",
                                  min_width=120) for role in ROLES]
    with gr.Row():
        c["unit"] = gr.Radio(list(yourdata.UNITS), value="ISO dates", label="Times are", elem_id="wb-unit")
        c["split"] = gr.Radio(["temporal (last days)", "leave-one-out (per user)"], value="temporal (last days)",
                              label="Split", elem_id="wb-split")
        c["events"] = gr.Textbox(label="Keep only these event types (needs an event type column)", max_lines=1,
                                 placeholder="e.g. view; empty keeps all", elem_id="wb-events")
    with gr.Row():
        c["gap"] = gr.Number(30, label="Session gap (minutes)", elem_id="wb-gap")
        c["test_days"] = gr.Number(1, label="Test days", elem_id="wb-test-days")
        c["valid_days"] = gr.Number(1, label="Validation days", elem_id="wb-valid-days")
    with gr.Row():
        c["baselines"] = gr.CheckboxGroup(list(workbench.BASELINES), value=list(workbench.DEFAULT_BASELINES),
                                          label="Baselines", elem_id="wb-baselines", scale=2)
        c["neural"] = gr.Dropdown([yourdata.NONE, *workbench.NEURAL], value=yourdata.NONE, label="Neural model",
                                  elem_id="wb-neural", scale=1)
        c["minutes"] = gr.Number(min(2, LIMITS.train_minutes), label=f"Its minutes (≤ {LIMITS.train_minutes:g})",
                                 elem_id="wb-minutes", scale=1)
    with gr.Row():
        c["train"] = gr.Button("Train", variant="primary", elem_id="wb-train", scale=3)
        c["stop"] = gr.Button("Stop", elem_id="wb-stop", scale=1)
    c["result"] = gr.Markdown(elem_id="wb-result")
    c["zip"] = gr.File(label="Your models (zip: JSON + safetensors folders, results.md, commands.sh)",
                       interactive=False, elem_id="wb-zip")
    c["commands"] = gr.Code(label="Reproduce with the command-line scripts", language="shell", elem_id="wb-commands")
    return c

# typed endpoints for API clients (no UI of their own)


@api_endpoint
@logic.bounded
def list_models() -> list[dict]:
    """Every available model: key (pass it as `model`), label, where it lives, kind, test metrics."""
    return [{"key": e.key, "label": e.label, "where": e.where, "kind": e.kind,
             "test": {m: logic.metric_value(e.metrics, "test", m) for m, _ in logic.HEADLINE}}
            for e in SERVICE.catalogue.values()]


@api_endpoint
@logic.bounded
def search_visitors(query: str = "", limit: int = 20) -> list[str]:
    """Visitor ids matching `query` (prefix matches first); the sample visitors when the query is empty."""
    return SERVICE.visitors.search(query, logic.parse_limit(limit))


@api_endpoint
@logic.bounded
def append_item(session: str, item: str) -> str:
    """The session with `item` appended on a line of its own (what clicking a recommendation does)."""
    return logic.append_item(session, item)


# ---------------------------------------------------------------------------------------------------------------
# layout

# Before any event that sends the session: a paste far over what the server reads is cut to its end in the
# browser (its JSON under the request body limit), so the request still goes through and the status says so.
CUT_SESSION_JS = """(...args) => {{
  let s = args[{index}];
  if (typeof s === "string" && s.length > {chars}) {{ s = s.slice(-{chars}); }}
  while (typeof s === "string" && new Blob([JSON.stringify(s)]).size > {bytes}) {{
    s = s.slice(-Math.floor(s.length * 0.8));
  }}
  args[{index}] = s;
  return args;
}}"""


def cut_session_js(index: int) -> str:
    return CUT_SESSION_JS.format(index=index, chars=logic.SLACK * logic.MAX_INPUT_CHARS,
                                 bytes=MAX_REQUEST_BYTES * 3 // 4)


def data_banner(service: logic.AppService) -> str:
    """Which data the served models learned from; the default demo's is synthetic, and the page says so."""
    sources = sorted({(e.metrics.get("data") or {}).get("name") or (e.metrics.get("data") or {}).get("source")
                      for e in service.catalogue.values() if isinstance(e.metrics.get("data"), dict)} - {None})
    if not sources:
        return ""
    shown = ", ".join(f"**{logic.md(s, 40)}**" for s in sources[:6])
    synthetic = any(str(s).casefold() == "synthetic" for s in sources)
    return (f"Trained on: {shown}." + (" *Synthetic* data is made up by this project's generator (the default "
                                      "demo): the shop, its items and its visitors are not real." if synthetic
                                      else "") + " Each model's data set is in “About this model”.")


def build_demo(service: logic.AppService) -> gr.Blocks:
    default = service.default_model
    with gr.Blocks(title="Next-item recommender") as demo:
        held = gr.State(None)  # {"session": text, "target": held-out item} of the last loaded visitor
        gr.Markdown("# Next-item recommender\nWhat will this shopper look at next? Give a session (a sample "
                    "visitor, or items typed by name or id), pick a model, and click an item to keep browsing.")
        if banner := data_banner(service):
            gr.Markdown(banner, elem_id="data")
        if not service.catalogue:
            gr.Markdown("⚠️ **No model found.** Run `make train` (or `python app.py`, which builds the default "
                        "models), or set `RECSYS_MODELS` to a Hugging Face Hub repo.")
        for note in service.notes:
            gr.Markdown(f"⚠️ {note}", elem_classes=["note"])
        with gr.Tabs(elem_id="top-tabs"):
            with gr.Tab("Recommend", id="recommend-tab"):
                model = gr.Dropdown(service.choices, value=default, label="Model", elem_id="model",
                                    info="Test-set scores beside each name; the default is the best on validation.")
                with gr.Accordion("About this model: what it uses, its data, all its scores, its model card",
                                  open=False, elem_id="about-model"):
                    curves_value = logic.training_curves(service, default) if default else None
                    full_value = logic.full_card(service, default) if default else ""
                    with gr.Row(equal_height=False):
                        card = gr.Markdown(logic.model_card(service, default) if default else "", elem_id="card")
                        curves = gr.Image(curves_value, label="Training curves", show_label=False, interactive=False,
                                          visible=curves_value is not None, elem_id="curves", buttons=["fullscreen"])
                    with gr.Accordion("Full model card (README.md)", open=False, visible=bool(full_value)) as full_box:
                        full = gr.Markdown(full_value, elem_id="full-card")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=340):
                        with gr.Tabs():
                            with gr.Tab("Visitor"):
                                search = gr.Textbox(label="Find a visitor", max_lines=1, elem_id="search",
                                                    placeholder="type or paste part of an id; Enter loads it")
                                visitor = gr.Dropdown(service.visitors.samples, value=None, label="Visitor",
                                                      info=f"Sample visitors ({len(service.visitors):,} in all): "
                                                           "pick one, or search above.", filterable=False,
                                                      elem_id="visitor")
                                gr.Markdown(logic.VISITOR_IDS + " Their last item is held out: the app shows where the "
                                            "model ranks it.", elem_classes=["hint"])
                            with gr.Tab("Type items"):
                                additem = gr.Dropdown(logic.suggestions(service, default) if default else [],
                                                      value=None, label="Add an item by name", filterable=True,
                                                      allow_custom_value=True, elem_id="additem",
                                                      info="Type part of a name and pick it; it joins the session "
                                                           "below.")
                                gr.Markdown("Or type in the session box: one item per line (or separated by commas), "
                                            "by name or id, oldest first; then press **Recommend**.",
                                            elem_classes=["hint"])
                        session = gr.Textbox(label="Session (one item per line, oldest first)", lines=4, max_lines=8,
                                             placeholder=logic.placeholder(service, default) if default else "",
                                             elem_id="session")
                        # a number box with no bounds of its own: any value reaches logic.parse_k, whose note says
                        # what it did
                        k = gr.Number(logic.DEFAULT_K, label=f"How many items (K, 1–{logic.MAX_K})", precision=0,
                                      step=1,
                                      elem_id="k", info="Press Enter to recommend again.")
                        with gr.Row(equal_height=True):
                            category = gr.Dropdown(logic.categories(service, default) if default else [], value=None,
                                                   label="Category", info="used only for cold start",
                                                   allow_custom_value=True, scale=1, min_width=120)
                            exclude = gr.Checkbox(label="Hide items already in the session", scale=1, min_width=120,
                                                  elem_id="exclude")
                        with gr.Row():
                            go = gr.Button("Recommend", variant="primary", scale=3, elem_id="recommend")
                            clear = gr.Button("Clear session", scale=1, elem_id="clear")
                        gr.Markdown(f"Sessions are cut to their {logic.MAX_SESSION_ITEMS} most recent items; "
                                    f"K is at most {logic.MAX_K}.", elem_id="caps")
                    with gr.Column(scale=3, min_width=420):
                        status = gr.Markdown("Loading the most popular items…", elem_id="status")
                        table = gr.Dataframe(logic.empty_table(), label="Recommendations", interactive=False, wrap=True,
                                             max_height=460, elem_id="recs",
                                             column_widths=logic.column_widths(logic.empty_table()))
                        gr.Markdown(f"{logic.LEGEND} Click a row to add the item to the session.", elem_id="hint")
                        chart = gr.HTML("", elem_id="chart")
                        with gr.Accordion("Why these items", open=True, elem_id="why-box"):
                            explanation = gr.Markdown(elem_id="why")
                with gr.Accordion("About: the models, the metrics and how they were measured", open=False):
                    gr.Markdown(logic.about(service))
            with gr.Tab("Your data", id="your-data-tab"):
                wb = your_data_tab()
            with gr.Tab("Compare", id="compare-tab"):
                cmp = compare_tab(service)
            with gr.Tab("Dashboard", id="dashboard-tab"):
                dash = dashboard_tab(service)

        # preprocess=False: the handlers get the values as sent, and logic.bounded is the one gate they pass
        # (gr.Slider's own check raised a message-less TypeError on text, which the caller saw as {"error": null})
        raw = {"preprocess": False}
        rec_in = [model, session, k, category, exclude, held]
        rec_out = [table, chart, status, explanation]
        cut1 = cut_session_js(1)
        go.click(recommend, rec_in, rec_out, api_name="recommend", js=cut1, **raw)
        session.submit(recommend, rec_in, rec_out, api_visibility="private", js=cut1, **raw)
        k.submit(recommend, rec_in, rec_out, api_visibility="private", js=cut1, **raw)
        exclude.input(recommend, rec_in, rec_out, api_visibility="private", js=cut1, **raw)
        visitor.input(recommend_visitor, [visitor, model, k, category, exclude], [session, held, *rec_out],
                      api_name="recommend_visitor", **raw)
        # change, not input: Gradio's textbox sends "input" for keys only, so a paste would wait for the next key
        search.change(suggest_visitors, [search, model], [visitor], show_progress="hidden", api_visibility="private",
                      trigger_mode="always_last", **raw)
        search.submit(pick_searched, [search, model, k, category, exclude], [visitor, session, held, *rec_out],
                      api_visibility="private", **raw)
        then_recommend = {"fn": recommend, "inputs": rec_in, "outputs": rec_out, "api_visibility": "private",
                          "js": cut1, **raw}
        table.select(append_clicked, [session], [session], api_visibility="private", js=cut_session_js(0),
                     **raw).then(**then_recommend)
        additem.input(add_picked, [session, additem], [session], api_visibility="private", js=cut_session_js(0),
                      **raw).then(**then_recommend)
        info_out = [card, full, full_box, curves, category, additem, session, exclude]
        model.change(model_info, [model], info_out, api_name="model_info", **raw).then(**then_recommend)
        clear.click(clear_session, [model, k, category, exclude], [session, held, visitor, search, *rec_out],
                    api_visibility="private", **raw)
        # the first screen: the model's details and its most popular items, never an empty chart or panel
        demo.load(model_info, [model], info_out, api_visibility="private", **raw).then(**then_recommend)
        gr.api(list_models, api_name="models")  # gr.api never preprocesses
        gr.api(search_visitors, api_name="search_visitors")
        gr.api(append_item, api_name="append_item")
        # this browser's upload (recsys.app.workbench): its random token in the browser's localStorage, so a page
        # reload or a server restart keeps the upload's models until its time limit; never shown to other browsers
        token = gr.BrowserState(None, storage_key="recsys-upload-token", secret=BROWSER_SECRET)
        roles = wb["roles"]
        wb["upload"].change(inspect_upload, [wb["upload"]], [token, wb["status"], wb["preview"], *roles, wb["unit"],
                                                             wb["events"]], api_visibility="private", **raw)
        wb["items"].change(attach_catalogue, [wb["items"], token], [wb["status"]], api_visibility="private", **raw)
        training = wb["train"].click(
            train_upload, [token, *roles, wb["unit"], wb["events"], wb["split"], wb["gap"], wb["test_days"],
                           wb["valid_days"], wb["baselines"], wb["neural"], wb["minutes"]],
            [wb["result"], model, visitor, wb["zip"], wb["commands"], cmp["models"], cmp["visitor"], dash["dataset"]],
            api_visibility="private",
            concurrency_limit=1, concurrency_id="train", **raw)
        cmp_in = [cmp["models"], cmp["visitor"], cmp["session"], cmp["k"]]
        cmp_out = [cmp["view"], cmp["status"], cmp["session"]]
        cmp["go"].click(compare_models, cmp_in, cmp_out, api_visibility="private", js=cut_session_js(2), **raw)
        cmp["visitor"].input(compare_visitor, [cmp["models"], cmp["visitor"], cmp["k"]], cmp_out,
                             api_visibility="private", **raw)
        wb["stop"].click(stop_training, [token], [wb["result"]], api_visibility="private", cancels=[training], **raw)
        dash_out = [dash["title"], *dash["bars"], dash["table"], dash["curves_note"], dash["validation"], dash["loss"]]
        dash["dataset"].change(show_dashboard, [dash["dataset"], token], dash_out, api_visibility="private", **raw)
        demo.load(restore_upload, [token], [wb["result"], wb["zip"], wb["commands"], model, cmp["models"],
                                            dash["dataset"], token], api_visibility="private", **raw)
    return check_gated(demo)


def check_gated(demo: gr.Blocks) -> gr.Blocks:
    """Every request value must reach logic.bounded as sent (issue 12, items 5 and 16): refuse a Blocks with a
    handler that is not decorated with it, or whose inputs Gradio preprocesses first."""
    ungated = sorted({f.fn.__name__ for f in demo.fns.values()
                      if f.fn and (f.preprocess or not getattr(f.fn, "bounded", False))})
    if ungated:
        raise TypeError(f"handlers not behind logic.bounded, or with Gradio's preprocessing on: {ungated}")
    return demo


demo = build_demo(SERVICE)


def ensure_models(service: logic.AppService) -> bool:
    """On a fresh machine: build the default models (prints progress). True if the catalogue changed."""
    if service.catalogue:
        return False
    try:
        from recsys.pipeline import ensure_default_models
    except ImportError as err:
        print(f"No model found and recsys.pipeline is unavailable ({err}); serving without models.")
        return False
    print(f"No model found in {service.checkpoints_dir}/: building the default models (one-off)...", flush=True)
    try:
        ensure_default_models(checkpoints_dir=service.checkpoints_dir, data_dir=service.data_dir, progress=print)
    except Exception as err:  # serve anyway: the page says no model is available and how to get one
        log.exception("building the default models failed")
        print(f"Building the default models failed ({err}); serving without models.")
    service.refresh()
    return bool(service.catalogue)


def launch_options() -> dict:
    """What `demo.launch` takes besides the address: the look, the bound on Gradio's per-session state, the
    request body limit."""
    return {"css": CSS + compare.CSS, "theme": THEME, "state_session_capacity": MAX_SESSIONS,
            # "Your data": Gradio refuses a larger file in the page before sending it; the zips it serves
            "max_file_size": int(LIMITS.max_mb * 1e6), "allowed_paths": [str(LIMITS.root)],
            "app_kwargs": {"middleware": [Middleware(BodyLimit, max_bytes=MAX_REQUEST_BYTES,
                                                     upload_bytes=int(LIMITS.max_mb * 1e6) + (64 << 10))]}}


if __name__ == "__main__":
    import contextlib
    import sys

    import torch
    import uvicorn

    from recsys.api import serve_app, server_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if ensure_models(SERVICE):  # trains at torch's default thread count
        demo = build_demo(SERVICE)
    # one session is too small to split across threads, and up to 4 requests run side by side: with 2 threads
    # each, a busy 2-core machine made one call 10-20x slower (docs/BENCHMARKS.md, serving)
    torch.set_num_threads(int(os.environ.get("RECSYS_TORCH_THREADS") or 1))
    # the UI mounted on the JSON API's FastAPI app (recsys/api.py), with every option launch() took
    server = serve_app(SERVICE, demo.queue(default_concurrency_limit=4), launch_options())
    host = os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    config, stack = server_config(server, host, port)  # httptools and uvloop when installed
    print(f"* Running on http://{host}:{port}/ (UI), JSON API under /v1, its schema at /docs and /openapi.json "
          f"({stack})", flush=True)
    served = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        served.run()
    if not served.started:  # the port taken, say: uvicorn logged why; exit non-zero as uvicorn.run does
        sys.exit(3)
