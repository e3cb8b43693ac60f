"""Deploy the Gradio app to a Hugging Face Space.

    python scripts/deploy_space.py --repo USER/recsys-demo [--private] [--with-checkpoints]
                                   [--samples FILE | --samples-from DATA | --no-samples]

Uploads app.py, requirements.txt, README.md (its front matter configures the Space: `sdk: gradio`, `app_file`,
...), the recsys/ package and assets/ (screenshots), plus packages.txt if present, in one commit. With
--with-checkpoints the model folders under checkpoints/ go too (JSON, safetensors, MD, PNG only), for a Space
that must not depend on a model repo; otherwise the app loads its models from the Hub (the Space variable
RECSYS_MODELS). Never uploaded: .venv, data, tests, tools/ (the benchmarks), caches. Files the Space has under
recsys/, assets/ (and checkpoints/ with that flag) that are gone locally are deleted, so the Space runs exactly
this code. Unchanged files are skipped (no empty commit). The upload itself is recsys.hub.deploy_space.

Sample visitors: a Space has no data folder, so the app there shows the visitors of
`checkpoints/sample_sessions.json` (its default `$RECSYS_SAMPLES`; recsys/samples.py). That file is uploaded
always: with --samples-from DATA, the test sessions of that processed data set (use the one the served models were
trained on); --samples FILE, a file of that format; by default the project's checkpoints/sample_sessions.json if
there is one, else the test sessions of data/processed/synthetic (the data set `make demo` builds and trains on).
--no-samples deploys without visitors (and deletes the Space's file).

Only regular files of the project are uploaded (recsys/safefiles.py, the same listing `push` uses): a symbolic
link (a file, or a directory such as a linked assets/), a fifo or anything that resolves outside the project is
left out and named on stderr. app.py, requirements.txt, README.md and, with --with-checkpoints, a model's
config.json / model.safetensors / items.json must be regular files: a link there stops the deploy.
"""

import argparse
import sys
import tempfile
from pathlib import Path, PurePosixPath

import yaml
from _path import ROOT

from recsys.folder import REQUIRED_FILES as MODEL_FILES
from recsys.hub import HubError, deploy_space
from recsys.prepare import DEFAULT_DATA
from recsys.safefiles import publishable_files
from recsys.samples import MAX_SAMPLE_SESSIONS, SAMPLES_FILE, SampleFileError, check_sample_file, write_sample_sessions

TOP_FILES = ("app.py", "requirements.txt", "README.md", "packages.txt")
REQUIRED = ("app.py", "requirements.txt", "README.md")
ASSET_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".css", ".md")
CHECKPOINT_SUFFIXES = (".safetensors", ".json", ".md", ".png")
SPACE_SAMPLES = f"checkpoints/{SAMPLES_FILE}"  # where the app in the Space looks for its visitors by default


def space_files(root: Path = ROOT, with_checkpoints: bool = False, samples: Path | None = None) -> dict[str, Path]:
    """path in the Space -> local file. Entries refused by publishable_files are named on stderr. `samples`: a
    sample visitors file to upload as checkpoints/sample_sessions.json (checked to be one)."""
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
    files = dict(listing.files)
    if samples is not None:
        files[SPACE_SAMPLES] = _sample_file(samples)
    return files


def _sample_file(path: Path) -> Path:
    """`path` listed by publishable_files (a regular file, never a link) and checked to be a sample sessions
    file, so that nothing else is published under its name."""
    path = Path(path)
    listing = publishable_files(path.parent, want_file=lambda rel: rel == path.name, want_dir=lambda rel: False)
    if path.name in listing.skipped:
        raise SystemExit(f"error: cannot upload the sample visitors {path}: it is {listing.skipped[path.name]}. "
                         "Copy the file in (cp --dereference)")
    if path.name not in listing.files:
        raise SystemExit(f"error: the sample visitors file {path} does not exist")
    try:
        check_sample_file(listing.files[path.name])
    except SampleFileError as err:
        raise SystemExit(f"error: cannot upload {path} as the Space's visitors: {err}") from None
    return listing.files[path.name]


def samples_from(data: Path, out: Path, max_sessions: int) -> Path:
    """The test sessions of the processed data set `data`, written to out/sample_sessions.json."""
    if not ((data / "test.parquet").is_file() and (data / "items.parquet").is_file()):
        raise SystemExit(f"error: {data} is not a processed data set folder (no test.parquet and items.parquet); "
                         "see scripts/prepare_data.py")
    try:
        n = write_sample_sessions(data, out / SAMPLES_FILE, max_sessions=max_sessions)
    except (OSError, ValueError, KeyError) as err:  # pyarrow's errors are among these
        raise SystemExit(f"error: cannot read the test sessions of {data}: {str(err)[:300]}") from None
    print(f"sample visitors: {n:,} test sessions of {data}")
    return out / SAMPLES_FILE


def default_samples(root: Path, out: Path, max_sessions: int) -> Path:
    """The project's checkpoints/sample_sessions.json, else the test sessions of the embedded default data set
    (data/processed/synthetic, built by `make demo`) written to out/."""
    path, data = root / SPACE_SAMPLES, root / DEFAULT_DATA
    if path.exists() or path.is_symlink():
        return path
    if (data / "test.parquet").is_file():
        return samples_from(data, out, max_sessions)
    raise SystemExit(f"error: no sample visitors to upload: neither {path} nor {data} (which `make demo` builds) "
                     "exists. Pass --samples-from DATA (a processed data set, e.g. the one the served models were "
                     "trained on) or --samples FILE, or --no-samples to deploy without visitors")


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
    visitors = parser.add_mutually_exclusive_group()
    visitors.add_argument("--samples", type=Path, metavar="FILE",
                          help=f"sample visitors to upload as {SPACE_SAMPLES} (default: that file of the project)")
    visitors.add_argument("--samples-from", type=Path, metavar="DATA",
                          help="upload the test sessions of this processed data set as the sample visitors")
    visitors.add_argument("--no-samples", action="store_true", help="deploy without sample visitors")
    parser.add_argument("--max-visitors", type=int, default=MAX_SAMPLE_SESSIONS,
                        help="--samples-from: at most this many sessions, evenly spaced "
                             f"(default {MAX_SAMPLE_SESSIONS:,})")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--token", help="Hub token with write access (default: HF_TOKEN or the saved login)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # tests deploy a fixture tree
    args = parser.parse_args(argv)
    if args.max_visitors < 1:
        parser.error(f"--max-visitors must be at least 1, not {args.max_visitors}")
    prune = ("recsys/", "assets/") + (("checkpoints/",) if args.with_checkpoints else
                                      (SPACE_SAMPLES,) if args.no_samples else ())
    with tempfile.TemporaryDirectory(prefix="recsys-space-") as tmp:
        samples = (None if args.no_samples else args.samples if args.samples is not None else
                   samples_from(args.samples_from, Path(tmp), args.max_visitors) if args.samples_from is not None
                   else default_samples(args.root, Path(tmp), args.max_visitors))
        files = space_files(args.root, args.with_checkpoints, samples)
        if args.no_samples:
            files.pop(SPACE_SAMPLES, None)  # also when --with-checkpoints listed it
        n_visitors = check_sample_file(files[SPACE_SAMPLES]) if SPACE_SAMPLES in files else 0
        try:
            url = deploy_space(args.repo, files, private=args.private, token=args.token, message=args.message,
                               prune=prune)
        except HubError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(f"deployed {len(files)} files to the Space {args.repo} with {n_visitors:,} sample visitors: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
