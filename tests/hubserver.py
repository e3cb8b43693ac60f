"""A minimal Hugging Face Hub for offline tests: just the endpoints `huggingface_hub` 2.x uses to create a repo,
commit files, describe a repo and download from it.

    server = HubServer(token="hf_test").start()   # http://127.0.0.1:<free port>, files under a temp dir
    ... run clients with HF_ENDPOINT=server.url ...
    server.stop()

Endpoints (model, dataset and space repos alike; `{repo}` is `namespace/name`):
    POST /api/repos/create                          409 if the repo exists (create_repo(exist_ok=True) relies on it)
    GET  /api/{type}s/{repo}[/revision/{rev}]       repo_info / model_info: sha and siblings
    GET  /api/{type}s/{repo}/tree/{rev}[/{path}]    list_repo_tree / list_repo_files (recursive=true|false)
    POST /api/{type}s/{repo}/preupload/{rev}        every file "regular" (no LFS), with the current blob oid so
                                                    unchanged files are dropped client-side (no empty commits)
    POST /api/{type}s/{repo}/commit/{rev}           ndjson: header, file (base64), deletedFile, deletedFolder
    POST /api/{type}s/{repo}/branch/{branch}        create_branch
    POST /api/validate-yaml                         README front matter must parse as a YAML mapping
    GET  /api/agent-harnesses                       an empty registry (huggingface_hub asks once a day)
    HEAD|GET /[{type}s/]{repo}/resolve/{rev}/{path} ETag (git blob sha1), X-Repo-Commit, Content-Length
Errors carry the `X-Error-Code` header huggingface_hub maps to exceptions (RepoNotFound, RevisionNotFound,
EntryNotFound). Writes need `Authorization: Bearer <token>` when the server has a token. Private repos are
hidden (404 RepoNotFound) from requests without it, as on the Hub. `server.requests` logs (method, path)
so tests can check what a client fetched.

Run standalone for manual checks: `python tests/hubserver.py --port 8123`.
"""

import base64
import hashlib
import json
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import uvicorn
import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the Hub uses as ETag and oid of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    files: dict[str, str]  # path -> blob sha1
    message: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        self.status, self.code, self.message, self.commit = status, code, message, commit


class HubState:
    """Repos in memory, file contents in a content-addressed folder."""

    def __init__(self, root: Path, token: str | None):
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.Lock()

    def put_blob(self, data: bytes) -> str:
        oid = git_blob_sha1(data)
        (self.blobs / oid).write_bytes(data)
        return oid

    def blob(self, oid: str) -> bytes:
        return (self.blobs / oid).read_bytes()

    def commit(self, repo: Repo, branch: str, files: dict[str, str], message: str) -> str:
        parent = repo.branches.get(branch, "")
        payload = json.dumps([parent, message, sorted(files.items()), time.time_ns()]).encode()
        oid = hashlib.sha1(payload).hexdigest()
        repo.commits[oid] = Commit(oid, dict(files), message)
        repo.branches[branch] = oid
        return oid

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return self.token is None or given == f"Bearer {self.token}"

    def get_repo(self, repo_type: str, repo_id: str, request: Request) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self.authorized(request)):
            raise HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        revision = unquote(revision)
        oid = repo.branches.get(revision, revision)
        if oid not in repo.commits:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commits[oid]

    def require_write(self, request: Request) -> None:
        if not self.authorized(request):
            raise HubError(401, None, "Invalid credentials in Authorization header")


