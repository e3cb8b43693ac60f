"""Exploratory statistics and plots of a canonical events table (see recsys.datasets.schema).

Sessions are those recsys.sessionize.build_dataset cuts (recsys.sessionize.session_keys): the native session ids
where a source has them, else each visitor's events cut after `gap` of inactivity (PrepareConfig's 30 minutes).
Figures are drawn on matplotlib `Figure` objects (Agg canvas, no pyplot state), one PNG per plot.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys.sessionize import PrepareConfig, session_keys

SESSION_GAP = pd.Timedelta(minutes=PrepareConfig.session_gap_minutes)
VIEW_EVENTS = ("view", "click")


def _session_keys(events: pd.DataFrame, gap: pd.Timedelta) -> np.ndarray:
    return session_keys(events, gap / pd.Timedelta(minutes=1))  # the sessions recsys.sessionize.build_dataset cuts


def headline_stats(events: pd.DataFrame, gap: pd.Timedelta = SESSION_GAP) -> dict:
    """Counts, session lengths and the share of repeat views (item already viewed earlier in the session)."""
    keys = _session_keys(events, gap)
    lengths = np.bincount(pd.factorize(keys)[0])
    views = events["event"].isin(VIEW_EVENTS).to_numpy(bool)
    if not views.any():  # no view-like events (or no event column): count every event
        views = np.ones(len(events), bool)
    seen = pd.DataFrame({"session": keys, "item": events["item_id"].to_numpy(object)})
    order = np.argsort(events["timestamp"].array.asi8, kind="stable")
    repeat = seen.iloc[order].duplicated().to_numpy()[np.argsort(order)]
    return {
        "events": int(len(events)),
        "sessions": int(len(lengths)),
        "items": int(events["item_id"].nunique()),
        "users": int(events["user_id"].nunique()),
        "categories": int(events["category_id"].nunique()),
        "median_session_length": float(np.median(lengths)),
        "mean_session_length": round(float(lengths.mean()), 2),
        "repeat_view_share": round(float(repeat[views].mean()), 4),
        "first_event": str(events["timestamp"].min()),
        "last_event": str(events["timestamp"].max()),
        "event_counts": {str(k): int(v) for k, v in events["event"].value_counts().items()},
    }


def plot_session_lengths(events: pd.DataFrame, path, gap: pd.Timedelta = SESSION_GAP) -> Path:
    """Histogram of events per session (log count axis; the last bar collects sessions of 50+)."""
    lengths = np.bincount(pd.factorize(_session_keys(events, gap))[0])
    fig, ax = _figure()
    ax.hist(np.minimum(lengths, 50), bins=np.arange(1, 52) - 0.5, color="tab:blue")
    ax.set(yscale="log", xlabel="events per session (50 = 50 or more)", ylabel="sessions",
           title=f"Session lengths (median {np.median(lengths):g}, {len(lengths):,} sessions)")
    return _save(fig, path)


def plot_item_popularity(events: pd.DataFrame, path) -> Path:
    """Events per item against popularity rank, log-log: the long tail."""
    counts = np.sort(events["item_id"].value_counts().to_numpy())[::-1]
    top = counts[: max(1, len(counts) // 10)].sum() / counts.sum()
    fig, ax = _figure()
    ax.loglog(np.arange(1, len(counts) + 1), counts, color="tab:orange")
    ax.set(xlabel="item popularity rank", ylabel="events",
           title=f"Item popularity ({len(counts):,} items; top 10% hold {top:.0%} of events)")
    return _save(fig, path)


def plot_categories(events: pd.DataFrame, path, top: int = 30) -> Path | None:
    """Events of the `top` most frequent categories (None when the table has no categories)."""
    counts = events["category_id"].value_counts().head(top)
    if counts.empty:
        return None
    fig, ax = _figure(height=max(3.5, 0.22 * len(counts) + 1))
    ax.barh([str(c) for c in counts.index[::-1]], counts.to_numpy()[::-1], color="tab:green")
    ax.set(xlabel="events", ylabel="category id", title=f"Top {len(counts)} categories by events")
    return _save(fig, path)


def plot_events_over_time(events: pd.DataFrame, path) -> Path:
    """Events per day, one line per event type."""
    kind = events["event"].fillna("(none)").astype(str)
    day = events["timestamp"].dt.floor("D")
    daily = pd.crosstab(day, kind).sort_index()
    fig, ax = _figure()
    for name in daily.columns:
        ax.plot(daily.index, daily[name].to_numpy(), marker=".", label=name)
    ax.set(yscale="log", xlabel="day (UTC)", ylabel="events per day", title="Events over time")
    ax.legend()
    fig.autofmt_xdate()
    return _save(fig, path)


def run_eda(events: pd.DataFrame, out_dir, gap: pd.Timedelta = SESSION_GAP) -> tuple[dict, list[Path]]:
    """Headline statistics and every plot, written as PNGs into `out_dir`; returns (stats, written paths)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_session_lengths(events, out / "eda_session_lengths.png", gap),
        plot_item_popularity(events, out / "eda_item_popularity.png"),
        plot_categories(events, out / "eda_categories.png"),
        plot_events_over_time(events, out / "eda_events_over_time.png"),
    ]
    return headline_stats(events, gap), [p for p in paths if p is not None]


def _figure(height: float = 3.5):
    fig = Figure(figsize=(7, height), layout="constrained")
    ax = fig.subplots()
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
