"""A JSON HTTP API beside the Gradio UI, served by the same `python app.py` process (README "HTTP JSON API").

    GET  /v1/models      the models served: key, kind, data set, validation and test metrics; the default one
    POST /v1/recommend   {"model": KEY, "items": ["raw id", ...], "k": 10, "exclude_seen": false}
                         -> {"model": KEY, "items": [...], "scores": [...], "fallback": "none" | "popularity",
                             "unknown_items": [...]}

The OpenAPI schema is at /openapi.json and browsable at /docs. `build_api(service)` makes the FastAPI app over the
app's AppService (recsys/app/service.py): the same catalogue, model cache and caps as the UI (recsys/app/text.py:
at most MAX_SESSION_ITEMS items, K from 1 to MAX_K, a model key only from the catalogue, never a path).
`serve_app(service, demo, launch_options)` mounts the Gradio Blocks at / of that app with what `demo.launch`
would have taken (its body-limit middleware then guards the API too); app.py runs the result with uvicorn.

A session is ranked by recsys.batch.Ranker, the path batch scoring takes (recsys.recommend's scoring, unknown ids
skipped and returned, the popularity fallback when no id is known: scores are then training counts). Bad input
gets a 4xx whose "detail" is one line of text: 422 for a body that does not fit the schema (wrong types, too many
items, k out of range, unknown fields), 404 for a model the catalogue does not hold, 503 when that model cannot be
loaded; anything else is logged and answered 500 with no traceback.
"""

import logging
import os
import threading
import time
import weakref
from typing import Annotated, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from recsys.app.catalogue import metric_value
from recsys.app.service import AppService
from recsys.app.text import DEFAULT_K, MAX_K, MAX_KEY_CHARS, MAX_SESSION_ITEMS, MAX_TOKEN_CHARS, clean_text
from recsys.batch import Ranker

log = logging.getLogger("recsys.api")

MAX_DETAIL_CHARS = 300
# a loaded model whose answers take at most this (moving average) runs on the event loop, a slower one in the
# thread pool; $RECSYS_API_INLINE_MS sets it in milliseconds (A/B runs in docs/BENCHMARKS.md, JSON API)


def _milliseconds(text: str | None, default: float) -> float:
    """A setting in ms from the environment, as seconds; the default for anything but a number >= 0."""
    try:
        ms = float(text) if text else default
    except ValueError:
        ms = default
    return (ms if 0 <= ms < float("inf") else default) / 1000


INLINE_SECONDS = _milliseconds(os.environ.get("RECSYS_API_INLINE_MS"), 5.0)
EXAMPLE_REQUEST = {"model": "gru4rec", "items": ["214826", "214829"], "k": 3, "exclude_seen": False}
EXAMPLE_RESPONSE = {"model": "gru4rec", "items": ["214830", "214827", "214821"], "scores": [9.41, 8.87, 8.02],
                    "fallback": "none", "unknown_items": []}


