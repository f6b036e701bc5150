"""Data contracts: what the training data looked like, as expectations new data must meet.

A :class:`DataContract` is inferred once from the training data when a model is
logged and stored with the version. It builds on the model's signature
(:func:`~shipyard.registry.signature.infer_signature` decides each column's
type, nullability and categories) and adds what a signature does not need:
quantiles, an expected range, sign bounds, and how much of a batch may fall in
the tails. Contracts are plain JSON (:meth:`DataContract.to_dict`), so a person
can edit one and import it back.

Expectations per column, each checked by :mod:`shipyard.validation.contract_checks`.
*Hard* ones are errors: the data is wrong.

- the column exists (``required``);
- values have the column's type;
- no missing values unless ``nullable``;
- numbers lie within ``[lower_bound, upper_bound]`` (``bounds``): a sign the
  training data never broke, or a physical bound set by editing the contract;
- strings are one of ``categories`` (when the training data had at most 20).

*Soft* ones are warnings: the data is unusual, which a shift in the world
also explains. They fail a check only when the contract (or the caller) is
``strict``.

- numbers lie in ``[minimum, maximum]`` (``range``), the training range with
  its tails extrapolated (see :mod:`shipyard.validation.ranges`);
- at most ``max_tail_fraction`` of a batch lies outside the training data's
  p01..p99, beyond what chance explains (``tails``; only on batches of at
  least ``min_rows_for_distribution`` values: one request says nothing about tails).

Example:
    >>> import pandas as pd
    >>> contract = infer_contract(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    >>> contract.column("c").categories
    ('a', 'b')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, reason
from shipyard.registry.signature import (
    DTYPES,
    ColumnSpec,
    DType,
    Signature,
    infer_signature,
    union_categories,
)
from shipyard.validation.ranges import DEFAULT_RANGE_PROBABILITY, expected_range, sign_bounds

CONTRACT_FORMAT = 1
#: Quantiles recorded for numeric columns, by name.
QUANTILES: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
#: The training data has at most 2% of its values outside p01..p99; five times that is a shift.
DEFAULT_TAIL_FRACTION = 0.10
DEFAULT_MIN_ROWS_FOR_DISTRIBUTION = 50
_NUMERIC = ("float", "integer")


@dataclass(frozen=True)
class ColumnContract:
    """The expectations on one column.

    ``lower_bound``/``upper_bound`` are hard (a value past them is wrong);
    ``minimum``/``maximum`` the soft expected range (a value past them is unusual).

    Example:
        >>> ColumnContract("age", "integer", minimum=17, maximum=90, lower_bound=0).describe()
        'age: integer, not null, at least 0, usually between 17 and 90'
    """

    name: str
    dtype: DType
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    categories: tuple[Any, ...] | None = None
    quantiles: Mapping[str, float] = field(default_factory=dict, hash=False)
    max_tail_fraction: float | None = None
    required: bool = True

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(
                f"Contract column names must be non-empty strings, got {self.name!r}."
            )
        if self.dtype not in DTYPES:
            raise InvalidInputError(
                f"Contract {where}: dtype {self.dtype!r} is not one of {DTYPES}."
            )
        for bound in ("minimum", "maximum", "lower_bound", "upper_bound"):
            value = getattr(self, bound)
            if value is not None and (not _is_number(value) or not math.isfinite(value)):
                raise InvalidInputError(
                    f"Contract {where}: {bound} must be a finite number, got {value!r}."
                )
            if value is not None and self.dtype not in _NUMERIC:
                raise InvalidInputError(
                    f"Contract {where}: {bound} applies to float/integer columns, not {self.dtype}."
                )
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InvalidInputError(
                f"Contract {where}: minimum {self.minimum} is above maximum {self.maximum}."
            )
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and self.lower_bound > self.upper_bound
        ):
            raise InvalidInputError(
                f"Contract {where}: lower_bound {self.lower_bound} is above "
                f"upper_bound {self.upper_bound}."
            )
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(self.categories))
            if not self.categories:
                raise InvalidInputError(
                    f"Contract {where}: categories is empty; remove it (null) to allow any value."
                )
        unknown = sorted(set(self.quantiles) - set(QUANTILES))
        if unknown:
            raise InvalidInputError(
                f"Contract {where}: unknown quantiles {unknown}; known: {list(QUANTILES)}."
            )
        if self.max_tail_fraction is not None and not (
            _is_number(self.max_tail_fraction) and 0 <= self.max_tail_fraction <= 1
        ):
            raise InvalidInputError(
                f"Contract {where}: max_tail_fraction must be between 0 and 1, "
                f"got {self.max_tail_fraction!r}."
            )
        if self.max_tail_fraction is not None and not {"p01", "p99"} <= set(self.quantiles):
            raise InvalidInputError(
                f"Contract {where}: max_tail_fraction needs quantiles p01 and p99."
            )

    @property
    def tails(self) -> tuple[float, float] | None:
        """(p01, p99) when the tail check applies to this column."""
        if self.max_tail_fraction is None:
            return None
        return self.quantiles["p01"], self.quantiles["p99"]

    @property
    def has_bounds(self) -> bool:
        return self.lower_bound is not None or self.upper_bound is not None

    @property
    def has_range(self) -> bool:
        return self.minimum is not None or self.maximum is not None

    def describe(self) -> str:
        parts = [self.dtype, "nullable" if self.nullable else "not null"]
        if self.lower_bound is not None and self.upper_bound is not None:
            parts.append(f"within {_fmt(self.lower_bound, '')} .. {_fmt(self.upper_bound, '')}")
        elif self.lower_bound is not None:
            parts.append(f"at least {_fmt(self.lower_bound, '')}")
        elif self.upper_bound is not None:
            parts.append(f"at most {_fmt(self.upper_bound, '')}")
        if self.has_range:
            parts.append(
                f"usually between {_fmt(self.minimum, '-inf')} and {_fmt(self.maximum, 'inf')}"
            )
        if self.categories is not None:
            parts.append(f"one of {len(self.categories)} categories")
        return f"{self.name}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "required": self.required,
            "minimum": _py(self.minimum),
            "maximum": _py(self.maximum),
            "lower_bound": _py(self.lower_bound),
            "upper_bound": _py(self.upper_bound),
            "categories": None if self.categories is None else [_py(c) for c in self.categories],
            "quantiles": {k: _py(v) for k, v in self.quantiles.items()},
            "max_tail_fraction": self.max_tail_fraction,
        }


@dataclass(frozen=True)
class DataContract:
    """Expectations on a table, column by column, plus where they came from.

    ``rows_profiled`` is how many rows the contract was inferred from.
    ``min_rows_for_distribution`` is the smallest batch the tail checks run on.
    ``strict`` makes soft expectations (range, tails) fail a check, not warn.

    Example:
        >>> c = DataContract((ColumnContract("x", "float"),))
        >>> DataContract.from_dict(c.to_dict()) == c
        True
    """

    columns: tuple[ColumnContract, ...]
    rows_profiled: int = 0
    min_rows_for_distribution: int = DEFAULT_MIN_ROWS_FOR_DISTRIBUTION
    format_version: int = CONTRACT_FORMAT
    strict: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if not self.columns:
            raise InvalidInputError("A data contract needs at least one column.")
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInputError(f"The data contract lists columns more than once: {dupes}.")
        if self.format_version != CONTRACT_FORMAT:
            raise InvalidInputError(
                f"Data contract format_version {self.format_version} is not supported; this "
                f"Shipyard reads format_version {CONTRACT_FORMAT}."
            )
        if self.min_rows_for_distribution < 1:
            raise InvalidInputError("min_rows_for_distribution must be at least 1.")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnContract:
        for col in self.columns:
            if col.name == name:
                return col
        raise InvalidInputError(
            f"The data contract has no column {name!r}; it has {', '.join(self.names)}."
        )

    # -- serialisation --
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; :meth:`from_dict` reads it back (and edited copies of it)."""
        return {
            "format_version": self.format_version,
            "rows_profiled": self.rows_profiled,
            "min_rows_for_distribution": self.min_rows_for_distribution,
            "strict": self.strict,
            "columns": [c.to_dict() for c in self.columns],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> DataContract:
        """Read a contract; InvalidInputError naming the column and key that is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"A data contract is a JSON object, got {type(data).__name__}.")
        unknown_top = sorted(set(data) - _CONTRACT_KEYS)
        if unknown_top:
            raise InvalidInputError(
                f"Unknown data contract keys: {unknown_top}; known: {sorted(_CONTRACT_KEYS)}."
            )
        strict = data.get("strict", False)
        if not isinstance(strict, bool):
            raise InvalidInputError(f"Data contract: strict must be true or false, got {strict!r}.")
        columns = data.get("columns")
        if not isinstance(columns, list):
            raise InvalidInputError('A data contract needs "columns": a list of column objects.')
        parsed = [_column_from_dict(i, c) for i, c in enumerate(columns)]
        try:
            return cls(
                tuple(parsed),
                rows_profiled=int(data.get("rows_profiled", 0)),
                min_rows_for_distribution=int(
                    data.get("min_rows_for_distribution", DEFAULT_MIN_ROWS_FOR_DISTRIBUTION)
                ),
                format_version=int(data.get("format_version", CONTRACT_FORMAT)),
                strict=strict,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"Malformed data contract: {reason(exc)}.") from exc

    @classmethod
    def from_json(cls, text: str, *, source: str = "the contract") -> DataContract:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{source} is not valid JSON: {reason(exc)}.") from exc
        return cls.from_dict(data)


_CONTRACT_KEYS = {
    "format_version",
    "rows_profiled",
    "min_rows_for_distribution",
    "strict",
    "columns",
}
_COLUMN_KEYS = {
    "name",
    "dtype",
    "nullable",
    "required",
    "minimum",
    "maximum",
    "lower_bound",
    "upper_bound",
    "categories",
    "quantiles",
    "max_tail_fraction",
}


def _column_from_dict(index: int, data: Any) -> ColumnContract:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"Contract column #{index} must be an object, got {data!r}.")
    name = data.get("name")
    where = f"Contract column {name!r}" if name else f"Contract column #{index}"
    unknown = sorted(set(data) - _COLUMN_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{where} has unknown keys {unknown}; known: {sorted(_COLUMN_KEYS)}."
        )
    for key in ("name", "dtype"):
        if key not in data:
            raise InvalidInputError(f"{where} has no {key!r}.")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{where}: name must be a non-empty string, got {name!r}.")
    for key in ("nullable", "required"):
        if key in data and not isinstance(data[key], bool):
            raise InvalidInputError(f"{where}: {key} must be true or false, got {data[key]!r}.")
    quantiles = data.get("quantiles") or {}
    if not isinstance(quantiles, Mapping) or not all(_is_number(v) for v in quantiles.values()):
        raise InvalidInputError(f"{where}: quantiles must map names like 'p01' to numbers.")
    categories = data.get("categories")
    if categories is not None and not isinstance(categories, list):
        raise InvalidInputError(f"{where}: categories must be a list or null.")
    return ColumnContract(
        name=name,
        dtype=data["dtype"],
        nullable=data.get("nullable", False),
        minimum=data.get("minimum"),
        maximum=data.get("maximum"),
        lower_bound=data.get("lower_bound"),
        upper_bound=data.get("upper_bound"),
        categories=None if categories is None else tuple(categories),
        quantiles={str(k): float(v) for k, v in quantiles.items()},
        max_tail_fraction=data.get("max_tail_fraction"),
        required=data.get("required", True),
    )


# -- inference --------------------------------------------------------------------------


def infer_contract(
    data: pd.DataFrame,
    *,
    range_probability: float | None = DEFAULT_RANGE_PROBABILITY,
    max_tail_fraction: float | None = DEFAULT_TAIL_FRACTION,
    strict: bool = False,
    signature: Signature | None = None,
) -> DataContract:
    """Infer a contract from training data (every row is used; pass a sample for speed).

    Types, nullability and categories come from the signature inference;
    ``signature`` (the model's) widens them where the fitted model shows it
    handles more than ``data`` holds (a column it imputes may be missing, a
    category its encoder knows is valid; see
    :meth:`~shipyard.registry.signature.Signature.widened`). For
    numbers: the expected range extrapolates each tail so that a value from
    the same source falls past it with probability ``range_probability``
    (:func:`~shipyard.validation.ranges.expected_range`; None keeps the
    observed extremes); a sign never broken in the data becomes a hard bound;
    quantiles p01..p99 are recorded (observed values, not interpolations) and
    the tail check is enabled with ``max_tail_fraction`` (None disables it).
    ``strict`` makes the soft expectations fail checks instead of warning.

    Example:
        >>> import pandas as pd
        >>> c = infer_contract(pd.DataFrame({"x": [0.0, 10.0]}), range_probability=None)
        >>> c.column("x").minimum, c.column("x").maximum
        (0.0, 10.0)
    """
    if range_probability is not None and not 0 < range_probability < 1:
        raise InvalidInputError(
            f"range_probability must be between 0 and 1 (exclusive), got {range_probability}."
        )
    model = {} if signature is None else {c.name: c for c in signature.inputs}
    columns = []
    for spec in infer_signature(data).inputs:
        col = ColumnContract(
            spec.name,
            spec.dtype,
            nullable=spec.nullable,
            categories=spec.categories,
        )
        known = model.get(spec.name)
        if known is not None and known.dtype == spec.dtype:
            col = _widened(col, known)
        if spec.dtype in _NUMERIC and spec.minimum is not None and spec.maximum is not None:
            values = pd.to_numeric(data[spec.name], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            values = values[np.isfinite(values)]
            quantiles = dict(
                zip(
                    QUANTILES,
                    np.quantile(values, list(QUANTILES.values()), method="inverted_cdf").tolist(),
                    strict=True,
                )
            )
            lo, hi = float(spec.minimum), float(spec.maximum)
            if range_probability is not None:
                lo, hi = expected_range(
                    values, probability=range_probability, integer=spec.dtype == "integer"
                )
            lower_bound, upper_bound = sign_bounds(values)
            col = replace(
                col,
                minimum=lo,
                maximum=hi,
                lower_bound=lower_bound,
                upper_bound=upper_bound,
                quantiles=quantiles,
                max_tail_fraction=max_tail_fraction,
            )
        columns.append(col)
    return DataContract(tuple(columns), rows_profiled=len(data), strict=strict)


# -- small helpers ------------------------------------------------------------------------


def _widened(col: ColumnContract, model: ColumnSpec) -> ColumnContract:
    """``col`` widened to the model's signature column of the same name and type.

    The signature already holds every category of the data it was inferred from,
    so a text column takes the signature's set, or none when the signature has none
    (the model's encoder knows more than ``MAX_CATEGORIES``).
    """
    categories = col.categories
    # A pandas category column lists the model's own categories already.
    if col.dtype == "string" and col.categories is not None and not model.categorical:
        categories = (
            None if model.categories is None else union_categories(col.categories, model.categories)
        )
    # A column the model never reads may be missing or absent when serving: the
    # contract still profiles it, but neither is a violation there.
    return replace(
        col,
        nullable=col.nullable or model.nullable,
        categories=categories,
        required=col.required and not model.unused,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _fmt(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{value:.6g}"


__all__ = [
    "CONTRACT_FORMAT",
    "DEFAULT_TAIL_FRACTION",
    "QUANTILES",
    "ColumnContract",
    "DataContract",
    "infer_contract",
]
