"""The one listing of files that may leave this machine: what `push` sends to the Hub and `deploy_space.py` to a
Space. Nothing else walks a folder to publish it.

Why: `Path.rglob` + `is_file()` follow symbolic links, so a model folder holding `env.json -> /proc/self/environ`
published the process environment, HF_TOKEN included, and `notes.md -> /etc/passwd` published that file.

Rules, for every entry under the root (its type is read with lstat, never through a link):
- a symbolic link is never listed, whatever it points to: a file or directory outside the root, or another file
  inside it (that file is listed under its own name; publishing it twice under two names helps nobody);
- only regular files are listed: fifos, sockets and devices are skipped (reading a fifo would also hang);
- a file or directory whose resolved path is not inside the resolved root is skipped (with no links in the way
  this cannot happen; it is checked again because it is what matters);
- a directory that cannot be read is skipped.
Every skipped entry is returned with its reason, for the caller to name it to the user.

The root itself: the caller named it (a command-line argument), so it may be a symbolic link or lie under one
(`checkpoints -> /mnt/disk/checkpoints`); it is resolved once and that real directory is both what is walked and
the boundary no listed file may leave. Folders found by walking (a Space's `assets/`, the model folders of
`push_to_hub.py --all DIR`) are entries like any other: a symlinked one is skipped and named.

Not covered: hard links. A hard link is the file itself, not a pointer that can be told apart, and Linux
(`fs.protected_hardlinks`, on by default) lets only a file's owner link it; whoever can do that can publish the
file directly. Nor a folder rewritten while it is being published (the listing is checked once, then read).
"""

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_KINDS = {stat.S_IFIFO: "a fifo (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


@dataclass
class Listing:
    root: Path  # the resolved root: every path in `files` is inside it
    files: dict[str, Path] = field(default_factory=dict)  # "sub/name.json" (posix, relative) -> regular file
    skipped: dict[str, str] = field(default_factory=dict)  # "sub/name.json" -> why it is not listed


def publishable_files(root: str | Path, *, want_file: Callable[[str], bool] | None = None,
                      want_dir: Callable[[str], bool] | None = None) -> Listing:
    """The regular files under `root` that may be published, and the entries refused (see the module docstring).

    `want_file(rel)` / `want_dir(rel)` choose by name (posix path relative to root) which entries the caller
    would publish at all; the others are ignored without a word and unwanted directories are not walked. A
    symbolic link or special file is refused, and named in `skipped`, when either predicate wants its name (its
    name is all that is known of it without following it). Both default to everything.
    """
    want_file = want_file or (lambda rel: True)
    want_dir = want_dir or (lambda rel: True)
    real_root = Path(os.path.realpath(root))
    if not real_root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    listing = Listing(real_root)
    pending = [(real_root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as err:
            if not prefix:
                raise  # the root itself: nothing can be listed
            listing.skipped[prefix.rstrip("/")] = f"unreadable ({type(err).__name__})"
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as err:  # removed since scandir, or unreadable
                listing.skipped[rel] = f"unreadable ({type(err).__name__})"
                continue
            if stat.S_ISDIR(mode):
                if want_dir(rel):
                    if _inside(entry.path, real_root):
                        pending.append((Path(entry.path), rel + "/"))
                    else:
                        listing.skipped[rel] = "outside the folder once resolved"
                continue
            if not (want_file(rel) or want_dir(rel)):
                continue
            if stat.S_ISLNK(mode):
                listing.skipped[rel] = f"a symbolic link (to {_target(entry.path)}): links are never published"
            elif not stat.S_ISREG(mode):
                listing.skipped[rel] = f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'of an unknown kind')})"
            elif not want_file(rel):
                continue  # a regular file whose name only looked like a wanted directory
            elif not _inside(entry.path, real_root):
                listing.skipped[rel] = "outside the folder once resolved"
            else:
                listing.files[rel] = Path(entry.path)
    listing.files = dict(sorted(listing.files.items()))
    listing.skipped = dict(sorted(listing.skipped.items()))
    return listing


def _inside(path: str, real_root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(real_root)


def _target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "an unreadable target"
