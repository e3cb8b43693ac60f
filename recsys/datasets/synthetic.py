"""Synthetic RetailRocket-style event log with sequential structure a model can learn.

The world, built once per seed:
    categories   a two-level tree: a few root categories, every other category a leaf under one root.
                 Items live in leaves; leaves under the same root are "related". Leaf popularity is Zipf.
    items        each in one leaf; popularity is Zipf by rank inside its leaf (a long tail per category).
    successors   each item has `n_successors` "next items" (a sparse item-to-item transition graph), mostly
                 popular items of the same leaf, sometimes of a related leaf, followed with decaying weights.
    visitors     each has two preferred leaves (taste) and a long-tailed activity level, so a few visitors
                 return for many sessions while most come once.

Each session is simulated step by step, vectorized over all sessions of a chunk:
    start        a preferred leaf with probability `p_taste`, else a leaf by popularity; then an item of it
                 by popularity.
    each step    view the same item again (`p_repeat`), else follow a successor of the current item
                 (`p_follow`), else jump to a popular item of the same leaf (`p_same_category`), else drift to
                 a related leaf or to the visitor's other preferred leaf.
    funnel       a fraction `p_buyer` of sessions adds the viewed item to the cart (`p_cart` per step) and
                 later buys it (`p_buy` per step, event "transaction" with a transaction id); other sessions
                 add to cart rarely and never buy.
    timing       within-session gaps are lognormal (median ~40 s, clipped to 1 s .. 20 min); a visitor's
                 sessions start at diurnally weighted times over `days` days and at least an hour apart.

Every item also has a readable catalogue entry (recsys.datasets.synthetic_catalogue): a product name unique
across items ("Trail running shoes, graphite"), its category's path ("Sports › Running › Shoes"), a price, a
brand and, where the product comes in colours, a colour; `generate_catalogue` returns it and
`generate_retailrocket_log(..., with_items=True)` writes it as `items.csv`. It is drawn from its own random
stream: the events are the same with or without it.

Items' `categoryid` properties are written for every item at the first weekly snapshot (a couple of days after
the first events, so readers need their "earliest known value" fallback), and about 1% of items move to a related
leaf at a later snapshot. Browsing follows the original category. Output is deterministic for a seed.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from recsys.datasets.retailrocket import EVENT_NAMES, attach_categories
from recsys.datasets.schema import canonical_events
from recsys.datasets.synthetic_catalogue import dress

VIEW, ADDTOCART, TRANSACTION = 0, 1, 2  # codes into EVENT_NAMES
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
# Relative traffic per hour of day (UTC): quiet nights, busy evenings.
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 7, 7, 7, 7, 8, 9, 10, 11, 10, 8, 5, 3], dtype=float)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and behaviour of the synthetic log. Defaults give a quick demo (~150k events, 3k items)."""

    n_events: int = 150_000
    n_items: int = 3_000
    n_categories: int = 60  # roots + leaves
    n_visitors: int | None = None  # None: n_events // 8
    days: int = 28
    seed: int = 0
    start: str = "2015-05-03"  # first day, UTC
    mean_session_length: float = 5.0  # events per session (geometric, capped at max_session_length)
    max_session_length: int = 100
    item_zipf: float = 1.1  # popularity exponent of items inside a leaf
    category_zipf: float = 0.9  # popularity exponent of leaves
    n_successors: int = 3
    p_successor_same_category: float = 0.8
    p_taste: float = 0.7
    p_repeat: float = 0.08
    p_follow: float = 0.65
    p_same_category: float = 0.6
    p_buyer: float = 0.1
    p_cart: float = 0.25
    p_buy: float = 0.35
    p_cart_browsing: float = 0.01
    p_category_change: float = 0.01
    chunk_events: int = 2_000_000  # sessions are simulated in chunks of about this many events

    @property
    def visitors(self) -> int:
        return self.n_visitors if self.n_visitors is not None else max(1, self.n_events // 8)


def generate_retailrocket_log(out_dir, *, config: SyntheticConfig | None = None, with_items: bool = False,
                              **overrides) -> dict[str, Path]:
    """Write a synthetic log in the RetailRocket file layout and return {name: path}.

    Files: `events.csv` (timestamp,visitorid,event,itemid,transactionid; unix ms; rows time-ordered within each
    chunk, not globally, as in the original), `item_properties_part1.csv` / `_part2.csv`
    (timestamp,itemid,property,value with `categoryid`, `available` and `790` (price) properties) and
    `category_tree.csv` (categoryid,parentid; empty parent for roots). Overrides replace `SyntheticConfig`
    fields, e.g. `generate_retailrocket_log(d, n_events=2_756_101, n_items=100_000)`. `with_items` also writes
    `items.csv` (item_id,name,category,price,brand,colour; `generate_catalogue`), which
    `scripts/prepare_data.py --items items.csv` reads into the processed data set.
    """
    config = dataclasses.replace(config or SyntheticConfig(), **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _World(config)
    paths = {name: out / f"{name}.csv" for name in
             ("events", "item_properties_part1", "item_properties_part2", "category_tree")}
    schema = pa.schema([("timestamp", pa.int64()), ("visitorid", pa.int64()), ("event", pa.string()),
                        ("itemid", pa.int64()), ("transactionid", pa.int64())])
    event_names = pa.array(EVENT_NAMES, pa.string())
    _write_csv(paths["events"], schema, (pa.table({
        "timestamp": chunk["timestamp"],
        "visitorid": chunk["visitorid"],
        "event": event_names.take(chunk["event"]),
        "itemid": world.item_ids[chunk["item"]],
        "transactionid": pa.array(chunk["transactionid"], mask=chunk["transactionid"] < 0),
    }, schema=schema) for chunk in _simulate(world)))
    properties = pa.Table.from_pandas(world.item_properties(), preserve_index=False)
    half = np.random.default_rng(config.seed + 1).random(len(properties)) < 0.5
    _write_csv(paths["item_properties_part1"], properties.schema, [properties.filter(half)])
    _write_csv(paths["item_properties_part2"], properties.schema, [properties.filter(~half)])
    tree = pa.Table.from_pandas(world.category_tree(), preserve_index=False)
    _write_csv(paths["category_tree"], tree.schema, [tree])
    if with_items:
        paths["items"] = out / "items.csv"
        pcsv.write_csv(pa.Table.from_pandas(world.catalogue(), preserve_index=False), paths["items"])  # quoted
    return paths


def generate_catalogue(*, config: SyntheticConfig | None = None, **overrides) -> pd.DataFrame:
    """The readable catalogue of the log of the same config: DataFrame(item_id, name, category, price, brand,
    colour), all strings (colour null for products without one), one row per item, names unique.
    `category` is the path of the item's latest category, the one the processed item table keeps."""
    return _World(dataclasses.replace(config or SyntheticConfig(), **overrides)).catalogue()


def generate_events(*, config: SyntheticConfig | None = None, **overrides) -> pd.DataFrame:
    """The canonical events table of the same log `generate_retailrocket_log` writes, built in memory.

    Equal to `read_retailrocket` of the written files (same categories at event time, same row order).
    """
    config = dataclasses.replace(config or SyntheticConfig(), **overrides)
    world = _World(config)
    chunks = list(_simulate(world))

    def cat(key: str) -> np.ndarray:
        return np.concatenate([chunk[key] for chunk in chunks])

    events = pd.DataFrame({
        "user_id": _strings(cat("visitorid")),
        "item_id": _strings(world.item_ids[cat("item")]),
        "timestamp": pd.to_datetime(cat("timestamp"), unit="ms", utc=True),
        "event": pd.Categorical.from_codes(cat("event"), EVENT_NAMES).astype("string"),
    })
    props = world.item_properties().query("property == 'categoryid'")
    history = pd.DataFrame({"item_id": _strings(props["itemid"].to_numpy()),
                            "timestamp": pd.to_datetime(props["timestamp"], unit="ms", utc=True),
                            "category_id": pd.array(props["value"], dtype="string")})
    return canonical_events(attach_categories(events, history))


class _World:
    """Categories, items, successor graph and visitors for one config (see the module docstring)."""

    def __init__(self, config: SyntheticConfig):
        if config.n_categories < 3 or config.n_items < config.n_categories or config.n_events < 1:
            raise ValueError("need n_events >= 1, n_categories >= 3 and n_items >= n_categories")
        probabilities = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name.startswith("p_")}
        if not all(0.0 <= p <= 1.0 for p in probabilities.values()) or config.p_repeat + config.p_follow > 1.0:
            raise ValueError(f"probabilities must lie in [0, 1] and p_repeat + p_follow <= 1: {probabilities}")
        self.config = config
        rng = self.rng = np.random.default_rng(config.seed)
        # Category tree: leaves 0..L-1 then roots L..C-1; raw ids are a random sample of small integers.
        n_roots = max(2, config.n_categories // 12)
        self.n_leaves = n_leaves = config.n_categories - n_roots
        self.category_ids = rng.choice(2 * config.n_categories, config.n_categories, replace=False)
        self.leaf_root = rng.integers(0, n_roots, n_leaves)
        self.leaf_weight = _zipf(n_leaves, config.category_zipf, rng)
        order = np.argsort(self.leaf_root, kind="stable")  # leaves grouped by root: siblings are contiguous
        self.siblings = order
        self.sibling_start = np.searchsorted(self.leaf_root[order], self.leaf_root)
        self.sibling_count = np.bincount(self.leaf_root, minlength=n_roots)[self.leaf_root]
        # Items sorted by leaf; every leaf gets at least one, the rest follow leaf popularity.
        sizes = 1 + rng.multinomial(config.n_items - n_leaves, self.leaf_weight / self.leaf_weight.sum())
        self.item_leaf = np.repeat(np.arange(n_leaves), sizes)
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rank = np.arange(config.n_items) - first[self.item_leaf]
        within = (rank + 1.0) ** -config.item_zipf
        within /= np.bincount(self.item_leaf, within)[self.item_leaf]
        # Monotone key: leaf index + cumulative share inside the leaf, so one searchsorted samples any leaf.
        self.sample_key = self.item_leaf + _cumsum_by_group(within, self.item_leaf)
        self.sample_key[np.r_[first[1:] - 1, config.n_items - 1]] = np.arange(1, n_leaves + 1)  # exact 1.0 ends
        self.item_ids = rng.choice(10 * config.n_items, config.n_items, replace=False)
        # Successor graph: slot k is followed with weight 2^-k.
        k = config.n_successors
        same = rng.random((config.n_items, k)) < config.p_successor_same_category
        related = self.related_leaf(np.repeat(self.item_leaf, k)).reshape(-1, k)
        target_leaf = np.where(same, self.item_leaf[:, None], related)
        self.successors = self.popular_item(target_leaf.ravel()).reshape(-1, k)
        self.successor_cum = np.cumsum(0.5 ** np.arange(k)) / np.sum(0.5 ** np.arange(k))
        # Visitors: two preferred leaves and a long-tailed activity weight.
        n_visitors = config.visitors
        p_leaf = self.leaf_weight / self.leaf_weight.sum()
        self.taste = rng.choice(n_leaves, (n_visitors, 2), p=p_leaf)
        self.activity = rng.pareto(1.5, n_visitors) + 1.0
        self.visitor_ids = rng.choice(max(10 * n_visitors, 1000), n_visitors, replace=False)
        self.start_ms = int(pd.Timestamp(config.start, tz="UTC").timestamp() * 1000)

    def popular_item(self, leaf: np.ndarray) -> np.ndarray:
        """One item per entry of `leaf`, drawn by popularity inside that leaf."""
        return np.searchsorted(self.sample_key, leaf + self.rng.random(len(leaf)), side="right")

    def popular_leaf(self, n: int) -> np.ndarray:
        return self.rng.choice(self.n_leaves, n, p=self.leaf_weight / self.leaf_weight.sum())

    def related_leaf(self, leaf: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """A uniformly drawn leaf with the same root (possibly `leaf` itself)."""
        pick = ((rng or self.rng).random(len(leaf)) * self.sibling_count[leaf]).astype(np.int64)
        return self.siblings[self.sibling_start[leaf] + pick]

    def category_tree(self) -> pd.DataFrame:
        """categoryid,parentid rows (roots have an empty parent), in random order."""
        n_roots = len(self.category_ids) - self.n_leaves
        parent = np.r_[self.category_ids[self.n_leaves + self.leaf_root], np.full(n_roots, -1)]
        order = np.random.default_rng(self.config.seed + 2).permutation(len(parent))
        return pd.DataFrame({"categoryid": self.category_ids[order],
                             "parentid": pd.Series(parent[order], dtype="Int64").mask(parent[order] < 0)})

    def catalogue(self) -> pd.DataFrame:
        """item_id, name, category, price, brand, colour per item (see recsys.datasets.synthetic_catalogue)."""
        props = self.item_properties().query("property == 'categoryid'")
        latest = props.sort_values("timestamp", kind="stable").drop_duplicates("itemid", keep="last")
        leaf_index = pd.Series(np.arange(self.n_leaves), index=self.category_ids[:self.n_leaves].astype(str))
        by_item = pd.Series(leaf_index[latest["value"]].to_numpy(), index=latest["itemid"].to_numpy())
        first = np.searchsorted(self.item_leaf, self.item_leaf)  # items are sorted by leaf
        n_roots = len(self.category_ids) - self.n_leaves
        _, table = dress(seed=self.config.seed, leaf_root=self.leaf_root, n_roots=n_roots, item_leaf=self.item_leaf,
                         item_rank=np.arange(len(self.item_leaf)) - first,
                         item_category=by_item[self.item_ids].to_numpy())
        table.insert(0, "item_id", _strings(self.item_ids))
        return table

    def item_properties(self) -> pd.DataFrame:
        """timestamp,itemid,property,value rows: categoryid, available and price (790) per item, weekly snapshots."""
        rng = np.random.default_rng(self.config.seed + 3)
        n = self.config.n_items
        snapshots = self.start_ms + 3 * _HOUR_MS + _DAY_MS * np.arange(2, self.config.days + 7, 7)
        leaf_ids = self.category_ids[:self.n_leaves]
        moved = np.flatnonzero(rng.random(n) < self.config.p_category_change)
        price = (np.round(rng.lognormal(8.0, 1.2, n) / 12) * 12).astype(np.int64).astype(str)
        price = np.char.add(np.char.add("n", price), ".000")  # RetailRocket writes numbers as "n<value>"
        new_leaf = leaf_ids[self.related_leaf(self.item_leaf[moved], rng)].astype(str)
        change_at = rng.choice(snapshots[1:], len(moved)) if len(snapshots) > 1 else np.full(len(moved), snapshots[0])
        frames = [
            (np.full(n, snapshots[0]), self.item_ids, "categoryid", leaf_ids[self.item_leaf].astype(str)),
            (np.full(n, snapshots[0]), self.item_ids, "available", rng.integers(0, 2, n).astype(str)),
            (np.full(n, snapshots[0]), self.item_ids, "790", price),
            (change_at, self.item_ids[moved], "categoryid", new_leaf),
        ]
        return pd.DataFrame({
            "timestamp": np.concatenate([f[0] for f in frames]),
            "itemid": np.concatenate([f[1] for f in frames]),
            "property": np.concatenate([np.full(len(f[0]), f[2]) for f in frames]),
            "value": np.concatenate([f[3] for f in frames]),
        })


def _simulate(world: _World):
    """Yield chunks of events as dicts of arrays: timestamp (ms), visitorid, item (index), event, transactionid."""
    config, rng = world.config, world.rng
    lengths = _session_lengths(config, rng)
    visitor = rng.choice(config.visitors, len(lengths), p=_visit_shares(world.activity, len(lengths), config.days))
    order = np.argsort(visitor, kind="stable")  # a visitor's sessions stay in one chunk
    lengths, visitor = lengths[order], visitor[order]
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(ends, np.arange(config.chunk_events, ends[-1], config.chunk_events))
    cuts = np.unique(np.r_[0, np.searchsorted(visitor, visitor[cuts]), len(lengths)])  # cut between visitors
    next_transaction = 0
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = _simulate_sessions(world, lengths[lo:hi], visitor[lo:hi], next_transaction)
        next_transaction = chunk["transactionid"].max(initial=next_transaction - 1) + 1
        yield chunk


def _session_lengths(config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Geometric session lengths whose sum is exactly n_events (the last one is cut short)."""
    n = int(config.n_events / config.mean_session_length * 1.2) + 10

    def draw() -> np.ndarray:
        return np.minimum(rng.geometric(1.0 / config.mean_session_length, n), config.max_session_length)

    lengths = draw()
    while lengths.sum() < config.n_events:
        lengths = np.r_[lengths, draw()]
    ends = np.cumsum(lengths)
    last = np.searchsorted(ends, config.n_events)
    lengths = lengths[: last + 1].copy()
    lengths[-1] -= ends[last] - config.n_events
    return lengths


def _simulate_sessions(world: _World, lengths: np.ndarray, visitor: np.ndarray, first_transaction: int) -> dict:
    """Simulate sessions (grouped by visitor) step by step; one vectorized pass per step over active sessions."""
    config, rng = world.config, world.rng
    n_sessions = len(lengths)
    offset = np.r_[0, np.cumsum(lengths)[:-1]]
    # Within-session gaps, and session starts at least an hour after the visitor's previous session ended.
    gaps = np.clip(rng.lognormal(np.log(40_000), 1.0, lengths.sum()), 1_000, 20 * 60_000).astype(np.int64)
    gaps[offset] = 0
    duration = np.add.reduceat(gaps, offset)
    start = _session_starts(world, visitor, duration)
    timestamp = np.repeat(start, lengths) + _cumsum_by_group(gaps, np.repeat(np.arange(n_sessions), lengths))
    # Step loop: sessions sorted longest first, so the active ones at step t are a prefix.
    by_length = np.argsort(-lengths, kind="stable")
    active_at = np.searchsorted(-lengths[by_length], -np.arange(lengths.max()), side="left")  # count of length > t
    pos, taste = offset[by_length], world.taste[visitor[by_length]]
    buyer = rng.random(n_sessions) < config.p_buyer
    item = np.empty(lengths.sum(), np.int64)
    event = np.zeros(lengths.sum(), np.int8)
    use_taste = rng.random(n_sessions) < config.p_taste
    liked = taste[np.arange(n_sessions), rng.integers(0, 2, n_sessions)]
    leaf = np.where(use_taste, liked, world.popular_leaf(n_sessions))
    current = world.popular_item(leaf)
    cart = np.full(n_sessions, -1)
    item[pos] = current
    for t in range(1, len(active_at)):
        m = active_at[t]
        cur, ev_prev, u = current[:m], event[pos[:m] + t - 1], rng.random((4, m))
        to_cart = (ev_prev == VIEW) & (u[0] < np.where(buyer[:m], config.p_cart, config.p_cart_browsing))
        to_buy = ~to_cart & buyer[:m] & (cart[:m] >= 0) & (u[1] < config.p_buy)
        browse = ~(to_cart | to_buy)
        nxt = _next_view(world, cur, taste[:m], u[2], u[3])
        new = np.where(to_cart, cur, np.where(to_buy, cart[:m], nxt))
        cart[:m] = np.where(to_cart, cur, np.where(to_buy, -1, cart[:m]))
        current[:m] = np.where(browse, new, cur)
        item[pos[:m] + t] = new
        event[pos[:m] + t] = np.where(to_cart, ADDTOCART, np.where(to_buy, TRANSACTION, VIEW))
    transaction = np.full(len(item), -1, np.int64)
    bought = event == TRANSACTION
    transaction[bought] = first_transaction + np.arange(bought.sum())
    order = np.argsort(timestamp, kind="stable")
    visitor_ids = world.visitor_ids[np.repeat(visitor, lengths)]
    return {"timestamp": timestamp[order] + world.start_ms, "visitorid": visitor_ids[order], "item": item[order],
            "event": event[order], "transactionid": transaction[order]}


def _next_view(world: _World, cur: np.ndarray, taste: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Next viewed item: repeat, follow a successor, a popular item of the same leaf, or drift to another leaf."""
    config = world.config
    slot = np.searchsorted(world.successor_cum, v, side="right").clip(max=config.n_successors - 1)
    leaf = world.item_leaf[cur]
    p_jump = 1.0 - config.p_repeat - config.p_follow
    same = u < config.p_repeat + config.p_follow + p_jump * config.p_same_category
    drift_leaf = np.where(v < 0.5, world.related_leaf(leaf), np.where(taste[:, 0] == leaf, taste[:, 1], taste[:, 0]))
    jump = world.popular_item(np.where(same, leaf, drift_leaf))
    return np.where(u < config.p_repeat, cur,
                    np.where(u < config.p_repeat + config.p_follow, world.successors[cur, slot], jump))


def _session_starts(world: _World, visitor: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Session start offsets (ms) for sessions grouped by visitor: diurnal times, >= 1 h after the previous end.

    The rule start_i = max(draw_i, start_{i-1} + duration_{i-1} + gap_i) is a running maximum once the
    cumulative (duration + gap) is subtracted, computed per visitor by offsetting each visitor's values.
    """
    config, rng = world.config, world.rng
    n = len(visitor)
    hour = rng.choice(24, n, p=_HOURLY / _HOURLY.sum())
    draw = rng.integers(0, config.days, n) * _DAY_MS + hour * _HOUR_MS + rng.integers(0, _HOUR_MS, n)
    group = np.r_[0, np.cumsum(visitor[1:] != visitor[:-1])]
    spacing = duration + _HOUR_MS + rng.exponential(2 * _HOUR_MS, n).astype(np.int64)
    before = _cumsum_by_group(spacing, group) - spacing  # sum of spacings of the visitor's earlier sessions
    shift = group * (config.days * _DAY_MS + before.max() + 1)  # separates visitors in one global order
    draw = np.sort(draw + shift) - shift  # sorted within each visitor
    return np.maximum.accumulate(draw - before + shift) - shift + before


def _visit_shares(activity: np.ndarray, n_sessions: int, days: int) -> np.ndarray:
    """Each visitor's probability of owning a session, capped so nobody expects more than one session a day."""
    share = activity / activity.sum()
    for _ in range(5):
        share = np.minimum(share, days / n_sessions)
        share /= share.sum()
    return share


def _write_csv(path: Path, schema: pa.Schema, tables) -> None:
    """Write tables as unquoted CSV with a plain header line, like the original files."""
    with open(path, "wb") as f:
        f.write((",".join(schema.names) + "\n").encode())
        options = pcsv.WriteOptions(include_header=False, quoting_style="none")
        with pcsv.CSVWriter(f, schema, write_options=options) as writer:
            for table in tables:
                writer.write_table(table)


def _strings(ids: np.ndarray) -> pd.arrays.ArrowStringArray:
    """Integer ids as a pandas string array (pyarrow casts are much faster than numpy's astype(str))."""
    return pd.array(pa.array(ids).cast(pa.string()), dtype="string")


def _zipf(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights 1/rank^exponent in random order."""
    return rng.permutation((np.arange(n) + 1.0) ** -exponent)


def _cumsum_by_group(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at each new value of a sorted `group` array."""
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    before = np.r_[0, total[starts[1:] - 1]]
    return total - np.repeat(before, np.diff(np.r_[starts, len(values)]))
