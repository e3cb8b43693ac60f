"""Property-based tests (hypothesis) for the invariants users rely on: recommend, cases, ranks, readers."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.datasets.presplit import read_session_files
from recsys.datasets.schema import DataError, canonical_events
from recsys.evaluate import evaluate, rank_targets
from recsys.models.base import recommend
from recsys.models.pop import Pop, PopConfig, SPop, SPopConfig
from recsys.sessionize import PrepareConfig, build_dataset
from recsys.sessions import Sessions, make_cases

N_ITEMS = 30
session = st.lists(st.integers(1, N_ITEMS - 1), min_size=1, max_size=60)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def fitted_spop():
    model = SPop(SPopConfig(), N_ITEMS)
    model.counts = torch.arange(N_ITEMS, dtype=torch.float32)
    return model


@fast
@given(history=session, k=st.integers(1, 200), exclude=st.booleans())
def test_recommend_returns_valid_distinct_sorted_items(history, k, exclude):
    model = fitted_spop()
    available = N_ITEMS - 1 - (len(set(history)) if exclude else 0)
    if available == 0:
        with pytest.raises(ValueError, match="no item left"):
            recommend(model, history, k=k, exclude_seen=exclude)
        return
    ids, scores = recommend(model, history, k=k, exclude_seen=exclude)
    assert len(ids) == min(k, available)  # never padded with masked items
    assert len(set(ids.tolist())) == len(ids) and 0 not in ids
    assert np.all(np.diff(scores) <= 0) and np.isfinite(scores).all()
    if exclude:
        assert not set(ids.tolist()) & set(history)


@fast
@given(history=session, k=st.integers(1, 20), exclude=st.booleans())
def test_recommend_floor_is_the_lowest_score_it_could_have_returned(history, k, exclude):
    """with_floor gives, from the same scoring pass, the score of the last item of a full ranking."""
    model = fitted_spop()
    n_left = N_ITEMS - 1 - (len(set(history)) if exclude else 0)
    ids, scores, floor = recommend(model, history, k=k, exclude_seen=exclude, with_floor=True)
    full_ids, full_scores = recommend(model, history, k=n_left, exclude_seen=exclude)
    assert np.array_equal(ids, full_ids[:k]) and np.array_equal(scores, full_scores[:k])
    assert floor == float(full_scores[-1])
    batch_floor = recommend(model, [history, [1]], k=1, exclude_seen=exclude, with_floor=True)[2]
    assert batch_floor[0] == floor


@fast
@given(history=session, k=st.integers(1, 20))
def test_recommend_is_stateless_and_batch_equals_single(history, k):
    model = fitted_spop()
    other = [1, 2, 3]
    a = recommend(model, history, k=k)
    recommend(model, other, k=k)  # another user's call in between changes nothing
    b = recommend(model, [history, other], k=k)
    assert np.array_equal(a[0], recommend(model, history, k=k)[0])
    assert np.array_equal(a[1], b[1][0])


@fast
@given(sessions=st.lists(session, min_size=1, max_size=20), protocol=st.sampled_from(["all", "last"]))
def test_cases_reconstruct_sessions(sessions, protocol):
    s = Sessions.from_lists(sessions)
    cases = make_cases(s, protocol)
    prefixes = cases.prefixes(slice(None))
    expected = [(seq[:t], seq[t]) for seq in sessions for t in range(1, len(seq))] if protocol == "all" else \
        [(seq[:-1], seq[-1]) for seq in sessions if len(seq) >= 2]
    assert [(p.tolist(), int(y)) for p, y in zip(prefixes, cases.targets)] == expected


@fast
@given(scores=st.lists(st.integers(-3, 3), min_size=3, max_size=15), target=st.integers(1, 14))
def test_rank_is_pessimistic_count(scores, target):
    target = min(target, len(scores) - 1)
    row = torch.tensor([[-torch.inf] + [float(x) for x in scores[1:]]])
    rank = rank_targets(row, torch.tensor([target])).item()
    assert rank == sum(1 for j, v in enumerate(scores) if j > 0 and v >= scores[target])


@fast
@given(sessions=st.lists(session, min_size=1, max_size=15))
def test_metrics_are_probabilities_and_monotone_in_k(sessions):
    model = Pop(PopConfig(), N_ITEMS)
    model.counts = torch.rand(N_ITEMS)
    m = evaluate(model, Sessions.from_lists(sessions), "all").metrics()
    for name in ("hr", "mrr", "ndcg"):
        vals = [m[f"{name}@{k}"] for k in (5, 10, 20)]
        assert all(0 <= v <= 1 for v in vals) and vals == sorted(vals)
    assert m["mrr@20"] <= m["ndcg@20"] <= m["hr@20"]


item_id = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@fast
@given(rows=st.lists(st.tuples(st.integers(0, 5), item_id, st.integers(0, 10_000)), min_size=1, max_size=80))
def test_build_dataset_never_crashes_and_keeps_invariants(rows):
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "minutes"])
    df["user_id"] = df["user_id"].astype(str)
    df["timestamp"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(df.pop("minutes"), unit="min")
    try:
        data = build_dataset(canonical_events(df), PrepareConfig(min_item_support=1, test_days=1, valid_days=1))
    except DataError as err:  # tiny logs may filter or split down to nothing: a clear error, never a crash
        assert str(err)
        return
    for name in ("train", "valid", "test"):
        s = data.split(name)
        assert (s.lengths >= 2).all() and s.items.min(initial=1) >= 1 and s.items.max(initial=0) < data.n_items
    assert data.vocab.encode(data.items["item_id"].tolist()) == list(range(1, data.n_items))


@fast
@given(text=st.text(max_size=300))
def test_session_file_reader_gives_data_errors_only(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "train.txt").write_text(text, encoding="utf-8")
    (folder / "test.tsv").write_text("prefix\tlabel\n1\t2\n", encoding="utf-8")
    try:
        read_session_files(folder / "train.txt", folder / "test.tsv")
    except DataError as err:
        assert "train.txt" in str(err) or "test.tsv" in str(err)


def test_hypothesis_is_really_running():
    calls = []

    @settings(max_examples=5, deadline=None)
    @given(st.integers())
    def probe(x):
        calls.append(x)

    probe()
    assert len(calls) == 5
    with pytest.raises(AssertionError):
        assert len(calls) == 0
