"""scripts/benchmark.py: every suite runs at --quick size and writes its JSON; the report keeps hand-written text.

Each suite runs as `python scripts/benchmark.py SUITE --quick` in a subprocess with its results, scratch files,
report and plots under tmp_path, so nothing in benchmarks/results or docs/ is touched.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def run_benchmark(tmp_path: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "scripts/benchmark.py", *args, "--quick", "--results-dir", str(tmp_path / "results"),
           "--work-dir", str(tmp_path / "work"), "--doc", str(tmp_path / "BENCHMARKS.md"),
           "--assets", str(tmp_path / "assets")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def result(tmp_path: Path, suite: str) -> dict:
    data = json.loads((tmp_path / "results" / f"{suite}.quick.json").read_text())
    assert data["suite"] == suite and data["quick"] is True
    for key in ("cpu", "cores", "memory_gib", "python", "torch"):
        assert data["machine"][key]
    assert data["command"].startswith("python scripts/benchmark.py " + suite)
    assert len(data["timing"]["load_before"]) == 3 and data["timing"]["wall_s"] > 0
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert f"<!-- BEGIN generated:{suite} -->" in report and "Quick size" in report
    return data


def test_eval_suite(tmp_path):
    run_benchmark(tmp_path, "eval")
    data = result(tmp_path, "eval")
    assert [r["batch_size"] for r in data["runs"]] == [256, 1024]
    for run in data["runs"]:
        assert run["cases"] == data["spec"]["n_cases"]
        assert run["peak_rss_mib"] > run["rss_before_mib"] > 0
        assert run["evaluate_wall_s"] > 0 and run["evaluate_cpu_s"] >= 0
    sharded = data["sharded"]  # 2 gloo processes: rank 0 alone and sharded give the same metrics
    assert sharded["same_mrr20"] is True and sharded["cases"] > 0 and sharded["ratio"] > 0
    assert all(cpu > 0 for cpu in sharded["cpu_s_per_rank"]["sharded"])  # both ranks scored cases
    assert "| sharded |" in (tmp_path / "BENCHMARKS.md").read_text()


@pytest.mark.slow
def test_data_suite(tmp_path):
    run_benchmark(tmp_path, "data")
    data = result(tmp_path, "data")
    assert set(data["sizes"]) == {"retailrocket-size", "yoochoose-size"}
    for size in data["sizes"].values():
        run = size["runs"][0]
        assert set(run["phases"]) == {"read", "build", "save"}
        assert run["raw_events"] == size["generator"]["n_events"]
        assert run["peak_rss_mib"] > 0 and run["prepare_wall_s"] > 0
        assert size["generation"]["wall_s"] > 0


@pytest.mark.slow
def test_serving_suite(tmp_path):
    from recsys.models import REGISTRY

    run_benchmark(tmp_path, "serving")
    data = result(tmp_path, "serving")
    (size,) = data["sizes"].values()
    assert set(size["models"]) == set(REGISTRY)
    for name, entry in size["models"].items():
        assert "skipped" not in entry, (name, entry)
        assert 0 < entry["single"]["p50_ms"] <= entry["single"]["p99_ms"]
        assert entry["batch"]["sessions_per_s"] > 0
        cls = REGISTRY[name]
        parts = getattr(cls.Config(), "components", ())
        neural = cls.trains_in_epochs or any(REGISTRY[p].trains_in_epochs for p in parts)
        assert ("weights" in entry) == neural  # neural (parts): random weights, said so
    app = data["app"]
    if (ROOT / "app.py").is_file() and importlib.util.find_spec("gradio_client"):
        assert app.get("p50_ms", 0) > 0, app
    else:
        assert "skipped" in app


def test_serving_run_of_some_models_keeps_the_other_rows(tmp_path):
    """`serving --models M` measures M again and merges it into the last results, marked with its command."""
    run_benchmark(tmp_path, "serving", "--models", "pop,spop", "--no-app")
    first = result(tmp_path, "serving")["sizes"]["1k"]["models"]
    run_benchmark(tmp_path, "serving", "--models", "spop", "--no-app")
    merged = result(tmp_path, "serving")["sizes"]["1k"]["models"]
    assert set(merged) == {"pop", "spop"} and merged["pop"] == first["pop"]
    assert "--models spop " in merged["spop"]["run"]["command"]
    assert "--models pop,spop" in merged["pop"]["run"]["command"]  # kept from the first run, as it was
    assert merged["spop"]["single"] != first["spop"]["single"]  # measured again
    assert "--models spop" in (tmp_path / "BENCHMARKS.md").read_text()


@pytest.mark.slow
def test_train_suite(tmp_path):
    run_benchmark(tmp_path, "train")
    data = result(tmp_path, "train")
    for model in ("sasrec", "gru4rec"):
        (run,) = data["ours"][model].values()
        assert run["epochs"] == 1 and run["median_s_per_epoch"] > 0
        assert run["target_positions"] == data["data"]["target_positions"]  # nothing truncated
        assert run["process"]["peak_rss_mib"] > 0
    assert "status" in data["peers"]
    assert set(data["quality"]) == {"sasrec", "gru4rec"} and "seeds" not in data["quality"]["sasrec"]
    # one model again with two seeds: its entry gains both seeds' runs and their mean; the other model's is kept
    run_benchmark(tmp_path, "train", "--models", "sasrec", "--seeds", "2")
    again = result(tmp_path, "train")
    seeds = again["quality"]["sasrec"]["seeds"]
    assert [r["seed"] for r in seeds["runs"]] == [0, 1] and seeds["finished"] == 2
    assert again["quality"]["sasrec"]["final"]["test_ndcg@10"] == seeds["runs"][0]["test_ndcg@10"]
    assert again["quality"]["gru4rec"] == data["quality"]["gru4rec"]
    assert again["ours"]["gru4rec"] == data["ours"]["gru4rec"]
    assert any("mean of 2 seeds" in c["what"] for c in again["checks"])
    assert "sasrec, mean of 2" in (tmp_path / "BENCHMARKS.md").read_text()


def test_accuracy_suite(tmp_path):
    if not (SHARED / "s3rec" / "Beauty.txt").is_file():
        pytest.skip(f"shared data not found at {SHARED}: the accuracy suite needs ../shared/data")
    run_benchmark(tmp_path, "accuracy", "--datasets", "beauty,ml-1m", "--models", "pop")
    data = result(tmp_path, "accuracy")
    pop = data["datasets"]["beauty"]["models"]["pop"]
    assert 0 < pop["test_scaled"]["hr@10"]["value"] < 0.2
    assert pop["test_scaled"]["hr@10"] == pop["test_raw"]["hr@10"]  # leave-one-out drops no test case
    ml1m = data["datasets"]["ml-1m"]
    assert ml1m["data"]["test_cases_kept"] == ml1m["data"]["test_cases_total"] > 0  # the validation users only
    assert ml1m["models"]["pop"]["refit"] is False  # valid covers 512 users: no refit on it
    # ML-1M and Beauty rank only the items a user has not had (the published protocols; neither repeats a pair)
    assert ml1m["exclude_seen"] is True and ml1m["models"]["pop"]["exclude_seen"] is True
    assert data["datasets"]["beauty"]["models"]["pop"]["exclude_seen"] is True
    # a later run (or one beside it) adds its models to what is there instead of replacing the file
    run_benchmark(tmp_path, "accuracy", "--datasets", "beauty", "--models", "spop")
    merged = result(tmp_path, "accuracy")["datasets"]
    assert {"pop", "spop"} <= set(merged["beauty"]["models"]) and "pop" in merged["ml-1m"]["models"]
    assert merged["beauty"]["models"]["pop"] == pop
    goal = [c for c in result(tmp_path, "accuracy")["checks"] if c["what"].startswith("beauty: best model")]
    assert len(goal) == 2 and all(c["target"] in (9.28, 5.31) and c["met"] is False for c in goal)  # pop, spop


def test_accuracy_skips_without_shared_data(tmp_path):
    run_benchmark(tmp_path, "accuracy", "--shared-data", str(tmp_path / "absent"))
    data = result(tmp_path, "accuracy")
    assert "skipped" in data and "not found" in data["skipped"]


def test_report_keeps_hand_written_text():
    from tools.bench.report import fill_blocks

    text = "# B\n\nhand\n\n<!-- BEGIN generated:eval -->\nold\n<!-- END generated:eval -->\n\nmore hand\n"
    out = fill_blocks(text, {"eval": "new table\n", "train": "train table\n"})
    assert "hand\n" in out and "more hand" in out and "old" not in out
    assert "<!-- BEGIN generated:eval -->\nnew table\n<!-- END generated:eval -->" in out
    assert "<!-- BEGIN generated:train -->\ntrain table\n<!-- END generated:train -->" in out
    assert fill_blocks(out, {"eval": "new table\n", "train": "train table\n"}) == out  # idempotent


def test_a_new_report_points_to_the_prose_in_docs_benchmarks():
    """A report written to a new file has every section and block, and refers to docs/BENCHMARKS.md, which holds
    the prose under the same section titles."""
    from tools.bench.report import SECTIONS, skeleton

    text, doc = skeleton(), (ROOT / "docs" / "BENCHMARKS.md").read_text()
    assert "docs/BENCHMARKS.md" in text
    for name, title in SECTIONS.items():
        assert f"<!-- BEGIN generated:{name} -->\n<!-- END generated:{name} -->" in text
        assert title is None or (f"## {title}\n" in text and f"## {title}\n" in doc)


def test_benchmark_code_is_not_deployed():
    """tools/ lies outside the package: neither the Space upload (deploy_space.py) nor the wheel holds it."""
    import tomllib

    sys.path.insert(0, str(ROOT / "scripts"))  # for the script's `import _path`
    spec = importlib.util.spec_from_file_location("deploy_space", ROOT / "scripts" / "deploy_space.py")
    deploy_space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy_space)
    code = [p for p in deploy_space.space_files(ROOT) if p.endswith(".py")]
    assert "app.py" in code and "recsys/__init__.py" in code
    benchmark_code = [p for p in code if p.startswith("tools/") or "loadtest" in p  # recsys/app/workbench.py is app
                      or any(part.startswith("bench") for part in Path(p).parts)]
    assert not benchmark_code
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["recsys*"]
