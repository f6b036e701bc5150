"""The pandera and Great Expectations forms of a contract."""

from __future__ import annotations

import ast
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from peers import peer_venv_python
from shipyard.errors import InvalidInputError
from shipyard.validation.contract_checks import check_contract
from shipyard.validation.contract_export import (
    export_contract,
    to_great_expectations,
    to_pandera,
)
from shipyard.validation.contracts import infer_contract

GE_TYPES = {
    "expect_column_to_exist",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
}


def test_great_expectations_legacy_suite(adult) -> None:
    contract = infer_contract(adult)
    suite = json.loads(export_contract(contract, "gx", name="adult:1"))
    assert suite["expectation_suite_name"] == "adult:1"
    assert set(suite) == {
        "expectation_suite_name",
        "data_asset_type",
        "ge_cloud_id",
        "expectations",
        "meta",
    }
    expectations = suite["expectations"]
    assert {e["expectation_type"] for e in expectations} == GE_TYPES
    assert all(set(e) == {"expectation_type", "kwargs", "meta"} for e in expectations)

    def of(kind: str, column: str) -> list[dict]:
        return [
            e["kwargs"]
            for e in expectations
            if e["expectation_type"] == kind and e["kwargs"]["column"] == column
        ]

    age = contract.column("age")
    bounds, expected, tails = of("expect_column_values_to_be_between", "age")
    assert bounds == {"column": "age", "min_value": 0.0, "max_value": None}
    assert expected == {"column": "age", "min_value": age.minimum, "max_value": age.maximum}
    assert tails["mostly"] == pytest.approx(0.9)
    assert tails["min_value"] == age.quantiles["p01"]
    # Soft expectations are warnings, hard ones critical (GX 0.x keeps it in meta).
    severity = {
        (e["kwargs"]["column"], e["meta"].get("shipyard_expectation", e["expectation_type"])): e[
            "meta"
        ]["severity"]
        for e in expectations
    }
    assert severity["age", "bounds"] == "critical"
    assert severity["age", "range"] == severity["age", "tails"] == "warning"
    assert severity["workclass", "expect_column_values_to_be_in_set"] == "critical"
    assert of("expect_column_values_to_be_in_set", "workclass") == [
        {"column": "workclass", "value_set": ["Gov", "Private", "Self-emp"]}
    ]
    # Nullable columns carry no not-null expectation; the others do.
    assert of("expect_column_values_to_not_be_null", "workclass") == []
    assert of("expect_column_values_to_not_be_null", "age") == [{"column": "age"}]
    assert "int64" in of("expect_column_values_to_be_in_type_list", "age")[0]["type_list"]


def test_great_expectations_1x_suite_uses_type_and_name(adult) -> None:
    suite = to_great_expectations(infer_contract(adult), suite_name="s", gx_version="1")
    assert suite["name"] == "s"
    assert all("type" in e and "expectation_type" not in e for e in suite["expectations"])
    by_rule = {e["meta"].get("shipyard_expectation"): e["severity"] for e in suite["expectations"]}
    assert by_rule == {
        None: "critical",
        "bounds": "critical",
        "range": "warning",
        "tails": "warning",
    }
    strict = to_great_expectations(infer_contract(adult, strict=True), gx_version="1")
    assert {e["severity"] for e in strict["expectations"]} == {"critical"}
    assert strict["meta"]["shipyard"]["strict"] is True
    with pytest.raises(InvalidInputError):
        to_great_expectations(infer_contract(adult), gx_version="2")  # type: ignore[arg-type]


