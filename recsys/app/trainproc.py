"""An upload's training in a child process at a lower CPU priority, so the server keeps answering other visitors.

`train(limits, token, request, log, cancelled, on_model)` takes what `recsys.app.workbench.train` takes, returns
what it returns and raises the same kinds of error (DataError, Cancelled, ValueError, OSError) with the same
messages, but the work runs in `python -m recsys.app.trainproc`: the SAME `workbench.train`, in a process that
first lowers its own priority (nice `RECSYS_TRAIN_NICE`, default 19, where it also takes Linux's SCHED_IDLE
policy: the scheduler gives the server the CPU it needs and the training the rest) and its thread count
(`RECSYS_TRAIN_THREADS`, default 1, for torch and the OpenMP/BLAS pools; the server keeps the other core).
Measured with tools/bench_workbench.py latency
(docs/BENCHMARKS.md): in the server's own thread, the training doubled other visitors' /recommend latency, by
holding the GIL and both cores.

Why a subprocess of a module and not multiprocessing: the "spawn" start method re-runs the parent's `__main__`
(app.py: gradio, every served model) in the child, and "fork" copies a threaded server. The module entry point
imports only what training needs, and nothing is pickled: the request goes down the child's stdin as one JSON
line, and its log lines, per-model scores, result or error come back as JSON lines on its stdout (the child moves
everything else it prints to stderr, which it shares with the server's log).

Clean-up. The Stop button (`cancelled` set) terminates the child; a child that dies (killed, out of memory) or
is stopped cannot remove its own staging folder, so the parent removes, inside that upload's folder only, the
`.tmp-*` and `run-*` entries that appeared since the child started (links are unlinked, never followed). A child
whose parent goes away sees its stdin close and stops at its next step, removing its own staging folder.
One child at a time per server (`_ONE`): app.py queues trainings one at a time already; this also covers a
cancelled one still being wound down while the next starts.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from recsys.app import workbench
from recsys.datasets.schema import DataError

_ERRORS = {"DataError": DataError, "Cancelled": workbench.Cancelled, "ValueError": ValueError, "OSError": OSError}
_ONE = threading.Lock()  # one training child per server
GRACE_SECONDS = 5.0  # a terminated child gets this long before it is killed
POLL_SECONDS = 0.2  # how often the Stop flag is looked at while the child works


class ChildDied(RuntimeError):
    """The training process ended without a result (killed, out of memory, crashed)."""


@dataclass(frozen=True)
class ChildOptions:
    nice: int = 19  # the child's nice value (at least the server's own): 0 (as the server) to 19 (the lowest)
    threads: int = 1  # torch and OpenMP/BLAS threads in the child

    def __post_init__(self):
        if not (isinstance(self.nice, int) and 0 <= self.nice <= 19):
            raise ValueError(f"RECSYS_TRAIN_NICE must be a whole number from 0 to 19, got {self.nice!r}")
        if not (isinstance(self.threads, int) and 1 <= self.threads <= 256):
            raise ValueError(f"RECSYS_TRAIN_THREADS must be a whole number from 1 to 256, got {self.threads!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ChildOptions":
        def whole(name: str, default: int) -> int:
            text = (environ.get(name) or "").strip()
            try:
                return int(text) if text else default
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {text!r}") from None

        return cls(whole("RECSYS_TRAIN_NICE", cls.nice), whole("RECSYS_TRAIN_THREADS", cls.threads))


# ---------------------------------------------------------------------------------------------- the JSON that goes down


def _request_json(limits: workbench.Limits, token: str, request: workbench.TrainRequest,
                  options: ChildOptions) -> str:
    limits_json = {f.name: getattr(limits, f.name) for f in fields(limits)}
    limits_json["root"] = os.path.abspath(limits.root)  # not resolved: a linked root stays refused in the child
    request_json = {f.name: getattr(request, f.name) for f in fields(request)}
    return json.dumps({"limits": limits_json, "token": token, "request": request_json,
                       "options": {"nice": options.nice, "threads": options.threads}})


def _from_json(message: dict) -> tuple[workbench.Limits, str, workbench.TrainRequest, ChildOptions]:
    limits = workbench.Limits(**{**message["limits"], "root": Path(message["limits"]["root"])})
    spec = dict(message["request"])
    for f in fields(workbench.TrainRequest):  # JSON lists back into the tuples the request holds
        if isinstance(f.default, tuple) and isinstance(spec.get(f.name), list):
            spec[f.name] = tuple(spec[f.name])
    return limits, message["token"], workbench.TrainRequest(**spec), ChildOptions(**message["options"])


# ---------------------------------------------------------------------------------------------- the parent


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory, or stopped from outside)" if -code == signal.SIGKILL else ""
        return f"the training process was killed by {name}{hint}; nothing of it was kept"
    return f"the training process ended unexpectedly (exit code {code}); nothing of it was kept"


def _remove_new_entries(folder: Path, before: set[str]) -> None:
    """Remove the staging and run folders that appeared in `folder` since `before` (its entries then): what a
    stopped or dead child made. Only direct entries of the upload's own folder; a link is unlinked, not followed."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return  # the upload itself is gone
    for entry in entries:
        if entry.name in before or not entry.name.startswith((".tmp-", "run-")):
            continue
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry, ignore_errors=True)  # rmtree removes links inside, never what they point to


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
    child.wait()


def _read(stream, into: queue.Queue) -> None:
    """The child's JSON lines into `into`, then None at the end of its output."""
    try:
        for line in stream:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # never written by the child's channel; nothing to act on
            if isinstance(message, list) and message and isinstance(message[0], str):
                into.put(message)
    finally:
        into.put(None)


