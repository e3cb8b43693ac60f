"""Deploy the Gradio app to a Hugging Face Space.

    python scripts/deploy_space.py --repo USER/recsys-demo [--private] [--with-checkpoints]

Uploads app.py, requirements.txt, README.md (its front matter configures the Space: `sdk: gradio`, `app_file`,
...), the recsys/ package and assets/ (screenshots), plus packages.txt if present, in one commit. With
--with-checkpoints the model folders under checkpoints/ go too (JSON, safetensors, MD, PNG only), for a Space
that must not depend on a model repo; otherwise the app loads its models from the Hub. Never uploaded: .venv,
data, tests, tools/ (the benchmarks), caches. Files the Space has under recsys/, assets/ (and checkpoints/ with
that flag) that are gone locally are deleted, so the Space runs exactly this code. Unchanged files are skipped
(no empty commit). The upload itself is recsys.hub.deploy_space.

Only regular files of the project are uploaded (recsys/safefiles.py, the same listing `push` uses): a symbolic
link (a file, or a directory such as a linked assets/), a fifo or anything that resolves outside the project is
left out and named on stderr. app.py, requirements.txt, README.md and, with --with-checkpoints, a model's
config.json / model.safetensors / items.json must be regular files: a link there stops the deploy.
"""

import argparse
import sys
from pathlib import Path, PurePosixPath

import yaml
from _path import ROOT

from recsys.folder import REQUIRED_FILES as MODEL_FILES
from recsys.hub import HubError, deploy_space
from recsys.safefiles import publishable_files

TOP_FILES = ("app.py", "requirements.txt", "README.md", "packages.txt")
REQUIRED = ("app.py", "requirements.txt", "README.md")
ASSET_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".css", ".md")
CHECKPOINT_SUFFIXES = (".safetensors", ".json", ".md", ".png")


def space_files(root: Path = ROOT, with_checkpoints: bool = False) -> dict[str, Path]:
    """path in the Space -> local file. Entries refused by publishable_files are named on stderr."""
    trees = {"recsys": None, "assets": ASSET_SUFFIXES} | ({"checkpoints": CHECKPOINT_SUFFIXES}
                                                          if with_checkpoints else {})

    def want_dir(rel: str) -> bool:
        parts = rel.split("/")
        return parts[0] in trees and not any(p.startswith(".") or p == "__pycache__" for p in parts)

    def want_file(rel: str) -> bool:
        path = PurePosixPath(rel)
        if len(path.parts) == 1:
            return rel in TOP_FILES
        if not want_dir(rel):  # hidden, or in __pycache__
            return False
        suffixes = trees[path.parts[0]]
        return path.suffix in suffixes if suffixes else path.suffix not in (".pyc", ".pyo")

    listing = publishable_files(root, want_file=want_file, want_dir=want_dir)
    required = [*REQUIRED] + [rel for rel in listing.skipped if rel.startswith("checkpoints/")
                              and rel.count("/") == 2 and rel.rsplit("/", 1)[1] in MODEL_FILES]
    refused = [f"{rel} is {listing.skipped[rel]}" for rel in required if rel in listing.skipped]
    if refused:
        raise SystemExit(f"error: cannot deploy {root}: {'; '.join(refused)}. Copy the file in (cp --dereference)")
    missing = [f for f in REQUIRED if f not in listing.files]
    if missing:
        raise SystemExit(f"error: {root} lacks {missing}, which a Space needs")
    _check_front_matter(listing.files["README.md"])
    for rel, why in listing.skipped.items():
        print(f"warning: not uploading {rel}: {why}", file=sys.stderr)
    return listing.files


def _check_front_matter(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else None
    if not isinstance(meta, dict) or meta.get("sdk") != "gradio":
        raise SystemExit(f"error: {readme} needs Space front matter with `sdk: gradio` (and app_file, title, ...): "
                         "see https://huggingface.co/docs/hub/spaces-config-reference")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="USER/SPACE")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--with-checkpoints", action="store_true", help="also upload checkpoints/*/ model folders")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--token", help="Hub token with write access (default: HF_TOKEN or the saved login)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # tests deploy a fixture tree
    args = parser.parse_args(argv)
    files = space_files(args.root, args.with_checkpoints)
    prune = ("recsys/", "assets/") + (("checkpoints/",) if args.with_checkpoints else ())
    try:
        url = deploy_space(args.repo, files, private=args.private, token=args.token, message=args.message,
                           prune=prune)
    except HubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"deployed {len(files)} files to the Space {args.repo}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
