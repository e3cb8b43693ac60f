"""Publishing to and loading from the Hub, against the local test Hub (tests/hubserver.py): no network needed.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when first imported, so each client runs in a
subprocess with its own environment and prints one JSON line of results. One module-scoped scenario pushes and
downloads; the offline and unreachable cases then reuse its Hub cache.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recsys.card import REPO_CARD_MARKER, model_card, repo_card
from recsys.data import Dataset
from recsys.folder import load_folder, save_folder
from recsys.hub import HubError, split_repo_id
from recsys.models import REGISTRY, recommend
from recsys.sessions import Sessions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # for deploy_space.py's `import _path`
REPO = "user/recsys-toy"
WRONG_TOKEN = "hf_wrongtoken9876543210zyxw"
METRICS = {"valid": {"hr@10": {"value": 0.5, "ci95": [0.4, 0.6]}, "mrr@10": {"value": 0.25, "ci95": [0.2, 0.3]}},
           "test": {"hr@10": {"value": 0.45, "ci95": [0.35, 0.55]}, "cases": 3}}
STATS = {"source": "toy", "n_items": 5, "train": {"sessions": 3, "events": 9, "mean_length": 3.0}}


def toy_folder(out: Path, name: str) -> Path:
    seqs = [[1, 2, 3], [2, 3, 4], [3, 4, 5], [1, 3]]
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(1, 6)], "category_id": ["c"] * 5,
                          "popularity": np.bincount(np.concatenate(seqs), minlength=6)[1:],
                          "first_seen": pd.Timestamp(0, tz="UTC"), "last_seen": pd.Timestamp(0, tz="UTC")})
    data = Dataset(Sessions.from_lists(seqs), Sessions.from_lists(seqs[:1]), Sessions.from_lists(seqs[1:2]), items)
    model = REGISTRY[name](REGISTRY[name].Config(), data.n_items)
    model.fit(data)
    config = {"model": name, "config": {}, "train": {}}
    folder = save_folder(model, out / name, items, metrics={**METRICS, "data": STATS},
                         card=model_card(name, config, METRICS, STATS, None))  # as training writes it
    (folder / "stray.pkl").write_bytes(b"never published")
    return folder


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_client(code: str, *, endpoint: str, hf_home: Path, token: str, timeout: int = 120, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env = {**base, "HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "HF_TOKEN": token,
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_VERBOSITY": "debug", "PYTHONPATH": str(ROOT), **env}
    prelude = "import json, sys, time\nimport recsys\nfrom recsys.hub import HubError, download, list_models, push\n"
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["_stderr"] = proc.stderr
    return result


SCENARIO = f"""
import os, tempfile
from pathlib import Path
from huggingface_hub import HfApi
pop, spop = os.environ["FOLDERS"].split(",")
out = {{}}
__import__("sys").path.insert(0, "scripts")  # for the script's `import _path`
push_cli = __import__("runpy").run_path("scripts/push_to_hub.py")["main"]
assert push_cli(["--repo", "{REPO}", pop]) == 0
out["first"] = HfApi().model_info("{REPO}").sha
push(pop, "{REPO}")
out["again"] = HfApi().model_info("{REPO}").sha
try:
    push(pop, "{REPO}", token="{WRONG_TOKEN}")
except HubError as err:
    out["wrong_token"] = str(err)
HfApi().upload_file(path_or_fileobj=b"pickle", path_in_repo="pop/evil.pkl", repo_id="{REPO}")
push(spop, "{REPO}")
out["models"] = list_models("{REPO}")
pop_dir = download("{REPO}/pop")
out["files"] = sorted(p.name for p in pop_dir.iterdir())
out["pop_readme"] = (pop_dir / "README.md").read_text()
model = recsys.load("{REPO}/pop")
ids, scores = recsys.recommend(model, [1, 2], k=5)
out["ids"], out["scores"] = ids.tolist(), scores.tolist()
for name in ["user/nope/pop", "{REPO}", "{REPO}/sasrec"]:
    try:
        download(name)
    except HubError as err:
        out[name] = str(err)
with tempfile.TemporaryDirectory() as tmp:  # not HF_HOME: the offline tests check what loading cached
    out["readme"] = Path(HfApi().hf_hub_download("{REPO}", "README.md", cache_dir=tmp)).read_text()
print(json.dumps(out))
"""

LOAD_POP = f"""
out = {{}}
t = time.perf_counter()
model = recsys.load("{REPO}/pop")
out["load_s"] = time.perf_counter() - t
ids, scores = recsys.recommend(model, [1, 2], k=5)
out["ids"], out["scores"] = ids.tolist(), scores.tolist()
out["models"] = list_models("{REPO}")
t = time.perf_counter()
try:
    download("user/never-downloaded/pop")
