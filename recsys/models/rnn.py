"""Recurrent next-item models: GRU4Rec (Hidasi et al., ICLR 2016) and LSTM variants; they differ only in config.

How this differs from the official GRU4Rec code, and why:
- Batches: each row is one whole session, padded on the right and run from a zero state, with full-softmax
  cross-entropy at every non-padded position and backpropagation through the whole session. The official
  code trains session-parallel mini-batches (one event per session slot per step, the state carried over and
  reset when a slot's session ends, gradients one step deep) with the other slots' targets as negatives.
  Padded rows use plain cuDNN/CPU kernels, make the state reset correct by construction (a flaw Hidasi and
  Czapp found in third-party code), and let one trainer (recsys.train) serve every neural model.
- Loss: cross-entropy over all items by default; `TrainConfig.n_negatives` switches to a sampled softmax
  with shared, popularity-biased negatives (sampled before the softmax, with a logQ correction). BPR-max is
  not implemented. Optimiser: AdamW instead of Adagrad/momentum.
- Kept from the official code: tied input/output embeddings (`tied`, with a projection when hidden !=
  embedding size), an output bias, separate dropout on embeddings and on the hidden state.
- `bidirectional` (lstm-bi) encodes the observed prefix in both directions; it never sees the item it
  predicts, but a state mid-sequence depends on later items, so it is trained on the last position of every
  (prefix -> next item) pair instead of every position (cost grows with the square of session length).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from recsys.models.base import ModelConfig, check_range
from recsys.models.neural import NeuralRecommender

MAX_LAYERS = 64  # a bound on the layers one config.json can ask for (GRU4Rec uses 1)


@dataclass(frozen=True)
class RNNConfig(ModelConfig):
    cell: str = "gru"  # "gru" or "lstm"
    emb_dim: int = 128
    hidden: int = 256
    n_layers: int = 1
    bidirectional: bool = False  # encode the prefix both ways (trained on the last position of each prefix)
    emb_dropout: float = 0.25
    hidden_dropout: float = 0.25  # on the RNN outputs (and between stacked layers)
    tied: bool = True  # output layer = input item embeddings, after a projection when hidden != emb_dim
    cosine_scale: float = 16.0  # > 0: logits = scale * cosine(state, item) without output bias (NISER); 0: dot
    # products. 16 by default: on Diginetica and Yoochoose 1/64 validation it lifted the default recipe's GRU4Rec
    # MRR@20 from 14.75 to 16.95 and from 24.69 to 29.58 (docs/BENCHMARKS.md, "Default training recipe")
    max_len: int = 50  # most recent items the model reads
    use_categories: bool = False  # concatenate a category embedding to each item's embedding
    category_dim: int = 16
    n_categories: int = 0  # size of the category table; set by fit from the data

    def check(self):
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        for name in ("emb_dim", "hidden", "max_len", "category_dim"):
            check_range(self, name, low=1)
        check_range(self, "n_layers", 1, MAX_LAYERS)
        check_range(self, "emb_dropout", 0.0, 1.0)
        check_range(self, "hidden_dropout", 0.0, 1.0)
        check_range(self, "cosine_scale", low=0.0)
        check_range(self, "n_categories", low=0)


class RNNRec(NeuralRecommender):
    Config = RNNConfig
    recipe_lr = 3e-3  # the default recipe's learning rate (recsys.recipe): 1e-3 left GRU4Rec short on session data
    pad_side = "right"  # sessions left-aligned: padding after the items never touches their states

    def __init__(self, config: RNNConfig, n_items: int):
        super().__init__(config, n_items)
        c = config
        self.item_emb = nn.Embedding(n_items, c.emb_dim, padding_idx=0)
        in_dim = c.emb_dim + (c.category_dim if c.use_categories else 0)
        cell = nn.GRU if c.cell == "gru" else nn.LSTM
        self.rnn = cell(in_dim, c.hidden, c.n_layers, batch_first=True, bidirectional=c.bidirectional,
                        dropout=c.hidden_dropout if c.n_layers > 1 else 0.0)
        out_dim = c.hidden * (2 if c.bidirectional else 1)
        self.emb_drop, self.hidden_drop = nn.Dropout(c.emb_dropout), nn.Dropout(c.hidden_dropout)
        self.proj = nn.Linear(out_dim, c.emb_dim) if c.tied and out_dim != c.emb_dim else nn.Identity()
        self.out = None if c.tied else nn.Embedding(n_items, out_dim)  # untied output table, one row per item
        if c.cosine_scale:  # cosine logits use no bias: a zero buffer keeps the folder layout, and nothing sits
            self.register_buffer("out_bias", torch.zeros(n_items))  # untrained (DDP refuses unused parameters)
        else:
            self.out_bias = nn.Parameter(torch.zeros(n_items))
        self.init_weights()

    def init_weights(self) -> None:
        c = self.config
        self.rnn.reset_parameters()
        if isinstance(self.proj, nn.Linear):
            self.proj.reset_parameters()
        for table in (self.item_emb, self.out):
            if table is not None:
                nn.init.normal_(table.weight, std=table.embedding_dim ** -0.5)  # rows of about unit norm
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
            self.out_bias.zero_()
        self.category_emb = self.category_embedding(c.category_dim, std=c.category_dim ** -0.5)

    @property
    def per_position(self) -> bool:
        return not self.config.bidirectional

    def output_layer(self):
        return (self.item_emb.weight if self.out is None else self.out.weight), self.out_bias

    def project(self, h):
        return self.proj(h)

    def embed(self, x):  # (B, T) -> (B, T, emb_dim [+ category_dim])
        e = self.item_emb(x)
        if self.category_emb is not None:
            e = torch.cat([e, self.embed_categories(x)], dim=-1)
        return self.emb_drop(e)

    def sequence_states(self, x, lengths):
        if self.config.bidirectional:
            raise RuntimeError("a bidirectional encoder has no causal per-position states; use final_state")
        out, _ = self.rnn(self.embed(x))  # (B, T, H); positions past a row's length are ignored
        return self.hidden_drop(out)

    def session_state(self, seq):
        """`final_state` of one unpadded session: no packing (a bidirectional encoder's packed and plain runs
        agree when nothing is padded), no dropout modules (the identity in eval mode), no gather of the last
        position."""
        e = self.item_emb(seq)
        if self.category_emb is not None:
            e = torch.cat([e, self.embed_categories(seq)], dim=-1)
        out, h = self.rnn(e[None])
        if not self.config.bidirectional:
            return out[:, -1]
        h = h[0] if isinstance(h, tuple) else h
        return torch.cat([h[-2], h[-1]], dim=-1)

    def final_state(self, x, lengths):
        if not self.config.bidirectional:
            return super().final_state(x, lengths)
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        h = h[0] if isinstance(h, tuple) else h  # LSTM returns (h, c); h is (layers * 2, B, H)
        return self.hidden_drop(torch.cat([h[-2], h[-1]], dim=-1))  # last layer: forward end, backward end


@dataclass(frozen=True)
class GRU4RecMediumConfig(RNNConfig):
    emb_dim: int = 256
    hidden: int = 256


@dataclass(frozen=True)
class GRU4RecLargeConfig(RNNConfig):
    emb_dim: int = 256
    hidden: int = 512


@dataclass(frozen=True)
class LSTMConfig(RNNConfig):
    cell: str = "lstm"
    emb_dim: int = 64
    hidden: int = 128
    emb_dropout: float = 0.3
    hidden_dropout: float = 0.3


@dataclass(frozen=True)
class BiLSTMConfig(LSTMConfig):
    bidirectional: bool = True


@dataclass(frozen=True)
class CatLSTMConfig(LSTMConfig):
    use_categories: bool = True


GRU4REC_DESCRIPTION = "A GRU over the session's item sequence predicts the next item (Hidasi et al., 2016)."
LSTM_DESCRIPTION = ("An LSTM over the session's item sequence predicts the next item: GRU4Rec with an LSTM cell, "
                    f"smaller by default ({LSTMConfig.emb_dim}-dimensional item embeddings, {LSTMConfig.hidden} "
                    f"units, dropout {LSTMConfig.hidden_dropout}).")


def _size(config: type[RNNConfig]) -> str:
    return f"{config.emb_dim}-dimensional item embeddings and a {config.hidden}-unit GRU"


class GRU4Rec(RNNRec):
    name, Config = "gru4rec", RNNConfig  # embedding 128, hidden 256
    title = "GRU4Rec"
    summary = "a recurrent neural network (GRU) that reads the session in order, one item at a time."
    description = f"{GRU4REC_DESCRIPTION} This size has {_size(RNNConfig)}."


class GRU4RecMedium(RNNRec):
    name, Config = "gru4rec-medium", GRU4RecMediumConfig  # 256 / 256
    title = "GRU4Rec (medium)"
    summary = "GRU4Rec with larger item vectors: a recurrent network (GRU) that reads the session in order."
    description = f"{GRU4REC_DESCRIPTION} The medium size has {_size(GRU4RecMediumConfig)}."


class GRU4RecLarge(RNNRec):
    name, Config = "gru4rec-large", GRU4RecLargeConfig  # 256 / 512
    title = "GRU4Rec (large)"
    summary = "GRU4Rec with larger item vectors and state: a recurrent network (GRU) that reads the session in order."
    description = f"{GRU4REC_DESCRIPTION} The large size has {_size(GRU4RecLargeConfig)}."


class LSTMRec(RNNRec):
    name, Config = "lstm", LSTMConfig  # 64 / 128, dropout 0.3
    title = "LSTM"
    summary = "the same recurrent model as GRU4Rec with an LSTM cell, reading the session in order."
    description = LSTM_DESCRIPTION


class BiLSTMRec(RNNRec):
    name, Config = "lstm-bi", BiLSTMConfig
    title = "Bidirectional LSTM"
    summary = "an LSTM that reads the session both ways, oldest item first and newest item first."
    description = (f"{LSTM_DESCRIPTION} This one reads the session in both directions and predicts from both final "
                   "states; it never sees the item it predicts, but its state mid-session depends on later items, so "
                   "it is trained on the last position of every prefix.")


class CatLSTMRec(RNNRec):
    name, Config = "lstm-cat", CatLSTMConfig
    title = "LSTM with categories"
    summary = "the LSTM model, reading each item together with its category."
    description = (f"{LSTM_DESCRIPTION} This one also reads each item's category: a {CatLSTMConfig.category_dim}-"
                   "dimensional category embedding is concatenated to every item embedding.")
