"""The README's bad-input catalogue stays true: every case names a test that exists, and none is listed twice.

A row of the catalogue table reads `| area | case | `test_file.py::test_name[id]` |`. The test function must be
defined in that file, and a parameter id, when given, must appear in the file as written (ids are literal
strings in our parametrize lists), so renaming or deleting a test breaks this one rather than the README.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\|\s*(?P<area>[^|]+?)\s*\|\s*(?P<case>[^|]+?)\s*\|\s*`(?P<test>[^`]+)`\s*\|\s*$")
TEST = re.compile(r"^(?P<file>test_\w+\.py)::(?P<func>test_\w+)(?:\[(?P<id>[^\]]+)\])?$")
MIN_CASES = 150


def catalogue_rows() -> list[dict]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("<!-- catalogue -->")
    end = text.index("<!-- /catalogue -->")
    return [m.groupdict() for line in text[start:end].splitlines() if (m := ROW.match(line))]


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_catalogued_case_names_an_existing_test():
    rows = catalogue_rows()
    assert len(rows) >= MIN_CASES, f"the catalogue lists {len(rows)} cases"
    functions: dict[str, set[str]] = {}
    bad = []
    for row in rows:
        m = TEST.match(row["test"])
        if not m:
            bad.append(f"{row['test']}: not FILE::TEST[ID]")
            continue
        path = ROOT / "tests" / m["file"]
        if not path.is_file():
            bad.append(f"{row['test']}: no such file")
            continue
        if m["func"] not in functions.setdefault(m["file"], _test_functions(path)):
            bad.append(f"{row['test']}: no such test")
        elif m["id"] and m["id"] not in path.read_text(encoding="utf-8"):
            bad.append(f"{row['test']}: parameter id not in the file")
    assert not bad, bad


def test_no_case_is_listed_twice():
    rows = catalogue_rows()
    cases = [(r["area"], r["case"]) for r in rows]
    tests = [r["test"] for r in rows if "[" in r["test"]]
    assert len(set(cases)) == len(cases)
    assert len(set(tests)) == len(tests)
