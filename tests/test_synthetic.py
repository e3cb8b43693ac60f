"""The synthetic RetailRocket log: exact file layout, determinism, and the structure it promises."""

import numpy as np
import pandas as pd
import pytest

from recsys.datasets import SyntheticConfig, generate_events, generate_retailrocket_log, read_retailrocket
from recsys.datasets.retailrocket import read_category_tree

SMALL = {"n_events": 30_000, "n_items": 1_000, "n_categories": 30, "seed": 0}


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(**SMALL)


def sessions(events: pd.DataFrame, gap=pd.Timedelta(minutes=30)) -> pd.DataFrame:
    """Events sorted by visitor and time with a `session` number that starts after 30 min of inactivity."""
    df = events.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    new_user = df["user_id"].to_numpy(object)[1:] != df["user_id"].to_numpy(object)[:-1]
    idle = np.diff(df["timestamp"].array.asi8) > gap.value // 1000
    df["session"] = np.r_[0, np.cumsum(new_user | idle)]
    return df


def test_writes_exact_retailrocket_files_equal_to_in_memory_events(tmp_path):
    paths = generate_retailrocket_log(tmp_path, n_events=5_000, n_items=300, n_categories=12, seed=3)
    heads = {name: path.read_text().splitlines()[0] for name, path in paths.items()}
    assert heads == {
        "events": "timestamp,visitorid,event,itemid,transactionid",
        "item_properties_part1": "timestamp,itemid,property,value",
        "item_properties_part2": "timestamp,itemid,property,value",
        "category_tree": "categoryid,parentid",
    }
    raw = pd.read_csv(paths["events"])
    assert len(raw) == 5_000 and raw["timestamp"].between(1.4e12, 1.5e12).all()
    assert raw["transactionid"].notna().eq(raw["event"] == "transaction").all()
    parts = (paths["item_properties_part1"], paths["item_properties_part2"])
    read = read_retailrocket(paths["events"], parts, paths["category_tree"])
    pd.testing.assert_frame_equal(read, generate_events(n_events=5_000, n_items=300, n_categories=12, seed=3))
    props = pd.concat([pd.read_csv(p, dtype=str) for p in parts])
    categories = props[props["property"] == "categoryid"]
    assert categories["itemid"].nunique() == 300  # every item has a category
    tree = read_category_tree(paths["category_tree"])
    parents = set(tree["parent_id"].dropna())
    assert parents <= set(tree["category_id"]) and set(categories["value"]).isdisjoint(parents)  # items in leaves


def test_deterministic_for_a_seed_and_overrides_fail_loudly():
    a = generate_events(n_events=2_000, n_items=200, n_categories=10, seed=7)
    pd.testing.assert_frame_equal(a, generate_events(n_events=2_000, n_items=200, n_categories=10, seed=7))
    assert not a.equals(generate_events(n_events=2_000, n_items=200, n_categories=10, seed=8))
    with pytest.raises(TypeError):
        generate_events(n_itemz=5)
    assert generate_events(config=SyntheticConfig(n_events=999, n_items=100, n_categories=5)).shape[0] == 999


def test_chunked_simulation_keeps_visitors_whole_and_transaction_ids_unique(tmp_path):
    paths = generate_retailrocket_log(tmp_path, n_events=20_000, n_items=500, n_categories=20, chunk_events=3_000)
    raw = pd.read_csv(paths["events"])
    assert len(raw) == 20_000 and raw["transactionid"].dropna().is_unique
    events = read_retailrocket(paths["events"])
    df = sessions(events)
    starts = df.groupby("session")["timestamp"].agg(["min", "max"]).join(df.groupby("session")["user_id"].first())
    gaps = starts.groupby("user_id")["min"].shift(-1) - starts["max"]
    assert gaps.dropna().min() > pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match="probabilities"):
        generate_events(n_events=100, p_follow=0.99)


def test_some_items_change_category(tmp_path):
    paths = generate_retailrocket_log(tmp_path, n_events=1_000, n_items=2_000, n_categories=20)
    props = pd.concat([pd.read_csv(paths[f"item_properties_part{i}"], dtype=str) for i in (1, 2)])
    changes = props[props["property"] == "categoryid"].groupby("itemid")["value"].nunique()
    assert 0 < (changes > 1).sum() < 100


def test_log_shape_is_realistic(events):
    assert len(events) == SMALL["n_events"]
    shares = events["event"].value_counts(normalize=True)
    assert shares["view"] > 0.9 and 0.005 < shares["addtocart"] < 0.05
    assert 0 < shares["transaction"] < shares["addtocart"]
    counts = events["item_id"].value_counts().to_numpy()
    assert counts[: len(counts) // 10].sum() > 0.4 * counts.sum()  # long tail: top 10% of items > 40% of events
    assert events["timestamp"].max() - events["timestamp"].min() > pd.Timedelta(days=20)
    df = sessions(events)
    per_visitor = df.groupby("user_id")["session"].nunique()
    assert (per_visitor > 1).mean() > 0.2 and per_visitor.max() > 5  # returning visitors
    lengths = df.groupby("session").size()
    assert 2 <= lengths.median() <= 6 and lengths.max() >= 20
    same = df["session"].to_numpy()[1:] == df["session"].to_numpy()[:-1]
    repeats = (df["item_id"].to_numpy(object)[1:] == df["item_id"].to_numpy(object)[:-1])[same]
    assert 0.05 < repeats.mean() < 0.4
    starts = df.groupby("session")["timestamp"].agg(["min", "max"]).join(df.groupby("session")["user_id"].first())
    gaps = starts.groupby("user_id")["min"].shift(-1) - starts["max"]
    assert gaps.dropna().min() > pd.Timedelta(hours=1)  # a visitor's sessions are more than an hour apart


def test_every_transaction_follows_an_addtocart_of_the_same_item(events):
    first = events.groupby(["user_id", "item_id", "event"])["timestamp"].min().unstack()
    bought = first.dropna(subset=["transaction"])
    assert len(bought) > 50 and (bought["addtocart"] < bought["transaction"]).all()


def test_first_order_transitions_beat_popularity_by_far(events):
    """Most-frequent-next-item (trained on the first 80% of sessions by time) vs global popularity, HR@10."""
    df = sessions(events)
    start = df.groupby("session")["timestamp"].transform("min")
    in_train = (start <= start.quantile(0.8)).to_numpy()
    same = df["session"].to_numpy()[1:] == df["session"].to_numpy()[:-1]
    items = df["item_id"].to_numpy(object)
    pairs = pd.DataFrame({"cur": items[:-1], "nxt": items[1:], "train": in_train[1:]})[same]
    train, test = pairs[pairs["train"]], pairs[~pairs["train"]]
    counts = train.groupby(["cur", "nxt"]).size().rename("n").reset_index()
    top = counts.sort_values(["cur", "n"], ascending=[True, False]).groupby("cur").head(10)
    hits = test.merge(top[["cur", "nxt"]], on=["cur", "nxt"], how="left", indicator=True)["_merge"] == "both"
    popular = df.loc[in_train, "item_id"].value_counts().index[:10]
    hr_transitions, hr_popular = hits.mean(), test["nxt"].isin(popular).mean()
    assert len(test) > 1_000
    assert hr_transitions > 2 * hr_popular and hr_transitions > 0.4, (hr_transitions, hr_popular)
