"""Publish model folders to the Hugging Face Hub and fetch them back.

Layout: one Hub repo per data set, one subfolder per model, so every model trained on the same data is in one
place and can be compared on one page:

    user/recsys-retailrocket/
        README.md           repo card: all models, their test metrics, Hub metadata (written by `push`)
        sasrec/             a model folder (config.json, model.safetensors, items.json, metrics.json, README.md)
        sknn/
        ...

A model is named `user/repo/sasrec` (repo id + subfolder) or `download("user/repo", subfolder="sasrec")`.
`user/repo` alone works when the repo holds one model (at its root or in its only subfolder); otherwise the
error lists the models, and `list_models("user/repo")` returns them for the app's dropdown.

Downloads go through the normal Hub cache (`HF_HOME` / `HF_HUB_CACHE`) with `snapshot_download`, fetch only
`*.safetensors`, `*.json`, `*.md` and `*.png` of the one model (never pickles or other models' files), and
work offline from that cache. Before any Hub call a TCP connect to the endpoint is tried for at most
`RECSYS_HUB_TIMEOUT` seconds (default 3): a Hub that cannot be reached falls back to the cache at once instead
of waiting on huggingface_hub's timeouts and retries (its file fetches retry for ~23 s, 1+2+4+8+8, and
`repo_info`/`create_repo` have no timeout at all). Repo metadata calls then use `HF_HUB_ETAG_TIMEOUT`.

Pushing sends only the regular files of a model folder, listed by recsys.safefiles: symbolic links (a folder
holding `env.json -> /proc/self/environ` once published HF_TOKEN), fifos and anything resolving outside the
folder are left out and named; a required file that is a link is refused.

Environment: HF_TOKEN (or `hf auth login`), HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE=1 (cache only,
no network), HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT, RECSYS_HUB_TIMEOUT. Tokens are never logged and
are masked in every error message.
"""

