"""A bounded, storable summary of reference data for drift detection.

A :class:`ReferenceProfile` keeps a uniform sample of at most ``max_rows``
rows (fixed seed) plus exact statistics of the *whole* reference: per column
its row and value counts, distinct count, range, mean, std, quantiles and,
when it has at most ``max_categories`` distinct values, every value's count.
It serializes to one Parquet file (the sample) whose metadata carries the
statistics as JSON, so the registry can store it beside each model version.

What stays exactly as Evidently computes on the full reference, however large:

- the test chosen for each column (it depends on the true count of values and
  the true distinct count, both from the statistics, never the sample size);
- every frequency-based score (``chisquare``, ``z``, and ``jensenshannon``,
  ``psi``, ``kl_div``, ``hellinger`` on categorical columns or numerical ones
  with <= 20 distinct values), computed from the exact counts;
- the histogram bin edges of the divergence tests (exact range and size).

What is estimated from the sample when the reference has more than
``max_rows`` rows: the ``ks`` and ``wasserstein`` scores, and the reference
bin shares of histogram-binned divergences. The estimates are unbiased and
close (a 100k sample moves a normed Wasserstein distance by ~0.005), so a
verdict can only differ from Evidently's when a score sits that close to its
threshold. Under ``max_rows`` rows (or with ``max_rows=None``, at the cost of
keeping every row) the sample is the whole reference and every
score is exact.

    >>> import pandas as pd
    >>> profile = ReferenceProfile.from_frame(pd.DataFrame({"x": [1.0, 2.0, 2.5]}))
    >>> ReferenceProfile.from_bytes(profile.to_bytes()).columns["x"].n_unique
    3
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.drift._parallel import parallel_map
from shipyard.drift.columns import (
    ColumnType,
    holds_iso_dates,
    holds_whole_numbers,
    type_from_summary,
)
from shipyard.drift.values import ColumnValues, _numeric_array, to_key
from shipyard.errors import IntegrityError, InvalidInputError, SchemaError

FORMAT_VERSION = 1
METADATA_KEY = b"shipyard.drift.profile"
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_CATEGORIES = 10_000
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class ColumnProfile:
    """Exact statistics of one reference column (over all rows, not the sample)."""

    name: str
    dtype: str
    type: ColumnType
    n_rows: int
    n_values: int
    n_unique: int
    integer: bool = False
    min: float | int | None = None
    max: float | int | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] | None = None
    keys: list[Any] | None = None
    counts: list[int] | None = None

    @property
    def n_missing(self) -> int:
        """Rows whose value is NaN, None or +-inf (dropped before testing)."""
        return self.n_rows - self.n_values

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_json`)."""
        out = asdict(self)
        out["type"] = self.type.value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnProfile:
        """Rebuild from :meth:`to_json` output."""
        return cls(**{**data, "type": ColumnType(data["type"])})


