"""One rule for which CSV field values mean missing, in every CSV reader.

The new-user trial's file: eleven rows differing only in ``region``. Before the rule,
``shipyard predict`` (pyarrow) kept ``None`` as text, the edge runners everything but
the empty field, while ``/invocations`` and ``read_table`` (pandas) read all but ``-``
and ``north`` as missing.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from shipyard.features.definitions import Source
from shipyard.features.sources import _scan
from shipyard.serving.protocols.mlflow import parse_csv
from shipyard.tables import MISSING_WORDS, CsvSource, read_table

#: The trial's region values, written as the CSV field; the first ten are missing.
REGIONS = ["", "NA", "n/a", "N/A", "null", "None", "NaN", "nan", "#N/A", "-", "north"]
MISSING = [True] * 9 + [False, False]
TEXT = "tenure,amount,region\n" + "".join(f"10,45,{r}\n" for r in REGIONS)
# Quoted, a word is missing all the same (pandas' rule); "NA " and "na" are text.
QUOTED = 'tenure,amount,region\n10,45,"NA"\n10,45,""\n10,45,"-"\n10,45,na\n10,45,"NA "\n'
QUOTED_MISSING = [True, True, False, False, False]


def test_the_words_are_pandas_default_words() -> None:
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(MISSING_WORDS) == set(STR_NA_VALUES)
    assert "-" not in MISSING_WORDS and "None" in MISSING_WORDS


@pytest.mark.parametrize(("text", "missing"), [(TEXT, MISSING), (QUOTED, QUOTED_MISSING)])
def test_every_csv_reader_finds_the_same_rows_missing(
    tmp_path: Path, text: str, missing: list[bool]
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(text)
    whole = read_table(path)["region"].isna().tolist()
    chunked = [
        flag
        for chunk in CsvSource(str(path)).chunks(["tenure", "amount", "region"], 4)
        for flag in chunk["region"].isna().tolist()
    ]
    invocations = parse_csv(text.encode())["region"].isna().tolist()
    scan = _scan(Source(name="rows", path=str(path)))
    sql = f"select region from {scan}"
    feature_source = [value is None for (value,) in duckdb.sql(sql).fetchall()]
    assert whole == missing
    assert chunked == missing
    assert invocations == missing
    assert feature_source == missing


def test_a_text_column_read_as_text_keeps_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(TEXT)
    frame = read_table(path, text_columns=["region"])
    assert frame["region"].isna().tolist() == MISSING
    assert frame["region"].tolist()[-2:] == ["-", "north"]
