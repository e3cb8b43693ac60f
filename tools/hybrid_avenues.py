"""Issue 18's mixture avenues, measured on validation only: which parts, which objective, which weights.

    python -m tools.hybrid_avenues --data DATA --models RUN_OUT --parts gru4rec@cos-lr3-x3,stan,vsknn,sr \\
        --out benchmarks/results/hybrid_avenues_diginetica.json

RUN_OUT is the --out of a `scripts/train_and_eval.py` run WITHOUT --refit, so every part folder there was fitted
on the training split alone. Each part's next-item distribution (recsys.models.blend.Blend.distributions: a
softmax for a neural part, scores over their sum for the others) is computed once for up to --max-cases evenly
spaced validation cases, plus a repeat part, the registry model `recent`: the session's own items, weighted by
recency (decay^(steps from the end)), normalised (a learned repeat bonus, RepeatNet's "repeat" mode without the
network).
Then every weighting on the simplex grid (--grid-step) is ranked for every case, and the avenues read off that
one rank matrix:

- part sets: the grid points whose weight is 0 outside the set;
- objectives: weights chosen by MRR@20, or by the mean of HR@20 and MRR@20;
- learned mixtures: one weighting per bucket of cases (by prefix length; by length and whether the prefix has a
  repeated item; by the neural part's confidence), each chosen on that bucket's cases.

Every choice is made on one half of the validation sessions and scored on the other (two folds, split by
session so that the cases of one session never sit on both sides), so a mixture with more free weights pays for
its overfitting here and not later on test. Test is never read.

Ranks are exact up to 20: recsys.models.mixrank.grid_ranks, the pruned ranking the hybrid itself chooses its
weights with (each case ranked among every part's top items, with a bound for the rest; the pairs that bound
cannot decide are ranked again over the whole catalogue, counted in the result's "exact_fallback").
"""

import argparse
import itertools
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recsys.models.mixrank import TOP_M

K = 20
MISS = np.iinfo(np.int32).max


def repeat_distribution(prefixes, n_cols: int, decay: float) -> torch.Tensor:
    """(B, n_cols) the registry model `recent`'s scores: mass on each prefix's own items by recency, summing to 1."""
    from recsys.models import build_model

    return build_model("recent", n_cols, {"decay": decay}).score(prefixes)


def load_parts(models: Path, names: list[str], n_items: int) -> list:
    """One single-part Blend per folder, so that two folders of the same registry model (two seeds of GRU4Rec)
    can be parts side by side; each gives the distribution it would give inside a hybrid."""
    import recsys
    from recsys.models.blend import Blend, BlendConfig

    blends = []
    for name in names:
        m = recsys.load(str(models / name))
        blend = Blend(BlendConfig(components=(m.name,)), n_items)
        blend.use_part(m.name, m, str(models))
        blends.append(blend)
    return blends


def part_distributions(blends, prefixes, decay: float) -> list[torch.Tensor]:
    dists = [blend.distributions(prefixes)[0] for blend in blends]
    dists.append(repeat_distribution(prefixes, dists[0].shape[1], decay))
    return dists


def ranks_under(dists, prefixes, targets, grid: np.ndarray) -> tuple[np.ndarray, int]:
    """(G, B) int32 ranks (MISS beyond K) under each weighting: recsys.models.mixrank.grid_ranks, the pruned exact
    ranking Blend.choose_weights uses; and how many pairs it ranked over the whole catalogue."""
    from recsys.models.mixrank import grid_ranks

    ranks, fallback = grid_ranks(dists, prefixes, targets, grid, K)
    return np.where(ranks <= K, ranks, MISS).astype(np.int32), fallback


def metrics(ranks: np.ndarray) -> dict:
    hit = ranks <= K
    return {"hr@20": float(hit.mean()), "mrr@20": float(np.where(hit, 1.0 / ranks, 0.0).mean())}


