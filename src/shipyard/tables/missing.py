"""Which CSV / TSV field values mean "missing": one rule for every reader in Shipyard.

A field is missing when its whole text, quoted or not, is exactly one of
:data:`MISSING_WORDS`: the empty field and pandas' default missing-value words
(``NA``, ``N/A``, ``n/a``, ``null``, ``NULL``, ``None``, ``NaN``, ``nan``,
``#N/A`` ...). That is what ``pandas.read_csv`` (and so MLflow's ``/invocations``)
does by default, so a file means the same to Shipyard as to pandas. The match is
case-sensitive and exact: ``na``, ``none``, ``" NA"`` and ``-`` stay text.

Every CSV reader uses this list: the streaming reader behind ``shipyard predict``
(pyarrow), :func:`~shipyard.tables.read_table` (``shipyard validate``, ``drift``,
feedback files), the ``/invocations`` CSV body, and the edge bundle's runners,
which find the list in ``manifest.json`` (``csv_missing``) because they run
without pandas, and DuckDB's ``read_csv`` for feature sources. Quoting does not
protect a word: pandas reads ``"NA"`` as missing too, so pyarrow is told to do the
same (``quoted_strings_can_be_null``).

The list is written out rather than taken from pandas at run time so that it does
not change under a user when pandas is upgraded, and so the edge runners can carry
it; a test checks it still equals the installed pandas' default list.
"""

from __future__ import annotations

from typing import Any

#: The CSV field values read as missing (exact, case-sensitive, quoted or not).
#: pandas' default list (``pandas._libs.parsers.STR_NA_VALUES``), as of pandas 2-3.
MISSING_WORDS: tuple[str, ...] = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


def pandas_csv_options() -> dict[str, Any]:
    """Keyword arguments for ``pandas.read_csv``: exactly :data:`MISSING_WORDS`, no others.

    ``keep_default_na=False`` so an upgraded pandas' list cannot differ from ours.
    """
    return {"na_values": list(MISSING_WORDS), "keep_default_na": False}


def arrow_null_options() -> dict[str, Any]:
    """Keyword arguments for ``pyarrow.csv.ConvertOptions`` that apply the same rule.

    pyarrow's default list lacks ``None`` and ``<NA>``, and by default a string column
    keeps them all as text; ``quoted_strings_can_be_null`` makes ``"NA"`` missing as
    pandas does.
    """
    return {
        "null_values": list(MISSING_WORDS),
        "strings_can_be_null": True,
        "quoted_strings_can_be_null": True,
    }


def duckdb_nullstr() -> str:
    """DuckDB ``read_csv``'s ``nullstr`` argument (SQL) for the same rule (feature sources).

    DuckDB by default reads only the empty field as missing; quoted words count too
    (its ``allow_quoted_nulls`` default), as in pandas.
    """
    words = ", ".join("'" + word.replace("'", "''") + "'" for word in MISSING_WORDS)
    return f"nullstr = [{words}]"


__all__ = ["MISSING_WORDS", "arrow_null_options", "duckdb_nullstr", "pandas_csv_options"]