import json
import logging
import os
import re
import socket
import tempfile
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from httpx2 import TransportError  # huggingface_hub 2.x's HTTP client
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    get_cached_repo_tree,
    get_token,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (
    CachedRepoTreeNotFoundError,
    CacheNotFound,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from recsys.card import MODEL_CARD_MARKER, REPO_CARD_MARKER, model_card, repo_card
from recsys.folder import REQUIRED_FILES, ModelFolderError
from recsys.safefiles import publishable_files

log = logging.getLogger(__name__)

PUBLISHED_SUFFIXES = (".safetensors", ".json", ".md", ".png")  # the only files pushed or pulled
DEFAULT_PROBE_TIMEOUT = 3.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_TOKENISH = re.compile(r"hf_[A-Za-z0-9]{8,}")


class HubError(RuntimeError):
    """The Hub refused or could not be reached, or a repo does not hold the model asked for. Never holds a token."""


# ---------------------------------------------------------------------------------------------------------------
# names


def split_repo_id(repo_id: str, subfolder: str | None = None) -> tuple[str, str | None]:
    """"user/repo/sasrec" -> ("user/repo", "sasrec"); "user/repo" -> ("user/repo", subfolder). The one parser of
    model names: anything else, a local path included ("/x/y", "./x", "~/x", "a\\b"), is a ValueError."""
    parts = repo_id.rstrip("/").split("/")
    if len(parts) not in (2, 3) or not all(_NAME.fullmatch(p) for p in parts):
        raise ValueError(f"not a Hub model name: {repo_id!r} (expected user/repo or user/repo/model)")
    repo, inner = "/".join(parts[:2]), parts[2] if len(parts) == 3 else None
    if subfolder is not None:
        subfolder = subfolder.strip("/")
        if not _NAME.fullmatch(subfolder):
            raise ValueError(f"not a model subfolder name: {subfolder!r}")
        if inner is not None and inner != subfolder:
            raise ValueError(f"{repo_id!r} already names subfolder {inner!r}, but subfolder={subfolder!r} was given")
    return repo, inner or subfolder


def _models_in(files) -> list[str]:
    """Subfolders holding a config.json, i.e. the models of a repo."""
    return sorted({f.rsplit("/", 1)[0] for f in files if f.endswith("/config.json")})


def _pick_subfolder(repo: str, files: set[str], subfolder: str | None) -> str:
    """The model folder to load: "" for a model at the repo root."""
    models = _models_in(files)
    if subfolder is not None:
        if f"{subfolder}/config.json" not in files:
            raise HubError(f"{repo} has no model {subfolder!r}; it holds {models or 'no model folders'}")
        return subfolder
    if "config.json" in files:
        return ""
    if len(models) == 1:
        return models[0]
    if not models:
        raise HubError(f"{repo} holds no model folder (no config.json at its root or in a subfolder)")
    raise HubError(f"{repo} holds several models {models}: name one, e.g. {repo}/{models[0]}")


def _patterns(subfolder: str) -> tuple[list[str], list[str]]:
    """allow/ignore patterns for one model folder: its published files, not its subfolders (fnmatch `*` spans `/`)."""
    prefix = f"{subfolder}/" if subfolder else ""
    return [f"{prefix}*{s}" for s in PUBLISHED_SUFFIXES], [f"{prefix}*/*"]


# ---------------------------------------------------------------------------------------------------------------
# reachability and errors


def _probe_timeout() -> float:
    value = os.environ.get("RECSYS_HUB_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_PROBE_TIMEOUT
    except ValueError:
        raise ValueError(f"RECSYS_HUB_TIMEOUT must be a number of seconds, got {value!r}") from None


def _unreachable_reason(endpoint: str, timeout: float) -> str | None:
    """None if a TCP connection to the endpoint opens within `timeout` s, else why not.

    DNS lookups are not bounded by socket timeouts, so the whole attempt runs in a daemon thread that is
    abandoned after `timeout`. Behind a proxy the direct connect says nothing: skip it and rely on HTTP timeouts.
    """
    url = urlsplit(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if host is None:
        return f"HF_ENDPOINT {endpoint!r} has no host"
    proxies = urllib.request.getproxies()
    if any(k in proxies for k in ("https", "http", "all")) and not urllib.request.proxy_bypass(host):
        return None
    result: list[str | None] = []

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as err:
            result.append(f"{type(err).__name__}: {err.strerror or err}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"no answer within {timeout:g} s"


def _offline() -> bool:
    return bool(constants.HF_HUB_OFFLINE)


def redact(text: str, token: str | None = None) -> str:
    """`text` with the given token, HF_TOKEN, the saved login and anything shaped like a token masked."""
    for secret in {token, os.environ.get("HF_TOKEN"), _stored_token()} - {None, ""}:
        text = text.replace(secret, "***")
    return _TOKENISH.sub("hf_***", text)


def _stored_token() -> str | None:
    try:
        return get_token()
    except Exception:  # a broken token file must not turn an error message into another error
        return None


def _http_error(err: HfHubHTTPError, what: str, token: str | None) -> HubError:
    status = err.response.status_code if err.response is not None else None
    if status == 401:
        hint = "the token was refused: check HF_TOKEN / --token or run `hf auth login`"
    elif status == 403:
        hint = "the token has no write access to this namespace (use a token with write permission)"
    else:
        hint = str(err).split("\n")[0]
    return HubError(redact(f"{what}: {hint}", token))


# ---------------------------------------------------------------------------------------------------------------
# download


def download(repo_id: str, revision: str | None = None, subfolder: str | None = None, *,
             token: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Fetch one model folder from the Hub into the Hub cache and return its local path (ready for `load_folder`).

    `repo_id` is "user/repo/model" or "user/repo" (see the module docstring). Offline (HF_HUB_OFFLINE=1) or when
    the Hub cannot be reached, the cached copy of that revision is used; if there is none, HubError says so.
    """
    repo, subfolder = split_repo_id(repo_id, subfolder)
    where = f"{repo}" + (f"@{revision}" if revision else "")
    if _offline():
        return _from_cache(repo, revision, subfolder, cache_dir, reason="HF_HUB_OFFLINE is set")
    endpoint = constants.ENDPOINT
    reason = _unreachable_reason(endpoint, _probe_timeout())
    if reason is not None:
        return _from_cache(repo, revision, subfolder, cache_dir, reason=f"the Hub at {endpoint} cannot be reached "
                                                                        f"({reason})")
    api = HfApi(token=token)
    try:
        info = api.model_info(repo, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except RepositoryNotFoundError:
        raise HubError(f"repository {repo} not found on {endpoint} (check the name; a private repo needs a token "
                       f"with read access: HF_TOKEN or `hf auth login`)") from None
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} not found in {repo}") from None
    except GatedRepoError:
        raise HubError(f"{repo} is gated: accept its conditions on the Hub and use a token") from None
    except (TransportError, OfflineModeIsEnabled) as err:
        return _from_cache(repo, revision, subfolder, cache_dir, reason=f"the Hub at {endpoint} did not answer "
                                                                        f"({type(err).__name__})")
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code >= 500:
            status = err.response.status_code
            return _from_cache(repo, revision, subfolder, cache_dir, reason=f"the Hub answered {status}")
        raise _http_error(err, f"cannot read {where}", token) from None
    files = {s.rfilename for s in info.siblings or []}
    chosen = _pick_subfolder(repo, files, subfolder)
    allow, ignore = _patterns(chosen)
    try:
        # By name, not by info.sha, so the cache records branch -> commit (refs/) for later offline loads.
        root = snapshot_download(repo, revision=revision, allow_patterns=allow, ignore_patterns=ignore,
                                 token=token, cache_dir=cache_dir, etag_timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except (LocalEntryNotFoundError, TransportError) as err:
        raise HubError(redact(f"downloading {where} failed midway: {str(err).splitlines()[0]}", token)) from None
    except HfHubHTTPError as err:
        raise _http_error(err, f"downloading {where} failed", token) from None
    return _checked(Path(root) / chosen, repo, chosen)


def _from_cache(repo: str, revision: str | None, subfolder: str | None, cache_dir, *, reason: str) -> Path:
    """The cached copy of a model, without any network call.

    First the commit the revision last resolved to (refs/); if that snapshot lacks this model (another model
    was downloaded at a newer commit since), the newest other cached commit that has it, with a warning.
    A commit hash as revision means exactly that commit.
    """
    where = repo + (f"@{revision}" if revision else "")
    candidates = [revision] + ([] if revision and _COMMIT.fullmatch(revision) else _cached_commits(repo, cache_dir))
    problem = f"{where} is not in the local Hub cache ({cache_dir or constants.HF_HUB_CACHE})"
    for i, rev in enumerate(candidates):
        try:
            files = {f.path for f in get_cached_repo_tree(repo, revision=rev, cache_dir=cache_dir)}
            chosen = _pick_subfolder(repo, files, subfolder)
            allow, ignore = _patterns(chosen)
            root = snapshot_download(repo, revision=rev, allow_patterns=allow, ignore_patterns=ignore,
                                     cache_dir=cache_dir, local_files_only=True)
        except CachedRepoTreeNotFoundError:
            continue
        except HubError as err:  # this commit has no such model (or several): remember why, try older ones
            problem = str(err) if i == 0 else problem
            continue
        except (LocalEntryNotFoundError, EntryNotFoundError, IncompleteSnapshotError):
            problem = f"{where}/{subfolder or ''} is only partly in the local Hub cache"
            continue
        if i > 0:
            log.warning("using %s/%s from cached commit %s, older than %s's latest known commit",
                        repo, chosen, rev[:8], revision or constants.DEFAULT_REVISION)
        (log.info if _offline() else log.warning)("loading %s/%s from the local Hub cache: %s", where, chosen, reason)
        return _checked(Path(root) / chosen, repo, chosen)
    fix = "unset HF_HUB_OFFLINE and connect once" if _offline() else "connect once (check HF_ENDPOINT and the network)"
    raise HubError(f"{problem}, and {reason}. To use it, {fix} to download it, or load a local model folder.")


def _cached_commits(repo: str, cache_dir) -> list[str]:
    """Commits of `repo` in the cache, newest first."""
    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    for cached in cache.repos:
        if cached.repo_id == repo and cached.repo_type == "model":
            return [r.commit_hash for r in sorted(cached.revisions, key=lambda r: r.last_modified, reverse=True)]
    return []


def _checked(path: Path, repo: str, subfolder: str) -> Path:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise HubError(f"{repo}/{subfolder} is not a complete model folder: missing {missing}")
    return path


def list_models(repo_id: str, revision: str | None = None, *, token: str | None = None) -> list[str]:
    """Subfolders of a repo that hold a model (config.json), e.g. ["sasrec", "sknn"]; load each as f"{repo}/{name}".

    A model at the repo root is not listed (load it as the bare repo id). Offline or unreachable: the listing
    cached by an earlier download, if any.
    """
    repo, _ = split_repo_id(repo_id)
    if not _offline() and _unreachable_reason(constants.ENDPOINT, _probe_timeout()) is None:
        try:
            info = HfApi(token=token).model_info(repo, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
            return _models_in(s.rfilename for s in info.siblings or [])
        except RepositoryNotFoundError:
            raise HubError(f"repository {repo} not found on {constants.ENDPOINT}") from None
        except RevisionNotFoundError:
            raise HubError(f"revision {revision!r} not found in {repo}") from None
        except (TransportError, OfflineModeIsEnabled):
            pass
        except HfHubHTTPError as err:
            if err.response is None or err.response.status_code < 500:
                raise _http_error(err, f"cannot list {repo}", token) from None
    try:
        return _models_in(f.path for f in get_cached_repo_tree(repo, revision=revision))
    except CachedRepoTreeNotFoundError:
        why = "HF_HUB_OFFLINE is set" if _offline() else f"the Hub at {constants.ENDPOINT} cannot be reached"
        raise HubError(f"{why} and {repo} is not in the local Hub cache") from None


# ---------------------------------------------------------------------------------------------------------------
# push


def push(folders: str | Path | list, repo_id: str, *, token: str | None = None, private: bool = False,
         commit_message: str | None = None, revision: str | None = None, update_repo_card: bool = True) -> str:
    """Upload model folders to `repo_id` in one commit, each under its folder name (or `user/repo/name`). Returns the
    commit URL.

    Creates the repo if needed (`private` applies only then). Only published file types are sent, and only
    regular files of the folder: never a symbolic link or a file that resolves outside it (see `_publishable`;
    each one left out is named in a warning). Files a folder no longer has are deleted from its subfolder;
    unchanged files are skipped, so pushing again what is already there makes no commit. Model cards written by
    recsys.card are regenerated so they show how to load from this repo. The repo card (root README.md) is
    regenerated from every model in the repo unless it was written by hand (it lacks the recsys marker) or
    `update_repo_card=False`.
    """
    folders = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    if not folders:
        raise ValueError("no model folders to push")
    repo, subfolder = split_repo_id(repo_id)
    if subfolder is not None and len(folders) != 1:
        raise ValueError(f"{repo_id!r} names one subfolder but {len(folders)} folders were given")
    names = [subfolder or f.name for f in folders]
    if len(set(names)) != len(names):
        raise ValueError(f"two folders would land in the same subfolder: {names}")
    local = {name: _publishable(folder, token) for name, folder in zip(names, folders, strict=True)}
    if token is None and _stored_token() is None:
        raise HubError("no Hugging Face token: pass --token, set HF_TOKEN, or run `hf auth login`")
    if _offline():
        raise HubError("cannot push: HF_HUB_OFFLINE is set")
    reason = _unreachable_reason(constants.ENDPOINT, _probe_timeout())
    if reason is not None:
        raise HubError(f"cannot push: the Hub at {constants.ENDPOINT} cannot be reached ({reason})")

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo, branch=revision, exist_ok=True)
        remote = set(api.list_repo_files(repo, revision=revision))
        ops: list = []
        for name, files in local.items():
            contents: dict[str, str | bytes] = {rel: str(path) for rel, path in files.items()}
            card = _model_card_for(name, files, repo)
            if card is not None:
                contents["README.md"] = card.encode()
            ops += [CommitOperationAdd(f"{name}/{rel}", content) for rel, content in contents.items()]
            ops += [CommitOperationDelete(p) for p in sorted(remote)
                    if p.startswith(f"{name}/") and p[len(name) + 1:] not in contents]
        if update_repo_card:
            card = _repo_card(api, repo, revision, remote, local)
            if card is not None:
                ops.append(CommitOperationAdd("README.md", card.encode()))
        message = commit_message or f"Upload {', '.join(names)} with recsys"
        info = api.create_commit(repo, ops, commit_message=message, revision=revision)
    except HfHubHTTPError as err:
        raise _http_error(err, f"pushing to {repo} failed", token) from None
    except TransportError as err:
        raise HubError(f"pushing to {repo} failed: lost the connection to {constants.ENDPOINT} "
                       f"({type(err).__name__})") from None
    log.info("pushed %s to %s (%s)", names, url, info.oid[:8] if info.oid else "no change")
    return info.commit_url


def _publishable(folder: Path, token: str | None = None) -> dict[str, Path]:
    """relative path -> file for the files of a model folder that may be published (JSON, safetensors, MD, PNG).

    The folder is listed by recsys.safefiles.publishable_files: a symbolic link (to anywhere, inside the folder
    too), a fifo, socket or device, or anything that resolves outside the folder is never published, and each
    is named in a warning. A required file that is one of these is an error: the folder must hold it itself.
    """
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    listing = publishable_files(folder)
    refused = [f"{f} is {listing.skipped[f]}" for f in REQUIRED_FILES if f in listing.skipped]
    if refused:
        raise ModelFolderError(redact(f"{folder} cannot be published: {'; '.join(refused)}. A model folder must "
                                      f"hold its required files itself: copy them in (cp --dereference)", token))
    missing = [f for f in REQUIRED_FILES if f not in listing.files]
    if missing:
        raise ModelFolderError(f"{folder} is not a model folder: missing {missing}")
    for rel, why in listing.skipped.items():
        log.warning("%s", redact(f"not publishing {rel} from {folder}: {why}", token))
    files, other = {}, []
    for rel, path in listing.files.items():
        if path.suffix in PUBLISHED_SUFFIXES and not any(p.startswith(".") for p in rel.split("/")):
            files[rel] = path
        else:
            other.append(rel)
    if other:
        log.warning("not publishing %s from %s (only %s files are pushed)", other, folder, PUBLISHED_SUFFIXES)
    return files


def _model_card_for(name: str, files: dict[str, Path], repo: str) -> str | None:
    """The model's README.md regenerated to name its Hub location (`recsys.load("user/repo/name")`), or None to
    upload the folder's own README.md untouched (one not written by recsys.card.model_card)."""
    if "README.md" in files and MODEL_CARD_MARKER not in files["README.md"].read_text(encoding="utf-8"):
        return None
    config, metrics = (json.loads(_local_text(files, f)) for f in ("config.json", "metrics.json"))
    return model_card(name, config, metrics, metrics.get("data") or {}, repo)


def _repo_card(api: HfApi, repo: str, revision: str | None, remote: set[str], local: dict) -> str | None:
    """The regenerated root README.md, or None to leave a hand-written one alone."""
    with tempfile.TemporaryDirectory() as tmp:  # not the user's cache: that would move its refs/ to this commit
        if "README.md" in remote:
            current = _remote_text(api, repo, "README.md", revision, tmp)
            if REPO_CARD_MARKER not in current:
                log.info("%s has a hand-written README.md: leaving it as it is", repo)
                return None
        models = {}
        for name in sorted(set(_models_in(remote)) | set(local)):
            texts = [_local_text(local[name], f) if name in local else
                     _remote_text(api, repo, f"{name}/{f}", revision, tmp) for f in ("config.json", "metrics.json")]
            models[name] = (json.loads(texts[0]), json.loads(texts[1]))
    return repo_card(repo, models)


def _local_text(files: dict[str, Path], filename: str) -> str:
    return files[filename].read_text(encoding="utf-8") if filename in files else "{}"


def _remote_text(api: HfApi, repo: str, path: str, revision: str | None, cache_dir: str) -> str:
    try:
        return Path(api.hf_hub_download(repo, path, revision=revision, cache_dir=cache_dir)).read_text(encoding="utf-8")
    except EntryNotFoundError:
        return "{}"


# ---------------------------------------------------------------------------------------------------------------
# Space


def deploy_space(repo_id: str, files: dict[str, Path], *, private: bool = False, token: str | None = None,
                 message: str | None = None, prune: tuple[str, ...] = ()) -> str:
    """Upload `files` (path in the Space -> local file) to the Gradio Space `repo_id` in one commit; returns the
    commit URL.

    Creates the Space if needed (`private` applies only then). Files the Space has under a `prune` prefix (e.g.
    "recsys/") that `files` lacks are deleted, so the Space runs exactly the code sent; unchanged files are
    skipped, so deploying the same files again makes no commit. The caller chooses the files:
    scripts/deploy_space.py lists them with recsys.safefiles, as `push` does for a model folder, and adds the
    sample visitors (checkpoints/sample_sessions.json, recsys.samples) that the app in the Space shows.
    """
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        remote = api.list_repo_files(repo_id, repo_type="space")
        ops: list = [CommitOperationAdd(path, str(local)) for path, local in sorted(files.items())]
        ops += [CommitOperationDelete(p) for p in remote if p.startswith(prune) and p not in files]
        info = api.create_commit(repo_id, ops, repo_type="space", commit_message=message or "Deploy the recsys demo")
    except HfHubHTTPError as err:
        raise _http_error(err, f"deploying to the Space {repo_id} failed", token) from None
    except TransportError as err:
        raise HubError(f"deploying to the Space {repo_id} failed: cannot reach the Hub at {constants.ENDPOINT} "
                       f"({type(err).__name__}); check the network and HF_ENDPOINT") from None
    log.info("deployed %d files to the Space %s (%s)", len(files), repo_id, info.oid[:8] if info.oid else "no change")
    return info.commit_url
