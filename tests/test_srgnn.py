"""SR-GNN (recsys/models/srgnn.py): the session graph, padding, the last item's node, learning a rule, save/load."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import Dataset
from recsys.evaluate import evaluate
from recsys.folder import load_folder, save_folder
from recsys.models import REGISTRY, FitOptions
from recsys.models.base import pad_sessions
from recsys.models.srgnn import SRGNN, SRGNNConfig, session_graph
from recsys.sessions import Sessions
from recsys.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

N_ITEMS = 40  # padding included


def model(**overrides) -> SRGNN:
    torch.manual_seed(0)
    return SRGNN(dataclasses.replace(SRGNNConfig(), dim=16, **overrides), N_ITEMS).eval()


def test_the_graph_of_a_session_with_a_repeat_is_the_papers():
    # 1 -> 2 -> 3 -> 2 -> 4: nodes 1, 2, 3, 4; edges 1->2, 2->3, 3->2, 2->4 (the paper's Figure 1 session)
    a_out = [[0, 1, 0, 0], [0, 0, .5, .5], [0, 1, 0, 0], [0, 0, 0, 0]]  # over each node's successors
    a_in = [[0, 0, 0, 0], [.5, 0, .5, 0], [0, 1, 0, 0], [0, 1, 0, 0]]  # over each node's predecessors
    for x in ([[1, 2, 3, 2, 4]], [[0, 0, 1, 2, 3, 2, 4]]):  # padding changes nothing
        nodes, alias, got_in, got_out = session_graph(torch.tensor(x))
        assert nodes.tolist() == [[1, 2, 3, 4]]
        assert alias[0, -5:].tolist() == [0, 1, 2, 1, 3]
        assert got_in.tolist() == [a_in] and got_out.tolist() == [a_out]


def test_a_repeated_transition_weighs_one_and_a_self_loop_is_an_edge():
    nodes, _, a_in, a_out = session_graph(torch.tensor([[7, 7, 7, 3, 7, 3]]))
    assert nodes.tolist() == [[3, 7]]  # 7->7 (twice), 7->3 (twice), 3->7: binary edges, as the official code
    # 3 is followed by 7 only and preceded by 7 only; 7 is followed by 3 and 7, and preceded by 3 and 7
    assert a_out.tolist() == [[[0, 1], [.5, .5]]] and a_in.tolist() == [[[0, 1], [.5, .5]]]


def test_every_position_maps_to_its_items_node_in_batches_with_repeats():
    rng = np.random.default_rng(0)
    sessions = [rng.integers(1, 6, n) for n in (1, 2, 5, 9, 13)]  # 5 items: many repeats
    x, _ = pad_sessions(sessions, 50, "left")
    nodes, alias, a_in, a_out = session_graph(x)
    assert torch.equal(torch.where(x > 0, nodes.gather(1, alias), 0), x)  # the last column: the last item's node
    for row, s in enumerate(sessions):
        assert nodes[row].tolist() == sorted(set(s.tolist())) + [0] * (nodes.shape[1] - len(set(s.tolist())))
        assert torch.all(a_out[row].sum(1)[: len(set(s.tolist()))] <= 1 + 1e-6)


def reference_state(m: SRGNN, session) -> torch.Tensor:
    """The model's session vector written out one session at a time, nodes in order of first click."""
    items = list(dict.fromkeys(session))  # distinct, first-click order (the batch builds them sorted)
    index = {item: i for i, item in enumerate(items)}
    n = len(items)
    adj = torch.zeros(n, n)
    for u, v in zip(session[:-1], session[1:]):
        adj[index[u], index[v]] = 1.0
    a_in = adj.T / adj.sum(0).clamp(min=1)[:, None]
    a_out = adj / adj.sum(1).clamp(min=1)[:, None]
    h = m.item_emb(torch.tensor(items))
    for _ in range(m.config.steps):
        msg = torch.cat([a_in @ m.edge_in(h) + m.bias_in, a_out @ m.edge_out(h) + m.bias_out], -1)
        h = m.cell(msg, h)
    v = h[[index[i] for i in session]]  # (T, d)
    last = h[index[session[-1]]]
    alpha = m.q(torch.sigmoid(m.w1(last) + m.w2(v)))  # (T, 1)
    return m.w3(torch.cat([last, (alpha * v).sum(0)]))


@pytest.mark.parametrize("steps", [1, 2])
def test_batched_states_equal_the_one_session_reference_and_ignore_padding(steps):
    m = model(steps=steps)
    sessions = [[5], [3, 3], [1, 2, 3, 2, 4], [9, 8, 9, 8, 9, 1], [4, 2, 7, 7, 2, 30, 4, 11, 2, 6, 12, 4]]
    x, lengths = pad_sessions([np.array(s) for s in sessions], 50, m.pad_side)
    with torch.no_grad():
        batch = m.final_state(x, lengths)
        for row, s in enumerate(sessions):
            alone = m.final_state(torch.tensor([s]), torch.tensor([len(s)]))
            torch.testing.assert_close(batch[row], alone[0], rtol=1e-5, atol=1e-6)  # padding changes nothing
            torch.testing.assert_close(alone[0], reference_state(m, s), rtol=1e-5, atol=1e-6)


