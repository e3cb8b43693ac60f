"""One-session recommend() before and after the serving fast path (issue 20, "Serving at the floor"), beside the
floor, in one process: `python tools/serving_before_after.py --items 40k,1M`.

"Before" is recsys.models.base.recommend as it was up to commit 3690f4e, restated here: `model.eval()` on every
call, the session padded into a batch of one and run through `final_state` (mask, positions and dropout modules
included), every unmasked score counted, then torch.topk. "After" is recommend() now. The floor is the serving
suite's (tools/bench/serving.py): a random query of the model's dimension times its own serving table, then the
top 20. The three are timed one after the other for each session (1 torch thread, neural models at random initial
weights, random sessions of 5-20 items), and the two recommend() answers are checked to be equal. Then the encoder
alone (`session_state`, what recommend() runs before the product) twice: right after the floor's product (cold
caches, as inside recommend()) and again at once (warm); `bound_warm_encoder`, 1 + warm encoder / floor, is the
lowest ratio to the floor recommend() could reach with these encoders if everything else were free. Prints one JSON
object; the serving suite (`python scripts/benchmark.py serving`) is what docs/BENCHMARKS.md's tables come from.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys.models import REGISTRY, recommend  # noqa: E402
from recsys.models.base import item_indices, mask_scores, pad_sessions  # noqa: E402
from tools.bench.servedata import parse_items, size_label  # noqa: E402
from tools.bench.serving import SERVING_K, floor_call  # noqa: E402

MODELS = ("sasrec", "gru4rec", "lstm", "lstm-bi", "lstm-cat")


@torch.no_grad()
def recommend_before(model, session, k: int):
    """recsys.models.base.recommend for one session as of commit 3690f4e (repeats allowed)."""
    batch = [item_indices(session)]
    model.eval()
    x, lengths = pad_sessions(batch, model.config.max_len, model.pad_side)
    scores = model.logits(model.final_state(x.to(model.device), lengths.to(model.device))).float().cpu()
    scores = mask_scores(scores, batch, False)
    k = min(int(k), int((scores > -torch.inf).sum(dim=1).min()))
    top = torch.topk(scores, k, dim=1)
    return top.indices.numpy()[0], top.values.numpy()[0]


def measure(name: str, n_items: int, n_calls: int, rng) -> dict:
    cls = REGISTRY[name]
    torch.manual_seed(0)
    model = cls(cls.Config(), n_items + 1)
    if model.config.use_categories:
        model.set_categories(rng.integers(0, max(60, n_items // 200), n_items + 1))
        model.init_weights()
    model.eval()
    floor, dim = floor_call(model)
    sessions = [rng.integers(1, n_items + 1, int(rng.integers(5, 21))) for _ in range(n_calls + 5)]
    calls = {"before": lambda s: recommend_before(model, s, SERVING_K),
             "after": lambda s: recommend(model, s, k=SERVING_K), "floor": lambda s: floor(),
             # the encoder alone (NeuralRecommender.session_state, what score() runs for one session): right after
             # the floor's product has swept the caches, as inside recommend(), then again at once (warm)
             "encoder": lambda s: encode(model, s), "encoder_warm": lambda s: encode(model, s)}
    wall = {c: [] for c in calls}
    cpu = {c: 0.0 for c in calls}
    for i, s in enumerate(sessions):
        got = {}
        for c, f in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            got[c] = f(s)
            t1, c1 = time.perf_counter(), time.process_time()
            if i >= 5:  # the first five: warm-up
                wall[c].append(t1 - t0)
                cpu[c] += c1 - c0
        floor()  # untimed: the next session's first call follows a sweep of the table, as it did before
        if not (np.array_equal(got["before"][0], got["after"][0]) and np.array_equal(got["before"][1],
                                                                                     got["after"][1])):
            raise AssertionError(f"{name}: before and after differ on session {s.tolist()}")
    p50 = {c: round(1000 * float(np.median(v)), 3) for c, v in wall.items()}
    return {"dim": dim, "p50_ms": p50, "cpu_ms_per_call": {c: round(1000 * v / n_calls, 3) for c, v in cpu.items()},
            "ratio_to_floor": {c: round(p50[c] / p50["floor"], 2) for c in ("before", "after")},
            # the lowest ratio recommend() could reach if nothing but the product, the top-k and the encoder were
            # left and the encoder ran with warm caches: 1 + encoder_warm / floor
            "bound_warm_encoder": round(1 + p50["encoder_warm"] / p50["floor"], 2)}


@torch.no_grad()
def encode(model, session):
    seq = torch.from_numpy(np.ascontiguousarray(session[-model.config.max_len:], dtype=np.int64))
    with torch.inference_mode():
        return model.session_state(seq.to(model.device))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=parse_items, default=(40_000, 1_000_000), help="catalogue sizes: 40k,1M")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {"command": "python tools/serving_before_after.py " + " ".join(argv or sys.argv[1:]),
           "threads": 1, "load_before": os.getloadavg(), "sizes": {}}
    for n in args.items:
        for name in args.models.split(","):
            entry = measure(name, n, args.calls, np.random.default_rng(0))
            out["sizes"].setdefault(size_label(n), {})[name] = entry
            print(f"{size_label(n)} {name}: {entry['p50_ms']} ms p50, ratios {entry['ratio_to_floor']}, "
                  f"bound with a warm encoder {entry['bound_warm_encoder']}x",
                  file=sys.stderr, flush=True)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
