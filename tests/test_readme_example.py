"""The README's Python example ("Model folders and loading") runs from any folder, not only the repository root.

The set-up (`make demo` / `make test`, the Makefile's `.venv/installed` rule) installs the package into .venv as
an editable install, so `import recsys` works wherever the user is. The test takes the example block out of the
README as it is, rewrites nothing but the model path (to a Pop folder it saves), and runs it with this
interpreter in a temporary folder outside the repository with no PYTHONPATH.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recsys
from recsys.folder import save_folder
from recsys.models.pop import Pop, PopConfig

ROOT = Path(__file__).resolve().parents[1]
N = 20
LOAD_CALL = re.compile(r'recsys\.load\("([^"]+)"\)')


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Model folders and loading\n", 1)
    assert len(section) == 2, "README.md has no section 'Model folders and loading'"
    body = section[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, flags=re.S)
    examples = [b for b in blocks if b.startswith("import recsys")]
    assert examples, "no ```python block starting with 'import recsys' in 'Model folders and loading'"
    return examples[0]


def pop_folder(path: Path) -> Path:
    """A small Pop model folder (the example takes its session from the folder's own catalogue)."""
    n = N - 1
    items = pd.DataFrame({"item_id": pd.array([f"item-{i}" for i in range(1, n + 1)], dtype="string"),
                          "category_id": pd.array(["c"] * n, dtype="string"),
                          "popularity": np.ones(n, dtype=int)})
    model = Pop(PopConfig(), N)
    model.counts = torch.arange(N, dtype=torch.float32)
    return save_folder(model, path, items)


def outside_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_outside(args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=outside_env(), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def outside(tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert ROOT not in work.resolve().parents, "the temporary folder must lie outside the repository"
    return work


def test_readme_example_runs_outside_the_repository(tmp_path, outside):
    example = readme_example()
    folder = pop_folder(tmp_path / "models" / "pop")
    rewritten, count = LOAD_CALL.subn(lambda m: f"recsys.load({str(folder)!r})", example)
    assert count == 1, f"expected one recsys.load(\"...\") call in the README example:\n{example}"
    script = outside / "example.py"
    script.write_text(rewritten, encoding="utf-8")

    done = run_outside([str(script)], outside)
    assert done.returncode == 0, f"the README example failed outside the repository:\n{done.stderr[-3000:]}"

    model = recsys.load(str(folder))
    ids, _ = recsys.recommend(model, model.vocab.encode(model.vocab.item_ids[:2]), k=10)
    expected = model.vocab.decode(ids)
    assert len(expected) == 10
    assert done.stdout.strip().splitlines()[-1] == str(expected)


def test_installed_package_is_the_checkout_and_only_recsys(outside):
    """The editable install points at this checkout's recsys/; tools/, scripts and app.py are not importable."""
    done = run_outside(["-c", "import recsys, sys; print(recsys.__file__)"], outside)
    assert done.returncode == 0, f"`import recsys` fails outside the repository:\n{done.stderr[-3000:]}"
    assert Path(done.stdout.strip()).resolve() == (ROOT / "recsys" / "__init__.py").resolve()
    for name in ("tools", "app"):
        done = run_outside(["-c", f"import {name}"], outside)
        assert done.returncode != 0, f"`import {name}` works outside the repository: it must not be installed"
