"""Push model folders to one Hub repo (one repo per data set, one subfolder per model; see recsys/hub.py).

    python scripts/push_to_hub.py --repo USER/recsys-retailrocket checkpoints/sasrec checkpoints/sknn
    python scripts/push_to_hub.py --repo USER/recsys-retailrocket --all checkpoints/

The token comes from --token, else HF_TOKEN, else `hf auth login`. Prefer the last two: a token on the command
line lands in shell history and process lists. Pushing unchanged folders again makes no commit.

Only the regular files of a folder are pushed: symbolic links, fifos and anything that resolves outside the
folder are left out, each named in a warning (recsys/safefiles.py); a required file (config.json,
model.safetensors, items.json) that is a link stops the push. With --all, a model folder that is itself a link
in DIR is left out and named; a folder named on the command line may be a link (you chose it).
"""

import argparse
import logging
import sys
from pathlib import Path

import _path  # noqa: F401

from recsys.folder import ModelFolderError
from recsys.hub import HubError, push, redact
from recsys.safefiles import publishable_files

log = logging.getLogger("push_to_hub")


def model_folders(root: Path) -> list[Path]:
    """The folders in `root` holding a config.json. One that is a symbolic link is left out and named, as is any
    other link in `root`; a folder whose config.json is a link is kept, for `push` to refuse it by name."""
    listing = publishable_files(root, want_dir=lambda rel: "/" not in rel,
                                want_file=lambda rel: rel.count("/") == 1 and rel.endswith("/config.json"))
    for rel, why in listing.skipped.items():
        if "/" not in rel:
            log.warning("%s", redact(f"--all {root}: not pushing {rel}: {why}"))
    names = {rel.split("/")[0] for rel in [*listing.files, *listing.skipped] if rel.endswith("/config.json")}
    return [root / name for name in sorted(names)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="model folders; each lands in a subfolder of its name")
    parser.add_argument("--all", type=Path, metavar="DIR", help="push every model folder (with config.json) in DIR")
    parser.add_argument("--repo", required=True, help="USER/REPO (or USER/REPO/NAME for a single folder)")
    parser.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps "
                                                               "its visibility)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--revision", help="branch to push to (created if missing; default main)")
    parser.add_argument("--token", help="Hub token with write access (default: HF_TOKEN or the saved login)")
    parser.add_argument("--no-repo-card", action="store_true", help="leave the repo's root README.md alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    folders = list(args.folders)
    if args.all:
        if not args.all.is_dir():
            parser.error(f"--all {args.all}: not a directory")
        folders += model_folders(args.all)
    if not folders:
        parser.error("give model folders or --all DIR")
    try:
        url = push(folders, args.repo, token=args.token, private=args.private, commit_message=args.message,
                   revision=args.revision, update_repo_card=not args.no_repo_card)
    except (HubError, ModelFolderError, ValueError) as err:
        print(f"error: {redact(str(err), args.token)}", file=sys.stderr)
        return 1
    print(f"pushed {', '.join(f.name for f in folders)}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
