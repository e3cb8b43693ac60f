"""Benchmarks: run one suite, write benchmarks/results/<suite>.json, regenerate docs/BENCHMARKS.md and its plots.

    python scripts/benchmark.py data        # prepare_data on RetailRocket- and YooChoose-size synthetic logs
    python scripts/benchmark.py eval        # 60,000 prefixes x 43,000 items through recsys.evaluate
    python scripts/benchmark.py serving     # recommend() latency per registry model at 10k / 40k / 1M items, app
    python scripts/benchmark.py serving --items 40k,1M --models sasrec,gru4rec --no-app   # some sizes and models
    python scripts/benchmark.py serving --knn   # kNN fits and recommend() at 1M items (serving_knn.json)
    python scripts/benchmark.py batch       # 60,858 Diginetica prefixes through scripts/recommend.py (GRU4Rec, V-SKNN)
    python scripts/benchmark.py train       # ml-100k epochs of SASRec / GRU4Rec, beside RecBole 1.2.1
    python scripts/benchmark.py accuracy --models pop,spop --datasets beauty   # beside the ANCHORS rows
    python scripts/benchmark.py report      # only rewrite docs/BENCHMARKS.md and assets/bench_*.png

`--quick` runs a suite at a tiny size (a smoke test) and writes <suite>.quick.json instead. The suites live in
tools/bench/ (one module per suite), the report in tools/bench/report.py; this script reads the command line.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import _path  # noqa: F401

from tools import bench
from tools.bench.report import write_report
from tools.bench.servedata import parse_items


def _names(text: str) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) or None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return int(text)


def _items(text: str) -> tuple[int, ...]:
    try:
        return parse_items(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; every option named after its `Options` field (see tools/bench/common.py)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", choices=(*bench.SUITES, "report"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test; writes <suite>.quick.json")
    p.add_argument("--results-dir", type=Path, default=bench.RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, default=bench.WORK_DIR, help="scratch: generated data, model folders")
    p.add_argument("--doc", default=str(bench.DOC), help="report to regenerate ('' for none)")
    p.add_argument("--assets", type=Path, default=bench.ASSETS, help="where the bench_*.png plots go")
    p.add_argument("--shared-data", type=Path, default=bench.shared_data_dir())
    p.add_argument("--models", type=_names, help="serving / accuracy / train: comma separated registry keys")
    p.add_argument("--datasets", type=_names,
                   help=f"accuracy: comma separated, from {','.join(bench.ACCURACY_DATASETS)}")
    p.add_argument("--max-epochs", type=int, help="accuracy: epoch cap for neural models")
    p.add_argument("--time-budget", dest="time_budget_min", type=float,
                   help="accuracy: minutes per data set; later models are skipped")
    p.add_argument("--no-refit", dest="refit", action="store_false",
                   help="accuracy: do not refit baselines on train + valid")
    p.add_argument("--items", type=_items, action="append",
                   help="serving: catalogue sizes instead of 10k, 40k and 1M (40000, 40k, 1M; repeat the option or "
                        "separate sizes with commas)")
    p.add_argument("--no-app", dest="app", action="store_false", help="serving: skip the gradio_client round trip")
    p.add_argument("--first-start-only", action="store_true",
                   help="serving: time only the app's first start (fresh machine), keep the last run's other rows")
    p.add_argument("--knn", action="store_true",
                   help="serving: the kNN models' fits and recommend() at 1M items (or --items N); writes "
                        "serving_knn.json, not serving.json")
    p.add_argument("--epochs", type=int, help="train: epochs per run (default 2, quick 1)")
    p.add_argument("--threads", type=int, help="train: torch intra-op threads (default: torch's default)")
    p.add_argument("--seeds", type=_positive, default=1,
                   help="train: seeds 0..N-1 of each default-settings run (the checks then use their mean)")
    p.add_argument("--peers", action="store_true", help="train: start the RecBole runs in the background (nohup)")
    p.add_argument("--peers-only", action="store_true", help="train: keep our last numbers, refresh RecBole's")
    p.add_argument("--repeats", type=int, help="data: preparation runs per size")
    args = p.parse_args(argv)
    args.items = tuple(n for group in args.items for n in group) if args.items else None
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(bench.Options) if hasattr(args, f.name)}
    opts = bench.Options(**given)
    if args.suite != "report":
        try:
            bench.run_suite(args.suite, opts, argv)
        except (ValueError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.doc:
        print(f"wrote {write_report(args.results_dir, Path(args.doc), args.assets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
