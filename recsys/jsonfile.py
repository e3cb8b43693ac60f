"""Read a JSON object from a file; every way that can fail is one error naming the file.

A model folder's files, a run's results, a benchmark's results: whoever reads them chooses the error (a model
folder's is a ModelFolderError) or, where a missing or damaged file only means "nothing yet", catches it.
"""

import json
from pathlib import Path


class JSONFileError(ValueError):
    """A file that does not hold a readable JSON object: says which file and why."""


def read_json(path: str | Path, max_bytes: int | None = None, *, error: type[Exception] = JSONFileError) -> dict:
    """The JSON object in `path`. Unreadable, over `max_bytes`, not UTF-8, not JSON, an integer of over 4300
    digits, nesting too deep for the parser, or not an object: `error` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as err:
        raise error(f"{path.name} cannot be read: {err}") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise error(f"{path.name} is over {max_bytes} bytes, far more than such a file holds")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:  # ValueError: JSONDecodeError, or a >4300-digit integer
        raise error(f"{path.name} is not valid JSON: {str(err)[:200]}") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise error(f"{path.name} is nested too deeply to be read") from None
    if not isinstance(value, dict):
        raise error(f"{path.name} must hold a JSON object")
    return value
