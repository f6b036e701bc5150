"""Export a data contract in the forms other tools read: pandera and Great Expectations.

Neither library is a dependency: these functions write their formats as
text and JSON, so a team already on one of them can keep its own runner.

- :func:`to_pandera` writes Python source defining a ``pandera``
  ``DataFrameSchema`` named ``schema`` (``schema.validate(df)``).
- :func:`to_great_expectations` writes an expectation suite: the 0.x JSON form
  (``expectation_suite_name``, ``expectations: [{expectation_type, kwargs,
  meta}]``) by default, or the 1.x form (``name``, ``expectations: [{type,
  kwargs, meta}]``) with ``gx_version="1"``.

Each contract expectation maps onto the tools' own names: the column exists
(``expect_column_to_exist`` / ``required=True``), the type
(``expect_column_values_to_be_in_type_list`` / the column dtype), no missing
values (``expect_column_values_to_not_be_null`` / ``nullable=False``), the
bounds and the expected range (``expect_column_values_to_be_between`` /
``Check.ge``, ``Check.le``, ``Check.in_range``), the categories
(``expect_column_values_to_be_in_set`` / ``Check.isin``) and the tail share
(``expect_column_values_to_be_between`` over p01..p99 with ``mostly`` / a
custom ``Check``).

Soft expectations (the expected range and the tail share) stay soft: a
pandera ``Check`` with ``raise_warning=True``, a Great Expectations
expectation of ``severity`` ``warning`` (in ``meta`` for the 0.x form, which
has no severity of its own); hard ones are ``critical``. A strict contract
exports every expectation as hard. The tail expectation's chance test (see
:mod:`shipyard.validation.ranges`) has no equivalent in either tool: they
apply the share alone, so they may warn on a small batch where Shipyard does not.

Example:
    >>> from shipyard.validation.contracts import ColumnContract, DataContract
    >>> c = DataContract((ColumnContract("x", "float", minimum=0.0, maximum=1.0),))
    >>> [e["expectation_type"] for e in to_great_expectations(c)["expectations"]]
    ['expect_column_to_exist', 'expect_column_values_to_be_in_type_list', \
'expect_column_values_to_not_be_null', 'expect_column_values_to_be_between']
"""

from __future__ import annotations

from typing import Any, Literal

from shipyard.errors import InvalidInputError
from shipyard.validation.contract_checks import SOFT_EXPECTATIONS
from shipyard.validation.contracts import ColumnContract, DataContract

EXPORT_FORMATS = ("json", "pandera", "gx")

# The pandas dtype names a column of each contract type may arrive as.
_TYPE_LISTS: dict[str, list[str]] = {
    "float": ["float64", "float32", "int64", "int32"],
    "integer": ["int64", "int32", "Int64", "Int32"],
    "boolean": ["bool", "boolean"],
    "string": ["str", "string", "object"],
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"],
}
_GX_LEGACY_VERSION = "0.18.21"


def export_contract(contract: DataContract, form: str, *, name: str = "contract") -> str:
    """The contract as text in ``form`` (``json``, ``pandera`` or ``gx``)."""
    import json

    if form == "json":
        return contract.to_json()
    if form == "pandera":
        return to_pandera(contract, name=name)
    if form == "gx":
        return json.dumps(to_great_expectations(contract, suite_name=name), indent=2) + "\n"
    raise InvalidInputError(f"Unknown export form {form!r}; choose one of {EXPORT_FORMATS}.")


# -- Great Expectations -------------------------------------------------------------------


def to_great_expectations(
    contract: DataContract,
    *,
    suite_name: str = "shipyard_contract",
    gx_version: Literal["0.18", "1"] = "0.18",
) -> dict[str, Any]:
    """An expectation suite (a JSON-safe dict) with one expectation per contract rule.

    Example:
        >>> from shipyard.validation.contracts import ColumnContract, DataContract
        >>> c = DataContract((ColumnContract("s", "string", categories=("a", "b")),))
        >>> to_great_expectations(c, gx_version="1")["expectations"][-1]["kwargs"]
        {'column': 's', 'value_set': ['a', 'b']}
    """
    if gx_version not in ("0.18", "1"):
        raise InvalidInputError(f"gx_version must be '0.18' or '1', got {gx_version!r}.")
    key = "expectation_type" if gx_version == "0.18" else "type"
    expectations = []
    for col in contract.columns:
        for kind, kwargs, meta in _expectations(col):
            soft = meta.get("shipyard_expectation") in SOFT_EXPECTATIONS and not contract.strict
            severity = "warning" if soft else "critical"
            if gx_version == "0.18":
                expectations.append(
                    {key: kind, "kwargs": kwargs, "meta": {**meta, "severity": severity}}
                )
            else:
                expectations.append(
                    {key: kind, "kwargs": kwargs, "meta": meta, "severity": severity}
                )
    meta = {
        "shipyard": {
            "format_version": contract.format_version,
            "rows_profiled": contract.rows_profiled,
            "strict": contract.strict,
        }
    }
    if gx_version == "0.18":
        meta["great_expectations_version"] = _GX_LEGACY_VERSION  # type: ignore[assignment]
        return {
            "expectation_suite_name": suite_name,
            "data_asset_type": None,
            "ge_cloud_id": None,
            "expectations": expectations,
            "meta": meta,
        }
    return {
        "name": suite_name,
        "id": None,
        "expectations": expectations,
        "meta": meta,
        "notes": None,
    }


