"""SR-GNN (Wu et al., AAAI 2019): a gated graph network over the session graph, then an attention readout.

Per session, its distinct items are the nodes and each click-to-next-click transition an edge; a gated GNN (a
GRU cell whose input is the mean message from predecessors and from successors) updates the node states for
`steps` rounds; the session is then s_h = W3 [s_l; s_g], with s_l the last item's node and s_g = sum_i alpha_i v_i,
alpha_i = q^T sigmoid(W1 s_l + W2 v_i + c), over the session's positions (a repeated item counts at each).

Where this differs from the paper or the official code (CRIPAC-DIG/SR-GNN), and why:
- Logits are the project's scaled cosine (`cosine_scale`, as NISER, Gupta et al. 2019, did for SR-GNN) or dot
  products with the tied item table; the loss is the trainer's full or sampled softmax (recsys.train), not the
  official full softmax alone. AdamW and the recipe's warm-up + cosine schedule, not Adam with step decay.
- The graph is built for a whole padded batch in torch (`session_graph`: sort, first occurrences, one scatter),
  not per session in numpy in the data loader. As in the official code an edge weighs 1 however often the
  transition repeats (its issue #27), and A_in / A_out divide by in- / out-degree.
- Dropout on the item embeddings (`dropout`); the official code has none. Optional category input, as every
  neural model here.
- The graph is the whole prefix, so a node's state depends on later clicks: not causal per position. Like the
  bidirectional LSTM, it trains on the last position of every (prefix -> next item) pair.

Two options from SGNN-HN (Pan et al., CIKM 2020, "Star graph neural networks for session-based recommendation"), off
by default: `star` adds a star node joined to every item node. It starts as the mean of the item nodes; after each
GNN step every node takes a gated share of it, alpha_i = sigmoid((W_q h_i) . (W_k s) / sqrt(d)), and it is then
updated by attention over the nodes. The star also joins the readout's attention. `highway` mixes each node's
input and output states, g = sigmoid(W_g [h^0; h^L]), h = g h^0 + (1 - g) h^L, so more GNN steps cannot wash
out the item itself. SGNN-HN's reversed position embeddings in the readout are not included.
"""

from dataclasses import dataclass

import torch
from torch import nn

from recsys.models.base import ModelConfig, check_range
from recsys.models.neural import NeuralRecommender

MAX_STEPS = 16  # a bound on the GNN rounds one config.json can ask for (the paper uses 1)


@dataclass(frozen=True)
class SRGNNConfig(ModelConfig):
    dim: int = 100  # item embedding = node state = session vector size (the paper's d)
    steps: int = 1  # gated GNN rounds over the session graph
    dropout: float = 0.3  # on the item embeddings fed to the GNN. 0.3: on Diginetica validation (default recipe)
    # 0.1 peaked at epoch 5 (MRR@20 17.80) and then overfitted; 0.3 reached 18.47 at epoch 8 (docs/BENCHMARKS.md)
    cosine_scale: float = 16.0  # > 0: logits = scale * cosine(session, item) (NISER); 0: dot products
    max_len: int = 50  # most recent items the model reads
    use_categories: bool = False  # add a category embedding to each node's input
    star: bool = False  # SGNN-HN's star node (module docstring)
    highway: bool = False  # SGNN-HN's highway network between the GNN's input and output node states
    n_categories: int = 0  # size of the category table; set by fit from the data

    def check(self):
        check_range(self, "dim", low=1)
        check_range(self, "max_len", low=1)
        check_range(self, "steps", 1, MAX_STEPS)
        check_range(self, "dropout", 0.0, 1.0)
        check_range(self, "cosine_scale", low=0.0)
        check_range(self, "n_categories", low=0)


def session_graph(x: torch.Tensor):
    """(B, T) padded item indices (0 = padding, anywhere) -> nodes (B, N) the distinct items of each row in
    increasing order (0 after them), alias (B, T) the node of each position (0 at padding), a_in and a_out (B, N, N):
    a_in[v, u] = [u -> v] / in-degree(v) (mean over predecessors), a_out[u, v] = [u -> v] / out-degree(u)."""
    B, T = x.shape
    items, order = x.sort(dim=1)  # padding first
    first = torch.ones_like(x, dtype=torch.bool)
    first[:, 1:] = items[:, 1:] != items[:, :-1]
    node = (first & (items > 0)).cumsum(1) - 1  # (B, T): node of each sorted position, -1 at padding
    N = max(int(node[:, -1].max()) + 1, 1)
    slot = torch.where(node >= 0, node, N)  # padding writes into a spare column, dropped below
    nodes = x.new_zeros(B, N + 1).scatter_(1, slot, items)[:, :N]  # equal items write equal values
    alias = torch.empty_like(x).scatter_(1, order, node.clamp(min=0))  # sorted position -> original position
    edge = (x[:, :-1] > 0) & (x[:, 1:] > 0)  # (B, T - 1): a real click followed by a real click
    flat = torch.where(edge, alias[:, :-1] * N + alias[:, 1:], N * N)
    adj = x.new_zeros(B, N * N + 1, dtype=torch.float).scatter_(1, flat, 1.0)[:, :-1].view(B, N, N)
    a_in = adj.transpose(1, 2) / adj.sum(1).clamp(min=1)[..., None]
    a_out = adj / adj.sum(2).clamp(min=1)[..., None]
    return nodes, alias, a_in, a_out


