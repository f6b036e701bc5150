"""A category never seen in training, one rule on every path.

The rule (README, "Unseen categories"): the value is a data-contract violation
wherever the contract is checked (`validate data`, `serve --contract-check`),
reported as ``in_set`` for the column with the known categories. Whether the row
is *scored* is the model's call: a pipeline whose encoder ignores unknown values
(``OneHotEncoder(handle_unknown="ignore")``) scores it; one that cannot
(``handle_unknown="error"``) answers a 4xx on every route, a reject in batch
scoring and a ``SchemaError`` in Python, each naming the column and the known
categories, never a 500 or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

from live_server import LiveServer
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import SchemaError, UnscorableInputError
from shipyard.serving.app import create_app
from shipyard.serving.options import ServeOptions

KNOWN = ["east", "north", "south"]


def _wine() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X[["alcohol", "malic_acid", "color_intensity", "proline"]].copy()
    X["region"] = np.where(X.alcohol > 13, "north", np.where(X.alcohol > 12.5, "south", "east"))
    return X, y


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    client = Shipyard(Settings(home=tmp_path_factory.mktemp("unseen") / "home", user="t"))
    X, y = _wine()
    for mode in ("ignore", "error"):
        encode = ColumnTransformer(
            [("region", OneHotEncoder(handle_unknown=mode), ["region"])],
            remainder=StandardScaler(),
        )
        pipe = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])
        client.registry.log_model(pipe.fit(X, y), mode, sample=X)
        client.registry.set_alias(mode, "production", 1)
    yield client
    client.close()


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, _ = _wine()
    new = X.head(5).reset_index(drop=True)
    new.loc[2, "region"] = "west"
    path = tmp_path_factory.mktemp("rows") / "new.csv"
    new.to_csv(path, index=False)
    return path


def _cli(client: Shipyard, *args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], obj=client)


@pytest.mark.parametrize("mode", ["ignore", "error"])
def test_validate_data_reports_the_unknown_category_as_a_violation(
    client: Shipyard, rows: Path, mode: str
) -> None:
    result = _cli(client, "validate", "data", mode, rows, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    [violation] = [v for v in report["violations"] if v["column"] == "region"]
    assert violation["expectation"] == "in_set" and violation["severity"] == "error"
    assert "west" in json.dumps(violation)


def test_batch_scoring_follows_the_model(client: Shipyard, rows: Path, tmp_path: Path) -> None:
    scored = _cli(
        client, "predict", "ignore", "-i", rows, "-o", tmp_path / "a.csv", "--rejects",
        tmp_path / "ra.csv", "--json",
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["rows_scored"] == 5
    refused = _cli(
        client, "predict", "error", "-i", rows, "-o", tmp_path / "b.csv", "--rejects",
        tmp_path / "rb.csv", "--json",
    )  # fmt: skip
    assert refused.exit_code == 0, refused.output
    summary = json.loads(refused.stdout)
    assert (summary["rows_scored"], summary["rows_rejected"]) == (4, 1)
    [reject] = pd.read_csv(tmp_path / "rb.csv").to_dict("records")
    assert reject["row_id"] == 2
    assert reject["reject_reason"].startswith("region: 'west'")
    assert str(KNOWN) in reject["reject_reason"]


def test_an_ignored_unseen_category_is_not_blamed_for_another_rows_failure(
    client: Shipyard, tmp_path: Path
) -> None:
    """A forest refuses a number beyond float32 in row 3 ("value too large for
    dtype('float32')"); row 2's unseen region, which its encoder ignores, is fine."""
    X, y = _wine()
    encode = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="ignore"), ["region"])], remainder="passthrough"
    )
    forest = Pipeline([("encode", encode), ("model", RandomForestClassifier(10, random_state=0))])
    client.registry.log_model(forest.fit(X, y), "forest", sample=X, optimize=False)
    new = X.head(5).reset_index(drop=True)
    new.loc[2, "region"] = "west"
    new.loc[3, "proline"] = 1e308
    path = tmp_path / "mixed.csv"
    new.to_csv(path, index=False)
    with pytest.raises(UnscorableInputError) as info:
        client.registry.load("forest:1").predict(new)
    assert info.value.rows == [3] and info.value.field == "proline"
    result = _cli(
        client, "predict", "forest:1", "-i", path, "-o", tmp_path / "out.csv", "--rejects",
        tmp_path / "rejects.csv", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows_scored"], summary["rows_rejected"]) == (4, 1)
    [reject] = pd.read_csv(tmp_path / "rejects.csv").to_dict("records")
    assert reject["row_id"] == 3 and "region" not in reject["reject_reason"]


def test_python_api_names_the_column_and_known_categories(client: Shipyard, rows: Path) -> None:
    new = pd.read_csv(rows)
    assert len(client.registry.load("ignore").predict(new)) == 5
    with pytest.raises(SchemaError) as info:
        client.registry.load("error").predict(new)
    assert info.value.field == "region" and info.value.rows == [2]
    assert info.value.expected == f"one of {KNOWN}"
    assert "'west'" in str(info.value) and str(KNOWN) in str(info.value)


@pytest.mark.parametrize("check", ["off", "reject"])
def test_every_route_answers_4xx_naming_the_column_when_the_model_cannot_score(
    client: Shipyard, rows: Path, check: str
) -> None:
    record = pd.read_csv(rows).iloc[2].to_dict()
    v2 = {
        "inputs": [
            {
                "name": k,
                "shape": [1],
                "datatype": "BYTES" if isinstance(v, str) else "FP64",
                "data": [v],
            }
            for k, v in record.items()
        ]
    }
    for mode in ("ignore", "error"):
        options = ServeOptions(poll_interval=0.1, contract_check=check, prediction_log=False)
        server = LiveServer(create_app(client, mode, options=options)).start()
        try:
            with server.client() as http:
                answers = [
                    http.post("/predict", json=record),
                    http.post("/invocations", json={"dataframe_records": [record]}),
                    http.post(f"/v2/models/{mode}/infer", json=v2),
                ]
        finally:
            server.stop()
        if mode == "ignore" and check == "off":
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            continue
        for answer in answers:
            assert 400 <= answer.status_code < 500, answer.text
            assert "region" in answer.text and "west" in answer.text, answer.text
            assert all(k in answer.text for k in KNOWN), answer.text


def test_a_text_column_with_too_many_values_to_list_follows_the_same_rule(
    tmp_path: Path,
) -> None:
    """30 training cities: the signature lists no categories (more than 20), yet a city the
    encoder cannot handle is a reject naming the column in batch scoring and a
    SchemaError in Python, not a traceback; a pipeline that ignores it scores it."""
    X, y = _wine()
    X["city"] = [f"city{i % 30}" for i in range(len(X))]
    client = Shipyard(Settings(home=tmp_path / "home", user="t"))
    for mode in ("ignore", "error"):
        encode = ColumnTransformer(
            [("text", OneHotEncoder(handle_unknown=mode), ["region", "city"])],
            remainder=StandardScaler(),
        )
        pipe = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])
        client.registry.log_model(pipe.fit(X, y), f"city-{mode}", sample=X)
    [city] = [c for c in client.registry.load("city-error:1").signature.inputs if c.name == "city"]
    assert city.dtype == "string" and city.categories is None
    new = X.head(5).reset_index(drop=True)
    new.loc[3, "city"] = "atlantis"
    new.to_csv(tmp_path / "new.csv", index=False)

    assert len(client.registry.load("city-ignore:1").predict(new)) == 5
    with pytest.raises(SchemaError) as info:
        client.registry.load("city-error:1").predict(new)
    assert info.value.field == "city" and info.value.rows == [3]
    assert "'atlantis'" in str(info.value)

    refused = _cli(
        client, "predict", "city-error:1", "-i", tmp_path / "new.csv", "-o", tmp_path / "o.csv",
        "--rejects", tmp_path / "r.csv", "--json",
    )  # fmt: skip
    assert refused.exit_code == 0, refused.output
    summary = json.loads(refused.stdout)
    assert (summary["rows_scored"], summary["rows_rejected"]) == (4, 1)
    [reject] = pd.read_csv(tmp_path / "r.csv").to_dict("records")
    assert reject["row_id"] == 3 and reject["reject_reason"].startswith("city: 'atlantis'")
    client.close()
