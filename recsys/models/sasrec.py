"""SASRec (Kang and McAuley, ICDM 2018): causal self-attention over the session, next item at every position.

Where this differs from the paper, and why:
- Loss: full softmax cross-entropy over all items at every position (or a sampled softmax with many shared
  negatives, `TrainConfig.n_negatives`), not one negative with BCE. Klenitskiy and Vasilev (RecSys 2023)
  show this is what makes SASRec strong (ML-1M NDCG@10 18.2 vs 13.4).
- Pre-LN blocks (LayerNorm before attention and FFN, one final LayerNorm), as in nanoGPT; the paper's
  code normalises after. Pre-LN trains stably without a warm-up.
- FFN is d -> 4d -> d with GELU (the paper: d -> d with ReLU).
- Positions count from the first item of the (truncated) sequence, so the state at position t in training is
  exactly the state serving computes for the prefix that ends at t (causality + same positions).
- Sessions are right-aligned (padded on the left). Padded keys are masked; a padded query attends to itself
  only, so no attention row is empty. Input and output item embeddings are tied; no output bias.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.models.base import ModelConfig, check_range, pad_sessions
from recsys.models.neural import NeuralRecommender

MAX_LAYERS = 64  # a bound on the modules one config.json can ask for (the paper uses 2)


@dataclass(frozen=True)
class SASRecConfig(ModelConfig):
    max_len: int = 50  # most recent items the model reads (size of the position table)
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2  # on embeddings, attention weights and residual branches
    cosine_scale: float = 0.0  # > 0: logits = scale * cosine(state, item) (NISER); 0: dot products
    use_categories: bool = False  # add a category embedding to each item's input
    n_categories: int = 0  # size of the category table; set by fit from the data

    def check(self):
        for name in ("max_len", "dim", "n_heads"):
            check_range(self, name, low=1)
        check_range(self, "n_layers", 0, MAX_LAYERS)
        check_range(self, "dropout", 0.0, 1.0)
        check_range(self, "cosine_scale", low=0.0)
        check_range(self, "n_categories", low=0)
        if self.dim % self.n_heads:
            raise ValueError(f"SASRecConfig.dim {self.dim} must be divisible by n_heads {self.n_heads}")


class SelfAttention(nn.Module):
    def __init__(self, c: SASRecConfig):
        super().__init__()
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.qkv = nn.Linear(c.dim, 3 * c.dim)
        self.proj = nn.Linear(c.dim, c.dim)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x, mask, need_weights=False):  # x (B, T, C), mask (B, 1, T, T) True = may attend
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in self.qkv(x).split(C, 2))
        weights = None  # (B, nh, T, T), only when asked (explain); training uses the fused kernel
        if need_weights:
            weights = (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))).masked_fill(~mask, -torch.inf).softmax(-1)
            y = weights @ v
        else:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble heads
        return self.resid_drop(self.proj(y)), weights

    def infer(self, x, mask):
        """`forward` in eval mode (no dropout, no weights) through the functional calls: the same operations."""
        B, T, C = x.shape
        # q, k, v as `forward` makes them (the same views of the same tensor), in three operations instead of ten
        qkv = F.linear(x, self.qkv.weight, self.qkv.bias).view(B, T, 3, self.n_heads, C // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.linear(y.transpose(1, 2).reshape(B, T, C), self.proj.weight, self.proj.bias)


class Block(nn.Module):
    def __init__(self, c: SASRecConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.dim), nn.LayerNorm(c.dim)
        self.attn = SelfAttention(c)
        self.ffn = nn.Sequential(nn.Linear(c.dim, 4 * c.dim), nn.GELU(), nn.Linear(4 * c.dim, c.dim),
                                 nn.Dropout(c.dropout))

    def forward(self, x, mask, need_weights=False):
        a, weights = self.attn(self.ln1(x), mask, need_weights)
        x = x + a
        return x + self.ffn(self.ln2(x)), weights

    def infer(self, x, mask):
        """`forward` in eval mode (no dropout, no weights) through the functional calls: the same operations
        without a module call each (a tenth of a millisecond per session at serving's sizes)."""
        x = x + self.attn.infer(_layer_norm(self.ln1, x), mask)
        up, act, down, _ = self.ffn
        h = F.gelu(F.linear(_layer_norm(self.ln2, x), up.weight, up.bias), approximate=act.approximate)
        return x + F.linear(h, down.weight, down.bias)


def _layer_norm(ln: nn.LayerNorm, x):
    return torch.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)  # F.layer_norm's kernel


class SASRec(NeuralRecommender):
    name = "sasrec"
    Config = SASRecConfig
    title = "SASRec"
    summary = "a Transformer: self-attention weighs every earlier item of the session to predict the next one."
    description = ("A causal self-attention (Transformer) encoder over the session predicts the next item (Kang and "
                   "McAuley, 2018).")
    pad_side = "left"

    def __init__(self, config: SASRecConfig, n_items: int):
        super().__init__(config, n_items)
        self.item_emb = nn.Embedding(n_items, config.dim, padding_idx=0)  # also the output layer (tied)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.dim)
        self.init_weights()

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.category_emb = self.category_embedding(self.config.dim, std=0.02)

    def output_layer(self):
        return self.item_emb.weight, None

    def _forward(self, x, lengths, need_weights=False):
        B, T = x.shape
        cols = torch.arange(T, device=x.device)
        pos = (cols[None, :] - (T - lengths)[:, None]).clamp(min=0)  # first real item -> position 0
        h = self.item_emb(x) + self.pos_emb(pos)
        if self.category_emb is not None:
            h = h + self.embed_categories(x)
        h = self.drop(h)  # (B, T, C)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        mask = (causal & (x > 0)[:, None, :]) | torch.eye(T, dtype=torch.bool, device=x.device)  # (B, T, T)
        weights = None
        for block in self.blocks:
            h, weights = block(h, mask[:, None], need_weights)
        return self.ln_f(h), weights

    def sequence_states(self, x, lengths):
        return self._forward(x, lengths)[0]

    def session_state(self, seq):
        """`_forward`'s state after the last item of one unpadded session: positions 0..T-1, a causal mask with
        no padded key, the final LayerNorm on the last position only (it normalises each position alone)."""
        T = len(seq)
        h = self.item_emb(seq) + self.pos_emb.weight[:T]
        if self.category_emb is not None:
            h = h + self.embed_categories(seq)
        h = h[None]  # (1, T, C); dropout is the identity in eval mode
        mask = torch.ones(T, T, dtype=torch.bool, device=seq.device).tril_()
        for block in self.blocks:
            h = block.infer(h, mask)
        return _layer_norm(self.ln_f, h[:, -1])

    @torch.no_grad()
    def explain(self, session: np.ndarray, top: int = 5) -> dict:
        """Last layer's attention (mean over heads) from the last position over the history it read."""
        seq = np.asarray(session, dtype=np.int64)[-self.config.max_len:]
        x, lengths = pad_sessions([seq], self.config.max_len, "left")
        self.eval()
        _, weights = self._forward(x.to(self.device), lengths.to(self.device), need_weights=True)
        w = weights[0, :, -1, -len(seq):].mean(0).float().cpu().numpy()  # (n,) over the items read
        order = np.argsort(-w, kind="stable")[:top]
        offset = len(session) - len(seq)
        return {"method": "attention of the last position, last layer, mean over heads",
                "positions": (order + offset).tolist(), "items": seq[order].tolist(),
                "weights": w[order].tolist(), "all_weights": w.tolist()}