class Objectives:
    """Each grid row's per-case reciprocal rank and hit, so an objective over any set of cases is one product."""

    def __init__(self, ranks: np.ndarray):
        hit = ranks <= K
        self.rr = np.where(hit, 1.0 / ranks, 0.0).astype(np.float32)
        self.hit = hit.astype(np.float32)

    def values(self, which: str, cases: np.ndarray) -> np.ndarray:
        """(G,) the objective of each grid row over the boolean mask `cases`."""
        m = cases.astype(np.float32) / max(int(cases.sum()), 1)
        mrr = self.rr @ m
        return mrr if which == "mrr@20" else (mrr + self.hit @ m) / 2


def choose(obj: Objectives, allowed: np.ndarray, which: str, cases: np.ndarray) -> int:
    """The best allowed grid row on `cases` (ties: the earlier row, as Blend.choose_weights)."""
    vals = np.where(allowed, obj.values(which, cases), -np.inf)
    return int(np.argmax(vals))


def held_out(ranks, obj, allowed, which, buckets, fold) -> tuple[np.ndarray, list]:
    """Each case's rank under the weighting chosen on the other fold's cases of its bucket."""
    out = np.empty(ranks.shape[1], dtype=np.int32)
    chosen = []
    for f in (0, 1):
        for b in np.unique(buckets):
            sel = (fold != f) & (buckets == b)
            g = choose(obj, allowed, which, sel)
            use = (fold == f) & (buckets == b)
            out[use] = ranks[g, use]
            chosen.append({"fold": f, "bucket": int(b), "grid_row": g, "cases_chosen_on": int(sel.sum())})
    return out, chosen