def train(limits: workbench.Limits, token: str, request: workbench.TrainRequest,
          log: Callable[[str], None] = print, cancelled: threading.Event | None = None,
          on_model: Callable[[str, float, int, int], None] | None = None,
          options: ChildOptions | None = None, on_start: Callable[[int], None] | None = None) -> workbench.Trained:
    """`workbench.train` in a child process (see the module docstring). on_start(pid) is called once it runs."""
    options = options or ChildOptions.from_env()
    folder = workbench.upload_folder(limits, token)  # a bad token is refused here, before any process starts
    cancelled = cancelled or threading.Event()
    while not _ONE.acquire(timeout=POLL_SECONDS):  # an earlier child still being stopped
        if cancelled.is_set():
            raise workbench.Cancelled("training stopped")
    try:
        before = {p.name for p in folder.iterdir()}
        threads = str(options.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "OPENBLAS_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                          os.environ.get("PYTHONPATH")]))}
        child = subprocess.Popen([sys.executable, "-m", "recsys.app.trainproc"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=env, text=True, encoding="utf-8")
        outcome: dict = {}
        messages: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_read, args=(child.stdout, messages), daemon=True,
                                  name=f"train-read-{child.pid}")
        reader.start()
        try:
            if on_start:
                on_start(child.pid)
            try:
                child.stdin.write(_request_json(limits, token, request, options) + "\n")
                child.stdin.flush()  # stdin stays open: closing it (or this process ending) tells the child to stop
            except BrokenPipeError:
                pass  # the child ended at once: its exit code says how, below
            while True:
                if cancelled.is_set() and "result" not in outcome:
                    raise workbench.Cancelled("training stopped")
                try:
                    message = messages.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if message is None:
                    break
                kind, *rest = message
                if kind == "log":
                    log(str(rest[0]))
                elif kind == "model" and on_model:
                    name, score, done, total = rest
                    on_model(str(name), float(score), int(done), int(total))
                elif kind in ("result", "error"):
                    outcome[kind] = rest[0]
            child.wait()
        except BaseException:
            _stop(child)
            _remove_new_entries(folder, before)
            raise
        finally:
            reader.join(GRACE_SECONDS)  # the child is gone: its output ends
            for stream in (child.stdin, child.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if "result" in outcome:
            return _trained(limits, token, outcome["result"])
        _remove_new_entries(folder, before)  # the child removes its own on an error; not when it was killed
        if "error" in outcome:
            error = outcome["error"]
            raise _ERRORS.get(error.get("kind"), RuntimeError)(str(error.get("message")))
        raise ChildDied(_describe_exit(child.returncode))
    finally:
        _ONE.release()


def _trained(limits: workbench.Limits, token: str, result: dict) -> workbench.Trained:
    """The child's result, its paths rebuilt here from the upload's own folder and the run's name."""
    folder = workbench.upload_folder(limits, token)
    name = str(result.get("run_folder", ""))
    final = folder / name
    if not (name.startswith("run-") and "/" not in name and final.is_dir() and not final.is_symlink()):
        raise ChildDied("the training process reported a run folder that is not there")
    scores = {str(k): float(v) for k, v in (result.get("scores") or {}).items()}
    return workbench.Trained(token, workbench.upload_name(folder), final / "run", final / "data", result["results"],
                             scores)


# ---------------------------------------------------------------------------------------------- the child


def _lower_priority(options: ChildOptions) -> tuple[int, bool]:
    """Nice this process to `options.nice` (never above the priority it started with); returns its nice value
    and whether it now runs under Linux's SCHED_IDLE policy, which it takes at the lowest setting (19): the
    scheduler then runs it only on a core that would otherwise idle and lets a waking server thread preempt it at
    once (nice 19 alone still gets a small share and a scheduler tick's delay). The out-of-memory killer is also
    told to take this process before the server (Linux; best effort)."""
    now = os.getpriority(os.PRIO_PROCESS, 0)
    if options.nice > now:
        os.setpriority(os.PRIO_PROCESS, 0, options.nice)
    idle = False
    if options.nice == 19 and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            idle = True
        except OSError:
            pass
    try:
        Path("/proc/self/oom_score_adj").write_text("500")
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0), idle


def main() -> int:
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)  # the JSON lines, on the real stdout
    os.dup2(2, 1)  # anything else printed (Lightning, warnings) goes to stderr, the server's log
    lock = threading.Lock()

    def send(*message) -> None:
        with lock:
            channel.write(json.dumps(list(message)) + "\n")
            channel.flush()

    limits, token, request, options = _from_json(json.loads(sys.stdin.readline()))
    nice, idle = _lower_priority(options)
    import torch

    torch.set_num_threads(options.threads)
    stop = threading.Event()

    def watch_parent() -> None:  # the parent closes our stdin to stop us, or by ending
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    send("log", f"Training in a separate process (pid {os.getpid()}, nice {nice}{', idle scheduling' * idle}, "
                f"{options.threads} thread{'s' * (options.threads != 1)}) ...")
    try:
        trained = workbench.train(limits, token, request, log=lambda line: send("log", line), cancelled=stop,
                                  on_model=lambda *score: send("model", *score))
    except (DataError, workbench.Cancelled, ValueError, OSError) as err:
        kind = next(k for k, cls in _ERRORS.items() if isinstance(err, cls))
        send("error", {"kind": kind, "message": str(err)})
        return 1
    except Exception as err:
        import traceback

        traceback.print_exc()  # to the server's log; the page gets one line
        send("error", {"kind": "RuntimeError", "message": f"{type(err).__name__}: {err}"})
        return 1
    send("result", {"run_folder": trained.run.parent.name, "results": trained.results, "scores": trained.scores})
    return 0


if __name__ == "__main__":
    sys.exit(main())