def _sorted_quantiles(ordered: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.quantile(ordered, qs)`` (linear) read off an already sorted array.

    np.quantile would partition the data again; the data is sorted already.
    """
    pos = np.asarray(qs) * (ordered.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, ordered.size - 1)
    a, b = ordered[lo].astype(np.float64), ordered[hi].astype(np.float64)
    return a + (b - a) * (pos - lo)


def _numeric_profile(name: str, series: pd.Series, max_categories: int) -> ColumnProfile:
    raw = _numeric_array(series, name, "reference")
    values = ColumnValues.from_array(raw).require_values()
    n = int(values.size)
    base: dict[str, Any] = {
        "name": name,
        "dtype": str(series.dtype),
        "n_rows": len(series),
        "n_values": n,
    }
    if n == 0:
        ctype = type_from_summary(series.dtype, 0, 0, False)
        return ColumnProfile(**base, type=ctype, n_unique=0, integer=values.dtype.kind in "iu")
    # One sort gives range, distinct count, value counts and quantiles; numpy
    # releases the GIL while sorting, so columns profile in parallel.
    ordered = np.sort(values)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    n_unique = int(starts.size)
    keys = counts = None
    if n_unique <= max_categories:
        keys = [to_key(v) for v in ordered[starts].tolist()]
        counts = np.diff(np.append(starts, n)).tolist()
    return ColumnProfile(
        **base,
        # ``ordered`` has no NaN or inf left (dropped above), so whole numbers are
        # the integers a CSV stored as floats because the column had a gap.
        type=type_from_summary(
            series.dtype,
            n_unique,
            n,
            False,
            whole_numbers=values.dtype.kind == "f" and holds_whole_numbers(ordered),
        ),
        n_unique=n_unique,
        integer=values.dtype.kind in "iu",
        min=ordered[0].item(),
        max=ordered[-1].item(),
        mean=float(values.mean()),
        std=float(values.std()),
        quantiles={
            str(q): float(v)
            for q, v in zip(QUANTILES, _sorted_quantiles(ordered, QUANTILES), strict=True)
        },
        keys=keys,
        counts=counts,
    )


def _category_profile(name: str, series: pd.Series, max_categories: int) -> ColumnProfile:
    dtype = series.dtype
    base: dict[str, Any] = {"name": name, "dtype": str(dtype), "n_rows": len(series)}
    holds_strings = False
    if pd.api.types.is_object_dtype(dtype):
        non_null = series.dropna()
        first_last = (non_null.iloc[0], non_null.iloc[-1]) if len(non_null) else (None, None)
        holds_strings = all(isinstance(v, str) for v in first_last)
        if not holds_strings:
            # Lists, dicts, mixed objects, all-None: Evidently's "unknown".
            return ColumnProfile(
                **base, type=ColumnType.UNKNOWN, n_values=len(non_null), n_unique=0
            )
    counts = series.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]
    n_values = int(counts.sum())
    dates = holds_iso_dates(counts.index)  # checks that the values are text
    ctype = type_from_summary(dtype, len(counts), n_values, holds_strings, dates)
    keys = values = None
    if len(counts) <= max_categories:
        keys = [to_key(k) for k in counts.index.tolist()]
        values = counts.to_numpy().tolist()
    return ColumnProfile(
        **base, type=ctype, n_values=n_values, n_unique=len(counts), keys=keys, counts=values
    )


def profile_column(
    name: str, series: pd.Series, max_categories: int = DEFAULT_MAX_CATEGORIES
) -> ColumnProfile:
    """Exact statistics of one column, typed with Evidently's rule."""
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return _numeric_profile(name, series, max_categories)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ColumnProfile(
            name=name,
            dtype=str(dtype),
            type=ColumnType.DATETIME,
            n_rows=len(series),
            n_values=int(series.count()),
            n_unique=int(series.nunique()),
        )
    return _category_profile(name, series, max_categories)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """A uniform row sample plus exact per-column statistics of a reference frame."""

    sample: pd.DataFrame
    columns: dict[str, ColumnProfile]
    n_rows: int
    max_rows: int | None
    seed: int
    # Reference sides built so far, kept so sorting and counting the sample
    # happen once however many current frames are scored.
    _values: dict[tuple[str, ColumnType], ColumnValues] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        max_rows: int | None = DEFAULT_MAX_ROWS,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        seed: int = 0,
        n_jobs: int | None = None,
    ) -> ReferenceProfile:
        """Profile ``frame``, keeping a sample of at most ``max_rows`` rows (None: all)."""
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError(
                f"Reference data must be a pandas DataFrame, got {type(frame).__name__}."
            )
        if frame.shape[1] == 0 or frame.shape[0] == 0:
            raise InvalidInputError(
                f"Reference data is empty ({frame.shape[0]} rows, {frame.shape[1]} columns); "
                "drift needs at least one row and one column to compare against."
            )
        if max_rows is not None and max_rows < 1:
            raise InvalidInputError(f"max_rows must be at least 1, got {max_rows}.")
        duplicated = frame.columns[frame.columns.duplicated()].tolist()
        if duplicated:
            raise SchemaError(
                f"Reference data has duplicated column names {duplicated}.",
                field=str(duplicated[0]),
            )
        frame = frame.rename(columns=str)
        names = list(frame.columns)
        stats = parallel_map(lambda c: profile_column(c, frame[c], max_categories), names, n_jobs)
        if max_rows is not None and len(frame) > max_rows:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
            sample = frame.take(rows).reset_index(drop=True)
        else:
            sample = frame.reset_index(drop=True)
        return cls(
            sample=sample,
            columns={s.name: s for s in stats},
            n_rows=len(frame),
            max_rows=max_rows,
            seed=seed,
        )

    @property
    def is_sampled(self) -> bool:
        """True when the sample holds fewer rows than the reference had."""
        return len(self.sample) < self.n_rows

    def values(self, column: str, column_type: ColumnType) -> ColumnValues:
        """The reference side of ``column`` for the tests: sample + exact facts."""
        key = (column, column_type)
        if key not in self._values:
            self._values[key] = self._build_values(column, column_type)
        return self._values[key]

    def _build_values(self, column: str, column_type: ColumnType) -> ColumnValues:
        stats = self.columns[column]
        series = self.sample[column]
        if column_type is ColumnType.NUMERICAL:
            sampled = ColumnValues.from_array(_numeric_array(series, column, "reference"))
            exact = stats.keys is not None
            return ColumnValues(
                n=stats.n_values,
                values=sampled.values,
                keys=stats.keys if exact else None,
                counts=np.asarray(stats.counts, dtype=np.int64) if exact else None,
                lo=stats.min,
                hi=stats.max,
                unique=stats.n_unique if stats.min is not None else None,
                integer=sampled.integer,
            )
        if stats.keys is not None:
            return ColumnValues.from_counts(stats.keys, np.asarray(stats.counts, dtype=np.int64))
        # More categories than were counted exactly: estimate shares from the
        # sample, but keep the true totals for the choice of test.
        sampled = ColumnValues.from_series(series, ColumnType.CATEGORICAL)
        return ColumnValues(
            n=stats.n_values,
            keys=sampled.keys,
            counts=sampled.counts,
            unique=stats.n_unique or None,  # 0 means "never counted" (unknown dtype)
        )

    # -- storage ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """One Parquet file: the sample, with the statistics as JSON metadata."""
        table = pa.Table.from_pandas(self.sample, preserve_index=False)
        meta = {
            "format_version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "max_rows": self.max_rows,
            "seed": self.seed,
            "columns": [c.to_json() for c in self.columns.values()],
        }
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[METADATA_KEY] = json.dumps(meta).encode()
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(schema_meta), buffer, compression="zstd")
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Read what :meth:`to_bytes` wrote."""
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise IntegrityError(
                f"Stored drift profile is not a readable Parquet file: {exc}"
            ) from exc
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise IntegrityError(
                "Parquet file has no drift profile metadata; "
                "it was not written by ReferenceProfile.to_bytes()."
            )
        meta = json.loads(raw)
        if meta.get("format_version") != FORMAT_VERSION:
            raise IntegrityError(
                f"Drift profile format {meta.get('format_version')} is not supported "
                f"(expected {FORMAT_VERSION}); profile the reference data again."
            )
        columns = [ColumnProfile.from_json(c) for c in meta["columns"]]
        return cls(
            sample=table.to_pandas(),
            columns={c.name: c for c in columns},
            n_rows=meta["n_rows"],
            max_rows=meta["max_rows"],
            seed=meta["seed"],
        )
