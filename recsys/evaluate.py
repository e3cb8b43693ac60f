"""One evaluator for every model: full ranking over the whole catalogue, pessimistic ties.

The rank of the target is 1 + the number of other items whose score is >= the target's score, so an item
tied with the target ranks ahead of it (GRU4Rec's "conservative" ties). Padding is never ranked. With
`exclude_seen`, items already in the prefix are removed before ranking (a target that repeats a seen item
is then a miss); by default repeats are allowed, and the report says which was used.

Scoring runs in chunks of cases, so memory is bounded by one chunk's (cases x n_items) float32 scores. On the CPU a
chunk is sized to SCORE_CHUNK_BYTES by default: a matrix that small is reused by the allocator (a larger one is
mapped afresh and page-faulted every chunk) and stays in cache for the passes that follow. Each chunk is read twice
after scoring: once to count, per case, the items scoring at least the target (`rank_targets`), once for the top
items (`top_items`, torch.topk's answer); docs/BENCHMARKS.md, "Evaluator on a real validation split", says
what each step cost before and after.

Under torch.distributed (Lightning's DDP), `evaluate(..., shard=True)` splits the work: the chunks of cases are dealt
to the processes in turn, each scores its own, and one integer all-reduce puts every case's rank and top items
together, so every process returns the whole EvalResult and the metrics and bootstrap CIs come from the same code
as in one process. A case is scored in the same chunk as in one process, so the result is that process's, bit
for bit (tests/test_distributed.py).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from recsys.models.base import Recommender, mask_scores, score_batch
from recsys.progress import progress_lines
from recsys.sessions import Cases, Sessions, make_cases
from recsys.topk import TOPK_BLOCK, top_k

KS = (5, 10, 20)
MISS_RANK = 2**40  # rank given to targets that cannot be recommended at all
SCORE_CHUNK_BYTES = 8 << 20  # CPU: float32 scores per chunk by default (48 cases at 43k items, 1,024 at 2k)
MIN_CHUNK, MAX_CHUNK = 16, 1024  # cases per chunk by default (MAX_CHUNK off the CPU)


@dataclass(frozen=True)
class EvalResult:
    ranks: np.ndarray  # (n_cases,) 1-based pessimistic rank of the target
    topk: np.ndarray  # (n_cases, max k) recommended item indices
    n_items: int  # vocabulary size including padding
    ks: tuple[int, ...]
    popularity: np.ndarray | None  # training counts per item index, for the popularity-bias metric

    def per_case(self) -> dict[str, np.ndarray]:
        """Per-case values of the ranking metrics (their means are the reported metrics)."""
        out = {}
        r = self.ranks.astype(np.float64)
        for k in self.ks:
            hit = r <= k
            out[f"hr@{k}"] = hit.astype(np.float64)
            out[f"precision@{k}"] = hit / k
            out[f"mrr@{k}"] = np.where(hit, 1.0 / r, 0.0)
            out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)
        return out

    def metrics(self) -> dict[str, float]:
        out = {name: float(v.mean()) if len(v) else 0.0 for name, v in self.per_case().items()}
        n_real = self.n_items - 1
        pop_share = None
        if self.popularity is not None and self.popularity.sum() > 0:
            pop_share = self.popularity / self.popularity.sum()
        for k in self.ks:
            top = self.topk[:, :k]
            out[f"coverage@{k}"] = float(len(np.unique(top)) / n_real) if top.size else 0.0
            if pop_share is not None:
                out[f"popularity@{k}"] = float(pop_share[top].mean()) if top.size else 0.0
        out["cases"] = len(self.ranks)
        return out

    def confidence_intervals(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple]:
        """Percentile bootstrap CIs of each ranking metric's mean, resampling test cases."""
        per_case = self.per_case()
        if len(self.ranks) == 0:
            return {}
        names = list(per_case)
        values = np.stack([per_case[n] for n in names], axis=1)  # (n, m)
        means = bootstrap_means(values, n_boot, seed)
        lo, hi = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100], axis=0)
        return {n: (float(a), float(b)) for n, a, b in zip(names, lo, hi)}

    def report(self, n_boot: int = 1000) -> dict[str, dict]:
        """{"hr@10": {"value": .., "ci95": [lo, hi]}, ...} plus coverage/popularity without CI."""
        cis = self.confidence_intervals(n_boot)
        out = {}
        for name, value in self.metrics().items():
            out[name] = {"value": value}
            if name in cis:
                out[name]["ci95"] = list(cis[name])
        return out


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int, chunk: int = 50) -> np.ndarray:
    """(n_boot, m) means of `values` (n, m) over resamples of its rows, drawn in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    n = len(values)
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out)


def paired_test(a: EvalResult, b: EvalResult, metric: str = "mrr@20", n_boot: int = 1000, seed: int = 0) -> dict:
    """Compare two models on the same cases: mean difference a - b, its bootstrap CI and a paired t-test p-value.
    `metric` may be an objective, "hr@20+mrr@20" (see `objective_values`)."""
    if len(a.ranks) != len(b.ranks):
        raise ValueError("paired test needs both models evaluated on the same cases")
    va, vb = objective_values(a, metric), objective_values(b, metric)
    diff = va - vb
    boots = bootstrap_means(diff[:, None], n_boot, seed)[:, 0]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    p = float(stats.ttest_rel(va, vb).pvalue) if diff.any() else 1.0
    return {"metric": metric, "mean_diff": float(diff.mean()), "ci95": [float(lo), float(hi)], "p_value": p}


def check_objective(objective: str, ks: Sequence[int] = KS) -> tuple[str, ...]:
    """The metrics of a selection objective: one ranking metric ("mrr@20", "ndcg@10") or the mean of several
    joined by "+" ("hr@20+mrr@20"). Raises ValueError naming the choices for anything else."""
    known = [f"{m}@{k}" for m in ("hr", "mrr", "ndcg", "precision") for k in ks]
    parts = tuple(p.strip().lower() for p in objective.split("+"))
    unknown = [p for p in parts if p not in known]
    if unknown or not parts:
        raise ValueError(f"unknown selection metric {objective!r}: choose one of {', '.join(known)}, or the "
                         "mean of several joined by '+' (e.g. hr@20+mrr@20)")
    return parts


def objective_values(result: EvalResult, objective: str) -> np.ndarray:
    """Per-case values of `objective`: one metric's, or the mean of the metrics joined by "+"."""
    per_case = result.per_case()
    return np.mean([per_case[m] for m in check_objective(objective, result.ks)], axis=0)


