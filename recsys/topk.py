"""The k best scores of each row: torch.topk's answer, found faster on the wide rows of a full catalogue.

One function, used by the evaluator (recsys.evaluate) and by batch scoring and the HTTP API (recsys.batch).
"""

import torch

TOPK_BLOCK = 32  # items per block of `top_k`'s first pass


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the k largest scores of each row, best first: what torch.topk gives, exactly (items of
    equal score may come in another order), ~5x faster on wide CPU rows (k = 20 of 43,000 items: torch.topk takes
    ~4 ns an element). The k best items of a row lie in the k blocks of TOPK_BLOCK items whose maxima are largest
    (a block left out has k better blocks above it, each holding an item at least as good), so one pass takes the
    block maxima, and torch.topk runs on the maxima and then on the k * TOPK_BLOCK items of the chosen blocks."""
    rows, n = scores.shape
    n_blocks = n // TOPK_BLOCK
    if k * TOPK_BLOCK * 4 > n or rows == 0:
        return torch.topk(scores, k, dim=1)
    body = scores[:, : n_blocks * TOPK_BLOCK].unflatten(1, (n_blocks, TOPK_BLOCK))  # a view: no copy
    best_blocks = torch.topk(body.amax(dim=2), k, dim=1).indices  # (rows, k)
    cand = body[torch.arange(rows).unsqueeze(1), best_blocks].flatten(1)  # (rows, k * TOPK_BLOCK)
    index = (best_blocks.unsqueeze(2) * TOPK_BLOCK + torch.arange(TOPK_BLOCK)).flatten(1)
    tail = n - n_blocks * TOPK_BLOCK  # the last items, fewer than a block: always candidates
    if tail:
        cand = torch.cat([cand, scores[:, n - tail:]], dim=1)
        index = torch.cat([index, torch.arange(n - tail, n).expand(rows, tail)], dim=1)
    values, at = torch.topk(cand, k, dim=1)
    return values, index.gather(1, at)
