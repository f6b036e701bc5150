"""Check a table against a data contract: every violated expectation, counted, with examples.

:class:`ContractChecker` prepares a contract once (category sets, bounds) and
checks any number of frames, column by column with vectorised pandas/numpy
operations. Each violated expectation becomes one :class:`Violation` with the
number of offending values, up to five example rows (0-based positions) and
their values.

Batch files have no types of their own (a CSV column with one stray word in it
is read as text), so the check is lenient about representation and strict about
content: ``"5.1"`` in a float column counts as the number 5.1, ``"abc"`` counts
as a type violation at its row. The serving boundary is stricter: the model
signature has already typed the input before :func:`check_serving_input` runs.

Each violation is an ``error`` (a hard expectation: type, missing values,
bounds, categories, a missing column) or a ``warning`` (a soft one: the
expected range and the tail share, which a shift in the world also breaks).
A result passes when it has no errors, and, when the contract or the caller
is strict, no warnings either.

Serving inputs are checked in one of three :class:`InputCheckMode`\\ s: ``off``,
``reject`` (raise :class:`ContractViolationError`, a
:class:`~shipyard.errors.SchemaError`, so the HTTP layer answers 422, for the
violations that fail the check: errors, and warnings under a strict contract;
other warnings are counted as in ``count``) or ``count`` (accept, and return
which rows broke which expectation so metrics and the prediction log can
count them).

Example:
    >>> import pandas as pd
    >>> from shipyard.validation.contracts import infer_contract
    >>> contract = infer_contract(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), range_probability=None)
    >>> result = check_contract(contract, pd.DataFrame({"x": [2.0, 9.0, None]}))
    >>> [(v.expectation, v.severity, v.rows) for v in result.violations]
    [('not_null', 'error', (2,)), ('range', 'warning', (1,))]
    >>> result.passed, result.summary()
    (False, 'failed: 1 error, 1 warning in 3 expectations; 2 of 3 rows break at least one')
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.validation.contracts import ColumnContract, DataContract
from shipyard.validation.ranges import tail_count_is_chance

MAX_EXAMPLES = 5
_EXAMPLE_CHARS = 60
_TRUE_FALSE = {"true": True, "false": False}

#: Expectation kinds, in the order a column's expectations are checked.
EXPECTATIONS = ("exists", "type", "not_null", "bounds", "range", "in_set", "tails")
#: The soft ones: breaking them is a warning unless the check is strict.
SOFT_EXPECTATIONS = frozenset({"range", "tails"})


class InputCheckMode(enum.StrEnum):
    """What the serving path does with a request that breaks the contract."""

    OFF = "off"
    REJECT = "reject"
    COUNT = "count"


class ContractViolationError(SchemaError):
    """Input breaks the model's data contract (raised in ``reject`` mode; a 422)."""


@dataclass(frozen=True)
class Violation:
    """One violated expectation on one column.

    ``count`` values out of ``checked`` broke it; ``rows`` are up to five example
    row positions (0-based) and ``values`` the values found there.
    """

    column: str
    expectation: str
    expected: str
    count: int
    checked: int
    rows: tuple[int, ...] = ()
    values: tuple[Any, ...] = ()

    @property
    def fraction(self) -> float:
        return self.count / self.checked if self.checked else 1.0

    @property
    def severity(self) -> str:
        """``warning`` for a soft expectation (range, tails), ``error`` for the others."""
        return "warning" if self.expectation in SOFT_EXPECTATIONS else "error"

    @property
    def message(self) -> str:
        where = f" at rows {', '.join(map(str, self.rows))}" if self.rows else ""
        more = " and more" if self.count > len(self.rows) and self.rows else ""
        shown = f" (values: {', '.join(map(repr, self.values))})" if self.values else ""
        return (
            f"Column {self.column!r}: {self.count} of {self.checked} values break "
            f"'{self.expected}'{where}{more}{shown}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "expectation": self.expectation,
            "severity": self.severity,
            "expected": self.expected,
            "count": self.count,
            "checked": self.checked,
            "fraction": self.fraction,
            "rows": list(self.rows),
            "values": list(self.values),
            "message": self.message,
        }