def objective_report(result: EvalResult, objective: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """{"value", "ci95"} of `objective` over `result`'s cases (percentile bootstrap, as `report`)."""
    values = objective_values(result, objective)
    if len(values) == 0:
        return {"value": 0.0}
    lo, hi = np.percentile(bootstrap_means(values[:, None], n_boot, seed)[:, 0], [2.5, 97.5])
    return {"value": float(values.mean()), "ci95": [float(lo), float(hi)]}


def rank_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based pessimistic rank: items scoring >= the target (the target included) count.

    A target that cannot be recommended (score -inf: padding, or a seen item under exclude_seen) gets
    MISS_RANK, a miss at every K. Counted row by row with numpy's count_nonzero, one pass over each row: ~8x less
    CPU than torch's (scores >= target).sum(dim=1), which writes a boolean matrix and sums it in a second pass.
    """
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()  # exact: numpy has no bfloat16
    s = scores.detach().cpu().numpy()
    target_scores = s[np.arange(len(s)), targets.cpu().numpy()]
    ranks = np.fromiter((np.count_nonzero(row >= t) for row, t in zip(s, target_scores)), dtype=np.int64,
                        count=len(s))
    ranks[np.isneginf(target_scores)] = MISS_RANK
    return torch.from_numpy(ranks)


def top_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(rows, k) indices of each row's k best scores: exactly torch.topk(scores, k).indices, ties included.

    recsys.topk.top_k finds the k + 1 best values of a wide row ~2x faster than torch.topk. Where those k + 1
    values are strictly decreasing, the k best items and their order are the same whoever finds them; a row with
    a tie among them (or a NaN) is ranked by torch.topk itself, so items of equal score come in its order.
    """
    if (k + 1) * TOPK_BLOCK * 4 > scores.shape[1]:  # too narrow for the block search to pay (top_k's own bound)
        return torch.topk(scores, k, dim=1).indices
    values, index = top_k(scores, k + 1)
    out = index[:, :k]
    tied = torch.nonzero(~(values[:, :-1] > values[:, 1:]).all(dim=1)).flatten()
    if len(tied):
        out = out.clone()
        out[tied] = torch.topk(scores[tied], k, dim=1).indices
    return out


def chunk_cases(model: Recommender, batch_size: int | None = None) -> int:
    """Cases scored at once: `batch_size` when given; else, on the CPU, as many as fill SCORE_CHUNK_BYTES of
    float32 scores (MIN_CHUNK..MAX_CHUNK), and MAX_CHUNK on an accelerator."""
    if batch_size is not None:
        return batch_size
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    if tensor is not None and tensor.device.type != "cpu":
        return MAX_CHUNK
    return max(MIN_CHUNK, min(MAX_CHUNK, SCORE_CHUNK_BYTES // (4 * model.n_items)))


def evaluate(
    model: Recommender,
    sessions: Sessions | Cases,
    protocol: str = "all",
    ks: Sequence[int] = KS,
    batch_size: int | None = None,
    exclude_seen: bool = False,
    popularity: np.ndarray | None = None,
    progress: bool = False,
    max_cases: int | None = None,
    desc: str = "evaluate",
    shard: bool = False,
) -> EvalResult:
    """Rank every case's target among all items. `sessions` are split into cases by `protocol` ("all"/"last").

    `max_cases` evaluates an evenly spaced subset (used for quick validation during training only).
    `batch_size` cases are scored at once (None: `chunk_cases` sizes the chunks to the catalogue).
    `shard`: when torch.distributed is initialized with more than one process, this process scores every
    world-size-th chunk and the results of all processes are combined (see the module doc); every process of the
    group must call it with the same arguments. Without a process group it is one process's evaluation.
    """
    cases = sessions if isinstance(sessions, Cases) else make_cases(sessions, protocol)
    ks = tuple(sorted(ks))
    kmax = min(ks[-1], model.n_items - 1)
    n = len(spaced_rows(len(cases), max_cases))
    rank, world = shard_of_process() if shard else (0, 1)
    ranks = np.zeros(n, dtype=np.int64)
    topk = np.zeros((n, ks[-1]), dtype=np.int64)
    chunk = chunk_cases(model, batch_size)
    mine = len(range(rank, -(-n // chunk), world))
    # progress: a bar on a terminal, one line per tenth into a log file or pipe (no carriage returns)
    for rows, prefixes, targets in progress_lines(case_batches(cases, max_cases, chunk, (rank, world)), mine, desc,
                                                  progress):
        scores = mask_scores(score_batch(model, prefixes), prefixes, exclude_seen)
        ranks[rows] = rank_targets(scores, targets).numpy()
        topk[rows, :kmax] = top_items(scores, kmax).numpy()
    if world > 1:
        ranks, topk = _combine(ranks, topk)
    return EvalResult(ranks, topk[:, :kmax] if kmax < ks[-1] else topk, model.n_items, ks, popularity)


def shard_of_process() -> tuple[int, int]:
    """(this process's rank, the number of processes) in torch.distributed's default group; (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _combine(ranks: np.ndarray, topk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every process's ranks and top items in one: each filled only its own cases and left the others 0, so an
    integer sum over the processes is exact. NCCL reduces device tensors; gloo CPU ones."""
    dist = torch.distributed
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    packed = torch.from_numpy(np.concatenate([ranks[:, None], topk], axis=1)).to(device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    packed = packed.cpu().numpy()
    return np.ascontiguousarray(packed[:, 0]), np.ascontiguousarray(packed[:, 1:])


def spaced_rows(n_cases: int, max_cases: int | None) -> np.ndarray:
    """All case rows, or `max_cases` evenly spaced ones."""
    if max_cases is not None and n_cases > max_cases:
        return np.linspace(0, n_cases - 1, max_cases).astype(np.int64)
    return np.arange(n_cases)


def case_batches(cases: Cases, max_cases: int | None = None, batch_size: int = 1024,
                 part: tuple[int, int] = (0, 1)):
    """Yield (positions in the result, prefixes, target tensor) for `cases` (or an evenly spaced subset).
    `part` (rank, world): only chunks number rank, rank + world, rank + 2 world, ... (the chunks stay the same)."""
    rows = spaced_rows(len(cases), max_cases)
    targets_all = torch.from_numpy(cases.targets.astype(np.int64))
    rank, world = part
    for start in range(rank * batch_size, len(rows), world * batch_size):
        chunk = rows[start : start + batch_size]
        yield slice(start, start + len(chunk)), cases.prefixes(chunk), targets_all[chunk]


def rank_metric(ranks: np.ndarray, metric: str) -> float:
    """The mean of one ranking metric ("mrr@20", "ndcg@10", ...) over 1-based ranks."""
    k = int(metric.split("@")[1])
    return float(EvalResult(ranks, np.zeros((len(ranks), 0), np.int64), 2, (k,), None).per_case()[metric].mean())
