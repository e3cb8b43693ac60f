"""The README's "Using real data" section cannot drift from the scripts: every command it shows (in ```bash blocks,
and after "$ " in the walkthrough's ```console blocks) parses with its script's own argparse parser, and the
walkthrough still shows what issue 16 asks a user to see: the truncation report, fit / valid / test times, the
selection with its CI, where the plots go, and results.md.

Each script's main() runs until its parser has read the command line and is stopped there, so no work is done.
"""

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
COMMAND = re.compile(r"^(?:\$ )?python (scripts/\w+\.py)\b")


def section() -> str:
    """The section's text, up to the next level-2 heading outside a code block (results.md has its own)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = text.split("\n## Using real data\n", 1)
    assert len(parts) == 2, "README.md has no section 'Using real data'"
    lines, fenced = [], False
    for line in parts[1].splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("## ") and not fenced:
            break
        lines.append(line)
    return "".join(lines)


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def commands() -> list[tuple[str, list[str]]]:
    """(script path, argv) of every `python scripts/X.py ...` line, continuation lines joined."""
    found = []
    for block in blocks("bash") + blocks("console"):
        lines = iter(block.splitlines())
        for line in lines:
            if not COMMAND.match(line):
                continue
            while line.endswith("\\"):
                line = line[:-1] + " " + next(lines).strip()
            words = shlex.split(line.removeprefix("$ "), comments=True)
            found.append((words[1], words[2:]))
    return found


class Parsed(Exception):
    pass


def load_script(path: str, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    name = Path(path).stem
    spec = importlib.util.spec_from_file_location(f"{name}_walkthrough", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_section_shows_commands_of_every_step():
    scripts = {path for path, _ in commands()}
    assert {"scripts/prepare_data.py", "scripts/train_and_eval.py"} <= scripts


@pytest.mark.parametrize("path,argv", commands(), ids=lambda x: x if isinstance(x, str) else " ".join(x)[:60])
def test_every_command_parses_with_its_scripts_own_parser(path, argv, monkeypatch, capsys):
    module = load_script(path, monkeypatch)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)  # an unknown flag or a bad value exits 2 here, naming it
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        module.main(argv)
    except SystemExit as exit_:
        pytest.fail(f"README command does not parse: python {path} {' '.join(argv)}\n"
                    f"{capsys.readouterr().err.strip()} (exit {exit_.code})")
    except Parsed:
        return
    pytest.fail(f"python {path}: main() returned without reading its command line")


def test_the_walkthrough_shows_what_a_first_run_prints():
    shown = "\n".join(blocks("console"))
    assert "$ python scripts/prepare_data.py" in shown and "$ python scripts/train_and_eval.py" in shown
    for what, pattern in {
        "the truncation report": r"cut to the most recent \d+ items \(--max-length\)",
        "each phase timed": r"\] fit [\d.]+s, valid [\d.]+s, test [\d.]+s",
        "the selection with its CI": r"Chosen by validation mrr@20: \S+ \([\d.]+, 95% CI",
        "where the chart goes": r"Wrote \S+/results\.json, \S+/results\.md and \S+/model_comparison\.png",
        "a neural model's curves": r"training_curves\.png",
        "results.md": r"\$ cat \S+/results\.md",
    }.items():
        assert re.search(pattern, shown), f"the walkthrough no longer shows {what} ({pattern!r})"
