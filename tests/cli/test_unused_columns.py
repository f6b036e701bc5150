"""A column the model provably never reads is optional wherever rows are scored.

A pipeline whose ``ColumnTransformer`` picks its columns by name with
``remainder="drop"`` never reads the others (here ``application date``): the edge
runners already score a row without it. Serving (``/predict``, ``/invocations``,
``/v2``), ``shipyard predict`` and Python accept it absent or missing, the
signature says "unused by the model" in ``models show``, and a pipeline that
passes the remainder through keeps it required.
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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

from live_server import LiveServer
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import SchemaError
from shipyard.serving.app import create_app
from shipyard.serving.options import ServeOptions

DATE = "application date"


def _loans(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "pro"], n),
            DATE: pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
        }
    )
    return X, (X["income"] > 50).to_numpy(dtype=int)


def _pipeline(remainder: str) -> Pipeline:
    encode = ColumnTransformer(
        [("num", StandardScaler(), ["income"]), ("cat", OneHotEncoder(), ["plan"])],
        remainder=remainder,
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression())])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    client = Shipyard(Settings(home=tmp_path_factory.mktemp("unused") / "home", user="t"))
    X, y = _loans()
    client.registry.log_model(_pipeline("drop").fit(X, y), "loans", sample=X, optimize=False)
    # The same pipeline compiled to ONNX, whose graph has no input for the date.
    client.registry.log_model(_pipeline("drop").fit(X, y), "loans", sample=X)
    # The date goes through to the model: it is read, so it stays required.
    X_num = X.assign(**{DATE: X[DATE].astype("int64") // 10**9 / 86400.0})
    keep = _pipeline("passthrough").fit(X_num, y)
    client.registry.log_model(keep, "kept", sample=X_num, optimize=False)
    yield client
    client.close()


def _cli(client: Shipyard, *args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], obj=client)


def test_the_signature_marks_the_dropped_column_unused(client: Shipyard) -> None:
    spec = {c.name: c for c in client.registry.load("loans:1").signature.inputs}
    assert spec[DATE].unused and spec[DATE].nullable
    assert not spec["income"].unused and not spec["plan"].unused
    kept = {c.name: c for c in client.registry.load("kept:1").signature.inputs}
    assert not kept[DATE].unused
    # Drift watches what the model reads: a dropped column that stops arriving is no
    # vanished feature.
    profile = client.references.load(client.models.get_version("loans", 1))
    assert set(profile.columns) == {"income", "plan"}
    shown = _cli(client, "models", "show", "loans:1")
    assert shown.exit_code == 0, shown.output
    assert "unused by the model" in " ".join(shown.output.split())


def test_python_scores_rows_without_the_date_or_with_it_missing(client: Shipyard) -> None:
    X, _ = _loans()
    model = client.registry.load("loans:1")
    expected = model.predict(X.head(5))
    assert list(model.predict(X.head(5).drop(columns=[DATE]))) == list(expected)
    assert list(model.predict(X.head(5).assign(**{DATE: pd.NaT}))) == list(expected)
    records = X.head(2).drop(columns=[DATE]).to_dict("records")
    assert len(model.predict(records)) == 2 and len(model.predict(records[0])) == 1
    with pytest.raises(SchemaError) as info:
        client.registry.load("kept:1").predict(X.head(2).drop(columns=[DATE]))
    assert info.value.field == DATE


def test_batch_scoring_scores_a_blank_date(client: Shipyard, tmp_path: Path) -> None:
    X, _ = _loans()
    rows = X.head(6).copy()
    rows[DATE] = rows[DATE].astype(object)
    rows.loc[[1, 4], DATE] = None
    rows.to_csv(tmp_path / "in.csv", index=False)
    X.head(6).drop(columns=[DATE]).to_csv(tmp_path / "nodate.csv", index=False)
    for name in ("in.csv", "nodate.csv"):
        result = _cli(
            client, "predict", "loans:1", "-i", tmp_path / name, "-o", tmp_path / f"out-{name}",
            "--rejects", tmp_path / f"rej-{name}", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert (summary["rows_scored"], summary["rows_rejected"]) == (6, 0), summary


@pytest.mark.parametrize(("version", "check"), [(1, "off"), (1, "reject"), (2, "off")])
def test_every_route_scores_a_row_without_the_date(
    client: Shipyard, version: int, check: str
) -> None:
    X, _ = _loans()
    row = X.iloc[0]
    record = {"income": float(row["income"]), "plan": str(row["plan"])}
    nulled = {**record, DATE: None}
    v2 = {
        "inputs": [
            {"name": "income", "shape": [1], "datatype": "FP64", "data": [record["income"]]},
            {"name": "plan", "shape": [1], "datatype": "BYTES", "data": [record["plan"]]},
        ]
    }
    options = ServeOptions(poll_interval=0.1, contract_check=check, prediction_log=False)
    server = LiveServer(create_app(client, f"loans:{version}", options=options)).start()
    try:
        with server.client() as http:
            schemas = http.get("/openapi.json").json()["components"]["schemas"]
            answers = [
                http.post("/predict", json=record),
                http.post("/predict", json=nulled),
                http.post("/invocations", json={"dataframe_records": [record, nulled]}),
                http.post("/v2/models/loans/infer", json=v2),
            ]
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    # /docs shows the date as optional.
    record = next(v for k, v in schemas.items() if k.endswith("Record"))
    assert DATE not in record.get("required", []) and "income" in record["required"]
    assert "unused by the model" in json.dumps(record["properties"][DATE])
