"""Day-by-day replay of incremental updates (recsys.update) against full refits: docs/BENCHMARKS.md, "Incremental
updates".

    flock /tmp/recsys-heavy.lock .venv/bin/python tools/update_replay.py --data data/processed/synthetic --days 7

The training sessions of a processed data set are cut by the day they end: the last --days days are replayed one
day at a time, everything before is the base. Items are renumbered by the day they first appear, so a model fitted
on the base knows only the base's items and each day's update grows the vocabulary, as scripts/update.py does.
- Count models: after each day, the updated model (updated day after day) against a full refit on base + the days
  so far. Both are scored on the validation split (cases whose items are all known by then): HR@20, MRR@20, the
  mean overlap of their top-20 lists on the same cases, and the seconds (wall and CPU) the update and the refit took.
- Neural models: fitted on the base for --epochs epochs, then warm-started for --update-epochs epochs on each day;
  at the end against a full retrain (--epochs epochs on base + all days) and the base model left as it was.
Writes benchmarks/results/update_replay.json and prints Markdown tables.
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys.data import Dataset  # noqa: E402
from recsys.evaluate import evaluate  # noqa: E402
from recsys.models import FitOptions, build_model  # noqa: E402
from recsys.models.base import mask_scores, score_batch  # noqa: E402
from recsys.sessions import Sessions, make_cases  # noqa: E402
from recsys.update import UpdateConfig, update_model  # noqa: E402

COUNT_MODELS = ("pop", "spop", "sr", "itemknn", "sknn", "vsknn")
NEURAL = ("gru4rec", "sasrec")
EMPTY = Sessions.from_lists([])


def renumbered(data: Dataset, train: Sessions, day: np.ndarray, n_days: int):
    """Items renumbered by the replay day they first appear (0: the base), and the sessions mapped to them."""
    first = np.full(data.n_items, n_days + 1, dtype=np.int64)
    owner = np.repeat(day, train.lengths)
    np.minimum.at(first, train.items, owner)
    first[0] = -1
    order = np.lexsort((np.arange(data.n_items), first))  # padding first, then by day, then by old index
    remap = np.empty(data.n_items, dtype=np.int64)
    remap[order] = np.arange(data.n_items)
    known = [int((first <= d).sum()) for d in range(n_days + 1)]  # n_items (with padding) after day d
    items = data.items.iloc[order[1:] - 1].reset_index(drop=True)

    def mapped(s: Sessions) -> Sessions:
        return Sessions(remap[s.items].astype(np.int32), s.offsets)

    return mapped(train), mapped(data.valid), items, known


def diginetica(folder: Path, chunks: int) -> tuple[Dataset, Sessions, np.ndarray]:
    """SR-GNN's Diginetica (SOURCES.md, diginetica/plain): the training sessions are the base; the test sessions,
    in file order, are cut into `chunks` equal parts: parts 1..chunks-1 are replayed, the last one is evaluated.
    The files carry within-session time offsets, not dates, so file order stands in for time."""
    lines = (folder / "train_sessions.txt").read_text().split("\n")
    train_raw = [line.split() for line in lines if line.strip()]
    test = pd.read_csv(folder / "test_sessions_time.tsv", sep="\t", dtype={"ItemId": str})
    test_raw = [g["ItemId"].tolist() for _, g in test.groupby("SessionIdx", sort=True)]
    ids = pd.unique(np.concatenate([np.concatenate(train_raw), test["ItemId"].to_numpy()]))
    index = {item: i + 1 for i, item in enumerate(ids)}
    encode = lambda seqs: Sessions.from_lists([[index[i] for i in s] for s in seqs])  # noqa: E731
    part = np.minimum(np.arange(len(test_raw)) * chunks // len(test_raw), chunks - 1) + 1  # 1..chunks
    replay = [s for s, c in zip(test_raw, part) if c < chunks]
    held = [s for s, c in zip(test_raw, part) if c == chunks]
    train = encode(train_raw + replay)
    day = np.r_[np.zeros(len(train_raw), dtype=np.int64), part[part < chunks]]
    items = pd.DataFrame({"item_id": pd.array(ids.astype(str), dtype="string"),
                          "category_id": pd.array([None] * len(ids), dtype="string"),
                          "popularity": np.zeros(len(ids), dtype=np.int64)})
    data = Dataset(train, encode(held), EMPTY, items)
    return data, train, day


def restricted(sessions: Sessions, n_items: int) -> Sessions:
    """Sessions without the items beyond n_items, and without the sessions left shorter than 2."""
    lists = [[i for i in s if i < n_items] for s in sessions.to_lists()]
    return Sessions.from_lists([s for s in lists if len(s) >= 2])


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


def overlap(a, b, sessions: Sessions, n_cases: int, k: int = 20) -> float:
    cases = make_cases(sessions, "all")
    rows = np.linspace(0, len(cases) - 1, min(n_cases, len(cases))).astype(np.int64)
    prefixes = cases.prefixes(rows)
    total = 0.0
    for lo in range(0, len(prefixes), 512):
        batch = prefixes[lo:lo + 512]
        ta = torch.topk(mask_scores(score_batch(a, batch), batch, False), k, dim=1).indices
        tb = torch.topk(mask_scores(score_batch(b, batch), batch, False), k, dim=1).indices
        total += sum(len(set(x.tolist()) & set(y.tolist())) for x, y in zip(ta, tb)) / k
    return round(total / len(prefixes), 4)


def metrics(model, valid: Sessions, max_cases: int) -> dict:
    m = evaluate(model, valid, "all", ks=(20,), max_cases=max_cases).metrics()
    return {"hr@20": round(100 * m["hr@20"], 2), "mrr@20": round(100 * m["mrr@20"], 2)}


def count_fit(name: str, train: Sessions, n_items: int):
    model = build_model(name, n_items)
    model.fit(Dataset(train, EMPTY, EMPTY, pd.DataFrame({"item_id": []})))
    return model


def replay_count(name, train, day, valid, items, known, days, max_cases, log) -> list[dict]:
    base = train.select(day == 0)
    model = count_fit(name, base, known[0])
    rows = []
    for d in range(1, days + 1):
        n_items = known[d]
        today = train.select(day == d)
        grown = items.iloc[: n_items - 1]
        (model, info), up_wall, up_cpu = timed(lambda m=model, s=today, g=grown: update_model(m, s, g, log=None))
        refit, re_wall, re_cpu = timed(lambda s=train.select(day <= d), n=n_items: count_fit(name, s, n))
        v = restricted(valid, n_items)
        row = {"model": name, "day": d, "sessions_added": len(today), "new_items": n_items - known[d - 1],
               "updated": metrics(model, v, max_cases), "refit": metrics(refit, v, max_cases),
               "top20_overlap": overlap(model, refit, v, max_cases), "update_s": up_wall, "update_cpu_s": up_cpu,
               "refit_s": re_wall, "refit_cpu_s": re_cpu, "pruned_items": info.get("items_with_pruned_lists")}
        log(json.dumps(row))
        rows.append(row)
    return rows


def replay_neural(name, train, day, valid, items, known, days, epochs, update_epochs, max_cases, log,
                  update_lr=None) -> dict:
    from recsys.train import fit
    from recsys.trainconfig import TrainConfig

    def trained(sessions, n_items):
        torch.manual_seed(0)
        model = build_model(name, n_items)
        data = Dataset(sessions, EMPTY, EMPTY, items.iloc[: n_items - 1])
        config = TrainConfig(max_epochs=epochs, cpu_threads=1)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*no validation cases.*")
            fit(model, data, FitOptions(max_epochs=epochs, seed=0, progress=False), config)
        return model

    base, base_wall, base_cpu = timed(lambda: trained(train.select(day == 0), known[0]))
    model, per_day = base, []
    for d in range(1, days + 1):
        config = UpdateConfig(epochs=update_epochs, lr=update_lr)
        (model, info), wall, cpu = timed(lambda m=model, s=train.select(day == d), g=items.iloc[: known[d] - 1],
                                         c=config: update_model(m, s, g, c, log=None))
        per_day.append({"day": d, "update_s": wall, "update_cpu_s": cpu,
                        "updated": metrics(model, restricted(valid, known[d]), max_cases)})
        log(json.dumps({"model": name, **per_day[-1]}))
    retrain, re_wall, re_cpu = timed(lambda: trained(train.select(day <= days), known[days]))
    v = restricted(valid, known[days])
    v_base = restricted(valid, known[0])
    return {"model": name, "epochs": epochs, "update_epochs": update_epochs, "update_lr": update_lr,
            "base_s": base_wall,
            "base_cpu_s": base_cpu, "days": per_day, "retrain_s": re_wall, "retrain_cpu_s": re_cpu,
            "final": {"updated": metrics(model, v, max_cases), "retrain": metrics(retrain, v, max_cases),
                      "top20_overlap": overlap(model, retrain, v, max_cases)},
            "stale_base_on_its_items": {"base": metrics(base, v_base, max_cases),
                                        "updated": metrics(_restricted_model(model, known[0]), v_base, max_cases)}}


def _restricted_model(model, n_items):
    """`model` scored on the first n_items items only (the stale base cannot score later items)."""
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.n_items = model, n_items

        def score(self, sessions):
            return self.inner.score(sessions)[:, :n_items]

    return Head()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/processed/synthetic")
    p.add_argument("--diginetica", help="instead of --data: the folder of SR-GNN's Diginetica (diginetica/plain); "
                   "the test sessions in file order are cut into --days + 1 parts, the last one evaluated")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--models", default=",".join(COUNT_MODELS + NEURAL))
    p.add_argument("--epochs", type=int, default=3, help="neural: epochs of the base fit and of the full retrain")
    p.add_argument("--update-epochs", type=int, default=1, help="neural: epochs of each day's warm start")
    p.add_argument("--update-lr", type=float, help="neural: the warm start's learning rate (default: recsys.update's)")
    p.add_argument("--max-cases", type=int, default=5000, help="validation cases scored (evenly spaced)")
    p.add_argument("--out", default="benchmarks/results/update_replay.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    started = time.perf_counter()
    if args.diginetica:
        data, train, day = diginetica(Path(args.diginetica), args.days + 1)
        args.data = f"{args.diginetica} (test sessions in {args.days + 1} parts by file order)"
    else:
        data = Dataset.load(args.data)
        end = data.info["train"]["end"]
        order = np.argsort(end.to_numpy(), kind="stable")  # most recent last, as SKNN.fit orders them
        end = end.iloc[order]
        last = end.max().floor("D")
        day = np.clip(args.days - ((last - end.dt.floor("D")).dt.days.to_numpy()), 0, None)  # 0: base, 1..days
        train = data.train.select(order)
    train, valid, items, known = renumbered(data, train, day, args.days)
    print(f"{args.data}: base {int((day == 0).sum()):,} sessions / {known[0] - 1:,} items; days "
          + ", ".join(f"{d}: {int((day == d).sum()):,} sessions +{known[d] - known[d - 1]} items"
                      for d in range(1, args.days + 1)), flush=True)
    out = {"data": args.data, "days": args.days, "count": [], "neural": []}
    for name in args.models.split(","):
        if name in NEURAL:
            out["neural"].append(replay_neural(name, train, day, valid, items, known, args.days, args.epochs,
                                               args.update_epochs, args.max_cases, print, args.update_lr))
        else:
            out["count"] += replay_count(name, train, day, valid, items, known, args.days, args.max_cases, print)
    out["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "load_before": load_before,
                      "load_after": os.getloadavg(), "seconds": round(time.perf_counter() - started, 1),
                      "command": "python tools/update_replay.py " + " ".join(argv or sys.argv[1:]),
                      "ran": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    lines = ["| model | day | sessions added | new items | updated HR@20 / MRR@20 | refit HR@20 / MRR@20 "
             "| top-20 overlap | update s (CPU) | refit s (CPU) | items with pruned lists |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["count"]:
        u, f = r["updated"], r["refit"]
        lines.append(f"| {r['model']} | {r['day']} | {r['sessions_added']:,} | {r['new_items']} | {u['hr@20']:.2f} / "
                     f"{u['mrr@20']:.2f} | {f['hr@20']:.2f} / {f['mrr@20']:.2f} | {r['top20_overlap']:.3f} | "
                     f"{r['update_s']:.2f} ({r['update_cpu_s']:.2f}) | {r['refit_s']:.2f} ({r['refit_cpu_s']:.2f}) | "
                     f"{'' if r['pruned_items'] is None else r['pruned_items']} |")
    for n in out["neural"]:
        f = n["final"]
        lines += ["", f"{n['model']}: base {n['epochs']} epochs ({n['base_s']:.0f} s); each day "
                      f"{n['update_epochs']} epoch(s) at lr {n.get('update_lr') or 'default'}, "
                      + ", ".join(f"day {d['day']} {d['update_s']:.1f} s: {d['updated']['hr@20']:.2f} / "
                                  f"{d['updated']['mrr@20']:.2f}" for d in n["days"])
                  + f"; after the last day: updated {f['updated']['hr@20']:.2f} / {f['updated']['mrr@20']:.2f}, full "
                    f"retrain ({n['retrain_s']:.0f} s) {f['retrain']['hr@20']:.2f} / {f['retrain']['mrr@20']:.2f}, "
                    f"top-20 overlap {f['top20_overlap']:.3f}; on the base's items only: base "
                    f"{n['stale_base_on_its_items']['base']['hr@20']:.2f} / "
                    f"{n['stale_base_on_its_items']['base']['mrr@20']:.2f}, updated "
                    f"{n['stale_base_on_its_items']['updated']['hr@20']:.2f} / "
                    f"{n['stale_base_on_its_items']['updated']['mrr@20']:.2f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