class RecommendRequest(BaseModel):
    """One session, oldest item first."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    model: StrictStr = Field(max_length=MAX_KEY_CHARS, description="a key from GET /v1/models")
    items: list[Annotated[StrictStr, Field(max_length=MAX_TOKEN_CHARS)]] = Field(
        default_factory=list, max_length=MAX_SESSION_ITEMS,
        description=f"raw item ids, oldest first (at most {MAX_SESSION_ITEMS}); ids the model does not know are "
                    f"skipped and returned in unknown_items; none known (or none given): popularity fallback")
    k: StrictInt = Field(DEFAULT_K, ge=1, le=MAX_K, description="how many items to return")
    exclude_seen: StrictBool = Field(False, description="never return an item of the session")


class RecommendResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RESPONSE]})

    model: str
    items: list[str] = Field(description="raw item ids, best first (fewer than k when fewer are left)")
    scores: list[float] = Field(description="the model's scores (fallback: the item's training count)")
    fallback: Literal["none", "popularity"] = Field(
        description="none: ranked by the model; popularity: no item of the session is known to it")
    unknown_items: list[str] = Field(description="ids of the request the model does not know, each once")


class DataInfo(BaseModel):
    source: str | None = Field(None, description="the data set the model was trained on")
    n_items: int | None = Field(None, description="items in its catalogue")


class ModelInfo(BaseModel):
    key: str = Field(description="pass it as `model`")
    label: str
    kind: str = Field(description="registry model: pop, vsknn, gru4rec, hybrid, ...")
    where: Literal["local", "hub"]
    data: DataInfo
    metrics: dict[str, dict[str, float]] = Field(
        description='{"valid": {...}, "test": {"hr@10": 0.31, ...}} from its metrics.json (Hub models: empty '
                    'until loaded)')


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    default: str | None = Field(description="the model the UI opens with (best on validation)")


class Error(BaseModel):
    detail: str


def _json(content: dict, status: int = 200) -> Response:
    """A JSON answer encoded by orjson (a Gradio dependency; NaN and infinities become null, as pydantic writes
    them), without FastAPI validating and encoding the response model again: the handler builds it from fields it
    knows, and the schema (response_model) still documents it."""
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _detail(text, limit: int = MAX_DETAIL_CHARS) -> str:
    return clean_text(text, limit).replace("\n", " ")


def _validation_detail(err: RequestValidationError) -> str:
    """Pydantic's errors as one line, without echoing the values sent."""
    parts = []
    for e in err.errors()[:3]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = len(err.errors()) - 3
    return _detail("; ".join(parts) + (f" (and {more} more)" if more > 0 else ""))


def _model_info(entry) -> ModelInfo:
    metrics = entry.metrics if isinstance(entry.metrics, dict) else {}
    values = {}
    for split in ("valid", "test"):
        names = metrics.get(split) if isinstance(metrics.get(split), dict) else {}
        got = {_detail(n, 40): v for n in list(names)[:100] if (v := metric_value(metrics, split, n)) is not None}
        if got:
            values[split] = got
    data = metrics.get("data") if isinstance(metrics.get("data"), dict) else {}
    n_items = data.get("n_items")
    return ModelInfo(key=entry.key, label=_detail(entry.label), kind=_detail(entry.kind, 60), where=entry.where,
                     data=DataInfo(source=_detail(data["source"], 80) if isinstance(data.get("source"), str) else None,
                                   n_items=n_items if isinstance(n_items, int) and not isinstance(n_items, bool)
                                   else None),
                     metrics=values)


