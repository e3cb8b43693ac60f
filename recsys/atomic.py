"""Output folders: which ones may be replaced, and replacing them atomically and recoverably.

Every folder the package writes goes through here, so one place decides what may be overwritten:

- `check_output(out, kind, inputs)` refuses (OutputFolderError) a target that is not ours to replace, before any
  work is done. Always refused: a symbolic link, `/`, the home folder, the working folder or one above it, a
  folder that is or holds one of the inputs, a file. Then, by kind, a non-empty folder without its marker:

      dataset  meta.json holding "format_version"            (recsys.data.Dataset.save)
      model    config.json holding "format_version"          (recsys.folder.save_folder)
      run      the --out of train_and_eval, written into and never replaced as a whole: it must be empty or hold
               one of our outputs (results.json, results.md, sample_sessions.json, .work/, *.params.json, a model
               folder), or only a README.md as the repository's checkpoints/ does (a Space deployed with sample
               visitors and no model holds only sample_sessions.json there, and trains into it on first start)

- `atomic_folder(out, kind)` fills a temporary sibling, then swaps it in with two renames:
  out -> .NAME.old-PID-RAND, then .NAME.tmp-PID-RAND -> out, then deletes the old one (its marker last).
  A crash between the renames leaves no `out` but a whole `.old`; the next check of `out` renames it back.
  Leftovers of crashed runs (our exact names, a process id no longer alive, our kind of flat folder) are removed
  then too; those of a live process (a concurrent writer) are left alone.
- `safe_child(root, name)`: the only way a path is built from user text (model names, KEY@VARIANT).
- `write_text_atomic(path, text)`: a file replaced whole (temporary file, fsync, os.replace), never truncated.

Folders and files get the usual umask-derived modes (0755 / 0644 under umask 022).
"""

import errno
import json
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

MARKERS = {"dataset": "meta.json", "model": "config.json"}
KINDS = (*MARKERS, "run")
NAME_CHARS = "letters, digits, '.', '_' and '-'"
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_RUN_FILES = ("results.json", "results.md", "sample_sessions.json")  # recsys.samples.SAMPLES_FILE


class OutputFolderError(ValueError):
    """An output path that must not be written: says which path and why, before any work is done."""


# ---------------------------------------------------------------- names built from user text


def check_name(name: str, what: str = "name") -> str:
    """A single path component of [A-Za-z0-9._-], not '.' or '..'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise OutputFolderError(f"{what} {name!r} is not allowed: use {NAME_CHARS} (not '.' or '..')")
    return name


def check_model_name(name: str) -> str:
    """A registry key, optionally KEY@VARIANT; both parts are checked with `check_name` (they name folders)."""
    key, at, variant = str(name).partition("@")
    check_name(key, f"model {name!r}: key")
    if at:
        check_name(variant, f"model {name!r}: variant")
    return name


def safe_child(root: str | Path, name: str) -> Path:
    """root/name for a user-given name (KEY or KEY@VARIANT), refused unless it stays inside root."""
    check_model_name(name)
    child = Path(root) / name
    if not child.resolve().is_relative_to(Path(root).resolve()):
        raise OutputFolderError(f"{child} leads outside {root} (a symbolic link?); refusing to write there")
    return child


# ---------------------------------------------------------------- what may be replaced


def _has_marker(folder: Path, kind: str) -> bool:
    marker = folder / MARKERS[kind]
    try:
        value = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(value, dict) and "format_version" in value


def _is_run_output(entry: Path) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_file():
        return entry.name in _RUN_FILES or entry.name.endswith(".params.json")
    return entry.is_dir() and (entry.name == ".work" or _has_marker(entry, "model"))


def _refuse(out: Path, why: str, kind: str) -> OutputFolderError:
    action = "write into it" if kind == "run" else "replace it"
    return OutputFolderError(f"output folder {out} {why}; refusing to {action}. Give a new or empty folder "
                             f"(or a previous output of the same kind).")


def check_output(out: str | Path, kind: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse `out` (OutputFolderError) unless it may be replaced (written into, for kind "run") by `kind`.

    Also finishes or undoes an earlier run's swap of `out` that a crash interrupted (see the module docstring).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}; choose from {KINDS}")
    out = Path(out)
    if out.is_symlink():
        raise _refuse(out, "is a symbolic link (give the folder it points to, if that is what you mean)", kind)
    real = out.resolve()
    if real == Path(real.anchor):
        raise _refuse(out, "is the root folder", kind)
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError):
        home = None
    if real == home:
        raise _refuse(out, "is the home folder", kind)
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise _refuse(out, "is the working folder or holds it", kind)
    for path in inputs:
        if path is None:
            continue
        held = Path(path).resolve()
        if held == real or (kind != "run" and real in held.parents):
            raise _refuse(out, f"is or holds the input {path}", kind)
    if kind != "run":
        recover(out, kind)
    if not out.exists():
        return out
    if not out.is_dir():
        raise _refuse(out, "is a file, not a folder", kind)
    entries = sorted(out.iterdir())
    if not entries:
        return out
    names = [e.name for e in entries]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    if kind == "run":
        for name in _RUN_FILES:
            if (out / name).is_symlink() or ((out / name).exists() and not (out / name).is_file()):
                raise _refuse(out, f"holds a {name} that is not a plain file", kind)
        if names != ["README.md"] and not any(_is_run_output(e) for e in entries):
            raise _refuse(out, f"holds files that are not a previous run's ({shown}): no results.json, no "
                               f"model folder", kind)
    elif not _has_marker(out, kind):
        raise _refuse(out, f"is not empty and is not a {kind} folder written by recsys (no {MARKERS[kind]} "
                           f"with format_version; it holds {shown})", kind)
    return out


# ---------------------------------------------------------------- crash leftovers


def _sibling(out: Path, what: str) -> Path:
    return out.with_name(f".{out.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}")


def _leftovers(out: Path) -> list[tuple[Path, str, bool]]:
    """(path, "tmp" | "old", stale) for out's siblings named as this module (or its earlier version) names them.

    Stale: left by a process that is no longer running (names without a process id are from before ids were
    added, so stale too). A live process's are a concurrent writer's, in the middle of its own swap.
    """
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-(?:(\d+)-)?([0-9a-z_]{{8}})")
    if not out.parent.is_dir():
        return []
    found = []
    for path in out.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not path.is_symlink() and path.is_dir():
            found.append((path, match[1], match[2] is None or not _alive(int(match[2]))))
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _flat(folder: Path) -> bool:
    """Our folders hold plain files only."""
    return all(e.is_file() and not e.is_symlink() for e in folder.iterdir())


def recover(out: str | Path, kind: str) -> None:
    """Undo a swap a crash cut between its two renames, and remove stale temporary and old siblings of `out`."""
    out = Path(out)
    stale = [(p, what) for p, what, is_stale in _leftovers(out) if is_stale]
    olds = sorted((p for p, what in stale if what == "old" and _flat(p) and _has_marker(p, kind)),
                  key=lambda p: p.stat().st_mtime_ns)
    if olds and not out.exists() and not out.is_symlink():
        newest = olds.pop()
        try:
            os.rename(newest, out)
        except FileNotFoundError:  # another process (a rank of the same data-parallel run) was quicker
            return
        warnings.warn(f"restored {out} from {newest.name}, left by a run that stopped while replacing it",
                      stacklevel=2)
    for path in olds:
        _remove_ours(path, kind)
    for path, what in stale:
        if what == "tmp" and _flat(path):
            shutil.rmtree(path, ignore_errors=True)


def recover_children(root: str | Path, kind: str) -> None:
    """`recover` every folder of `root` that has leftovers: a run's model folders, whichever models it runs."""
    root = Path(root)
    if not root.is_dir():
        return
    pattern = re.compile(r"\.(.+)\.(?:tmp|old)-(?:\d+-)?[0-9a-z_]{8}")
    names = {m[1] for m in map(pattern.fullmatch, (p.name for p in root.iterdir())) if m}
    for name in sorted(names):
        try:
            child = safe_child(root, name)
        except OutputFolderError:  # not a name we write
            continue
        recover(child, kind)