def test_pandera_source_is_valid_python_with_one_column_per_contract_column(adult) -> None:
    contract = infer_contract(adult)
    source = to_pandera(contract, name="adult:1")
    compile(source, "schema.py", "exec")
    tree = ast.parse(source)
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "DataFrameSchema"
    )
    columns = call.args[0]
    assert isinstance(columns, ast.Dict)
    assert [k.value for k in columns.keys] == list(contract.names)  # type: ignore[union-attr]
    assert "pa.Check.isin(['Gov', 'Private', 'Self-emp'])" in source
    age = contract.column("age")
    assert "pa.Check.ge(0.0)" in source  # the hard sign bound fails validation
    # The expected range and the tail share only warn, unless the contract is strict.
    soft = f"pa.Check.in_range({age.minimum!r}, {age.maximum!r}, raise_warning=True)"
    assert soft in source
    assert source.count("raise_warning=True") == 2 * 3  # range + tails on 3 number columns
    strict = to_pandera(infer_contract(adult, strict=True))
    assert "raise_warning" not in strict
    assert f"pa.Check.in_range({age.minimum!r}, {age.maximum!r})" in strict
    assert "nullable=True" in source and '"Int64"' not in source


#: pandera runs in its own venv (it is no dependency of Shipyard), built by bench/_peers.py.
PANDERA_REQUIREMENTS = ["pandera>=0.24,<1", "pandas<3", "pyarrow"]
_PANDERA_CHILD = """
import json, sys, warnings
import pandas as pd
namespace = {}
exec(open(sys.argv[1]).read(), namespace)
out = {}
for path in sys.argv[2:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            namespace["schema"].validate(pd.read_parquet(path), lazy=True)
            status = "valid"
        except Exception as exc:
            status = type(exc).__name__ + ": " + str(exc)[:300]
    out[path.rsplit("/", 1)[-1]] = {"status": status, "warnings": [str(w.message) for w in caught]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pandera_python() -> Path:
    return peer_venv_python("pandera", PANDERA_REQUIREMENTS)


@pytest.mark.slow
def test_pandera_runs_the_exported_schema_errors_fail_warnings_warn(
    adult, tmp_path: Path, pandera_python: Path
) -> None:
    """The exported schema, run by pandera itself: hard expectations fail, soft ones warn."""
    contract = infer_contract(adult)
    (tmp_path / "schema.py").write_text(to_pandera(contract))
    (tmp_path / "strict.py").write_text(to_pandera(replace(contract, strict=True)))
    unusual = adult.copy()
    unusual.loc[3, "capital_gain"] = 10 * contract.column("capital_gain").maximum
    impossible = adult.copy()
    impossible.loc[3, "capital_gain"] = -5.0
    unknown = adult.copy()
    unknown.loc[3, "workclass"] = "Alien"
    frames = {"clean": adult, "unusual": unusual, "impossible": impossible, "unknown": unknown}
    for name, frame in frames.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
        # Shipyard's own verdict on the same frame, for the comparison below.
        assert check_contract(contract, frame).passed == (name in ("clean", "unusual"))

    def run(schema: str) -> dict:  # type: ignore[type-arg]
        paths = [str(tmp_path / f"{n}.parquet") for n in frames]
        done = subprocess.run(
            [str(pandera_python), "-c", _PANDERA_CHILD, str(tmp_path / schema), *paths],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    lenient = run("schema.py")
    assert lenient["clean.parquet"] == {"status": "valid", "warnings": []}
    assert lenient["unusual.parquet"]["status"] == "valid"  # a warning, as in Shipyard
    assert any("capital_gain" in w for w in lenient["unusual.parquet"]["warnings"])
    assert lenient["impossible.parquet"]["status"].startswith("SchemaErrors")
    assert "greater_than_or_equal_to(0.0)" in lenient["impossible.parquet"]["status"]
    assert lenient["unknown.parquet"]["status"].startswith("SchemaErrors")
    strict = run("strict.py")
    assert strict["clean.parquet"]["status"] == "valid"
    assert strict["unusual.parquet"]["status"].startswith("SchemaErrors")  # strict: it fails


def test_unknown_form_is_refused(adult) -> None:
    with pytest.raises(InvalidInputError, match="pandera"):
        export_contract(infer_contract(adult), "yaml")
