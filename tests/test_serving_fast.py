"""One session served fast (recsys.models.base.recommend): the neural models' single-session path
(`NeuralRecommender.session_state`, no padded batch, no dropout or mask modules), the top-k that skips the count
of unmasked items, and the eval-mode check give exactly what the padded batch path and the earlier
count-then-topk gave."""

import dataclasses
import functools

import numpy as np
import pytest
import torch

from recsys.models import REGISTRY, recommend
from recsys.models.base import eval_mode, mask_scores, pad_sessions, top_unmasked
from recsys.models.neural import NeuralRecommender

NEURAL = sorted(k for k, cls in REGISTRY.items() if issubclass(cls, NeuralRecommender))
N_ITEMS = 300  # padding included
CATEGORIES = np.arange(N_ITEMS) % 7

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def build(key: str, **overrides) -> NeuralRecommender:
    cls = REGISTRY[key]
    config = dataclasses.replace(cls.Config(), max_len=12, **overrides)
    torch.manual_seed(0)
    model = cls(config, N_ITEMS)
    if model.config.use_categories:
        model.set_categories(CATEGORIES)
        model.init_weights()
    return model.eval()


def padded_scores(model: NeuralRecommender, session: np.ndarray) -> torch.Tensor:
    """The batch path for one session: pad_sessions, final_state, logits."""
    x, lengths = pad_sessions([session], model.config.max_len, model.pad_side)
    return model.logits(model.final_state(x, lengths))


def reference_recommend(model, session: np.ndarray, k: int, exclude_seen: bool):
    """recommend() as it was: the batch path's scores, every unmasked item counted, then torch.topk."""
    with torch.no_grad():
        scores = mask_scores(padded_scores(model, session).float(), [session], exclude_seen)
    k = min(k, int((scores > -torch.inf).sum(dim=1).min()))
    top = torch.topk(scores, k, dim=1)
    return top.indices.numpy()[0], top.values.numpy()[0]


VARIANTS = [(key, {}) for key in NEURAL] + [
    ("sasrec", {"cosine_scale": 10.0}), ("sasrec", {"use_categories": True}), ("sasrec", {"n_layers": 0}),
    ("gru4rec", {"n_layers": 2, "tied": False}), ("gru4rec", {"cosine_scale": 0.0}),  # dot products + bias
    ("lstm", {"cosine_scale": 0.0, "tied": False}),
    ("lstm-bi", {"n_layers": 2}), ("lstm-cat", {"bidirectional": True}),
]


@pytest.mark.parametrize(("key", "overrides"), VARIANTS, ids=[f"{k}{o or ''}" for k, o in VARIANTS])
def test_one_session_scores_equal_the_padded_batch_path(key, overrides):
    model = build(key, **overrides)
    rng = np.random.default_rng(0)
    lengths = [1, 2, 5, 11, 12, 13, 30]  # shorter than, equal to and longer than max_len (12)
    with torch.no_grad():
        for n in lengths:
            session = rng.integers(1, N_ITEMS, n)
            fast = model.score([session])
            assert torch.equal(fast, padded_scores(model, session)), (key, overrides, n)
    with torch.no_grad():  # the path taken when it should be: eval mode, no gradients, one session
        calls = []
        model.session_state = lambda seq, f=model.session_state: calls.append(len(seq)) or f(seq)
        model.score([np.array([1, 2, 3])])
        model.score([np.array([1, 2]), np.array([3])])
        model.train()
        model.score([np.array([4, 5])])
        model.eval()
    with torch.enable_grad():
        model.score([np.array([6, 7])])
    assert calls == [3]


@pytest.mark.parametrize("key", NEURAL)
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_recommend_returns_the_items_and_scores_it_returned_before(key, exclude_seen):
    model = build(key)
    rng = np.random.default_rng(1)
    for n in (1, 4, 9, 15):
        session = rng.integers(1, N_ITEMS, n)
        ids, scores = recommend(model, session, k=20, exclude_seen=exclude_seen)
        want_ids, want_scores = reference_recommend(model, session, 20, exclude_seen)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)


def old_top(scores: torch.Tensor, k: int):
    k = min(k, int((scores > -torch.inf).sum(dim=1).min()))
    return torch.topk(scores, k, dim=1) if k else None


