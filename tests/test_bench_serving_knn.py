"""`python scripts/benchmark.py serving --knn` (tools/bench/serving_knn.py): the Zipf catalogue it fits on, the
stated state bounds, and a quick run that writes serving_knn.quick.json and leaves the serving results alone."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.models import REGISTRY, FitOptions
from tools.bench.serving_knn import KNN_MODELS, state_bound_bytes, state_bytes, zipf_catalogue

ROOT = Path(__file__).resolve().parents[1]


def test_zipf_catalogue_spans_the_items_with_zipf_popularity():
    data = zipf_catalogue(5_000, 40_000)
    assert data.n_items == 5_001 and len(data.train) == 40_000
    for split in (data.train, data.valid, data.test):
        assert split.items.min() >= 1 and split.items.max() <= 5_000
    assert set(np.unique(data.test.lengths)) <= set(range(5, 21)) and len(data.test) == 2_000
    assert data.train.lengths.min() >= 2 and 4.5 < data.train.lengths.mean() < 5.5
    pop = np.sort(np.bincount(data.train.items, minlength=5_001)[1:])[::-1]
    assert (pop > 0).mean() > 0.9  # most items occur
    assert pop[:500].sum() > 5 * pop[-2_500:].sum()  # a heavy head: the top 10% outweighs the bottom half 5 times
    again = zipf_catalogue(5_000, 40_000)  # seeded
    assert np.array_equal(again.train.items, data.train.items)


@pytest.mark.parametrize("name", KNN_MODELS)
def test_fitted_state_is_within_its_stated_bound(name):
    data = zipf_catalogue(2_000, 10_000)
    model = REGISTRY[name](REGISTRY[name].Config(), data.n_items)
    model.fit(data, FitOptions(progress=False))
    assert 0 < state_bytes(model) <= state_bound_bytes(name, model.config, data.n_items, data.train)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "scripts/benchmark.py", "serving", "--knn", "--quick", *args, "--results-dir",
           str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--doc", str(tmp_path / "B.md"),
           "--assets", str(tmp_path / "assets")]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_quick_run_writes_its_own_results_file(tmp_path):
    proc = run(tmp_path, "--models", "itemknn,sknn")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not (tmp_path / "results" / "serving.quick.json").exists()  # the other serving rows are not replaced
    r = json.loads((tmp_path / "results" / "serving_knn.quick.json").read_text())
    assert r["suite"] == "serving" and r["command"].startswith("python scripts/benchmark.py serving --knn")
    assert set(r["models"]) == {"itemknn", "sknn"} and r["n_items"] == 2_000
    assert r["data"]["train_sessions"] == 10_000 and r["data"]["items_seen"] <= 2_000
    for e in r["models"].values():
        assert e["fit"]["wall_s"] > 0 and e["fit"]["cpu_s"] >= 0
        assert e["process"]["peak_rss_mib"] >= e["fit_peak_rss_mib"] >= e["data_peak_rss_mib"] > 0  # its own peak
        assert 0 < e["single"]["p50_ms"] <= e["single"]["p99_ms"] and e["single"]["n"] == 10
        assert e["state_mib"] <= e["state_bound_mib"]
    assert [c["met"] for c in r["checks"]][0] is True  # within 8 GiB
    doc = (tmp_path / "B.md").read_text()
    assert "<!-- BEGIN generated:serving-knn -->" in doc and "| itemknn | **" in doc
    assert "| serving-knn | kNN fits at 2,000 items" in doc  # the summary line


def test_knn_run_refuses_other_models(tmp_path):
    proc = run(tmp_path, "--models", "pop")
    assert proc.returncode == 2 and "measures the kNN models" in proc.stderr
    assert "Traceback" not in proc.stderr
