"""SASRec on the accuracy suite's ML-1M protocol (the 512 users of the partial gSASRec split), with validation and
test after every epoch both with the user's rated items ranked and excluded (issue 15, docs/BENCHMARKS.md "ML-1M
SASRec: what the gap is"). Test is recorded only; selection is by the validation columns.

    python -m tools.ml1m_probe LABEL PARAMS_JSON [--last N] [--max-epochs E] [--out DIR]

PARAMS_JSON is a parameter file's "params" ({"recipe": {...}} or {"train": {...}} and model fields). `--last N`
trains on each user's last N items only (one row per user, as Klenitskiy and Vasilev's and gSASRec's code do).
One JSON line per epoch goes to OUT/LABEL.jsonl (fit_cpu_s: the fit's process CPU, the probes' own excluded).
`--skip-one` trains nothing: it scores LABEL's last checkpoint on a "skip one" test every user has in the partial
split (input: the user's training sequence, target: the last item), for all users, the 512 and the others, to see
whether the 512 users of the protocol are typical.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from recsys.data import Dataset
from recsys.evaluate import evaluate
from recsys.models import FitOptions, build_model
from recsys.sessions import Sessions
from recsys.train import fit
from tools.bench.accuracy import ACCURACY_DATASETS, ml1m_partial
from tools.bench.common import shared_data_dir


def load(cache: Path) -> Dataset:
    if (cache / "meta.json").is_file():
        return Dataset.load(cache)
    data = ml1m_partial(*(shared_data_dir() / p for p in ACCURACY_DATASETS["ml-1m"].inputs))
    data.save(cache)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("label")
    ap.add_argument("params", help="model parameters as JSON")
    ap.add_argument("--last", type=int, default=0, help="train on each user's last N items only")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/work/ml1m_probe"))
    ap.add_argument("--skip-one", action="store_true", help="score LABEL's last checkpoint on the skip-one test")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load(args.out / "data")
    if args.skip_one:
        return skip_one(data, args)
    if args.last:
        data = Dataset(Sessions.from_lists([data.train[i][-args.last:].tolist() for i in range(len(data.train))]),
                       data.valid, data.test, data.items, data.meta)
    log = args.out / f"{args.label}.jsonl"
    start, probes = time.process_time(), [0.0]

    def on_epoch(row: dict, model) -> None:
        began = time.process_time()
        out = dict(row)
        for split, sessions in (("valid", data.valid), ("test", data.test)):
            for excl in (False, True):
                m = evaluate(model, sessions, data.protocol(split), exclude_seen=excl).metrics()
                out[split + ("_excl" if excl else "")] = {k: round(100 * m[k], 2) for k in ("hr@10", "ndcg@10")}
        probes[0] += time.process_time() - began
        out["fit_cpu_s"] = round(time.process_time() - start - probes[0], 1)
        with log.open("a") as f:
            f.write(json.dumps(out) + "\n")

    model = build_model("sasrec", data.n_items, json.loads(args.params))
    fit(model, data, FitOptions(max_epochs=args.max_epochs, seed=0, progress=False,
                                workdir=str(args.out / "work" / args.label)), on_epoch=on_epoch)


def skip_one(data: Dataset, args) -> None:
    inputs = [shared_data_dir() / p for p in ACCURACY_DATASETS["ml-1m"].inputs]
    train, val_in = ([[int(t) for t in line.split()] for line in p.read_text().splitlines()] for p in inputs[:2])
    last = [int(line) for line in inputs[3].read_text().splitlines()]
    row_of = {tuple(seq): row for row, seq in enumerate(train)}
    full = {row_of[tuple(seq[:-1])]: seq for seq in val_in}  # the 512: their training sequence is one item longer
    seqs = [full.get(u, train[u]) + [last[u]] for u in range(len(train))]
    model = build_model("sasrec", data.n_items, json.loads(args.params))
    state = torch.load(args.out / "work" / args.label / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    model.eval()
    groups = {"all": range(len(train)), "the 512": sorted(full),
              "the others": [u for u in range(len(train)) if u not in full]}
    for name, users in groups.items():
        for excl in (False, True):
            m = evaluate(model, Sessions.from_lists([seqs[u] for u in users]), "last", exclude_seen=excl).metrics()
            print(f"{name} ({len(users)} users), rated items {'removed' if excl else 'ranked'}: "
                  + ", ".join(f"{k} {100 * m[k]:.2f}" for k in ("hr@10", "ndcg@10")), flush=True)


if __name__ == "__main__":
    main()
