"""Conversion paths as flat arrays: read from CSV/Parquet files or built from lists, with repeats collapsible."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from accord.analytics.errors import InvalidInput

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PathSet:
    """Paths of touches (channel indices), each with its conversions, non-conversions (nulls) and value.

    Touches of path ``i`` are ``flat[offsets[i]:offsets[i + 1]]`` in time order; ``ages`` (optional) is the time of
    each touch before its path's end, in days, used by the time-decay model.
    """

    channels: list[str]
    offsets: IntArray
    flat: IntArray
    conversions: FloatArray
    nulls: FloatArray
    values: FloatArray
    ages: FloatArray | None = None

    @property
    def n_paths(self) -> int:
        """Number of paths."""
        return len(self.conversions)

    @property
    def lengths(self) -> IntArray:
        """Touches per path."""
        return np.diff(self.offsets)

    @property
    def parent(self) -> IntArray:
        """Path index of every touch."""
        return np.repeat(np.arange(self.n_paths, dtype=np.int64), self.lengths)

    @property
    def position(self) -> IntArray:
        """Position of every touch within its path (0 = first)."""
        return np.arange(len(self.flat), dtype=np.int64) - np.repeat(self.offsets[:-1], self.lengths)

    def path(self, i: int) -> list[str]:
        """Channel names of path I."""
        return [self.channels[c] for c in self.flat[self.offsets[i] : self.offsets[i + 1]]]

    def collapse_repeats(self) -> PathSet:
        """The same paths with runs of one channel reduced to one touch (its last touch's age is kept)."""
        if len(self.flat) == 0:
            return self
        keep = np.ones(len(self.flat), dtype=bool)
        # keep the last touch of a run: the run ends where the next touch differs or the path ends
        keep[:-1] = self.flat[:-1] != self.flat[1:]
        keep[self.offsets[1:] - 1] = True
        kept_before = np.zeros(len(self.flat) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        offsets = kept_before[self.offsets]
        ages = None if self.ages is None else self.ages[keep]
        return PathSet(self.channels, offsets, self.flat[keep], self.conversions, self.nulls, self.values, ages)

    @property
    def total_conversions(self) -> float:
        """Sum of conversions."""
        return float(self.conversions.sum())

    @property
    def total_value(self) -> float:
        """Sum of conversion value."""
        return float(self.values.sum())


def from_lists(
    paths: Sequence[Sequence[str]],
    conversions: Sequence[float],
    nulls: Sequence[float] | None = None,
    values: Sequence[float] | None = None,
    ages: Sequence[Sequence[float]] | None = None,
) -> PathSet:
    """A PathSet from Python lists (one entry per path); channels are numbered in name order."""
    n = len(paths)
    if len(conversions) != n or (nulls is not None and len(nulls) != n) or (values is not None and len(values) != n):
        raise InvalidInput("paths, conversions, nulls and values must have one entry per path")
    names = sorted({c for p in paths for c in p})
    index = {c: i for i, c in enumerate(names)}
    lengths = np.fromiter((len(p) for p in paths), dtype=np.int64, count=n)
    if n and lengths.min() == 0:
        raise InvalidInput(f"path {int(np.argmin(lengths))} has no touches")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((index[c] for p in paths for c in p), dtype=np.int64, count=int(offsets[-1]))
    age_arr = None
    if ages is not None:
        age_arr = np.fromiter((a for row in ages for a in row), dtype=np.float64)
        if len(age_arr) != len(flat):
            raise InvalidInput("ages must have one entry per touch")
    return PathSet(
        names,
        offsets,
        flat,
        _floats(conversions, n, "conversions"),
        _floats(nulls, n, "nulls"),
        _floats(values, n, "values"),
        age_arr,
    )


def _floats(values: Sequence[float] | None, n: int, what: str) -> FloatArray:
    if values is None:
        return np.zeros(n, dtype=np.float64)
    arr = np.asarray(values, dtype=np.float64)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidInput(f"{what} must be finite numbers >= 0")
    return arr


def read_table(path: Path) -> pa.Table:
    """Read a CSV or Parquet file (by extension; .csv.gz too) into an Arrow table."""
    if not path.exists():
        raise InvalidInput(f"no such file: {path}")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc


def column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A column by name, or a precise error naming the columns there are."""
    if name not in table.column_names:
        raise InvalidInput(f"no column {name!r}; the file has {', '.join(table.column_names)}")
    return table.column(name)


def numeric_column(table: pa.Table, name: str) -> FloatArray:
    """A numeric column as float64; nulls and non-numbers are errors naming the first bad row."""
    col = column(table, name)
    try:
        arr = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"column {name!r} must be numeric: {exc}") from exc
    if arr.null_count:
        first = int(pc.index(pc.is_null(arr), True).as_py())
        raise InvalidInput(f"column {name!r} is empty in data row {first + 1}")
    out: FloatArray = arr.to_numpy()
    return out


def paths_from_table(
    table: pa.Table,
    path_col: str,
    sep: str = ">",
    conversions_col: str | None = None,
    nulls_col: str | None = None,
    value_col: str | None = None,
) -> PathSet:
    """Paths from a table with one row per path: "a > b > c", conversions, non-conversions and value columns."""
    raw = column(table, path_col)
    if not (pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)):
        raw = pc.cast(raw, pa.string())
    arr = raw.combine_chunks()
    if arr.null_count:
        first = int(pc.index(pc.is_null(arr), True).as_py())
        raise InvalidInput(f"column {path_col!r} is empty in data row {first + 1}")
    n = len(arr)
    lists = pc.split_pattern(arr, pattern=sep)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    # encode the raw tokens first, then trim the (few) distinct ones: "a ", " a" and "a" are one channel
    enc = pc.dictionary_encode(pc.list_flatten(lists))
    raw_names = [str(x).strip() for x in enc.dictionary.to_pylist()]
    names = sorted({x for x in raw_names if x})
    rank = {name: i for i, name in enumerate(names)}
    token_channel = np.array([rank.get(x, -1) for x in raw_names], dtype=np.int64)
    flat = token_channel[enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    if len(flat) and flat.min() < 0:  # empty touches ("a > > b"): drop them
        parent = np.repeat(np.arange(n, dtype=np.int64), lengths)
        keep = flat >= 0
        flat, lengths = flat[keep], np.bincount(parent[keep], minlength=n)
    if n and lengths.min() == 0:
        raise InvalidInput(f"column {path_col!r} has no channel in data row {int(np.argmin(lengths)) + 1}")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    conversions = numeric_column(table, conversions_col) if conversions_col else np.ones(n, dtype=np.float64)
    nulls = numeric_column(table, nulls_col) if nulls_col else np.zeros(n, dtype=np.float64)
    values = numeric_column(table, value_col) if value_col else np.zeros(n, dtype=np.float64)
    for what, values_ in (("conversions", conversions), ("nulls", nulls), ("value", values)):
        bad = np.flatnonzero(~np.isfinite(values_) | (values_ < 0))
        if len(bad):
            raise InvalidInput(f"{what} must be >= 0; data row {int(bad[0]) + 1} has {values_[bad[0]]}")
    return PathSet(names, offsets, flat, conversions, nulls, values)


def paths_from_file(
    path: Path,
    path_col: str,
    sep: str = ">",
    conversions_col: str | None = None,
    nulls_col: str | None = None,
    value_col: str | None = None,
) -> PathSet:
    """Paths from a CSV or Parquet file (see paths_from_table)."""
    return paths_from_table(read_table(path), path_col, sep, conversions_col, nulls_col, value_col)