def _remove_ours(folder: Path, kind: str) -> None:
    """Delete a replaced folder, its marker last: cut short, it is still recognised as ours next time."""
    marker = folder / MARKERS[kind]
    try:
        for entry in folder.iterdir():
            if entry != marker:
                entry.unlink()
        marker.unlink(missing_ok=True)
        folder.rmdir()
    except FileNotFoundError:  # removed meanwhile by another process
        pass
    except OSError as err:
        warnings.warn(f"could not remove the replaced folder {folder}: {err}", stacklevel=2)


# ---------------------------------------------------------------- writing


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_folder(out: str | Path, kind: str, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield an empty temporary sibling of `out` to fill; swap it in when the block ends without error.

    `out` is checked first (`check_output`): only a previous output of the same `kind` is ever replaced.
    """
    if kind not in MARKERS:
        raise ValueError(f"atomic_folder replaces a dataset or model folder, not {kind!r}")
    out = check_output(out, kind, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out, "tmp")
    os.mkdir(tmp)  # mode 0o777 less the umask (tempfile.mkdtemp would give 0700)
    try:
        yield tmp
        for entry in tmp.iterdir():
            _fsync(entry)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = _sibling(out, "old")
        os.rename(out, old)  # the old folder stays whole until the new one is in place
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(out.parent)
    if old is not None:
        _remove_ours(old, kind)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace a file whole: a reader (or a crash) sees the old text or the new one, never a truncated one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, unlike mkstemp's 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)
    return path


def remove_stale_files(folder: str | Path, names: Iterable[str]) -> None:
    """Remove temporary files `write_text_atomic` left for these names when its process died."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    wanted = "|".join(re.escape(n) for n in names)
    pattern = re.compile(rf"\.(?:{wanted})\.tmp-(\d+)-[0-9a-f]{{8}}")
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_file() and not path.is_symlink() and not _alive(int(match[1])):
            path.unlink(missing_ok=True)


def set_aside(path: str | Path, why: str, log=print) -> Path:
    """Rename a damaged output file to NAME.corrupt-TIMESTAMP (never deleted) and say so."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.corrupt-{stamp}-{n}"), n + 1
    try:
        os.rename(path, aside)
    except FileNotFoundError:  # another process (a rank of the same data-parallel run) set it aside first
        return aside
    log(f"warning: {path} {why}; set aside as {aside.name}, and a new one will be written")
    return aside


def describe_os_error(err: OSError) -> str:
    """One line for a failed read or write: what ran out or was refused, and that earlier outputs are kept."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where}: free some space and run again (nothing was left half-written)"
    return f"{err.strerror or err}{where}"
