"""Boosters with category columns through the real CLI: predict, optimize, show, validate, drift."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from category_data import (
    CATEGORICAL,
    RADIUS_BANDS,
    banded_cancer,
    lightgbm_model,
    xgboost_model,
)
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings

BUILDERS = {"lightgbm": lightgbm_model, "xgboost": xgboost_model}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    return banded_cancer()


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, data: tuple[pd.DataFrame, pd.Series]
) -> Iterator[tuple[Shipyard, dict[str, Any]]]:
    client = Shipyard(Settings(home=tmp_path_factory.mktemp("cat-cli") / "home", user="t"))
    X, y = data
    models = {}
    for name, build in BUILDERS.items():
        models[name] = build(X, y)
        client.registry.log_model(models[name], name, sample=X)
        client.registry.set_alias(name, "production", 1)
    yield client, models
    client.close()


def run(client: Shipyard, *args: str | Path) -> Any:
    # The environment too: `shipyard drift` builds its own client from it.
    env = {"SHIPYARD_HOME": str(client.settings.home), "SHIPYARD_USER": "t", "SHIPYARD_DB": None}
    return CliRunner().invoke(app, [str(a) for a in args], obj=client, env=env)


@pytest.mark.parametrize("flavor", sorted(BUILDERS))
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_batch_scoring_answers_like_the_model(
    registry: tuple[Shipyard, dict[str, Any]],
    data: tuple[pd.DataFrame, pd.Series],
    tmp_path: Path,
    flavor: str,
    fmt: str,
) -> None:
    client, models = registry
    X, _ = data
    rows = X.sample(300, random_state=5).reset_index(drop=True)
    # A Parquet file written elsewhere lists its categories in its own (sorted) order.
    written = rows.assign(radius_band=rows["radius_band"].cat.set_categories(sorted(RADIUS_BANDS)))
    path = tmp_path / f"in.{fmt}"
    written.to_parquet(path) if fmt == "parquet" else written.to_csv(path, index=False)
    if fmt == "parquet":
        back = pd.read_parquet(path)["radius_band"]
        assert list(back.cat.categories) == sorted(RADIUS_BANDS)
    result = run(client, "predict", flavor, "-i", path, "-o", tmp_path / "out.parquet", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_scored"] == 300
    out = pd.read_parquet(tmp_path / "out.parquet")
    model = models[flavor]
    assert out["prediction"].tolist() == model.predict(rows).tolist()
    proba = out[[c for c in out.columns if c.startswith("proba_")]].to_numpy()
    np.testing.assert_allclose(proba, model.predict_proba(rows), atol=1e-9)


def test_an_unknown_category_is_a_reject_with_its_reason(
    registry: tuple[Shipyard, dict[str, Any]], data: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    client, _ = registry
    X, _ = data
    rows = X.head(10).astype({c: object for c in CATEGORICAL})
    rows.loc[4, "radius_band"] = "r9"
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = run(
        client, "predict", "lightgbm", "-i", tmp_path / "in.csv", "-o", tmp_path / "o.csv",
        "--rejects", tmp_path / "bad.csv", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows_scored"], summary["rows_rejected"]) == (9, 1)
    assert summary["rejects"][0]["row"] == 4
    reason = summary["rejects"][0]["reason"]
    assert "radius_band" in reason and "'r9'" in reason and str(RADIUS_BANDS) in reason
    assert pd.read_csv(tmp_path / "bad.csv")["radius_band"].tolist() == ["r9"]


@pytest.mark.parametrize("flavor", sorted(BUILDERS))
def test_optimize_compiles_and_models_show_says_so(
    registry: tuple[Shipyard, dict[str, Any]], flavor: str
) -> None:
    client, _ = registry
    result = run(client, "optimize", f"{flavor}:1")
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    shown = run(client, "models", "show", f"{flavor}:1")
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "Runtime: onnxruntime" in flat
    assert "(category)" in flat and "r5, r1, r7, r3," in flat
    as_json = json.loads(run(client, "models", "show", f"{flavor}:1", "--json").stdout)
    band = next(c for c in as_json["manifest"]["signature"]["inputs"] if c["name"] == "radius_band")
    assert band["categorical"] and band["categories"] == RADIUS_BANDS  # in training order


def test_validate_data_and_drift_on_category_columns(
    registry: tuple[Shipyard, dict[str, Any]], data: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    client, _ = registry
    X, _ = data
    X.to_parquet(tmp_path / "clean.parquet")
    X.to_csv(tmp_path / "clean.csv", index=False)
    for path in (tmp_path / "clean.parquet", tmp_path / "clean.csv"):
        result = run(client, "validate", "data", "xgboost:1", path)
        assert result.exit_code == 0, result.output
        drift = run(client, "drift", "--reference", "xgboost:1", "--current", path)
        assert drift.exit_code == 0, drift.output
    shifted = X.astype({"radius_band": object}).assign(radius_band="r8")
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    drift = run(client, "drift", "--reference", "xgboost:1", "--current", tmp_path / "shifted.csv")
    assert "radius_band" in drift.output
    assert "DRIFT" in " ".join(line for line in drift.output.splitlines() if "radius_band" in line)
