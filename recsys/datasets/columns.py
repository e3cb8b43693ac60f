"""Checked column parsers: a `RawTable` column (recsys.datasets.files) -> ids, numbers or UTC times.

Each parser converts a whole column at once and fails on the first bad value with a `DataError` naming the
file, the column and the line (Parquet rows are reported as "row N", 1-based). Every source reader builds on
these, so a bad value reads the same whichever source it came from.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.datasets.files import RawTable
from recsys.datasets.schema import plausible_times

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


def required_strings(raw: RawTable, column: str) -> pa.ChunkedArray:
    """The column as strings, failing on the first null or blank value."""
    values = _as_strings(raw.column(column))
    blank = pc.or_kleene(pc.or_kleene(pc.is_null(values), pc.equal(pc.binary_length(values), 0)),
                         pc.utf8_is_space(values))  # no trimmed copy of a 33 M-row column
    _fail_first(raw, blank, column, "missing value")
    return values


def strings(raw: RawTable, column: str, null_values: tuple[str, ...] = ()) -> pd.Series:
    """The column as a pandas string Series, with `null_values` (e.g. "NA") turned into nulls."""
    values = _as_strings(raw.column(column))
    if null_values:
        values = pc.if_else(pc.is_in(values, pa.array(null_values)), pa.scalar(None, pa.string()), values)
    return pd.Series(pd.array(values, dtype="string"))


def numbers(raw: RawTable, column: str, what: str = "value") -> np.ndarray:
    """The column as non-negative int64 (or float64 when some values have decimals); no gaps or junk."""
    values = raw.column(column)
    _fail_first(raw, pc.is_null(values), column, f"missing {what}")
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        _fail_first(raw, pc.invert(pc.match_substring_regex(values, _NUMBER)), column, f"{what} is not a number",
                    show=values)
        try:
            values = pc.cast(values, pa.int64())
        except pa.ArrowInvalid:
            values = pc.cast(values, pa.float64())
    elif not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise raw.error(f"{what} must be numbers, got {values.type}", column)
    if pa.types.is_floating(values.type):
        _fail_first(raw, pc.invert(pc.is_finite(values)), column, f"{what} is not a finite number", show=values)
    _fail_first(raw, pc.less(values, 0), column, f"negative {what}", show=values)
    return values.to_numpy()


def epoch_timestamps(raw: RawTable, column: str, unit: str, *, unit_option: bool = True) -> pd.Series:
    """Parse numeric epoch times in `unit` ("s", "ms" or "us") into UTC datetimes; no negatives or gaps.

    Every time must be plausible (`plausible_times`), checked on the numbers before they are scaled (a huge
    value would overflow int64 microseconds): a value that is plausible in another unit is reported as a unit
    mix-up, naming a line that fits `unit` when there is one (mixed units in one column). unit_option: the unit
    is the caller's choice (say so: --timestamp-unit), not the source's fixed format.
    """
    if unit not in _UNIT_US:
        raise ValueError(f"timestamp_unit must be one of {sorted(_UNIT_US)}, got {unit!r}")
    values = numbers(raw, column, f"timestamp (epoch {unit})")
    low, high = _epoch_window(unit)
    plausible = (values >= low) & (values <= high)  # NaN is neither
    if not plausible.all():
        raise raw.error(_implausible_epoch(raw, values, plausible, unit, unit_option), column,
                        int(np.flatnonzero(~plausible)[0]))
    return _utc_series(np.round(values * _UNIT_US[unit]).astype(np.int64))


def datetimes(raw: RawTable, column: str) -> pd.Series:
    """Parse ISO 8601 date-times or dates (no zone means UTC) into UTC datetimes; no gaps or pre-1970 times."""
    values = raw.column(column)
    _fail_first(raw, pc.is_null(values), column, "missing timestamp")
    if pa.types.is_timestamp(values.type):
        parsed = values if values.type.tz else values.cast(pa.timestamp(values.type.unit, "UTC"))
        micros = pc.cast(parsed, pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
    elif pa.types.is_date(values.type):
        micros = pc.cast(pc.cast(values, pa.timestamp("us")), pa.int64()).to_numpy()
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        micros = _parse_iso(raw, column, values)
    else:
        raise raw.error(f"timestamp must be date-times or ISO 8601 strings, got {values.type} "
                        "(give timestamp_unit for epoch numbers)", column)
    _fail_first(raw, pa.array(micros < 0), column, "timestamp before 1970", show=values)
    earliest, latest = plausible_times()
    _fail_first(raw, pa.array(micros < earliest.value // 1000), column, f"timestamp before {earliest.date()}",
                show=values)
    _fail_first(raw, pa.array(micros > latest.value // 1000), column,
                f"timestamp after {latest.date()} (more than a year from now)", show=values)
    return _utc_series(micros)


def _epoch_window(unit: str) -> tuple[float, float]:
    """The plausible times (`plausible_times`) as epoch numbers in `unit`."""
    return tuple(t.value / 1000 / _UNIT_US[unit] for t in plausible_times())


def _implausible_epoch(raw: RawTable, values: np.ndarray, plausible: np.ndarray, unit: str, unit_option: bool) -> str:
    """Why the first implausible epoch number is refused, and which unit it would fit."""
    row = int(np.flatnonzero(~plausible)[0])
    value = values[row].item()
    earliest, latest = plausible_times()
    seconds = value * _UNIT_US[unit] / 1e6
    when = str(np.datetime64(int(seconds), "s")) if np.isfinite(seconds) and abs(seconds) < 1e15 else "no date"
    message = (f"implausible timestamp {value!r}: as epoch {unit} it is {when}, outside "
               f"{earliest.date()} .. {latest.date()}")
    fits = [u for u in _UNIT_US if _epoch_window(u)[0] <= value <= _epoch_window(u)[1]]
    if fits and plausible.any():
        good = int(np.flatnonzero(plausible)[0])
        return (f"{message}, while {values[good].item()!r} on {raw.where(good)} fits epoch {unit}: mixed units "
                f"({unit} and {fits[0]}) in one column; convert them to one unit")
    if fits:
        advice = f"give --timestamp-unit {fits[0]}" if unit_option else f"this source's times must be epoch {unit}"
        return f"{message}; it looks like epoch {fits[0]}: {advice}"
    return f"{message}; not an epoch time in {', '.join(_UNIT_US)} either"


def _parse_iso(raw: RawTable, column: str, values: pa.ChunkedArray) -> np.ndarray:
    """ISO 8601 strings -> int64 microseconds UTC: fast pyarrow casts first, pandas for mixed forms."""
    for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
        try:
            return pc.cast(values, target).cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
    parsed = pd.to_datetime(pd.Series(pd.array(values, dtype="string")), utc=True, format="ISO8601", errors="coerce")
    _fail_first(raw, pa.array(parsed.isna().to_numpy()), column,
                "not an ISO 8601 date-time (for epoch numbers give timestamp_unit)", show=values)
    return parsed.dt.as_unit("us").astype("int64").to_numpy()


def _fail_first(raw: RawTable, mask, column: str, message: str, show=None) -> None:
    """Raise raw.error for the first row where `mask` is true (nulls count as false), quoting its value."""
    if not pc.any(pc.fill_null(mask, False)).as_py():
        return
    row = int(pc.index(pc.fill_null(mask, False), True).as_py())
    if show is not None:
        message = f"{message}: {show[row].as_py()!r}"
    raise raw.error(message, column, row)


def _as_strings(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Ids stored as numbers (Parquet) become their decimal strings."""
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def _utc_series(micros: np.ndarray) -> pd.Series:
    return pd.Series(micros.view("datetime64[us]")).dt.tz_localize("UTC")