def _expectations(col: ColumnContract) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    column = col.name
    out: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if col.required:
        out.append(("expect_column_to_exist", {"column": column}, {}))
    types = list(_TYPE_LISTS[col.dtype])
    if col.dtype == "integer" and col.nullable:
        types.append("float64")  # pandas holds an int column with a gap as float64 + NaN
    out.append(
        (
            "expect_column_values_to_be_in_type_list",
            {"column": column, "type_list": types},
            {"shipyard_dtype": col.dtype},
        )
    )
    if not col.nullable:
        out.append(("expect_column_values_to_not_be_null", {"column": column}, {}))
    if col.has_bounds:
        out.append(
            (
                "expect_column_values_to_be_between",
                {"column": column, "min_value": col.lower_bound, "max_value": col.upper_bound},
                {"shipyard_expectation": "bounds"},
            )
        )
    if col.has_range:
        out.append(
            (
                "expect_column_values_to_be_between",
                {"column": column, "min_value": col.minimum, "max_value": col.maximum},
                {"shipyard_expectation": "range", "notes": "expected range (soft)"},
            )
        )
    if col.categories is not None:
        out.append(
            (
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": list(col.categories)},
                {},
            )
        )
    tails = col.tails
    if tails is not None:
        assert col.max_tail_fraction is not None
        out.append(
            (
                "expect_column_values_to_be_between",
                {
                    "column": column,
                    "min_value": tails[0],
                    "max_value": tails[1],
                    "mostly": round(1.0 - col.max_tail_fraction, 6),
                },
                {"shipyard_expectation": "tails", "notes": "training p01..p99"},
            )
        )
    return out


# -- pandera ------------------------------------------------------------------------------


def _pandera_between(low: float | None, high: float | None, extra: str) -> str | None:
    if low is not None and high is not None:
        return f"pa.Check.in_range({low!r}, {high!r}{extra})"
    if low is not None:
        return f"pa.Check.ge({low!r}{extra})"
    if high is not None:
        return f"pa.Check.le({high!r}{extra})"
    return None


_PANDERA_DTYPES = {
    ("float", False): '"float64"',
    ("float", True): '"float64"',
    ("integer", False): '"int64"',
    ("integer", True): '"Int64"',
    ("boolean", False): '"bool"',
    ("boolean", True): '"boolean"',
    ("string", False): "str",
    ("string", True): "str",
    ("datetime", False): '"datetime64[ns]"',
    ("datetime", True): '"datetime64[ns]"',
}


def to_pandera(contract: DataContract, *, name: str = "shipyard_contract") -> str:
    """Python source that defines ``schema``, a pandera ``DataFrameSchema`` for the contract.

    Columns are coerced to the contract's dtype before the checks (a file's
    integer column may hold a float contract's values); extra columns are
    allowed, as in Shipyard's own check.

    Example:
        >>> from shipyard.validation.contracts import ColumnContract, DataContract
        >>> src = to_pandera(DataContract((ColumnContract("x", "float", lower_bound=0.0),)))
        >>> "pa.Check.ge(0.0)" in src
        True
    """
    lines = [
        f'"""pandera schema for the Shipyard data contract {name!r} (generated)."""',
        "",
        "try:",
        "    import pandera.pandas as pa",
        "except ImportError:  # pandera < 0.24",
        "    import pandera as pa",
        "",
        "schema = pa.DataFrameSchema(",
        "    {",
    ]
    for col in contract.columns:
        lines.extend(_pandera_column(col, contract.min_rows_for_distribution, contract.strict))
    lines += [
        "    },",
        "    strict=False,",
        f"    name={name!r},",
        ")",
        "",
    ]
    return "\n".join(lines)


def _pandera_column(col: ColumnContract, min_rows: int, strict: bool) -> list[str]:
    # Soft expectations warn (pandera's raise_warning) unless the contract is strict.
    soft = "" if strict else ", raise_warning=True"
    checks: list[str] = []
    bounds = _pandera_between(col.lower_bound, col.upper_bound, "")
    if bounds:
        checks.append(bounds)
    expected = _pandera_between(col.minimum, col.maximum, soft)
    if expected:
        checks.append(expected)
    if col.categories is not None:
        checks.append(f"pa.Check.isin({list(col.categories)!r})")
    tails = col.tails
    if tails is not None:
        lo, hi = tails
        frac = col.max_tail_fraction
        pad = " " * 20
        checks.append(
            "pa.Check(\n"
            f"{pad}lambda s: len(s) < {min_rows}\n"
            f"{pad}or ((s < {lo!r}) | (s > {hi!r})).mean() <= {frac!r},\n"
            f'{pad}name="tail_fraction",\n'
            f'{pad}error="at most {frac} outside training p01..p99",\n'
            + ("" if strict else f"{pad}raise_warning=True,\n")
            + "                )"
        )
    dtype = _PANDERA_DTYPES[(col.dtype, col.nullable)]
    out = [
        f"        {col.name!r}: pa.Column(",
        f"            {dtype},",
        f"            nullable={col.nullable},",
        f"            required={col.required},",
        "            coerce=True,",
    ]
    if checks:
        out.append("            checks=[")
        out.extend(f"                {check}," for check in checks)
        out.append("            ],")
    out.append("        ),")
    return out


__all__ = ["EXPORT_FORMATS", "export_contract", "to_great_expectations", "to_pandera"]