def clustered_diff(a: np.ndarray, b: np.ndarray, clusters: np.ndarray) -> dict:
    """MRR@20 and HR@20 of ranks `a` minus those of `b` (same cases), with a standard error that treats each
    session's cases as one draw (cases of a session are not independent)."""
    out = {}
    for name, f in (("mrr@20", lambda r: np.where(r <= K, 1.0 / r, 0.0)), ("hr@20", lambda r: (r <= K) * 1.0)):
        d = f(a) - f(b)
        mean = d.mean()
        _, inv, sizes = np.unique(clusters, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, d) - sizes * mean
        c = len(sizes)
        se = np.sqrt(c / max(c - 1, 1) * (sums ** 2).sum()) / len(d)
        out[name] = {"diff": float(mean), "se": float(se)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", required=True, help="a train_and_eval.py --out fitted on train only")
    ap.add_argument("--parts", required=True, help="comma separated model folders in --models (two folders of "
                    "one model, e.g. two seeds, are two parts; equal weights on them average the seeds)")
    ap.add_argument("--neural", default=None, help="the part whose confidence buckets cases (default: the first)")
    ap.add_argument("--max-cases", type=int, default=20_000)
    ap.add_argument("--grid-step", type=float, default=0.1)
    ap.add_argument("--decay", type=float, default=0.5, help="the repeat part's recency decay")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--baseline", default=None, help="a part set (names joined by ' + ') whose global MRR@20 "
                    "mixture every result is compared with, case by case (default: the parts but the repeat part)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from recsys.data import Dataset
    from recsys.evaluate import case_batches, spaced_rows
    from recsys.models.blend import simplex_grid
    from recsys.sessions import make_cases

    torch.set_grad_enabled(False)
    t0, c0 = time.perf_counter(), time.process_time()
    data = Dataset.load(args.data)
    names = args.parts.split(",")
    blends = load_parts(Path(args.models), names, data.n_items)
    parts = names + [f"repeat(decay {args.decay})"]
    cases = make_cases(data.valid, data.protocol("valid"))
    rows = spaced_rows(len(cases), args.max_cases)
    n = len(rows)
    grid = simplex_grid(len(parts), args.grid_step)
    print(f"{n:,} validation cases, {len(parts)} parts, {len(grid)} weightings", file=sys.stderr)

    ranks = np.empty((len(grid), n), dtype=np.int32)
    alone = {p: np.empty(n, dtype=np.int32) for p in parts}
    confidence = np.empty(n, dtype=np.float32)
    neural = names.index(args.neural) if args.neural else 0
    fallback = 0
    for done, (sl, prefixes, targets) in enumerate(case_batches(cases, args.max_cases, args.batch)):
        dists = part_distributions(blends, prefixes, args.decay)
        confidence[sl] = dists[neural][:, 1:].max(dim=1).values.numpy()
        ranks[:, sl], n_full = ranks_under(dists, prefixes, targets, grid)
        fallback += n_full
        each, _ = ranks_under(dists, prefixes, targets, np.eye(len(parts)))
        for i, p in enumerate(parts):
            alone[p][sl] = each[i]
        if done % 10 == 0:
            print(f"  {sl.stop:,}/{n:,} cases, {time.perf_counter() - t0:.0f}s", file=sys.stderr)

    lengths = cases.lengths[rows]
    fold = cases.session[rows] % 2
    ends = cases.ends[rows]
    has_repeat = np.array([len(set(cases.items[e - m: e].tolist())) < m for e, m in zip(ends, lengths)])
    length_bucket = np.digitize(lengths, [2, 3, 4, 6, 10])  # 1, 2, 3, 4-5, 6-9, 10+
    cuts = np.quantile(confidence, [1 / 3, 2 / 3])
    bucketings = {
        "global": np.zeros(n, dtype=np.int64),
        "by prefix length (1, 2, 3, 4-5, 6-9, 10+)": length_bucket,
        "by prefix length x has a repeated item": length_bucket * 2 + has_repeat,
        f"by {names[neural]} confidence (terciles of its top probability)": np.digitize(confidence, cuts),
    }
    sets = {}
    for size in range(1, len(parts) + 1):
        for combo in itertools.combinations(range(len(parts)), size):
            sets[" + ".join(parts[i] for i in combo)] = np.all(grid[:, [i for i in range(len(parts))
                                                                        if i not in combo]] == 0, axis=1)
    obj = Objectives(ranks)
    baseline = args.baseline or " + ".join(names)
    held = {}
    results = []
    for set_name, allowed in sets.items():
        for which in ("mrr@20", "hr@20+mrr@20"):
            for bname, buckets in bucketings.items():
                if bname != "global" and set_name.count(" + ") == 0:
                    continue  # one part: nothing to weight
                r, chosen = held_out(ranks, obj, allowed, which, buckets, fold)
                held[(set_name, which, bname)] = r
                in_sample = choose(obj, allowed, which, np.ones(n, dtype=bool)) if bname == "global" else None
                results.append({"parts": set_name, "objective": which, "mixture": bname,
                                "held_out": metrics(r),
                                **({"weights_on_all": dict(zip(parts, grid[in_sample].round(3).tolist())),
                                    "in_sample": metrics(ranks[in_sample])} if in_sample is not None else {}),
                                "chosen": [{**c, "weights": dict(zip(parts, grid[c["grid_row"]].round(3).tolist()))}
                                           for c in chosen]})
    if (baseline, "mrr@20", "global") not in held:
        raise SystemExit(f"--baseline {baseline!r} is not a part set here: {sorted(sets)}")
    base = held[(baseline, "mrr@20", "global")]
    for x in results:
        x["vs_baseline"] = clustered_diff(held[(x["parts"], x["objective"], x["mixture"])], base, cases.session[rows])
    out = {"command": " ".join(["python -m tools.hybrid_avenues", *(argv or sys.argv[1:])]),
           "data": args.data, "cases": n, "parts": parts, "baseline": baseline, "grid_points": len(grid),
           "top_m": TOP_M,  # recsys.models.mixrank's
           "exact_fallback": fallback, "each_part_alone": {p: metrics(r) for p, r in alone.items()},
           "buckets": {"repeat_share": float(has_repeat.mean()),
                       "length_counts": np.bincount(length_bucket).tolist(),
                       "confidence_cuts": cuts.tolist()},
           "results": results,
           "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    Path(args.out).write_text(json.dumps(out, indent=1))
    best = sorted(results, key=lambda x: -x["held_out"]["mrr@20"])[:12]
    for x in best:
        v = x["vs_baseline"]["mrr@20"]
        print(f"{x['held_out']['mrr@20']*100:6.2f} {x['held_out']['hr@20']*100:6.2f} "
              f"({v['diff']*100:+.2f} ± {v['se']*100:.2f})  {x['parts']} | {x['objective']} | {x['mixture']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
