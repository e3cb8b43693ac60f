"""Batch scoring: sessions read from a file in chunks -> top-k recommendations written to a file.

    import recsys
    from recsys.batch import BatchOptions, score_file
    report = score_file(recsys.load("checkpoints/gru4rec"), "sessions.parquet", "recs.parquet", BatchOptions(k=20))

Input, one of (README "Batch scoring"):
- a sessions table, one row per session, Parquet or delimited text (CSV, TSV; compressed files too): a session id
  column (`session_column`, default "session_id") and an items column (`items_column`, default "items"), oldest
  item first. In Parquet the items are a list of ids (strings or integers) or one text value; in text files (and
  text values in Parquet) the ids are joined by white space (`items_sep`, default None: any run of spaces or tabs).
- an events table (`events` = {canonical name: file column}, as `prepare_data.py --columns` takes it): one row per
  event, read by `recsys.datasets.read_table` and cut into sessions exactly as prepare_data cuts them (native
  session ids, else each visitor's events split after `session_gap_minutes` of inactivity); the session ids
  written are prepare_data's (a native id, or "<user_id>:<n>").

Sessions tables stream: Parquet by record batches of `chunk_rows` rows (Arrow decodes a row group at a time),
text by blocks of `BLOCK_BYTES`, so memory is bounded by the chunk and the model, not by the file. A text items
value longer than `BLOCK_BYTES` is refused (Arrow has read that one row whole by then: a single huge row costs
its size once). An events table is held whole, as prepare_data holds it, and then scored in chunks.

Every session goes through the path `recsys.recommend` uses: `score_batch` and `mask_scores` of recsys.models.base
on `batch_size` sessions at a time (a chunk's sessions shortest first, so that a sequence model's batch pads little;
the rows are written in input order), then the top k of each row (`top_k`: torch.topk's answer, found faster; an
item masked out is never listed, so a row may hold fewer than k items, as recommend gives). Item ids the model does
not know are skipped and counted; a session left with no known item (an empty one too) gets the popularity fallback:
the items seen most in training (items.json "popularity"), score = that count, `fallback` true. Sessions longer than
`max_items` are cut to their most recent items (counted). `workers` > 1 scores batches in that many forked processes
(Linux), each at one torch thread.

Output (Parquet or CSV, by the suffix of `out`): one row per recommendation, columns session_id, rank (1..k),
item_id, score, fallback. It is written to a temporary sibling and renamed into place when complete; an
existing file is replaced only when it is an earlier output of this module (`check_output_file`).
"""

import json
import multiprocessing
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import torch

from recsys.atomic import OutputFolderError, remove_stale_files
from recsys.datasets.files import DECOMPRESS_ERRORS, open_input, sniff_separator
from recsys.datasets.schema import DataError
from recsys.models.base import mask_scores, score_batch
from recsys.topk import top_k

FORMAT_VERSION = 1
MARKER = b"recsys.batch"  # Parquet schema metadata key of our outputs
COLUMNS = ("session_id", "rank", "item_id", "score", "fallback")
CSV_HEADER = ",".join(f'"{c}"' for c in COLUMNS)  # what pyarrow's CSV writer puts on the first line
OUTPUT_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
BLOCK_BYTES = 4 << 20  # a text file is read in blocks of this size; a longer row is refused
MAX_ID_CHARS = 120  # an unknown id is shown shortened to this (recsys.app's MAX_TOKEN_CHARS)
EXAMPLES = 10  # unknown ids and fallback sessions named in the report