def test_the_last_item_decides_between_sessions_with_the_same_graph():
    # 1 -> 2 -> 1 -> 2 -> 1 and 2 -> 1 -> 2 -> 1 -> 2 have the same nodes, edges and states; only the last differs
    m = model()
    with torch.no_grad():
        a = m.final_state(torch.tensor([[1, 2, 1, 2, 1]]), torch.tensor([5]))
        b = m.final_state(torch.tensor([[2, 1, 2, 1, 2]]), torch.tensor([5]))
        nodes, _, a_in, a_out = session_graph(torch.tensor([[1, 2, 1, 2, 1], [2, 1, 2, 1, 2]]))
    assert torch.equal(a_in[0], a_in[1]) and torch.equal(a_out[0], a_out[1])
    assert not torch.allclose(a, b)


def rule_data(n_items=30, seed=0) -> Dataset:
    """Sessions whose next item is a fixed function of the current one (a random permutation of the items)."""
    rng = np.random.default_rng(seed)
    nxt = rng.permutation(n_items) + 1

    def split(n):
        out = []
        for start, length in zip(rng.integers(1, n_items + 1, n), rng.integers(2, 8, n)):
            s = [int(start)]
            while len(s) < length:
                s.append(int(nxt[s[-1] - 1]))
            out.append(s)
        return Sessions.from_lists(out)

    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(1, n_items + 1)], "category_id": ["c"] * n_items,
                          "popularity": np.ones(n_items, dtype=np.int64)})
    return Dataset(split(400), split(60), split(60), items,
                   meta={"protocols": {"train": "all", "valid": "all", "test": "all"}})


def test_it_learns_a_deterministic_next_item_and_saves_and_loads_to_equal_scores(tmp_path):
    data = rule_data()
    m = SRGNN(SRGNNConfig(dim=32, dropout=0.0), data.n_items)
    fit(m, data, FitOptions(max_epochs=15, progress=False, accelerator="cpu"),
        TrainConfig(batch_size=32, lr=1e-2, schedule="constant", val_max_cases=200))
    metrics = evaluate(m, data.test, "all", ks=(1, 20)).metrics()
    assert metrics["hr@1"] >= 0.9, metrics  # chance: 1/30
    folder = save_folder(m, tmp_path / "srgnn", data.items)
    loaded = load_folder(folder, REGISTRY)
    sessions = [np.array([1, 2, 3]), np.array([7]), np.array([4, 4, 9, 4, 12, 1])]
    with torch.no_grad():
        assert torch.equal(loaded.score(sessions), m.eval().score(sessions))
    assert loaded.config == m.config


def test_config_is_checked_and_there_are_no_per_position_states():
    with pytest.raises(ValueError, match="steps"):
        SRGNNConfig(steps=0)
    with pytest.raises(ValueError, match="dropout"):
        SRGNNConfig(dropout=1.5)
    m = model()
    assert m.per_position is False
    with pytest.raises(RuntimeError, match="per-position"):
        m.sequence_states(torch.tensor([[1, 2]]), torch.tensor([2]))


@pytest.mark.parametrize("options", [{"star": True}, {"highway": True}, {"star": True, "highway": True, "steps": 2}])
def test_sgnn_hn_options_ignore_padding_change_the_state_and_save_and_load(options, tmp_path):
    """SGNN-HN's star node and highway network: a padded batch gives each session its own state (the star never
    attends to a padding node), the options change the state, and a saved folder loads to equal scores."""
    plain, m = model(steps=options.get("steps", 1)), model(**options)
    sessions = [[5], [3, 3], [1, 2, 3, 2, 4], [4, 2, 7, 7, 2, 30, 4, 11, 2, 6, 12, 4]]
    x, lengths = pad_sessions([np.array(s) for s in sessions], 50, m.pad_side)
    with torch.no_grad():
        batch = m.final_state(x, lengths)
        for row, s in enumerate(sessions):
            alone = m.final_state(torch.tensor([s]), torch.tensor([len(s)]))
            torch.testing.assert_close(batch[row], alone[0], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(batch, plain.final_state(x, lengths))
    data = rule_data()
    trained = SRGNN(SRGNNConfig(dim=32, dropout=0.0, **options), data.n_items)
    fit(trained, data, FitOptions(max_epochs=15, progress=False, accelerator="cpu"),
        TrainConfig(batch_size=32, lr=1e-2, schedule="constant", val_max_cases=200))
    assert evaluate(trained, data.test, "all", ks=(1,)).metrics()["hr@1"] >= 0.9
    loaded = load_folder(save_folder(trained, tmp_path / "sgnn", data.items), REGISTRY)
    with torch.no_grad():
        assert torch.equal(loaded.score([np.array(s) for s in sessions[:3]]),
                          trained.eval().score([np.array(s) for s in sessions[:3]]))
    assert loaded.config == trained.config