@dataclass(frozen=True)
class ContractResult:
    """Outcome of checking one table.

    It passes when no hard expectation was violated and, if ``strict``, no soft
    one either; soft violations of a non-strict check are ``warnings``.
    """

    n_rows: int
    n_columns: int
    expectations_checked: int
    violations: tuple[Violation, ...]
    rows_flagged: int
    extra_columns: tuple[str, ...] = ()
    strict: bool = False

    @property
    def errors(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def warnings(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "warning")

    @property
    def failing(self) -> tuple[Violation, ...]:
        """The violations that fail the check: errors, and warnings when strict."""
        return self.violations if self.strict else self.errors

    @property
    def passed(self) -> bool:
        return not self.failing

    def summary(self) -> str:
        if not self.violations:
            return (
                f"passed: {self.n_rows} rows, {self.expectations_checked} expectations, "
                "no violations"
            )
        counts = _plural(len(self.errors), "error") + ", " + _plural(len(self.warnings), "warning")
        where = (
            f"in {self.expectations_checked} expectations; {self.rows_flagged} of "
            f"{self.n_rows} rows break at least one"
        )
        if self.passed:
            return (
                f"passed with {_plural(len(self.warnings), 'warning')} {where} (soft "
                "expectations: unusual values, not wrong ones; --strict fails on them)"
            )
        strict = " (strict: warnings fail)" if self.strict and self.warnings else ""
        return f"failed: {counts} {where}{strict}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "strict": self.strict,
            "summary": self.summary(),
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "expectations_checked": self.expectations_checked,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "rows_flagged": self.rows_flagged,
            "extra_columns": list(self.extra_columns),
            "violations": [v.to_dict() for v in self.violations],
        }