class SRGNN(NeuralRecommender):
    name, Config = "srgnn", SRGNNConfig
    title = "SR-GNN"
    summary = "a graph neural network over the session's item transitions, then attention on its last item."
    description = ("A gated graph neural network over the session graph (its items as nodes, its transitions as "
                   "edges) and an attention readout anchored on the last item predict the next item (Wu et al., "
                   "2019); trained on the last position of every prefix, with scaled-cosine logits.")
    pad_side = "left"  # right-aligned: the last item sits in the last column
    recipe_lr = 3e-3  # the default recipe's learning rate: the recurrent models' (1e-3 left them short on session
    # data, recsys.recipe); the official code's 1e-3 was with batches of 100 prefixes, the recipe's are 512

    def __init__(self, config: SRGNNConfig, n_items: int):
        super().__init__(config, n_items)
        d = config.dim
        self.item_emb = nn.Embedding(n_items, d, padding_idx=0)  # also the output layer (tied)
        self.drop = nn.Dropout(config.dropout)
        self.edge_in = nn.Linear(d, d, bias=False)  # message from predecessors: A_in (H W_in) + b_in
        self.edge_out = nn.Linear(d, d, bias=False)
        self.bias_in, self.bias_out = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.cell = nn.GRUCell(2 * d, d)  # the paper's gates: input [a_in; a_out], state = node state
        self.w1 = nn.Linear(d, d)  # last item's node (its bias is the paper's c)
        self.w2 = nn.Linear(d, d, bias=False)
        self.q = nn.Linear(d, 1, bias=False)
        self.w3 = nn.Linear(2 * d, d, bias=False)  # [s_l; s_g] -> session vector
        # SGNN-HN's options: registered only when on, so folders saved without them load unchanged
        self.star_gate_q = nn.Linear(d, d, bias=False) if config.star else None  # node -> star gate
        self.star_gate_k = nn.Linear(d, d, bias=False) if config.star else None
        self.star_att_q = nn.Linear(d, d, bias=False) if config.star else None  # star's attention over nodes
        self.star_att_k = nn.Linear(d, d, bias=False) if config.star else None
        self.w_star = nn.Linear(d, d, bias=False) if config.star else None  # the star in the readout
        self.highway_gate = nn.Linear(2 * d, d) if config.highway else None
        self.init_weights()

    def init_weights(self) -> None:
        for module in (self.edge_in, self.edge_out, self.cell, self.w1, self.w2, self.q, self.w3, self.star_gate_q,
                       self.star_gate_k, self.star_att_q, self.star_att_k, self.w_star, self.highway_gate):
            if module is not None:
                module.reset_parameters()
        nn.init.normal_(self.item_emb.weight, std=self.config.dim ** -0.5)  # rows of about unit norm
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
            self.bias_in.zero_()
            self.bias_out.zero_()
        self.category_emb = self.category_embedding(self.config.dim, std=self.config.dim ** -0.5)

    @property
    def per_position(self) -> bool:
        return False

    def output_layer(self):
        return self.item_emb.weight, None

    def sequence_states(self, x, lengths):
        raise RuntimeError("SR-GNN's graph is the whole prefix: it has no causal per-position states; use "
                           "final_state")

    def final_state(self, x, lengths):
        """(B, T) right-aligned sessions -> (B, dim) session vectors (`lengths` unused: padding is 0)."""
        nodes, alias, a_in, a_out = session_graph(x)
        h = self.item_emb(nodes)  # (B, N, d)
        if self.category_emb is not None:
            h = h + self.embed_categories(nodes)
        h = h0 = self.drop(h)
        B, N, d = h.shape
        real = (nodes > 0)[..., None]  # (B, N, 1): the item nodes (0: a padding node)
        star = (h * real).sum(1) / real.sum(1).clamp(min=1) if self.config.star else None  # (B, d)
        for _ in range(self.config.steps):
            m = torch.cat([a_in @ self.edge_in(h) + self.bias_in, a_out @ self.edge_out(h) + self.bias_out], -1)
            h = self.cell(m.reshape(B * N, 2 * d), h.reshape(B * N, d)).view(B, N, d)
            if star is not None:
                gate = torch.sigmoid((self.star_gate_q(h) * self.star_gate_k(star)[:, None]).sum(-1, keepdim=True)
                                     / d ** 0.5)
                h = (1 - gate) * h + gate * star[:, None]
                att = (self.star_att_k(h) * self.star_att_q(star)[:, None]).sum(-1, keepdim=True) / d ** 0.5
                att = att.masked_fill(~real, -torch.inf).softmax(dim=1)
                star = (att * h).sum(1)
        if self.highway_gate is not None:
            g = torch.sigmoid(self.highway_gate(torch.cat([h0, h], -1)))
            h = g * h0 + (1 - g) * h
        v = h.gather(1, alias[..., None].expand(-1, -1, d))  # (B, T, d): the node state at each position
        last = v[:, -1]  # right-aligned: the last column is the last click
        context = self.w1(last)[:, None] + (self.w_star(star)[:, None] if star is not None else 0)
        alpha = self.q(torch.sigmoid(context + self.w2(v)))  # (B, T, 1)
        s_g = (alpha * v * (x > 0)[..., None]).sum(1)  # padded positions weigh nothing
        return self.w3(torch.cat([last, s_g], -1))