except HubError as err:
    out["error"] = str(err)
out["error_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def scenario(hub_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    folders = [toy_folder(tmp / "checkpoints", name) for name in ("pop", "spop")]
    hf_home = tmp / "hf_home"
    result = run_client(SCENARIO, endpoint=hub_server.url, hf_home=hf_home, token=hub_server.state.token,
                        FOLDERS=",".join(map(str, folders)))
    return {"result": result, "hf_home": hf_home, "pop": folders[0], "requests": list(hub_server.requests),
            "token": hub_server.state.token}


def local_recommendation(folder: Path):
    ids, scores = recommend(load_folder(folder, REGISTRY), [1, 2], k=5)
    return ids.tolist(), scores.tolist()


def test_round_trip_gives_the_local_scores(scenario):
    r = scenario["result"]
    assert (r["ids"], r["scores"]) == local_recommendation(scenario["pop"])
    assert r["models"] == ["pop", "spop"]
    assert set(r["files"]) == {"config.json", "model.safetensors", "items.json", "metrics.json", "README.md"}


def test_push_again_is_idempotent(scenario, hub_server):
    r = scenario["result"]
    assert r["first"] == r["again"]  # pushed by the script, then by push(): the second made no commit
    files = hub_server.state.repos[("model", REPO)]
    head = files.commits[files.branches["main"]].files
    assert "pop/stray.pkl" not in head and "pop/model.safetensors" in head and "README.md" in head


def test_tokens_never_leak(scenario):
    r = scenario["result"]
    assert "token was refused" in r["wrong_token"]
    for text in (r["wrong_token"], r["_stderr"]):  # stderr holds huggingface_hub's debug log
        assert WRONG_TOKEN not in text and scenario["token"] not in text


def test_pickles_are_never_downloaded(scenario):
    assert "evil.pkl" not in scenario["result"]["files"]
    assert not [p for _, p in scenario["requests"] if p.endswith(".pkl")]
    assert not list(scenario["hf_home"].rglob("*.pkl"))


def test_clear_errors_for_wrong_names(scenario):
    r = scenario["result"]
    assert "repository user/nope not found" in r["user/nope/pop"]
    assert "several models ['pop', 'spop']" in r[REPO]
    assert "has no model 'sasrec'" in r[f"{REPO}/sasrec"]


def test_repo_card_lists_every_model(scenario):
    readme = scenario["result"]["readme"]
    meta = yaml.safe_load(readme.split("---")[1])
    assert meta["library_name"] == "recsys" and {"pop", "spop", "recommendation"} <= set(meta["tags"])
    assert [m["name"] for m in meta["model-index"]] == [f"{REPO}/pop", f"{REPO}/spop"]
    assert REPO_CARD_MARKER in readme and "[spop](./spop/README.md)" in readme
    assert f'recsys.load("{REPO}/pop")' in scenario["result"]["pop_readme"]  # the model card now names the repo


def test_offline_load_from_cache(scenario, hub_server):
    before = len(hub_server.requests)
    r = run_client(LOAD_POP, endpoint=f"http://127.0.0.1:{closed_port()}", hf_home=scenario["hf_home"],
                   token=scenario["token"], HF_HUB_OFFLINE="1")
    assert (r["ids"], r["scores"]) == local_recommendation(scenario["pop"])
    assert r["models"] == ["pop", "spop"]
    assert "not in the local Hub cache" in r["error"] and "HF_HUB_OFFLINE" in r["error"]
    assert len(hub_server.requests) == before


def test_unreachable_hub_falls_back_to_cache_quickly(scenario):
    r = run_client(LOAD_POP, endpoint=f"http://127.0.0.1:{closed_port()}", hf_home=scenario["hf_home"],
                   token=scenario["token"])
    assert (r["ids"], r["scores"]) == local_recommendation(scenario["pop"])
    assert "cannot be reached" in r["error"] and "not in the local Hub cache" in r["error"]
    assert r["load_s"] < 5 and r["error_s"] < 5  # no retries: huggingface_hub alone takes ~23 s


def test_hub_that_never_answers_is_bounded(scenario):
    """A port that accepts connections but never replies: the metadata call times out (HF_HUB_ETAG_TIMEOUT)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel backlog; nothing ever reads them
        r = run_client(LOAD_POP, endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
                       hf_home=scenario["hf_home"], token=scenario["token"], HF_HUB_ETAG_TIMEOUT="1")
    assert (r["ids"], r["scores"]) == local_recommendation(scenario["pop"])
    assert "did not answer" in r["error"]
    assert r["load_s"] < 6 and r["error_s"] < 6


def test_model_card_front_matter():
    card = model_card("sasrec", {"model": "sasrec", "config": {"d": 64}, "train": {"lr": 1e-3}}, METRICS,
                      STATS, REPO)
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "recsys"
    assert meta["tags"] == ["recommendation", "session-based", "next-item-prediction", "sasrec"]
    assert meta["datasets"] == ["toy"] and "pipeline_tag" not in meta
    (entry,) = meta["model-index"]
    assert entry["name"] == f"{REPO}/sasrec"
    (result,) = entry["results"]
    assert result["dataset"]["split"] == "test" and result["metrics"] == [
        {"type": "hr@10", "value": 0.45, "name": "HR@10 (test)"}]
    assert "| HR@10 | 0.5000 [0.4000, 0.6000] | 0.4500 [0.3500, 0.5500] |" in card
    assert f'recsys.load("{REPO}/sasrec")' in card and "## Limitations" in card


def test_cards_without_metrics_still_render():
    assert "No metrics were recorded" in model_card("pop", {}, {}, {}, None)
    meta = yaml.safe_load(repo_card(REPO, {"pop": ({"model": "pop"}, {})}).split("---")[1])
    assert "model-index" not in meta and meta["tags"][-1] == "pop"


def test_split_repo_id():
    assert split_repo_id("user/repo/sasrec") == ("user/repo", "sasrec")
    assert split_repo_id("user/repo", subfolder="sknn") == ("user/repo", "sknn")
    assert split_repo_id("user/repo") == ("user/repo", None)
    for bad in ("repo", "user/repo/../x", "user/re po"):
        with pytest.raises(ValueError):
            split_repo_id(bad)
    with pytest.raises(ValueError, match="already names"):
        split_repo_id("user/repo/a", subfolder="b")
    assert issubclass(HubError, RuntimeError)


SAMPLES = json.dumps({"sessions": [{"session_id": "v1", "items": ["i1", "i2", "i3"]},
                                   {"session_id": "v2", "items": ["i2", "i4"]}]})


def load_deploy_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_space", ROOT / "scripts" / "deploy_space.py")
    deploy_space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy_space)
    return deploy_space


def space_tree(root: Path) -> Path:
    files = {"app.py": "import recsys\n", "requirements.txt": "gradio\n", "recsys/__init__.py": "",
             "recsys/models/pop.py": "", "recsys/__pycache__/x.cpython-311.pyc": "", "assets/shot.png": "png",
             "assets/notes.txt": "", "tests/test_x.py": "", "data/raw/events.csv": "", ".venv/bin/python": "",
             "checkpoints/pop/config.json": "{}", "checkpoints/pop/model.safetensors": "w",
             "checkpoints/pop/last.ckpt": "pickle", "checkpoints/sample_sessions.json": SAMPLES,
             "README.md": "---\ntitle: demo\nsdk: gradio\napp_file: app.py\n---\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_space_file_selection(tmp_path):
    deploy_space = load_deploy_script()
    root = space_tree(tmp_path)
    base = {"app.py", "requirements.txt", "README.md", "recsys/__init__.py", "recsys/models/pop.py", "assets/shot.png"}
    assert set(deploy_space.space_files(root)) == base
    samples = root / "checkpoints" / "sample_sessions.json"
    assert deploy_space.space_files(root, samples=samples) == {
        **deploy_space.space_files(root), "checkpoints/sample_sessions.json": samples}
    assert set(deploy_space.space_files(root, with_checkpoints=True)) == base | {
        "checkpoints/pop/config.json", "checkpoints/pop/model.safetensors", "checkpoints/sample_sessions.json"}
    (root / "README.md").write_text("# no front matter\n")
    with pytest.raises(SystemExit, match="sdk: gradio"):
        deploy_space.space_files(root)


def test_deploy_space_to_test_hub(hub_server, tmp_path):
    root = space_tree(tmp_path / "project")
    code = (f"import runpy, sys\nsys.path.insert(0, 'scripts')\n"
            f"sys.argv = ['deploy_space.py', '--repo', 'user/demo', '--root', {str(root)!r}]\n"
            "for _ in range(2):\n"
            "    try:\n"
            "        runpy.run_path('scripts/deploy_space.py', run_name='__main__')\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code == 0, exit.code\n")
    env = {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_HOME": str(tmp_path / "hf"),
           "HF_TOKEN": hub_server.state.token, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    space = hub_server.state.repos[("space", "user/demo")]
    assert set(space.commits[space.branches["main"]].files) == {
        ".gitattributes", "app.py", "requirements.txt", "README.md", "recsys/__init__.py", "recsys/models/pop.py",
        "assets/shot.png", "checkpoints/sample_sessions.json"}  # the visitors the first start wrote
    assert "with 2 sample visitors" in proc.stdout
    assert len(space.commits) == 2  # the repo's initial commit and one deploy: the second run changed nothing


def test_deploy_space_with_a_refused_token_is_a_hub_error(hub_server, tmp_path):
    (tmp_path / "app.py").write_text("import recsys\n")
    code = ("from pathlib import Path\nfrom recsys.hub import deploy_space\n"
            f"try:\n    deploy_space('user/refused', {{'app.py': Path({str(tmp_path / 'app.py')!r})}}, "
            f"token={WRONG_TOKEN!r})\n    out = 'deployed'\n"
            "except HubError as err:\n    out = str(err)\nprint(json.dumps({'error': out}))\n")
    r = run_client(code, endpoint=hub_server.url, hf_home=tmp_path / "hf", token=hub_server.state.token)
    assert "deploying to the Space user/refused failed" in r["error"] and "token was refused" in r["error"]
    assert WRONG_TOKEN not in r["error"] + r["_stderr"]


SPACE_VISITORS = """
import os
from huggingface_hub import snapshot_download
os.chdir(snapshot_download("user/visitors", repo_type="space"))  # the Space's files, where its app runs
from recsys.app.service import AppService
service = AppService.from_env({})  # no variable set: checkpoints/sample_sessions.json, no data folder
print(json.dumps({"files": sorted(str(p) for p in __import__("pathlib").Path(".").rglob("*") if p.is_file()),
                  "sessions": service.visitors.sessions, "samples": service.visitors.samples,
                  "data_exists": os.path.isdir(service.data_dir)}))
"""


def test_a_deployed_space_shows_the_visitors_make_demo_shows(hub_server, tmp_path):
    from recsys.app.visitors import Visitors
    from recsys.prepare import prepare

    root = space_tree(tmp_path / "project")
    (root / "checkpoints" / "sample_sessions.json").unlink()  # by default: the test split of the make demo data
    data = prepare("synthetic", out=root / "data" / "processed" / "synthetic", synthetic={"n_events": 3000})
    env = {"HF_ENDPOINT": hub_server.url, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": hub_server.state.token,
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    code = (f"import runpy, sys\nsys.path.insert(0, 'scripts')\nsys.argv = ['deploy_space.py', '--repo', "
            f"'user/visitors', '--root', {str(root)!r}]\n"
            "try:\n    runpy.run_path('scripts/deploy_space.py', run_name='__main__')\n"
            "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = Visitors.from_processed(root / "data" / "processed" / "synthetic")
    assert len(expected) == len(data.test) > 0
    assert f"with {len(expected):,} sample visitors" in proc.stdout
    r = run_client(SPACE_VISITORS, endpoint=hub_server.url, hf_home=tmp_path / "hf2", token=hub_server.state.token)
    assert "checkpoints/sample_sessions.json" in r["files"] and not r["data_exists"]
    assert r["sessions"] == expected.sessions and r["samples"] == expected.samples  # what make demo shows
    assert r["samples"]  # the visitor picker is not empty


def test_deploy_space_refuses_a_missing_linked_or_foreign_visitors_file(tmp_path, capsys):
    deploy = load_deploy_script()
    root = space_tree(tmp_path / "project")
    argv = ["--repo", "user/never", "--root", str(root)]
    (root / "checkpoints" / "sample_sessions.json").unlink()
    with pytest.raises(SystemExit, match="no sample visitors to upload.*--samples-from DATA.*--no-samples"):
        deploy.main(argv)
    (tmp_path / "secret.json").write_text('{"token": "hf_x"}')
    (root / "checkpoints" / "sample_sessions.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(SystemExit, match="symbolic link"):
        deploy.main(argv)
    for bad in ('{"token": "hf_x"}', '{"sessions": [{"session_id": "a", "items": {"x": 1}}]}', "not json", "[]"):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(SystemExit, match="cannot upload .*bad.json as the Space's visitors"):
            deploy.main([*argv, "--samples", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match="is not a processed data set folder"):
        deploy.main([*argv, "--samples-from", str(tmp_path)])
    with pytest.raises(SystemExit):
        deploy.main([*argv, "--samples", str(tmp_path / "bad.json"), "--no-samples"])  # one source of visitors
    assert "not allowed with argument" in capsys.readouterr().err