@dataclass(frozen=True)
class InputCheck:
    """What checking one serving request found (empty when the mode is ``off``).

    ``row_flags[i]`` is True when row ``i`` broke at least one expectation.
    """

    mode: InputCheckMode
    violations: tuple[Violation, ...] = ()
    row_flags: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(column, expectation): values}``, the shape a metrics counter wants."""
        return {(v.column, v.expectation): v.count for v in self.violations}


class ContractChecker:
    """A contract prepared for checking; build once, call :meth:`check` many times."""

    def __init__(self, contract: DataContract) -> None:
        self.contract = contract
        self._names = frozenset(contract.names)
        self._category_sets = {
            c.name: pd.Index(list(c.categories)) for c in contract.columns if c.categories
        }

    def check(
        self, data: pd.DataFrame, *, distribution: bool = True, strict: bool = False
    ) -> ContractResult:
        """Check ``data``; ``distribution=False`` skips the tail checks (e.g. for one request).

        ``strict`` fails the result on soft violations too (as a strict contract does).
        """
        result, _ = self._check(data, distribution=distribution, strict=strict)
        return result

    def _check(
        self, data: pd.DataFrame, *, distribution: bool, strict: bool = False
    ) -> tuple[ContractResult, np.ndarray]:
        if not isinstance(data, pd.DataFrame):
            raise InvalidInputError(
                f"A contract checks a pandas DataFrame, got {type(data).__name__}."
            )
        if not data.columns.is_unique:
            dupes = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
            raise InvalidInputError(f"The data has columns more than once: {dupes}.")
        n = len(data)
        flagged = np.zeros(n, dtype=bool)
        violations: list[Violation] = []
        checked = 0
        dtypes = dict(zip(data.columns, data.dtypes, strict=True))
        plain = [c for c in self.contract.columns if _plain_number(c, dtypes.get(c.name))]
        fast: dict[str, tuple[list[Violation], int]] = {}
        if plain:
            names = [c.name for c in plain]
            if all(isinstance(d, np.dtype) and d.kind in "iuf" for d in dtypes.values()):
                # All numbers: one matrix of the whole frame, no new frame or index built.
                whole = data.to_numpy(dtype=np.float64)
                block = whole[:, data.columns.get_indexer(names)]
            else:
                block = data[names].to_numpy(dtype=np.float64)
            fast = self._check_numeric_block(plain, block, distribution, flagged)
        for col in self.contract.columns:
            if col.name in fast:
                found, count = fast[col.name]
                violations.extend(found)
                checked += count
                continue
            if col.name not in data.columns:
                if col.required:
                    checked += 1
                    violations.append(Violation(col.name, "exists", "column exists", n, n, (), ()))
                    flagged[:] = True
                continue
            found, count = self._check_column(col, data[col.name], distribution, flagged)
            violations.extend(found)
            checked += count
        extra = tuple(str(c) for c in data.columns if c not in self._names)
        result = ContractResult(
            n_rows=n,
            n_columns=len(data.columns),
            expectations_checked=checked,
            violations=tuple(violations),
            rows_flagged=int(flagged.sum()),
            extra_columns=extra,
            strict=strict or self.contract.strict,
        )
        return result, flagged

    def _check_column(
        self, col: ColumnContract, series: pd.Series, distribution: bool, flagged: np.ndarray
    ) -> tuple[list[Violation], int]:
        nulls = series.isna().to_numpy()
        numbers, text, bad_type = _typed(col, series, ~nulls)
        category_values = None
        if col.name in self._category_sets:
            category_values = text if text is not None else series
        return self._rules(
            col,
            nulls,
            numbers,
            bad_type,
            category_values,
            lambda: series.to_numpy(dtype=object),
            distribution,
            flagged,
        )

    def _check_numeric_block(
        self,
        columns: list[ColumnContract],
        block: np.ndarray,
        distribution: bool,
        flagged: np.ndarray,
    ) -> dict[str, tuple[list[Violation], int]]:
        """Plain int/float columns, typed already: one float matrix, no per-column Series.

        The fast path for serving, where one request is a frame of a row or two.
        """
        out = {}
        nulls = np.isnan(block)
        with np.errstate(invalid="ignore"):
            bad = ~nulls & np.isinf(block)
        for j, col in enumerate(columns):
            numbers = block[:, j]
            bad_type = bad[:, j]
            if col.dtype == "integer":
                with np.errstate(invalid="ignore"):
                    bad_type = bad_type | (
                        ~nulls[:, j] & ~bad_type & (numbers != np.round(numbers))
                    )
            out[col.name] = self._rules(
                col,
                nulls[:, j],
                numbers,
                bad_type,
                None,
                functools.partial(_as_examples, numbers, col.dtype),
                distribution,
                flagged,
            )
        return out

    def _rules(
        self,
        col: ColumnContract,
        nulls: np.ndarray,
        numbers: np.ndarray | None,
        bad_type: np.ndarray,
        category_values: pd.Series | None,
        raw_values: Callable[[], np.ndarray],
        distribution: bool,
        flagged: np.ndarray,
    ) -> tuple[list[Violation], int]:
        """Apply a column's expectations to its typed values; (violations, expectations run)."""
        present = ~nulls
        n_present = int(present.sum())
        out: list[Violation] = []
        checked = 1 if col.nullable else 2  # the type, and no missing values unless nullable

        def violation(kind: str, expected: str, mask: np.ndarray, count: int, of: int) -> None:
            raw = raw_values()  # only built when there is something to show
            rows = np.flatnonzero(mask)[:MAX_EXAMPLES]
            examples = tuple(_example(raw[r]) for r in rows)
            out.append(
                Violation(
                    col.name, kind, expected, count, of, tuple(int(r) for r in rows), examples
                )
            )

        def add(kind: str, expected: str, mask: np.ndarray, of: int) -> None:
            count = int(mask.sum())
            if count:
                violation(kind, expected, mask, count, of)
                np.logical_or(flagged, mask, out=flagged)

        add("type", f"values are {_article(col.dtype)}", bad_type, n_present)
        if not col.nullable:
            add("not_null", "no missing values", nulls, len(nulls))
        valid = present & ~bad_type
        if numbers is not None and col.has_bounds:
            checked += 1
            impossible = valid & _outside(numbers, col.lower_bound, col.upper_bound)
            add("bounds", _bounds_text(col), impossible, n_present)
            valid &= ~impossible  # one value, one violation: not also "unusual"
        if numbers is not None and col.has_range:
            checked += 1
            unusual = valid & _outside(numbers, col.minimum, col.maximum)
            expected = f"usually between {_num(col.minimum)} and {_num(col.maximum)}"
            add("range", expected, unusual, n_present)
        if category_values is not None:
            checked += 1
            unknown = valid & ~np.asarray(category_values.isin(self._category_sets[col.name]))
            shown = ", ".join(map(str, list(col.categories or ())[:8]))
            more = ", ..." if len(col.categories or ()) > 8 else ""
            add("in_set", f"one of {{{shown}{more}}}", unknown, n_present)
        tails = col.tails
        if tails is not None and numbers is not None and distribution:
            n_valid = int(valid.sum())
            if n_valid >= self.contract.min_rows_for_distribution:
                checked += 1
                with np.errstate(invalid="ignore"):
                    in_tails = valid & ((numbers < tails[0]) | (numbers > tails[1]))
                count = int(in_tails.sum())
                assert col.max_tail_fraction is not None
                if count / n_valid > col.max_tail_fraction and not tail_count_is_chance(
                    count, n_valid, self.contract.rows_profiled
                ):
                    # Only the share is wrong, not any single row: examples, no row flags.
                    expected = (
                        f"at most {col.max_tail_fraction:.0%} outside training p01..p99 "
                        f"[{_num(tails[0])}, {_num(tails[1])}] (found {count / n_valid:.1%})"
                    )
                    violation("tails", expected, in_tails, count, n_valid)
        return out, checked


def check_contract(
    contract: DataContract, data: pd.DataFrame, *, strict: bool = False
) -> ContractResult:
    """Check ``data`` against ``contract`` (all expectations, tails included).

    ``strict`` fails on soft violations too; a strict contract always does.

    Example:
        >>> import pandas as pd
        >>> from shipyard.validation.contracts import ColumnContract, DataContract
        >>> c = DataContract((ColumnContract("s", "string", categories=("a", "b")),))
        >>> check_contract(c, pd.DataFrame({"s": ["a", "z"]})).violations[0].values
        ('z',)
    """
    return ContractChecker(contract).check(data, strict=strict)