@dataclass(frozen=True)
class BatchOptions:
    k: int = 20
    exclude_seen: bool = False  # as recsys.recommend: repeats allowed by default
    # sessions per score_batch call: (batch_size, n_items) float32 scores at a time. 64 x 43,000 items (11 MB) took
    # 17 % less CPU than 128 and 256; at 256 the 44 MB matrix is over glibc's mmap threshold and page-faults anew
    # every batch (docs/BENCHMARKS.md, batch scoring)
    batch_size: int = 64
    chunk_rows: int = 8192  # rows read from a sessions table at a time
    max_items: int = 200  # most recent items of a session kept (recsys.app's MAX_SESSION_ITEMS)
    workers: int = 1  # processes scoring batches (forked; 1: in this process)
    session_column: str = "session_id"
    items_column: str = "items"
    items_sep: str | None = None  # None: any run of white space
    events: dict | None = None  # an events table: canonical name -> file column (read_table's `columns`)
    timestamp_unit: str | None = None  # events: numeric epoch times ("s", "ms", "us"); None: date-times
    session_gap_minutes: float = 30.0  # events without a session id: a visitor's gap that starts a new session

    def __post_init__(self):
        for name, low in (("k", 1), ("batch_size", 1), ("chunk_rows", 1), ("max_items", 1), ("workers", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
        if self.items_sep is not None and (not isinstance(self.items_sep, str) or not self.items_sep):
            raise ValueError(f"items_sep must be a non-empty string, got {self.items_sep!r}")
        if not self.session_gap_minutes > 0:
            raise ValueError(f"session_gap_minutes must be positive, got {self.session_gap_minutes!r}")


# ---------------------------------------------------------------------------------------------------------------
# ranking: raw ids -> top-k, the one path for batch files and the HTTP API

@dataclass(frozen=True)
class Ranked:
    """One session's answer."""

    items: list[str]
    scores: list[float]
    fallback: str  # "none" (the model ranked it) or "popularity" (no item of the session is known)
    unknown_items: list[str]  # ids of the session the model does not know, in order, each once


class Ranker:
    """What ranking needs from a loaded model, built once: its raw id -> index map and its popularity order."""

    def __init__(self, model, max_items: int = BatchOptions.max_items):
        self.model, self.max_items = model, max_items
        self.item_ids = np.asarray(model.vocab.item_ids, dtype=object)
        self.item_array = pa.array(model.vocab.item_ids, pa.string())  # index - 1 -> raw id, for Arrow's take
        self.index = {item: i + 1 for i, item in enumerate(model.vocab.item_ids)}
        pop = np.asarray(model.item_info.get("popularity") or [], dtype=np.float64)
        if len(pop) != len(self.item_ids):
            pop = np.zeros(len(self.item_ids))
        self.popular = np.lexsort((np.arange(len(pop)), -pop)) + 1  # most seen first; ties: lower index first
        self.popularity = np.r_[0.0, pop]

    def encode(self, ids: list[str]) -> np.ndarray:
        """Raw ids -> item indices, 0 for an id the model does not know."""
        get = self.index.get
        return np.fromiter((get(i, 0) for i in ids), dtype=np.int64, count=len(ids))

    def encode_array(self, ids: pa.Array) -> np.ndarray:
        """`encode` for an Arrow string array: one hash look-up in Arrow per id, no Python string per id."""
        at = pc.index_in(ids, value_set=self.item_array)  # position in the vocabulary, null when unknown
        return pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64) + 1

    def top(self, sessions: list[np.ndarray], k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """(B, k') item indices and scores of sessions of known indices, through score_batch and mask_scores as
        recsys.recommend goes; an item masked out (padding, a seen item under exclude_seen) comes back as index 0
        with score -inf, never as a recommendation."""
        scores = mask_scores(score_batch(self.model, sessions), sessions, exclude_seen)
        k = min(k, scores.shape[1] - 1)
        # one session (the HTTP API): torch.topk, as recsys.recommend, is faster on one row than top_k's two passes
        # (0.13 against 0.19 ms at 38k items, 1 thread); top_k wins from 4 rows on (docs/BENCHMARKS.md, JSON API)
        vals, ids = torch.topk(scores, k, dim=1) if len(sessions) == 1 else top_k(scores, k)
        ids, vals = ids.numpy(), vals.numpy()
        return np.where(np.isneginf(vals), 0, ids), vals

    def fallback(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.popular[:k]
        return ids, self.popularity[ids]

    def rank_one(self, items: list[str], k: int, exclude_seen: bool = False) -> Ranked:
        """One session of raw ids (oldest first; the most recent `max_items` are used) -> its Ranked answer."""
        items = items[-self.max_items:]
        indices = self.encode(items)
        unknown = list(dict.fromkeys(i for i, x in zip(items, indices, strict=True) if x == 0))
        known = indices[indices > 0]
        if len(known) == 0:
            ids, scores = self.fallback(k)
            return Ranked(self.item_ids[ids - 1].tolist(), scores.tolist(), "popularity", unknown)
        ids, scores = self.top([known], k, exclude_seen)
        keep = ids[0] > 0
        return Ranked(self.item_ids[ids[0][keep] - 1].tolist(), scores[0][keep].tolist(), "none", unknown)


# ---------------------------------------------------------------------------------------------------------------
# reading: every input becomes chunks of (session ids, item ids, offsets)


@dataclass
class Chunk:
    """Sessions in CSR form: session i holds items[offsets[i]:offsets[i + 1]], oldest first."""

    session_ids: pa.Array  # strings
    items: pa.Array  # strings, flat
    offsets: np.ndarray  # int64, len(session_ids) + 1


def _split(text: pa.Array, sep: str | None) -> pa.Array:
    """A text column of joined ids -> a list column (null -> empty); empty pieces dropped later."""
    text = pc.fill_null(text, "")
    return pc.split_pattern_regex(text, r"[ \t]+") if sep is None else pc.split_pattern(text, sep)


def _list_chunk(sids: pa.Array, items: pa.Array, sep: str | None, where: str) -> Chunk:
    """A batch's session id and items columns -> a Chunk; checks types, nulls; ids trimmed, empties dropped."""
    if pa.types.is_dictionary(items.type):
        items = items.cast(items.type.value_type)
    if pa.types.is_string(items.type) or pa.types.is_large_string(items.type):
        longest = pc.max(pc.binary_length(items)).as_py() or 0
        if longest > BLOCK_BYTES:
            raise DataError(f"an items value is longer than {BLOCK_BYTES:,} bytes ({longest:,}), the most one "
                            f"session may hold{where}")
        items = _split(items, sep)
    if not (pa.types.is_list(items.type) or pa.types.is_large_list(items.type)):
        raise DataError(f"the items column holds {items.type} values; expected a list of item ids, or ids "
                        f"joined by {'white space' if sep is None else repr(sep)} in one text value{where}")
    value_type = items.type.value_type
    if pa.types.is_dictionary(value_type):
        value_type = value_type.value_type
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type) or
            pa.types.is_integer(value_type)):
        raise DataError(f"the items column holds lists of {items.type.value_type}; item ids must be text or "
                        f"integers{where}")
    items = pc.fill_null(items, pa.scalar([], items.type))
    offsets = items.offsets.to_numpy().astype(np.int64)
    flat = items.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    flat = pc.utf8_trim_whitespace(pc.cast(flat, pa.string()))
    keep = pc.and_(pc.is_valid(flat), pc.greater(pc.utf8_length(flat), 0))
    if not pc.all(keep).as_py():
        mask = keep.to_numpy(zero_copy_only=False)
        offsets = np.r_[0, np.cumsum(mask)][offsets].astype(np.int64)
        flat = flat.filter(keep)
    if sids.null_count:
        row = int(np.flatnonzero(sids.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"a session id is missing (row {row + 1} of this part){where}")
    return Chunk(pc.cast(sids, pa.string()), flat, offsets)


def _parquet_chunks(path: Path, opts: BatchOptions) -> tuple[Iterator[Chunk], int | None]:
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", path=path) from None
    names = reader.schema_arrow.names
    missing = [c for c in (opts.session_column, opts.items_column) if c not in names]
    if missing:
        raise DataError(f"missing column; found {names[:20]}", path=path, column=missing[0])

    def chunks():
        try:
            for batch in reader.iter_batches(opts.chunk_rows, columns=[opts.session_column, opts.items_column]):
                yield _list_chunk(batch.column(0), batch.column(1), opts.items_sep, f" (file {path})")
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"could not read: {exc}", path=path) from None
        finally:
            reader.close()

    return chunks(), reader.metadata.num_rows


def _text_chunks(path: Path, opts: BatchOptions) -> Iterator[Chunk]:
    sep = "\t" if path.suffix.lower() == ".tsv" or path.name.lower().endswith(".tsv.gz") else sniff_separator(path)
    columns = [opts.session_column, opts.items_column]
    options = (pcsv.ReadOptions(block_size=BLOCK_BYTES),
               pcsv.ParseOptions(delimiter=sep),
               pcsv.ConvertOptions(column_types={c: pa.string() for c in columns}, include_columns=columns,
                                   strings_can_be_null=True, null_values=[""]))
    try:
        stream = open_input(path)
    except DECOMPRESS_ERRORS as exc:
        raise DataError(f"could not open: {exc}", path=path) from None
    try:
        reader = pcsv.open_csv(stream, *options)
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        stream.close()
        raise _text_error(path, str(exc), columns) from None
    except DECOMPRESS_ERRORS as exc:
        stream.close()
        raise DataError(f"could not decompress: {exc}", path=path) from None
    with stream:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise _text_error(path, str(exc), columns) from None
            except DECOMPRESS_ERRORS as exc:
                raise DataError(f"could not decompress: {exc}", path=path) from None
            yield _list_chunk(batch.column(opts.session_column), batch.column(opts.items_column), opts.items_sep,
                              f" (file {path})")


def _text_error(path: Path, message: str, columns: list[str]) -> DataError:
    if "include_columns" in message or "does not exist" in message:
        return DataError(f"needs the columns {columns} (set session_column / items_column, --session-column / "
                         f"--items-column)", path=path)
    if "straddling" in message or "block" in message:
        return DataError(f"a row is longer than {BLOCK_BYTES >> 20} MiB (the most one row may hold)", path=path)
    if "UTF8" in message or "UTF-8" in message:
        return DataError("not UTF-8 text (a binary file or another encoding?)", path=path)
    return DataError(f"could not parse: {message[:300]}", path=path)


def _events_chunks(path: Path, opts: BatchOptions) -> Iterator[Chunk]:
    """An events table cut into sessions as prepare_data cuts them, in session order."""
    from recsys.datasets import read_table
    from recsys.sessionize import _micros, _sessionize  # prepare_data's own cut, not a copy of it

    events = read_table(path, opts.events, timestamp_unit=opts.timestamp_unit)
    if "timestamp" not in events or events["timestamp"].isna().all():
        raise DataError("an events table needs a timestamp column (to order each session's events)", path=path)
    user_codes, user_ids = pd.factorize(events["user_id"], use_na_sentinel=True)
    key, order, labels = _sessionize(events, _micros(events), user_codes, user_ids, opts.session_gap_minutes)
    key = key[order]
    items = pa.array(events["item_id"].to_numpy(dtype=object)[order], pa.string())
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    bounds = np.r_[starts, len(key)].astype(np.int64)
    sids = labels.take(pa.array(key[starts]))
    for lo in range(0, len(starts), opts.chunk_rows):
        hi = min(lo + opts.chunk_rows, len(starts))
        offsets = bounds[lo:hi + 1] - bounds[lo]
        yield Chunk(pc.cast(sids.slice(lo, hi - lo), pa.string()), items.slice(bounds[lo], offsets[-1]), offsets)


def read_chunks(path, opts: BatchOptions) -> tuple[Iterator[Chunk], int | None]:
    """The sessions of an input file in chunks, and their number when the file says it (Parquet)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("not a file" if path.exists() else "file not found", path=path)
    if opts.events:
        return _events_chunks(path, opts), None
    with open(path, "rb") as f:
        parquet = f.read(4) == b"PAR1"
    if parquet or path.suffix.lower() in (".parquet", ".pq"):
        return _parquet_chunks(path, opts)
    return _text_chunks(path, opts), None


# ---------------------------------------------------------------------------------------------------------------
# scoring chunks


@dataclass
class Report:
    """What a run did, for the log and the script's JSON summary."""

    sessions: int = 0
    personalised: int = 0
    fallback: int = 0  # no known item (empty sessions included)
    empty: int = 0  # no item at all
    nothing_left: int = 0  # every item excluded (exclude_seen): no row written
    cut: int = 0  # longer than max_items
    items: int = 0  # item ids read
    unknown_items: int = 0  # of which unknown to the model (occurrences)
    unknown_examples: list[str] = field(default_factory=list)
    fallback_examples: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["sessions_per_s"] = round(self.sessions / self.seconds, 1) if self.seconds else None
        out["seconds"] = round(self.seconds, 3)
        return out


_WORKER: tuple | None = None  # (ranker, k, exclude_seen) for forked workers


def _score(args) -> tuple[np.ndarray, np.ndarray]:
    ranker, k, exclude_seen = _WORKER
    flat, offsets = args
    return ranker.top(np.split(flat, offsets[1:-1]), k, exclude_seen)


def _worker_init() -> None:
    torch.set_num_threads(1)


@dataclass
class _Pending:
    """A chunk whose known sessions are being scored: what `finish` needs to turn their top-k into rows."""

    session_ids: pa.Array
    rows: np.ndarray  # the chunk's rows scored by the model, in the order of `results`
    cold: np.ndarray  # the rows that fall back to popularity
    results: object  # an iterable of (ids, scores) per batch, or a pool's AsyncResult of that list


class ChunkScorer:
    """Scores Chunks: known sessions in batches (in `workers` processes when > 1), the rest by popularity.

    `submit(chunk)` reads the chunk (ids -> indices, the counts of the report) and starts scoring it; `finish`
    waits for its scores and returns its rows. With workers the next chunk is submitted before the last one is
    finished, so the workers keep scoring while this process reads, encodes and writes."""

    def __init__(self, model, opts: BatchOptions):
        self.opts = opts
        self.ranker = Ranker(model, opts.max_items)
        self.pool = None
        if opts.workers > 1:
            global _WORKER
            _WORKER = (self.ranker, opts.k, opts.exclude_seen)
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            if method is None:
                raise ValueError("workers > 1 needs the fork start method (Linux); use workers=1")
            self.pool = multiprocessing.get_context(method).Pool(opts.workers, initializer=_worker_init)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def score(self, chunk: Chunk, report: Report) -> pa.Table:
        return self.finish(self.submit(chunk, report), report)

    def submit(self, chunk: Chunk, report: Report) -> _Pending:
        opts, ranker = self.opts, self.ranker
        n = len(chunk.session_ids)
        indices = ranker.encode_array(chunk.items)
        lengths = np.diff(chunk.offsets)
        report.sessions += n
        report.items += len(indices)
        report.empty += int((lengths == 0).sum())
        unknown = indices == 0
        if unknown.any():
            report.unknown_items += int(unknown.sum())
            room = EXAMPLES - len(report.unknown_examples)
            at = np.flatnonzero(unknown)[: 50 * room] if room > 0 else []
            for text in chunk.items.take(pa.array(at, pa.int64())).to_pylist() if len(at) else ():
                text = text if len(text) <= MAX_ID_CHARS else text[:MAX_ID_CHARS] + "…"
                if text not in report.unknown_examples and len(report.unknown_examples) < EXAMPLES:
                    report.unknown_examples.append(text)
            known_count = np.r_[0, np.cumsum(~unknown)]
            offsets = known_count[chunk.offsets].astype(np.int64)
            indices = indices[~unknown]
        else:
            offsets = chunk.offsets
        known_len = np.diff(offsets)
        over = known_len > opts.max_items
        report.cut += int(over.sum())
        begin = np.maximum(offsets[:-1], offsets[1:] - opts.max_items)
        rows = np.flatnonzero(known_len > 0)
        # shortest first: a batch of sessions of about one length pads little (a sequence model runs over the
        # longest session of its batch); the rows go back to input order in `finish`
        rows = rows[np.argsort(np.minimum(known_len[rows], opts.max_items), kind="stable")]
        cold = np.flatnonzero(known_len == 0)
        report.personalised += len(rows)
        report.fallback += len(cold)
        if len(cold) and len(report.fallback_examples) < EXAMPLES:
            report.fallback_examples += chunk.session_ids.take(
                pa.array(cold[: EXAMPLES - len(report.fallback_examples)])).to_pylist()
        # known sessions, cut to their most recent max_items, in batches: (flat indices, offsets) each
        jobs = []
        for lo in range(0, len(rows), opts.batch_size):
            part = rows[lo:lo + opts.batch_size]
            starts, ends = begin[part], offsets[1:][part]
            sizes = ends - starts
            flat = indices[np.repeat(starts - np.r_[0, np.cumsum(sizes)[:-1]], sizes) + np.arange(sizes.sum())]
            jobs.append((flat, np.r_[0, np.cumsum(sizes)].astype(np.int64)))
        results = (self.pool.map_async(_score, jobs, chunksize=1) if self.pool is not None else
                   (ranker.top(np.split(flat, offs[1:-1]), opts.k, opts.exclude_seen) for flat, offs in jobs))
        return _Pending(chunk.session_ids, rows, cold, results)

    def finish(self, pending: _Pending, report: Report) -> pa.Table:
        opts, ranker = self.opts, self.ranker
        rows, cold = pending.rows, pending.cold
        results = pending.results.get() if self.pool is not None else pending.results
        ids_parts, score_parts = [], []
        for ids, vals in results:
            ids_parts.append(ids)
            score_parts.append(vals)
        width = opts.k if not ids_parts else ids_parts[0].shape[1]
        ids = np.concatenate(ids_parts) if ids_parts else np.zeros((0, width), np.int64)
        vals = np.concatenate(score_parts).astype(np.float64) if score_parts else np.zeros((0, width))
        report.nothing_left += int((ids[:, 0] == 0).sum()) if len(ids) else 0
        # popularity for the rest
        pop_ids, pop_scores = ranker.fallback(opts.k)
        all_rows = np.r_[rows, cold]
        if len(pop_ids) < width:  # popularity lists fewer items than the model's width (a catalogue below k)
            pad = width - len(pop_ids)
            pop_ids, pop_scores = np.r_[pop_ids, np.zeros(pad, np.int64)], np.r_[pop_scores, np.full(pad, -np.inf)]
        all_ids = np.concatenate([ids, np.tile(pop_ids[:width], (len(cold), 1))])
        all_vals = np.concatenate([vals, np.tile(pop_scores[:width], (len(cold), 1))])
        fallback = np.r_[np.zeros(len(rows), bool), np.ones(len(cold), bool)]
        order = np.argsort(all_rows, kind="stable")  # input order
        all_rows, all_ids, all_vals, fallback = all_rows[order], all_ids[order], all_vals[order], fallback[order]
        valid = all_ids > 0
        per_row = valid.sum(axis=1)
        table = pa.table({
            "session_id": pending.session_ids.take(pa.array(np.repeat(all_rows, per_row), pa.int64())),
            "rank": pa.array(np.cumsum(valid, axis=1)[valid].astype(np.int32), pa.int32()),
            "item_id": ranker.item_array.take(pa.array(all_ids[valid] - 1, pa.int64())),
            "score": pa.array(all_vals[valid], pa.float64()),
            "fallback": pa.array(np.repeat(fallback, per_row), pa.bool_())})
        report.rows += table.num_rows
        return table


# ---------------------------------------------------------------------------------------------------------------
# writing


def output_format(out) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise OutputFolderError(f"output {out}: name it .parquet or .csv (the suffix picks the format)")
    return OUTPUT_SUFFIXES[suffix]


def _ours(path: Path, fmt: str) -> bool:
    """Whether an existing file is an earlier output of this module."""
    try:
        if fmt == "parquet":
            meta = pq.read_schema(path).metadata or {}
            return MARKER in meta
        with open(path, "rb") as f:
            return f.readline(len(CSV_HEADER) + 3).rstrip(b"\r\n") == CSV_HEADER.encode()
    except (pa.ArrowException, OSError):
        return False


def check_output_file(out, inputs=()) -> Path:
    """Refuse (OutputFolderError) an output file we may not write, before any work: a symbolic link, a folder, an
    input, or an existing file that is not an earlier output of this module (a Parquet file without our schema
    marker, a CSV file whose first line is not our header). The folder it goes in is created when missing."""
    out = Path(out)
    fmt = output_format(out)
    if out.is_symlink():
        raise OutputFolderError(f"output {out} is a symbolic link; refusing to write through it")
    if out.exists() and not out.is_file():
        raise OutputFolderError(f"output {out} exists and is not a file; refusing to replace it")
    for given in inputs:
        if given is not None and Path(given).exists() and out.exists() and os.path.samefile(given, out):
            raise OutputFolderError(f"output {out} is the input {given}; refusing to overwrite it")
    if out.exists() and not _ours(out, fmt):
        raise OutputFolderError(f"output {out} exists and was not written by recsys batch scoring (no "
                                f"{'recsys.batch schema marker' if fmt == 'parquet' else 'header ' + CSV_HEADER}); "
                                f"refusing to overwrite it. Give a new file name.")
    return out


class _Writer:
    """Streams tables into a temporary sibling of `out`; `commit` renames it into place."""

    SCHEMA = pa.schema([("session_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()),
                        ("score", pa.float64()), ("fallback", pa.bool_())])

    def __init__(self, out: Path, meta: dict):
        self.out, self.fmt = out, output_format(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_files(out.parent, [out.name])
        self.tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.file = os.fdopen(fd, "wb")
        schema = self.SCHEMA.with_metadata({MARKER: json.dumps({"format_version": FORMAT_VERSION, **meta})})
        self.writer = (pq.ParquetWriter(self.file, schema) if self.fmt == "parquet" else
                       pcsv.CSVWriter(self.file, self.SCHEMA))

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table.cast(self.SCHEMA))

    def commit(self) -> None:
        self.writer.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.out)
        fd = os.open(self.out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        try:
            self.writer.close()
        except (pa.ArrowException, OSError, ValueError):
            pass
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def _progress_line(report: Report, total: int | None, started: float) -> str:
    rate = report.sessions / max(time.perf_counter() - started, 1e-9)
    of = f" / {total:,} ({100 * report.sessions / total:.0f}%)" if total else ""
    return (f"scored {report.sessions:,}{of} sessions, {rate:,.0f}/s; {report.fallback:,} by popularity, "
            f"{report.unknown_items:,} unknown item ids")


def score_file(model, inp, out, opts: BatchOptions = BatchOptions(),
               progress: Callable[[str], None] | None = None, every_s: float = 2.0) -> Report:
    """Score every session of `inp` with `model` (a loaded model folder) and write the top-k to `out`; see the
    module docstring. `progress` gets a line every `every_s` seconds and at the end. Nothing is written to `out`
    unless the whole input was scored."""
    out = check_output_file(out, [inp])
    chunks, total = read_chunks(inp, opts)
    started = time.perf_counter()
    report, last = Report(), started
    scorer = ChunkScorer(model, opts)
    writer = None
    try:
        writer = _Writer(out, {"k": opts.k, "exclude_seen": opts.exclude_seen,
                               "model": str(getattr(model, "folder", "") or type(model).__name__)})
        pending = None
        for chunk in chunks:
            submitted = scorer.submit(chunk, report)  # with workers: scored while the last chunk is written
            if pending is not None:
                writer.write(scorer.finish(pending, report))
            pending = submitted
            if progress and time.perf_counter() - last >= every_s:
                progress(_progress_line(report, total, started))
                last = time.perf_counter()
        if pending is not None:
            writer.write(scorer.finish(pending, report))
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        scorer.close()
    report.seconds = time.perf_counter() - started
    if progress:
        progress(_progress_line(report, total, started))
    return report


def main_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