def create_app(state: HubState) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.middleware("http")
    async def log_request(request: Request, call_next):
        app.state.requests.append((request.method, request.url.path))
        return await call_next(request)

    @app.exception_handler(HubError)
    async def hub_error(request: Request, err: HubError):
        return _error(err)

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        state.require_write(request)
        body = await request.json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or 'user'}/{body['name']}"
        private = body.get("private") or body.get("visibility") == "private"
        with state.lock:
            if (repo_type, repo_id) in state.repos:
                return JSONResponse({"error": "You already created this repo", "url": _url(request, repo_type,
                                                                                           repo_id)}, 409)
            repo = Repo(repo_id, repo_type, bool(private))
            state.commit(repo, "main", {".gitattributes": state.put_blob(GITATTRIBUTES)}, "initial commit")
            state.repos[(repo_type, repo_id)] = repo
        return {"url": _url(request, repo_type, repo_id), "name": repo_id}

    @app.get("/api/agent-harnesses")
    async def agent_harnesses():  # fetched once a day by huggingface_hub to fill its user agent
        return {"standardEnvVars": [], "harnesses": {}}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request):
        content = (await request.json()).get("content", "")
        if content.startswith("---"):
            try:
                meta = yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as err:
                return JSONResponse({"errors": [{"message": str(err)}]}, 400)
            if meta is not None and not isinstance(meta, dict):
                return JSONResponse({"errors": [{"message": "metadata must be a YAML mapping"}]}, 400)
        return {"errors": [], "warnings": []}

    @app.get("/api/{kind}/{namespace}/{name}")
    @app.get("/api/{kind}/{namespace}/{name}/revision/{revision:path}")
    async def repo_info(kind: str, namespace: str, name: str, request: Request, revision: str = "main"):
        repo = state.get_repo(_repo_type(kind), f"{namespace}/{name}", request)
        commit = state.resolve(repo, revision)
        siblings = [{"rfilename": p} for p in sorted(commit.files)]
        info = {"id": repo.repo_id, "author": namespace, "sha": commit.oid, "private": repo.private,
                "siblings": siblings, "tags": [], "lastModified": "2024-01-01T00:00:00.000Z"}
        if repo.repo_type == "space":
            info["sdk"] = "gradio"
        return info

    @app.get("/api/{kind}/{namespace}/{name}/tree/{revision}")
    @app.get("/api/{kind}/{namespace}/{name}/tree/{revision}/{path:path}")
    async def tree(kind: str, namespace: str, name: str, revision: str, request: Request, path: str = ""):
        repo = state.get_repo(_repo_type(kind), f"{namespace}/{name}", request)
        commit = state.resolve(repo, revision)
        recursive = request.query_params.get("recursive", "false").lower() in ("1", "true")
        prefix = f"{unquote(path).strip('/')}/" if path.strip("/") else ""
        entries, folders = [], set()
        for file, oid in sorted(commit.files.items()):
            if not file.startswith(prefix):
                continue
            rest = file[len(prefix):]
            parts = rest.split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "path": file, "oid": oid, "size": len(state.blob(oid))})
        if prefix and not entries and not folders:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
        dirs = [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0}
                for f in sorted(folders)]
        return dirs + entries

    @app.post("/api/{kind}/{namespace}/{name}/preupload/{revision}")
    async def preupload(kind: str, namespace: str, name: str, revision: str, request: Request):
        state.require_write(request)
        repo = state.get_repo(_repo_type(kind), f"{namespace}/{name}", request)
        commit = state.resolve(repo, revision)
        files = (await request.json())["files"]
        return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                           "oid": commit.files.get(f["path"])} for f in files]}

    @app.post("/api/{kind}/{namespace}/{name}/commit/{revision}")
    async def commit(kind: str, namespace: str, name: str, revision: str, request: Request):
        state.require_write(request)
        repo = state.get_repo(_repo_type(kind), f"{namespace}/{name}", request)
        branch = unquote(revision)
        if branch not in repo.branches:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch} (commits go to a branch)")
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        with state.lock:
            files = dict(repo.commits[repo.branches[branch]].files)
            message = ""
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "header":
                    message = value.get("summary", "")
                    parent = value.get("parentCommit")
                    if parent and parent != repo.branches[branch]:
                        raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
                elif key == "file":
                    files[value["path"]] = state.put_blob(base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
                    del files[value["path"]]
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: o for p, o in files.items() if not p.startswith(folder)}
                else:  # lfsFile: this server never asks for LFS uploads
                    raise HubError(400, None, f"unsupported commit operation {key!r}")
            oid = state.commit(repo, branch, files, message)
        url = _url(request, repo.repo_type, repo.repo_id)
        return {"success": True, "commitOid": oid, "commitUrl": f"{url}/commit/{oid}", "pullRequestUrl": None}

    @app.post("/api/{kind}/{namespace}/{name}/branch/{branch:path}")
    async def create_branch(kind: str, namespace: str, name: str, branch: str, request: Request):
        state.require_write(request)
        repo = state.get_repo(_repo_type(kind), f"{namespace}/{name}", request)
        branch = unquote(branch)
        if branch in repo.branches:
            return JSONResponse({"error": f"Reference already exists: {branch}"}, 409)
        body = await request.body()
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        with state.lock:
            repo.branches[branch] = state.resolve(repo, start).oid
        return {}

    @app.api_route("/{namespace}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve_model(namespace: str, name: str, revision: str, path: str, request: Request):
        return _serve(state, "model", f"{namespace}/{name}", revision, path, request)

    @app.api_route("/{kind}/{namespace}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve_other(kind: str, namespace: str, name: str, revision: str, path: str, request: Request):
        return _serve(state, _repo_type(kind), f"{namespace}/{name}", revision, path, request)

    return app


def _serve(state: HubState, repo_type: str, repo_id: str, revision: str, path: str, request: Request) -> Response:
    repo = state.get_repo(repo_type, repo_id, request)
    commit = state.resolve(repo, revision)
    oid = commit.files.get(unquote(path))
    if oid is None:
        raise HubError(404, "EntryNotFound", f"Entry not found: {path}", commit=commit.oid)
    data = state.blob(oid)
    headers = {"ETag": f'"{oid}"', "X-Repo-Commit": commit.oid, "Content-Length": str(len(data))}
    if request.method == "HEAD":
        return Response(headers=headers)
    return Response(content=data, headers=headers, media_type="application/octet-stream")


def _repo_type(kind: str) -> str:
    if kind not in REPO_TYPES:
        raise HubError(404, None, f"unknown repo kind {kind!r}")
    return REPO_TYPES[kind]


def _url(request: Request, repo_type: str, repo_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/{URL_PREFIX[repo_type]}{repo_id}"


def _error(err: HubError) -> JSONResponse:
    headers = {"X-Error-Message": err.message}
    if err.code:
        headers["X-Error-Code"] = err.code
    if err.commit:
        headers["X-Repo-Commit"] = err.commit
    return JSONResponse({"error": err.message}, err.status, headers=headers)


class HubServer:
    """The app served by uvicorn in a daemon thread on 127.0.0.1 and a free port."""

    def __init__(self, root: str | Path | None = None, token: str | None = None, port: int = 0):
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="hubserver-")
        self.state = HubState(Path(root or self._tmp.name), token)
        self.app = create_app(self.state)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.app.state.requests

    def start(self, timeout: float = 10.0) -> "HubServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test Hub server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--token", default=None, help="require this token for writes (default: any)")
    args = parser.parse_args()
    with HubServer(token=args.token, port=args.port) as hub:
        print(f"serving a test Hub at {hub.url} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