def check_serving_input(
    checker: ContractChecker, frame: pd.DataFrame, mode: InputCheckMode | str
) -> InputCheck:
    """Check one request's (already signature-coerced) frame according to ``mode``.

    ``reject`` raises :class:`ContractViolationError` naming the first column and
    its rows when the input fails the check (an error, or a warning under a
    strict contract), and otherwise counts like ``count``; ``count`` returns the
    violations and per-row flags; ``off`` does nothing. Tail checks never run
    here: a request is too small to say anything about a distribution.
    """
    mode = InputCheckMode(mode)
    if mode is InputCheckMode.OFF:
        return InputCheck(mode)
    result, flags = checker._check(frame, distribution=False)
    if mode is InputCheckMode.REJECT and result.failing:
        first = result.failing[0]
        others = len(result.failing) - 1
        raise ContractViolationError(
            first.message
            + (f" {others} more expectation(s) broken." if others else "")
            + " The model's data contract rejects this input; see "
            "`shipyard validate contract MODEL` for what it expects.",
            field=first.column,
            expected=first.expected,
            rows=list(first.rows),
        )
    return InputCheck(mode, result.violations, flags)


# -- typing one column ------------------------------------------------------------------


def _typed(
    col: ColumnContract, series: pd.Series, present: np.ndarray
) -> tuple[np.ndarray | None, pd.Series | None, np.ndarray]:
    """(numbers for range checks, text for category checks, mask of wrongly typed values)."""
    dtype = series.dtype
    if col.dtype in ("float", "integer"):
        if pd.api.types.is_bool_dtype(dtype):
            return None, None, present.copy()
        if pd.api.types.is_numeric_dtype(dtype):
            numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.zeros(len(series), dtype=bool)
        else:
            values = series.astype(object)
            is_bool = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
            numbers = pd.to_numeric(values.where(~is_bool), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = present & (np.isnan(numbers) | is_bool)
        with np.errstate(invalid="ignore"):
            bad |= present & np.isinf(numbers)
            if col.dtype == "integer":
                bad |= present & ~bad & (numbers != np.round(numbers))
        return numbers, None, bad
    if col.dtype == "string":
        if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            return None, series, np.zeros(len(series), dtype=bool)
        if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            # A column of codes ("01", "42") read from a file comes back as integers.
            return None, series.astype(str).where(series.notna()), np.zeros(len(series), bool)
        is_str = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        return None, series, present & ~is_str
    if col.dtype == "boolean":
        if pd.api.types.is_bool_dtype(dtype):
            return None, None, np.zeros(len(series), dtype=bool)
        ok = series.map(
            lambda v: (
                isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v.lower() in _TRUE_FALSE)
            )
        ).to_numpy(dtype=bool)
        return None, None, present & ~ok
    # datetime
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return None, None, np.zeros(len(series), dtype=bool)
    parsed = pd.to_datetime(series, errors="coerce", format="ISO8601", utc=True)
    return None, None, present & parsed.isna().to_numpy()


def _outside(numbers: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    with np.errstate(invalid="ignore"):
        return (numbers < lo) | (numbers > hi)


def _bounds_text(col: ColumnContract) -> str:
    if col.lower_bound is not None and col.upper_bound is not None:
        return f"within {_num(col.lower_bound)} .. {_num(col.upper_bound)}"
    if col.lower_bound is not None:
        return f"at least {_num(col.lower_bound)}"
    return f"at most {_num(col.upper_bound)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _plain_number(col: ColumnContract, dtype: object) -> bool:
    """A numeric contract column held as a plain numpy int/float column, no categories."""
    return (
        col.dtype in ("float", "integer")
        and col.categories is None
        and isinstance(dtype, np.dtype)
        and dtype.kind in "iuf"
    )


def _as_examples(numbers: np.ndarray, dtype: str) -> np.ndarray:
    """Values of a float block column as Python numbers, integers shown as integers."""
    out = numbers.astype(object)
    if dtype == "integer":
        finite = np.isfinite(numbers) & (numbers == np.round(numbers))
        out[finite] = numbers[finite].astype(np.int64).astype(object)
    return out


def _article(dtype: str) -> str:
    return {"float": "floats", "integer": "integers", "boolean": "booleans"}.get(dtype, f"{dtype}s")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _example(value: Any) -> Any:
    """A JSON-safe, short version of an offending value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return str(value)
    if isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "..."


__all__ = [
    "EXPECTATIONS",
    "MAX_EXAMPLES",
    "SOFT_EXPECTATIONS",
    "ContractChecker",
    "ContractResult",
    "ContractViolationError",
    "InputCheck",
    "InputCheckMode",
    "Violation",
    "check_contract",
    "check_serving_input",
]
