"""Full-softmax cross-entropy over all items, computed a block of rows at a time (the CPU training loss).

`F.cross_entropy(query @ rows.T + bias, targets)` allocates the whole (N, n_items) logits matrix, its softmax
and its gradient: on Beauty (1,454 targets a step x 12,101 items) three ~70 MB buffers a step. glibc serves an
allocation above 32 MB with a fresh mmap and unmaps it when freed, so every step the kernel maps, zeroes and
unmaps ~200 MB: the LSTM runs spent ~40% of their CPU time in the kernel. Here the loss and its gradients with
respect to the query, the item rows and the bias are computed together in the forward pass, `block` rows at a
time (the way fused linear + cross-entropy kernels for GPUs do it), so no buffer is larger than `BLOCK_BYTES`
(glibc then reuses it from step to step); backward only scales the stored gradients. Same value and gradients as
the plain expression (tests check it). A one-epoch Beauty LSTM run takes 0.63x the CPU time and half the peak
memory; with 1,682 items (ml-100k) nothing changes (docs/BENCHMARKS.md, "Full-softmax loss on the CPU").
"""

import torch

BLOCK_BYTES = 16 << 20  # largest logits block: below glibc's 32 MB ceiling for heap (not mmap) allocations


def chunked_cross_entropy(query: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None,
                          targets: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of `targets` (N,) under logits `query @ rows.T (+ bias)`, item 0 (padding) excluded.

    query (N, E), rows (n_items, E), bias (n_items,) or None. Gradients flow to all three. `block`: rows of
    logits at a time (default: as many as fit in `BLOCK_BYTES`)."""
    if block is None:
        block = max(1, BLOCK_BYTES // (rows.shape[0] * query.element_size()))
    if bias is None:
        return _ChunkedCE.apply(query, rows, targets, block)
    return _ChunkedCEBias.apply(query, rows, bias, targets, block)


def _forward(query, rows, bias, targets, block):
    n = len(query)
    total = query.new_zeros((), dtype=torch.float32)
    grad_query = torch.empty_like(query)
    grad_rows = torch.zeros_like(rows)
    grad_bias = None if bias is None else torch.zeros_like(bias)
    for start in range(0, n, block):
        q, t = query[start:start + block], targets[start:start + block]
        logits = q @ rows.T if bias is None else torch.addmm(bias, q, rows.T)  # (b, n_items)
        logits[:, 0] = -torch.inf  # padding is never a candidate
        lse = torch.logsumexp(logits, dim=1)
        total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
        probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place; column 0 becomes 0
        probs[torch.arange(len(t)), t] -= 1.0  # d loss_i / d logits_i (before the 1/N of the mean)
        grad_query[start:start + block] = probs @ rows
        grad_rows.addmm_(probs.T, q)
        if grad_bias is not None:
            grad_bias += probs.sum(0)
    scale = 1.0 / max(n, 1)
    return total * scale, grad_query * scale, grad_rows * scale, None if grad_bias is None else grad_bias * scale


class _ChunkedCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, rows, targets, block):
        loss, gq, gr, _ = _forward(query, rows, None, targets, block)
        ctx.save_for_backward(gq, gr)
        return loss

    @staticmethod
    def backward(ctx, grad):
        gq, gr = ctx.saved_tensors
        return gq * grad, gr * grad, None, None


class _ChunkedCEBias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, rows, bias, targets, block):
        loss, gq, gr, gb = _forward(query, rows, bias, targets, block)
        ctx.save_for_backward(gq, gr, gb)
        return loss

    @staticmethod
    def backward(ctx, grad):
        gq, gr, gb = ctx.saved_tensors
        return gq * grad, gr * grad, gb * grad, None, None
