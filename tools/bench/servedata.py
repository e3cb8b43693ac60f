"""What the serving benchmarks serve: synthetic processed data sets of a given catalogue size (built once in a
child process), the sessions they time, and registry models ready to serve without training."""

from pathlib import Path

import numpy as np

from tools.bench.common import Options, plain_items, run_child, worker_argv

SERVING_SIZES = {"10k": 10_000, "40k": 40_000, "1M": 1_000_000}
SERVING_SIZES_QUICK = {"1k": 1_000}
ITEMS_RANGE = (100, 5_000_000)  # catalogue sizes `--items` takes: a model of 5M items already needs ~3 GiB


def size_label(n: int) -> str:
    """40000 -> "40k", 1000000 -> "1M", 2500 -> "2500": the column name of a catalogue size."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def parse_items(text: str) -> tuple[int, ...]:
    """`--items` text: catalogue sizes separated by commas, each a whole number with an optional k or M
    ("40k,1M", "40000"). Raises ValueError with a one-line reason."""
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1].lower(), 1)
        digits = part[:-1] if scale > 1 else part
        if not digits.isdigit() or not digits.isascii():
            raise ValueError(f"--items takes whole numbers such as 40000, 40k or 1M, got {part!r}")
        n = int(digits) * scale
        if not ITEMS_RANGE[0] <= n <= ITEMS_RANGE[1]:
            raise ValueError(f"--items {part}: a catalogue of {ITEMS_RANGE[0]:,} to {ITEMS_RANGE[1]:,} items")
        sizes.append(n)
    if not sizes:
        raise ValueError("--items names no catalogue size")
    return tuple(sizes)


def serving_sizes(items: tuple[int, ...] | None, quick: bool) -> dict[str, int]:
    """label -> catalogue size for a serving run: `--items` in ascending order, else the suite's sizes."""
    if not items:
        return dict(SERVING_SIZES_QUICK if quick else SERVING_SIZES)
    return {size_label(n): n for n in sorted(set(items))}


def synthetic_processed(opts: Options, n_items: int) -> Path:
    """A processed synthetic data set with about `n_items` items (kept in benchmarks/work, built once)."""
    path = opts.work_dir / "serving" / f"synthetic-{n_items}"
    if not (path / "meta.json").is_file():
        child = run_child(worker_argv("serving_data", {"n_items": n_items, "out": str(path)}))
        if child.get("error"):
            raise RuntimeError(f"building the {n_items}-item synthetic data set failed: {child['error']}")
    return path


def worker_serving_data(params: dict) -> dict:
    from recsys.datasets.synthetic import generate_events
    from recsys.sessionize import PrepareConfig, build_dataset

    n = params["n_items"]
    if n >= 500_000:  # the generator's world at this size costs minutes; a direct random catalogue does
        data = _random_catalogue(n)
    else:
        # ~40 events per item; +10% items because the Zipf tail leaves some items unseen
        events = generate_events(n_events=40 * n, n_items=int(1.1 * n), n_categories=max(60, n // 200), seed=0)
        data = build_dataset(events, PrepareConfig(min_item_support=1, test_days=3.0, valid_days=3.0),
                             source="synthetic")
    data.save(params["out"])
    return {"n_items": data.n_items - 1}


def _random_catalogue(n_items: int, n_sessions: int = 500_000, seed: int = 0):
    """A data set over exactly `n_items` items: sessions of 2-10 items near a popular 'topic' item (so kNN
    models find co-occurrences), topics drawn with a power-law popularity. For the 1M-item serving point."""
    from recsys.data import Dataset
    from recsys.sessions import Sessions

    rng = np.random.default_rng(seed)

    def sessions(n, lo, hi):
        lengths = rng.integers(lo, hi + 1, n)
        topic = (n_items * rng.random(n) ** 2.5).astype(np.int64)
        items = (np.repeat(topic, lengths) + rng.integers(0, 50, lengths.sum())) % n_items + 1
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Sessions(items.astype(np.int32), offsets)

    train, valid, test = sessions(n_sessions, 2, 10), sessions(2_000, 2, 10), sessions(2_000, 5, 20)
    meta = {"source": "random-catalogue", "protocols": {"train": "all", "valid": "all", "test": "all"},
            "dropped_unknown_items": {}}
    return Dataset(train, valid, test, plain_items(n_items, train), meta)


def serving_sessions(data, n: int, rng) -> list[np.ndarray]:
    """`n` sessions of 5-20 items: real test (or valid, train) sessions cut to a random length, else random."""
    out = []
    for split in (data.test, data.valid, data.train):
        long = np.flatnonzero(split.lengths >= 5)
        for i in rng.permutation(long)[: n - len(out)]:
            s = split[int(i)]
            out.append(np.asarray(s[-int(rng.integers(5, min(20, len(s)) + 1)):], dtype=np.int64))
        if len(out) >= n:
            break
    while len(out) < n:
        out.append(rng.integers(1, data.n_items, int(rng.integers(5, 21))))
    return out


def servable(cls, data):
    """A model of `cls` ready to serve, quickly: baselines fitted on `data`, neural models with random weights
    (say so: returned as the second item), a hybrid of both with equal weights."""
    from recsys.models import FitOptions

    if cls.trains_in_epochs:
        model = cls(cls.Config(), data.n_items)
        _random_weights(model, data)
        return model, "random (not trained)"
    parts = getattr(cls.Config(), "components", ())
    config = cls.Config(weights=(1 / len(parts),) * len(parts)) if parts else cls.Config()
    model = cls(config, data.n_items)
    if not parts:
        model.fit(data, FitOptions(progress=False))
        return model, None

    def fit_part(part, data, options):  # Blend.fit's part-fitter: recsys.train.fit, but no training
        return _random_weights(part, data) if part.trains_in_epochs else part.fit(data, options)

    model.fit(data, FitOptions(progress=False), fit_part=fit_part)
    neural = [p for p in parts if model.part(p).trains_in_epochs]
    return model, f"equal weights; {', '.join(neural)} random (not trained)" if neural else None


def _random_weights(model, data) -> None:
    """A neural model as recsys.train.fit starts it (category table sized to the data), without training."""
    model.initialize(data)