class _Rankers:
    """One recsys.batch.Ranker per loaded model (its id map and popularity order, built once), dropped with it; and
    per model key, how long its answers take of late (a moving average of rank_one's seconds)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rankers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._seconds: dict[str, float] = {}

    def get(self, model) -> Ranker:
        with self._lock:
            ranker = self._rankers.get(model)
        if ranker is None:
            ranker = Ranker(model, MAX_SESSION_ITEMS)  # two threads may build one at once: either is right
            with self._lock:
                ranker = self._rankers.setdefault(model, ranker)
        return ranker

    def seconds(self, key: str) -> float | None:
        return self._seconds.get(key)

    def took(self, key: str, seconds: float) -> None:
        last = self._seconds.get(key)
        self._seconds[key] = seconds if last is None else 0.8 * last + 0.2 * seconds


def build_api(service: AppService, middleware=()) -> FastAPI:
    """The API routes over `service` (the app's catalogue and model cache); `middleware`: Starlette Middleware
    entries wrapped around everything this app serves (app.py's body limit)."""
    api = FastAPI(title="recsys", version="1", middleware=list(middleware),
                  description="Next-item recommendations for a session of raw item ids. The Gradio UI is at /.")
    rankers = _Rankers()

    @api.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError):
        return JSONResponse({"detail": _validation_detail(err)}, status_code=422)

    @api.get("/v1/models", response_model=ModelsResponse, tags=["v1"],
             summary="The models served, with their data set and metrics")
    def models() -> ModelsResponse:
        return ModelsResponse(models=[_model_info(e) for e in service.catalogue.values()],
                              default=service.default_model)

    def answer(request: RecommendRequest) -> Response:
        try:
            served = service.served(request.model)
        except LookupError as err:
            return _json({"detail": _detail(str(err).replace("`", "'"))}, 503)
        began = time.perf_counter()
        try:
            ranked = rankers.get(served.model).rank_one(request.items, request.k, request.exclude_seen)
        except Exception as err:  # a model that fails on this session: logged, never a traceback to the caller
            log.exception("POST /v1/recommend failed for model %s", request.model)
            return _json({"detail": _detail(f"recommending failed: {type(err).__name__}")}, 500)
        rankers.took(request.model, time.perf_counter() - began)
        return _json({"model": request.model, "items": ranked.items, "scores": ranked.scores,
                      "fallback": ranked.fallback, "unknown_items": ranked.unknown_items})

    @api.post("/v1/recommend", response_model=RecommendResponse, tags=["v1"],
              summary="Top-k items for one session",
              responses={404: {"model": Error, "description": "unknown model"},
                         422: {"model": Error, "description": "a body that does not fit the schema"},
                         503: {"model": Error, "description": "the model could not be loaded"}})
    async def recommend(request: RecommendRequest) -> Response:
        if request.model not in service.catalogue:
            known = ", ".join(list(service.catalogue)[:20]) or "none (no model is available)"
            return _json({"detail": _detail(f"unknown model {request.model!r}; GET /v1/models lists them: "
                                            f"{known}")}, 404)
        # a loaded model that answers fast is run here, on the event loop: the hop to a worker thread costs more
        # CPU than such a model (~0.3 ms a request on this 2-core machine); a model still to load, or a slow one,
        # runs in FastAPI's thread pool so that it never holds up the other requests
        seconds = rankers.seconds(request.model)
        if seconds is not None and seconds <= INLINE_SECONDS and request.model in service.cache:
            return answer(request)
        return await run_in_threadpool(answer, request)

    return api


def server_config(app, host: str, port: int):
    """uvicorn's settings for app.py's server, and a line naming the HTTP parser and event loop they pick. uvicorn's
    defaults ("auto") take httptools and uvloop when they are installed (requirements.txt pins both): on the 40k-item
    load test they cut the server's CPU a request by about a third against h11 and asyncio (docs/BENCHMARKS.md, JSON
    API). Without them (a platform with no wheel: uvloop has none for Windows) the app runs on h11 and asyncio."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    config.load()  # resolves "auto" to a protocol class; uvicorn.Server does not load a loaded config again
    protocol = config.http_protocol_class.__name__
    http = {"HttpToolsProtocol": "httptools", "H11Protocol": "h11"}.get(protocol, protocol)
    factory = config.get_loop_factory()
    loop = (getattr(factory, "__module__", None) or "asyncio").split(".")[0] if factory is not None else "asyncio"
    return config, f"HTTP parser {http}, event loop {loop}"


def serve_app(service: AppService, demo, launch_options: dict) -> FastAPI:
    """The one FastAPI app `python app.py` serves: the API, with the Gradio Blocks `demo` mounted at /.

    `launch_options` are what `demo.launch` takes (app.py's launch_options): `app_kwargs["middleware"]` wraps the
    whole app (API and UI), `state_session_capacity` is set on the Blocks as launch sets it (mount_gradio_app has
    no such parameter and reads it when it builds the Gradio app), everything else (css, theme, ...) goes to
    gr.mount_gradio_app, which refuses what it does not take. Queue the Blocks before (demo.queue(...))."""
    import inspect

    import gradio as gr

    options = dict(launch_options)
    app_kwargs = dict(options.pop("app_kwargs", None) or {})
    api = build_api(service, middleware=app_kwargs.pop("middleware", ()))
    if "state_session_capacity" in options:
        demo.state_session_capacity = options.pop("state_session_capacity")
    unknown = sorted(set(options) - set(inspect.signature(gr.mount_gradio_app).parameters))
    if unknown:
        raise TypeError(f"gr.mount_gradio_app takes no {unknown}")
    options.setdefault("show_error", False)  # launch's default (mount's is True)
    return gr.mount_gradio_app(api, demo, "/", app_kwargs=app_kwargs, **options)
