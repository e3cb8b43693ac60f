"""Publishing sends only the regular files of a folder (issue 12, item 1).

A model folder holding `env.json -> /proc/self/environ` and `notes.md -> /etc/passwd` once published both, the
first with HF_TOKEN in it: `Path.rglob` + `is_file()` follow links. Now recsys/safefiles.py lists what `push` and
deploy_space.py send: symbolic links (to anywhere, inside the folder too), fifos and anything resolving outside
the folder are left out and named, and a required file that is a link is refused.

Each push goes through the real huggingface_hub client to tests/hubserver.py, in a subprocess (huggingface_hub
reads HF_ENDPOINT at import); the client then tries to download every file that must not be there.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.safefiles import publishable_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # for deploy_space.py's `import _path`
REPO = "user/safety"
FAKE_SECRET = "hf_fakeSecretNeverPublish0123456789"
HAS_ENVIRON = Path("/proc/self/environ").exists()


def model_folder(path: Path) -> Path:
    """Just what `push` reads: no weights need to be real to be published."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model": "pop", "config": {}, "train": {}}))
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "items.json").write_text("{}")
    (path / "metrics.json").write_text("{}")
    return path


def outside(tmp: Path) -> Path:
    """Files a link could point at: a secret and a stand-in for /etc/passwd, a directory, another model."""
    out = tmp / "outside"
    (out / "dir").mkdir(parents=True)
    (out / "secret.env").write_text(f"HF_TOKEN={FAKE_SECRET}\n")
    (out / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (out / "dir" / "secret.json").write_text(json.dumps({"token": FAKE_SECRET}))
    model_folder(out / "other")
    return out


def make_cases(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    """case -> (model folder, files the Hub must not get)."""
    out = outside(tmp)
    cases = {}
    f = model_folder(tmp / "cases" / "links_out")
    (f / "env.json").symlink_to(out / "secret.env")  # absolute
    (f / "notes.md").symlink_to(os.path.relpath(out / "passwd", f))  # relative, climbing out
    cases["links_out"] = (f, ["env.json", "notes.md"])
    if HAS_ENVIRON:
        f = model_folder(tmp / "cases" / "environ")
        (f / "env.json").symlink_to("/proc/self/environ")
        cases["environ"] = (f, ["env.json"])
    f = model_folder(tmp / "cases" / "linked_dir")
    (f / "extra").symlink_to(out / "dir", target_is_directory=True)
    cases["linked_dir"] = (f, ["extra/secret.json"])
    f = model_folder(tmp / "cases" / "link_inside")
    (f / "alias.json").symlink_to("config.json")
    cases["link_inside"] = (f, ["alias.json"])
    if hasattr(os, "mkfifo"):
        f = model_folder(tmp / "cases" / "fifo")
        os.mkfifo(f / "pipe.json")
        cases["fifo"] = (f, ["pipe.json"])
    f = model_folder(tmp / "cases" / "required_inside")  # weights of another model, by a relative link
    (f / "model.safetensors").unlink()
    (f / "model.safetensors").symlink_to(os.path.relpath(out / "other" / "model.safetensors", f))
    cases["required_inside"] = (f, ["config.json", "model.safetensors"])
    f = model_folder(tmp / "cases" / "required_out")
    (f / "config.json").unlink()
    (f / "config.json").symlink_to(out / "passwd")
    cases["required_out"] = (f, ["config.json", "items.json"])
    return cases


def hub_env(hub_server, tmp: Path, **extra) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    return {**base, "HF_ENDPOINT": hub_server.url, "HF_HOME": str(tmp / "hf_home"), "HF_TOKEN": hub_server.state.token,
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONPATH": str(ROOT), **extra}


# Pushes each case on its own, with push()'s log kept per case, then downloads each forbidden file.
PUSH_CASES = f"""
import json, logging, os, sys, tempfile
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from recsys.folder import ModelFolderError
from recsys.hub import push

class Keep(logging.Handler):
    lines = []
    def emit(self, record):
        self.lines.append(record.getMessage())

logging.getLogger("recsys").addHandler(Keep())
logging.getLogger("recsys").setLevel(logging.INFO)
HfApi().create_repo("{REPO}", exist_ok=True)
out = {{}}
for name, (folder, forbidden) in json.loads(os.environ["CASES"]).items():
    Keep.lines.clear()
    try:
        push(folder, "{REPO}/" + name)
        result = {{"error": None}}
    except ModelFolderError as err:
        result = {{"error": str(err)}}
    result["log"] = list(Keep.lines)
    result["downloaded"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rel in forbidden:
            try:
                hf_hub_download("{REPO}", name + "/" + rel, cache_dir=tmp)
                result["downloaded"].append(rel)
            except EntryNotFoundError:
                pass
    out[name] = result
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pushed(hub_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("safety")
    cases = make_cases(tmp)
    env = hub_env(hub_server, tmp, CASES=json.dumps({k: [str(f), bad] for k, (f, bad) in cases.items()}))
    proc = subprocess.run([sys.executable, "-c", PUSH_CASES], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=180)  # a push that opened the fifo would hang here
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def server_files(hub_server, repo: str, repo_type: str = "model") -> set[str]:
    state = hub_server.state.repos[(repo_type, repo)]
    return set(state.commits[state.branches["main"]].files)


def named(log: list[str], rel: str, why: str) -> bool:
    return any(f"not publishing {rel} from " in line and why in line for line in log)


def test_links_out_of_the_folder_are_never_published(pushed, hub_server):
    r = pushed["links_out"]
    assert r["error"] is None and r["downloaded"] == []
    assert named(r["log"], "env.json", "symbolic link") and named(r["log"], "notes.md", "symbolic link")
    assert {"links_out/config.json", "links_out/model.safetensors"} <= server_files(hub_server, REPO)


@pytest.mark.skipif(not HAS_ENVIRON, reason="no /proc/self/environ here")
def test_proc_self_environ_is_never_published(pushed):
    r = pushed["environ"]
    assert r["error"] is None and r["downloaded"] == []
    assert named(r["log"], "env.json", "symbolic link (to /proc/self/environ)")


def test_no_blob_on_the_hub_holds_a_secret(pushed, hub_server):
    """Whatever the path, neither the fake secret, the client's HF_TOKEN nor the passwd stand-in was uploaded."""
    for blob in hub_server.state.blobs.iterdir():
        data = blob.read_bytes()
        assert FAKE_SECRET.encode() not in data and hub_server.state.token.encode() not in data
        assert b"root:x:0:0" not in data


def test_symlinked_directory_is_named_and_not_walked(pushed, hub_server):
    r = pushed["linked_dir"]
    assert r["error"] is None and r["downloaded"] == []
    assert named(r["log"], "extra", "symbolic link")
    assert not [p for p in server_files(hub_server, REPO) if p.startswith("linked_dir/extra")]


def test_link_to_a_file_inside_the_folder_is_skipped(pushed, hub_server):
    """A link is never published, even to a file of the folder: that file goes up under its own name only."""
    r = pushed["link_inside"]
    assert r["error"] is None and r["downloaded"] == []
    assert named(r["log"], "alias.json", "symbolic link (to config.json)")
    assert "link_inside/config.json" in server_files(hub_server, REPO)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no fifos here")
def test_fifo_is_named_and_skipped(pushed):
    r = pushed["fifo"]
    assert r["error"] is None and r["downloaded"] == []
    assert named(r["log"], "pipe.json", "not a regular file (a fifo")


@pytest.mark.parametrize("case, rel, target", [("required_inside", "model.safetensors", "../../outside/other/"),
                                                ("required_out", "config.json", "outside/passwd")])
def test_required_file_that_is_a_link_is_refused(pushed, hub_server, case, rel, target):
    r = pushed[case]
    assert r["error"] is not None and f"{rel} is a symbolic link (to " in r["error"] and target in r["error"]
    assert "copy them in" in r["error"]
    assert r["downloaded"] == [] and not [p for p in server_files(hub_server, REPO) if p.startswith(case + "/")]


def run_push_cli(hub_server, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/push_to_hub.py", "--repo", "user/cli", *args],
                          env=hub_env(hub_server, tmp), cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_push_cli_names_what_it_leaves_out_and_never_prints_the_token(hub_server, tmp_path):
    out = outside(tmp_path)
    ckpts = tmp_path / "checkpoints"
    good = model_folder(ckpts / "good")
    (good / "env.json").symlink_to(out / "secret.env")
    (ckpts / "evil").symlink_to(out / "other", target_is_directory=True)  # a linked model folder in --all DIR
    proc = run_push_cli(hub_server, tmp_path, "--all", str(ckpts))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not pushing evil: a symbolic link" in proc.stderr and "not publishing env.json from " in proc.stderr
    files = server_files(hub_server, "user/cli")
    assert "good/config.json" in files and not [p for p in files if p.startswith("evil/") or p.endswith("env.json")]

    # A required file linked to a path that holds the token: the push stops, and the error masks it.
    token = hub_server.state.token
    bad = model_folder(tmp_path / "bad")
    (bad / "config.json").unlink()
    (bad / "config.json").symlink_to(tmp_path / f"{token}.json")
    proc = run_push_cli(hub_server, tmp_path, "--token", token, str(bad))
    assert proc.returncode == 1 and "config.json is a symbolic link" in proc.stderr
    assert token not in proc.stderr + proc.stdout and "/***.json)" in proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# deploy_space.py


def deploy_space():
    spec = importlib.util.spec_from_file_location("deploy_space", ROOT / "scripts" / "deploy_space.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project(root: Path) -> Path:
    files = {"app.py": "import recsys\n", "requirements.txt": "gradio\n", "recsys/__init__.py": "",
             "assets/shot.png": "png", "README.md": "---\ntitle: demo\nsdk: gradio\napp_file: app.py\n---\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


BASE = {"app.py", "requirements.txt", "README.md", "recsys/__init__.py", "assets/shot.png"}


def test_space_files_leave_out_links_and_name_them(tmp_path, capsys):
    out = outside(tmp_path)
    root = project(tmp_path / "project")
    (root / "recsys" / "leak.py").symlink_to(out / "secret.env")
    (root / "recsys" / "vendored").symlink_to(out / "dir", target_is_directory=True)
    (root / "assets" / "alias.png").symlink_to("shot.png")
    (root / "data").symlink_to(out / "dir", target_is_directory=True)  # never a candidate: not even named
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "recsys" / "pipe.py")
    assert set(deploy_space().space_files(root)) == BASE
    err = capsys.readouterr().err
    refused = ["recsys/leak.py", "recsys/vendored", "assets/alias.png"] + ["recsys/pipe.py"] * hasattr(os, "mkfifo")
    for rel in refused:
        assert f"not uploading {rel}: " in err
    assert "data" not in err


def test_space_files_refuse_a_linked_assets_folder_to_be_walked(tmp_path, capsys):
    out = outside(tmp_path)
    (out / "dir" / "photo.png").write_text("someone else's")
    root = project(tmp_path / "project")
    for p in (root / "assets").iterdir():
        p.unlink()
    (root / "assets").rmdir()
    (root / "assets").symlink_to(out / "dir", target_is_directory=True)
    assert set(deploy_space().space_files(root)) == BASE - {"assets/shot.png"}
    assert "not uploading assets: a symbolic link" in capsys.readouterr().err


@pytest.mark.parametrize("rel", ["app.py", "README.md", "checkpoints/pop/model.safetensors"])
def test_space_files_refuse_a_required_file_that_is_a_link(tmp_path, rel):
    out = outside(tmp_path)
    root = project(tmp_path / "project")
    model_folder(root / "checkpoints" / "pop")
    (root / rel).unlink()
    (root / rel).symlink_to(out / "passwd")
    with pytest.raises(SystemExit, match=f"{rel} is a symbolic link"):
        deploy_space().space_files(root, with_checkpoints=True)


def test_deploy_to_the_test_hub_sends_no_link(hub_server, tmp_path):
    out = outside(tmp_path)
    root = project(tmp_path / "project")
    (root / "recsys" / "leak.py").symlink_to(out / "secret.env")
    code = (f"import runpy, sys\nsys.path.insert(0, 'scripts')\n"
            f"sys.argv = ['deploy_space.py', '--repo', 'user/safe-demo', '--root', {str(root)!r}, '--no-samples']\n"
            "try:\n    runpy.run_path('scripts/deploy_space.py', run_name='__main__')\n"
            "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "from huggingface_hub import hf_hub_download\nfrom huggingface_hub.errors import EntryNotFoundError\n"
            "try:\n    hf_hub_download('user/safe-demo', 'recsys/leak.py', repo_type='space')\n"
            "    print('downloaded')\nexcept EntryNotFoundError:\n    print('absent')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=hub_env(hub_server, tmp_path), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "absent" and "not uploading recsys/leak.py" in proc.stderr
    assert server_files(hub_server, "user/safe-demo", "space") == BASE | {".gitattributes"}


# ---------------------------------------------------------------------------------------------------------------
# the listing itself


def test_listing_rules(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.json").write_text("{}")
    (root / "sub" / "b.md").write_text("b")
    (root / "broken.json").symlink_to(tmp_path / "nowhere")
    (root / "loop.json").symlink_to("loop.json")
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)
    listing = publishable_files(root)
    assert list(listing.files) == ["a.json", "sub/b.md"]
    assert set(listing.skipped) == {"broken.json", "loop.json", "sub/up"}
    assert all("symbolic link" in why for why in listing.skipped.values())
    # A root named through a link is walked where it really is; what it holds obeys the same rules.
    (tmp_path / "named").symlink_to(root, target_is_directory=True)
    linked = publishable_files(tmp_path / "named")
    assert linked.root == root.resolve() and list(linked.files) == ["a.json", "sub/b.md"]
    assert publishable_files(root, want_dir=lambda rel: False).files.keys() == {"a.json"}
    with pytest.raises(NotADirectoryError):
        publishable_files(root / "a.json")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every directory")
def test_unreadable_directory_is_named(tmp_path):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0)
    try:
        assert publishable_files(tmp_path).skipped == {"locked": "unreadable (PermissionError)"}
    finally:
        (tmp_path / "locked").chmod(0o755)