@pytest.mark.parametrize("k", [1, 3, 5, 8, 50])
def test_top_unmasked_is_the_count_then_topk(k):
    torch.manual_seed(0)
    cases = [torch.randn(3, 8)]
    masked = torch.randn(3, 8)
    masked[:, 0] = -torch.inf
    masked[1, 2:6] = -torch.inf  # row 1 keeps 3 unmasked items
    cases.append(masked)
    nan = torch.randn(2, 8)
    nan[0, 3] = torch.nan  # NaN counts as masked (and torch.topk puts it first)
    cases.append(nan)
    cases.append(torch.full((1, 8), torch.inf))
    for scores in cases:
        want = old_top(scores.clone(), k)
        got = top_unmasked(scores.clone(), k)
        assert torch.equal(got.indices, want.indices)
        assert torch.equal(got.values.nan_to_num(0.5), want.values.nan_to_num(0.5))
    with pytest.raises(ValueError, match="no item left"):
        top_unmasked(torch.full((2, 4), -torch.inf), k)


def test_eval_mode_turns_off_dropout_anywhere_and_leaves_an_eval_model_alone():
    model = build("sasrec", dropout=0.5)
    session = np.array([3, 4, 5, 6])
    want = recommend(model, session, k=5)
    model.blocks[0].ffn.train()  # one submodule left training: its dropout would change the scores
    assert recommend(model, session, k=5)[1].tolist() == want[1].tolist()
    assert not any(m.training for m in model.modules())
    calls = []
    model.eval = lambda: calls.append(1)
    eval_mode(model)
    assert calls == []


def test_the_hybrid_serves_its_neural_part_on_the_fast_path():
    from tools.bench.servedata import _random_catalogue, servable

    data = _random_catalogue(N_ITEMS - 1, n_sessions=400)
    torch.manual_seed(0)
    model, _ = servable(REGISTRY["hybrid"], data)
    gru = model.part("gru4rec")
    calls = []
    gru.session_state = lambda seq, f=gru.session_state: calls.append(len(seq)) or f(seq)
    session = np.array([5, 9, 2])
    ids, scores = recommend(model, session, k=10)
    assert calls == [3]
    # the padded path for the part (NeuralRecommender's own session_state: a batch of one through final_state)
    gru.session_state = functools.partial(NeuralRecommender.session_state, gru)
    want_ids, want_scores = recommend(model, session, k=10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


def general_mask(scores: torch.Tensor, sessions, exclude_seen: bool) -> torch.Tensor:
    """mask_scores's path for any number of sessions (row and column indices of every session's items)."""
    scores[:, 0] = -torch.inf
    if exclude_seen:
        rows = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
        scores[torch.from_numpy(rows), torch.from_numpy(np.concatenate(sessions))] = -torch.inf
    return scores


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_mask_scores_of_one_session_is_the_general_mask(exclude_seen):
    torch.manual_seed(0)
    scores = torch.randn(1, 40)
    for session in (np.array([3]), np.array([5, 5, 39, 1, 5]), np.arange(1, 40)):
        got = mask_scores(scores.clone(), [session], exclude_seen)
        assert torch.equal(got, general_mask(scores.clone(), [session], exclude_seen))
        assert torch.isneginf(got[0, session]).all() == exclude_seen and torch.isneginf(got[0, 0])


@pytest.mark.parametrize("key", ["sasrec", "gru4rec", "lstm-bi"])
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_the_apis_ranker_gives_what_recommend_gives(key, exclude_seen):
    """recsys.batch.Ranker.rank_one (POST /v1/recommend) takes torch.topk for its one session: the items and
    scores recommend() gives, in its order, down to k = every item left."""
    from recsys.batch import Ranker
    from recsys.data import ItemVocab

    model = build(key)
    model.vocab, model.item_info = ItemVocab([f"i{i}" for i in range(1, N_ITEMS)]), {}  # as load_folder sets them
    ranker = Ranker(model)
    rng = np.random.default_rng(2)
    for n, k in ((1, 20), (6, 5), (12, N_ITEMS + 5)):
        session = rng.integers(1, N_ITEMS, n)
        got = ranker.rank_one([f"i{i}" for i in session], k, exclude_seen)
        ids, scores = recommend(model, session, k=min(k, N_ITEMS - 1), exclude_seen=exclude_seen)
        assert got.fallback == "none" and got.unknown_items == []
        assert got.items == [f"i{i}" for i in ids] and got.scores == scores.tolist()
