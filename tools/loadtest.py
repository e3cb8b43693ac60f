"""Load test of the running app: concurrent gradio_client users, mixed requests, no errors, no leaked sessions,
and the server's resident memory along the way.

    proc, url = launch_app(checkpoints, data, log_path)
    report = run_load(url, clients=16, requests=1600, server_pid=proc.pid)  # {"errors": [..], "latency_ms": ..}

Each simulated user has its own `gradio_client.Client` (its own Gradio session) in its own thread and cycles
through four kinds of request across every served model: a typed session of two known items plus an unknown
token unique to the request; a sample visitor; a cold start; unknown items only. The unique token must
come back in that request's status and no other user's token may appear, so a session that leaked between
users (state kept on the server, a shared buffer) is an error, like an exception or a wrong-sized table.
The users share `requests` in all; with `fresh_sessions` each request is sent under a new Gradio session, as
one-shot API callers (curl, a new Client per call) send them. `server_pid` adds the server's RSS every
`sample_every` requests: Gradio keeps state for every session it has seen (see app.py), so fresh sessions
are what would make it grow.

Each user waits for its client's event stream to close before sending its next request (`wait_for_stream_close`).
Without that, gradio_client (2.7, protocol sse_v3) cancels about one request in 1,600 under load: the server ends
a session's SSE stream with `close_stream` right after the last pending `process_completed`; the client returns
the answer on `process_completed` while its reader thread has not yet handled the `close_stream` behind it, so
the next request is registered on that dying stream (`stream_open` is still True), no new stream is opened, and
the reader, on reaching `close_stream`, cancels it (`CancelledError`). A reader thread held back by a busy CPU
(16 clients and the server on 2 cores) is all it takes; `tests/test_load.py` reproduces it every time by
delaying that one message. Nothing in the app's queue settings, timeouts or concurrency limit enters into it;
browsers should not be affected (the JS client handles a stream's messages in arrival order on one thread).

`build_demo(root)` writes the small data set and Pop / S-Pop / item-kNN folders the load test serves.

`run_api_load(url, clients=16, requests=1600, known=ids, server_pid=pid)` loads the JSON API instead (POST
/v1/recommend, recsys/api.py): one kept-alive HTTP/1.1 connection per user (`_Connection`, plain asyncio streams:
~0.15 ms of CPU a request where aiohttp took ~0.5, so the load generator takes little of the cores it shares with
the server), all users in one event loop, typed / empty / unknown-only sessions, each typed one carrying an
unknown token that must come back in its own answer only.
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TOKEN = re.compile(r"u-c(\d+)-r(\d+)")
VISITORS = ("alice:0", "bob:1", "visitor:7", "visitor:12")
KINDS = ("typed", "visitor", "cold", "unknown")
N_ITEMS = 20  # raw ids "101".."120"


DEMO_NAMES = {**{str(100 + i): f"product {100 + i}" for i in range(1, N_ITEMS + 1)}, "105": "Red Shoe"}


def demo_dataset():
    """Sessions walk 1 -> 2 -> ... -> 20 (raw ids 101..120; odd indices in category "shoes", even in "hats"), and
    20 more are [1, 3, 5], so item 1 is the most popular; the test sessions are the sample VISITORS and one more."""
    from recsys.data import Dataset
    from recsys.sessions import Sessions

    rng = np.random.default_rng(0)
    seqs = [[(s + t) % N_ITEMS + 1 for t in range(6)] for s in rng.integers(0, N_ITEMS, size=120)]
    train, valid, test = seqs[:110] + [[1, 3, 5]] * 20, seqs[110:115], seqs[115:]
    raw = [str(100 + i) for i in range(1, N_ITEMS + 1)]
    items = pd.DataFrame({"item_id": pd.array(raw, dtype="string"),
                          "category_id": pd.array(["shoes" if i % 2 else "hats" for i in range(1, N_ITEMS + 1)],
                                                  dtype="string"),
                          "popularity": np.bincount(np.concatenate(train), minlength=N_ITEMS + 1)[1:]})
    ids = {"train": [f"train-{i}" for i in range(len(train))], "valid": [f"valid-{i}" for i in range(len(valid))],
           "test": ["visitor:7", "visitor:12", "alice:0", "bob:1", "visitor:70"]}
    info = {name: pd.DataFrame({"session_id": pd.array(v, dtype="string")}) for name, v in ids.items()}
    return Dataset(Sessions.from_lists(train), Sessions.from_lists(valid), Sessions.from_lists(test), items,
                   {"protocols": {"valid": "all", "test": "all"}}, info)


def demo_metrics(hr: float) -> dict:
    """Placeholder metrics.json content (not measured): the app shows them and picks the best validation HR@10."""
    block = {"hr@10": {"value": hr, "ci95": [hr - 0.05, hr + 0.05]}, "mrr@20": {"value": hr / 2},
             "ndcg@10": {"value": hr / 1.5}}
    return {"valid": {k: v["value"] for k, v in block.items()}, "test": block}


def build_demo_checkpoints(root: Path, models=("pop", "spop", "itemknn")) -> Path:
    """Fitted model folders root/NAME on demo_dataset(); the last one gets the best placeholder validation score
    (so the app makes it its default), item-kNN the item descriptions."""
    from recsys.folder import save_folder
    from recsys.models import REGISTRY

    data = demo_dataset()
    for rank, name in enumerate(models):
        model = REGISTRY[name](REGISTRY[name].Config(), data.n_items)
        model.fit(data)
        save_folder(model, Path(root) / name, data.items, metrics=demo_metrics(0.2 + 0.1 * rank),
                    descriptions=DEMO_NAMES if name == "itemknn" else None)
    return Path(root)


def build_demo(root: Path, models=("pop", "spop", "itemknn")) -> tuple[Path, Path]:
    """The data set (root/data) and fitted model folders (root/checkpoints/NAME) for the load test and the app
    tests."""
    return build_demo_checkpoints(Path(root) / "checkpoints", models), demo_dataset().save(Path(root) / "data")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_app(checkpoints: Path, data: Path, log_path: Path, timeout: float = 180.0, extra_env: dict | None = None):
    """Start app.py on a free port serving the folders under `checkpoints` (with `extra_env` added to its
    environment, this process's untouched); returns (process, url)."""
    port = free_port()
    env = {**os.environ, **(extra_env or {}), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "RECSYS_CHECKPOINTS": str(checkpoints), "RECSYS_DATA": str(data), "RECSYS_MODELS": "",
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not start in {timeout}s:\n{log_path.read_text()[-3000:]}")


def stop_app(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for_stream_close(client, timeout: float = 30.0) -> bool:
    """Wait until `client` has no open event stream, so its next request opens a fresh one (see the docstring).

    A client that sends one request at a time always gets `close_stream` after each answer. Returns False after
    `timeout` seconds, or at once when this gradio_client has no `stream_open` (another design: nothing to wait).
    """
    deadline = time.monotonic() + timeout
    while getattr(client, "stream_open", False):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _one_request(client, user: int, step: int, models: list[str], known: list[str], k: int = 5) -> str | None:
    """One request of the user's cycle; returns an error description, or None when the answer is right."""
    kind, model = KINDS[step % len(KINDS)], models[(step // len(KINDS) + user) % len(models)]
    token = f"u-c{user}-r{step}"
    if kind == "visitor":
        visitor = VISITORS[(user + step) % len(VISITORS)]
        session, table, _chart, status, _why = client.predict(visitor, model, k, None, True,
                                                              api_name="/recommend_visitor")
        expect, own = ("Personalised", None) if session else ("Cold start", None)
    else:
        if kind == "typed":
            a, b = known[user % len(known)], known[(user * 7 + step + 1) % len(known)]
            typed, expect = f"{a}, {token}, {b}", "Personalised"
        elif kind == "cold":
            typed, expect = "", "Cold start"
        else:
            typed, expect = f"{token}, {token}x", "Cold start"
        table, _chart, status, _why = client.predict(model, typed, k, None, True, api_name="/recommend")
        own = token if kind in ("typed", "unknown") else None
    text = f"{status}\n{_why}"
    # a session the model ranked says "Personalised" ("Not personalised" for Pop, which ranks every session alike)
    used = "Cold start" not in status and ("Personalised" in status or "Not personalised" in status)
    if (expect == "Personalised" and not used) or (expect == "Cold start" and expect not in status):
        return f"{kind}/{model}: expected {expect!r} in status {status[:200]!r}"
    if not 1 <= len(table["data"]) <= k:
        return f"{kind}/{model}: {len(table['data'])} rows for k={k}"
    seen = {m.group(0).removesuffix("x") for m in TOKEN.finditer(text)}
    if seen - {own}:
        return f"{kind}/{model}: LEAK, user {user} got tokens {sorted(seen - {own})} in {status[:200]!r}"
    if own and own not in seen:
        return f"{kind}/{model}: own token {own} missing from status {status[:200]!r}"
    return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MB (VmRSS of Linux's /proc); None where there is no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_load(url: str, clients: int = 16, requests: int = 1600, fresh_sessions: bool = False,
             server_pid: int | None = None, sample_every: int = 500) -> dict:
    """`clients` concurrent users sending `requests` mixed requests in all; latencies, every error, and with
    `server_pid` the server's RSS (MB) before the first request and after every `sample_every` answers."""
    from gradio_client import Client

    models = [m["key"] for m in Client(url, verbose=False).predict(api_name="/models")]
    known = [str(100 + i) for i in range(1, 21)]  # raw ids of the test folders; unknown ones are just skipped
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    waited = [0] * clients  # requests whose client still had the previous answer's stream open (the race window)
    lock, start = threading.Lock(), threading.Barrier(clients)
    sent = done = 0
    rss = [[0, rss_mb(server_pid)]] if server_pid else []

    def next_step() -> int | None:
        nonlocal sent
        with lock:
            sent += 1
            return sent - 1 if sent <= requests else None

    def answered() -> None:
        nonlocal done
        with lock:
            done += 1
            if server_pid and (done % sample_every == 0 or done == requests):
                rss.append([done, rss_mb(server_pid)])

    def user(u: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            with lock:
                errors.append(f"user {u}: connect: {exc!r}")
            start.abort()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            pass
        while (step := next_step()) is not None:
            waited[u] += bool(getattr(client, "stream_open", False))
            if not wait_for_stream_close(client):
                with lock:
                    errors.append(f"user {u} step {step}: the previous answer's event stream never closed")
            if fresh_sessions:  # the stream is closed: the next request opens one under the new session
                client.session_hash = str(uuid.uuid4())
            began = time.perf_counter()  # the wait above (~ms) is not counted in the latency
            try:
                problem = _one_request(client, u, step, models, known)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                problem = f"user {u} step {step}: {exc!r}"
            latencies[u].append(time.perf_counter() - began)
            answered()
            if problem:
                with lock:
                    errors.append(f"user {u} step {step}: {problem}")
        client.close()

    threads = [threading.Thread(target=user, args=(u,)) for u in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    flat = [x * 1000 for row in latencies for x in row]
    return {"clients": clients, "requests": len(flat), "fresh_sessions": fresh_sessions, "models": models,
            "errors": errors, "n_errors": len(errors), "waited_for_stream_close": sum(waited),
            **({"rss_mb": rss} if server_pid else {}),
            "wall_seconds": round(wall, 2),
            "throughput_rps": round(len(flat) / wall, 2) if wall else None,
            "latency_ms": {"p50": round(_percentile(flat, 50), 1), "p95": round(_percentile(flat, 95), 1),
                           "p99": round(_percentile(flat, 99), 1), "max": round(max(flat), 1),
                           "mean": round(statistics.fmean(flat), 1)} if flat else {}}


# ---------------------------------------------------------------------------------------------------------------
# the JSON API (POST /v1/recommend), recsys/api.py

API_KINDS = ("typed", "typed", "cold", "unknown")  # half the requests personalised


def _api_body(user: int, step: int, models: list[str], known: list[str], k: int, rng) -> tuple[dict, str, str]:
    """One request of a user's cycle: (body, kind, the request's own unknown token)."""
    kind, model = API_KINDS[step % len(API_KINDS)], models[(step // len(API_KINDS) + user) % len(models)]
    token = f"u-c{user}-r{step}"
    if kind == "typed":  # 5-20 known ids with the token among them
        items = [known[int(i)] for i in rng.integers(0, len(known), int(rng.integers(5, 21)))]
        items.insert(int(rng.integers(0, len(items))), token)
    else:
        items = [] if kind == "cold" else [token]
    return {"model": model, "items": items, "k": k, "exclude_seen": bool(step % 2)}, kind, token


def _api_problem(status: int, answer, body: dict, kind: str, token: str) -> str | None:
    """None when the answer is right for this request, else what is wrong (a leaked token included)."""
    if status != 200:
        return f"{kind}/{body['model']}: HTTP {status} {str(answer)[:200]}"
    want = "none" if kind == "typed" else "popularity"
    unknown = answer.get("unknown_items")
    if answer.get("fallback") != want:
        return f"{kind}/{body['model']}: fallback {answer.get('fallback')!r}, expected {want!r}"
    if unknown != ([] if kind == "cold" else [token]):
        return f"{kind}/{body['model']}: LEAK or loss, unknown_items {unknown!r}, expected [{token!r}]"
    if answer.get("model") != body["model"] or not 1 <= len(answer.get("items", [])) <= body["k"] \
            or len(answer["items"]) != len(answer.get("scores", [])):
        return f"{kind}/{body['model']}: {len(answer.get('items', []))} items for k={body['k']}"
    return None


class _Connection:
    """One kept-alive HTTP/1.1 connection, one request at a time: the least a client can do per request (one
    write, one read of the head, one of the body), so the load generator's CPU stays small beside the server's
    on the same cores (aiohttp took ~0.5 ms of CPU a request)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        import asyncio

        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)  # TCP_NODELAY set
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), self.port,
                                                                 len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, close = int(head[9:12]), None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise RuntimeError(f"transfer-encoding {value.strip()!r}: this client reads Content-Length only")
        if length is None:
            raise RuntimeError("an answer without Content-Length")
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def run_api_load(url: str, clients: int = 16, requests: int = 1600, known: list[str] | None = None,
                 server_pid: int | None = None, sample_every: int = 500, k: int = 20, seed: int = 0) -> dict:
    """`clients` concurrent API users (one kept-alive connection each, `_Connection`, all in one event loop)
    sending `requests` POST /v1/recommend in all, each user one request at a time (closed loop): typed sessions of
    5-20 ids of `known` with an unknown token unique to the request (which must come back in that answer's
    unknown_items, and no other), empty sessions and unknown-only sessions, across every model of GET /v1/models.
    Latency per request (overall and per model), every error, and with `server_pid` the server's RSS (MB) before
    the first request and after every `sample_every` answers. The bodies are built before the clock starts."""
    import asyncio
    import json
    from urllib.parse import urlsplit

    known = known or [str(100 + i) for i in range(1, N_ITEMS + 1)]
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    with urllib.request.urlopen(url + "v1/models", timeout=60) as response:
        models = [m["key"] for m in json.loads(response.read())["models"]]
    # every request of the run, made up front: (user, step, body, encoded body, kind, token); users take turns
    rngs = [np.random.default_rng(seed * 1000 + u) for u in range(clients)]
    plan = []
    for step in range(requests):
        u = step % clients
        body, kind, token = _api_body(u, step, models, known, k, rngs[u])
        plan.append((u, step, body, json.dumps(body).encode(), kind, token))

    async def main() -> dict:
        latencies: dict[str, list[float]] = {}
        errors: list[str] = []
        done = 0
        rss = [[0, rss_mb(server_pid)]] if server_pid else []
        queue = iter(plan)

        async def user() -> None:
            nonlocal done
            connection = _Connection(host, port)
            try:
                for u, step, body, data, kind, token in queue:  # the next request of the run, whoever is free
                    began = time.perf_counter()
                    try:
                        status, raw = await connection.post("/v1/recommend", data)
                        latency = time.perf_counter() - began
                        answer = json.loads(raw)
                        problem = _api_problem(status, answer, body, kind, token)
                    except Exception as exc:  # noqa: BLE001 - every failure is counted
                        latency = time.perf_counter() - began
                        problem = f"{kind}/{body['model']}: {exc!r}"
                        await connection.close()
                    latencies.setdefault(body["model"], []).append(latency)
                    done += 1
                    if server_pid and (done % sample_every == 0 or done == requests):
                        rss.append([done, rss_mb(server_pid)])
                    if problem:
                        errors.append(f"user {u} step {step}: {problem}")
            finally:
                await connection.close()

        began = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(clients)))
        wall = time.perf_counter() - began
        return {"latencies": latencies, "errors": errors, "rss": rss, "wall": wall}

    out = asyncio.run(main())
    flat = [x * 1000 for row in out["latencies"].values() for x in row]

    def summary(ms: list[float]) -> dict:
        return {"p50": round(_percentile(ms, 50), 2), "p95": round(_percentile(ms, 95), 2),
                "p99": round(_percentile(ms, 99), 2), "max": round(max(ms), 2),
                "mean": round(statistics.fmean(ms), 2), "n": len(ms)} if ms else {}

    return {"clients": clients, "requests": len(flat), "models": models, "errors": out["errors"],
            "n_errors": len(out["errors"]), **({"rss_mb": out["rss"]} if server_pid else {}),
            "wall_seconds": round(out["wall"], 2),
            "throughput_rps": round(len(flat) / out["wall"], 2) if out["wall"] else None,
            "latency_ms": summary(flat),
            "latency_ms_by_model": {m: summary([x * 1000 for x in v]) for m, v in out["latencies"].items()}}
