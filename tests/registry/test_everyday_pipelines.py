"""Everyday scikit-learn pipelines compile to ONNX at registration and answer like the original.

Each pipeline here failed to compile before: a column named ``monthly charges ($)``
(the converter renames the graph's input), an integer column through a
``SimpleImputer``, a ``SimpleImputer`` on a text column, a ``OneHotEncoder`` that
learnt a missing text as a category, a ``HistGradientBoosting``
model, a ``ColumnTransformer`` picking numeric columns by name, and a date column
the model drops.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from everyday_models import KINDS, NUMBERS, churn, everyday
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.deploy import edge
from shipyard.registry.flavors.onnx import INPUTS_METADATA
from shipyard.registry.graphs import version_graph
from shipyard.registry.optimize import (
    MISSING_TEXT,
    CompiledPredictor,
    _converter_failure,
    compiled_model,
)


@pytest.fixture
def client(settings: Settings) -> Iterator[Shipyard]:
    c = Shipyard(settings)
    yield c
    c.close()


def _requests(X: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-like records of the first rows, with missing values and an empty text."""
    rows = []
    for record in X.head(12).to_dict("records"):
        row = {}
        for k, v in record.items():
            if isinstance(v, pd.Timestamp):
                v = v.isoformat()
            elif isinstance(v, float) and np.isnan(v):
                v = None
            elif isinstance(v, np.generic):
                v = v.item()
            row[k] = v
        rows.append(row)
    if "contract" in X.columns and X["contract"].isna().any():
        rows[1]["contract"] = ""  # text, not missing: kept as it is by the original
        rows[2]["contract"] = None
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_everyday_pipelines_compile_at_registration_and_serve_like_the_original(
    client: Shipyard, kind: str
) -> None:
    model, X = everyday(kind)
    _, y = churn()
    version = client.registry.log_model(model.fit(X, y), "churn", sample=X)
    record = client.registry.resolve(version.ref)
    assert record.tags["onnx_status"] == "verified", record.tags["onnx_detail"]
    original = client.registry.load(record.ref)
    fast = compiled_model(client.registry, record, original)
    assert isinstance(fast.predictor, CompiledPredictor)
    # On the training frame, and on requests as a server gets them (records).
    for data in (X, _requests(X)):
        assert fast.predict(data).tolist() == original.predict(data).tolist()
        np.testing.assert_allclose(
            fast.predict_proba(data), original.predict_proba(data), atol=1e-5
        )
    labels, proba = fast.score(fast.prepare_request(_requests(X)))
    assert labels.tolist() == original.predict(_requests(X)).tolist()
    np.testing.assert_allclose(proba, original.predict_proba(_requests(X)), atol=1e-5)


def test_the_graph_maps_renamed_inputs_to_their_columns(client: Shipyard) -> None:
    model, X = everyday("dropped-date")
    _, y = churn()
    version = client.registry.log_model(model.fit(X, y), "churn", sample=X)
    graph = onnx.load_model_from_string(
        version_graph(client.registry, client.registry.resolve(version.ref))
    )
    metadata = {p.key: p.value for p in graph.metadata_props}
    mapping = json.loads(metadata[INPUTS_METADATA])
    # skl2onnx renamed the columns; the date the model drops is no input at all.
    assert sorted(mapping["columns"].values()) == sorted([*NUMBERS, "contract"])
    assert "monthly charges ($)" not in [i.name for i in graph.graph.input]
    assert mapping["missing_text"] == MISSING_TEXT
    # The integer column feeds an imputer: declared float, cast when fed.
    types = {mapping["columns"][i.name]: i.type.tensor_type.elem_type for i in graph.graph.input}
    assert types["tenure (months)"] == onnx.TensorProto.FLOAT


def test_a_date_the_model_uses_is_refused_with_its_name(client: Shipyard) -> None:
    X, y = churn()
    # The date is encoded as a category: the model needs it, and a graph cannot take it.
    prep = ColumnTransformer(
        [
            ("numbers", SimpleImputer(), NUMBERS),
            (
                "date",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                ["signup"],
            ),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=1000)).fit(X[[*NUMBERS, "signup"]], y)
    version = client.registry.log_model(model, "dated", sample=X[[*NUMBERS, "signup"]])
    tags = client.registry.resolve(version.ref).tags
    assert tags["onnx_status"] == "failed"
    assert "column 'signup' holds datetimes and the model uses it" in tags["onnx_detail"]


def test_the_converters_real_cause_is_kept_in_the_failure() -> None:
    values = ", ".join(str(i) for i in range(400))
    try:
        try:
            raise TypeError("Field onnx.AttributeProto.ints: Expected an int, got a boolean.")
        except TypeError as cause:
            raise ValueError(
                "Unable to create node 'TreeEnsembleClassifier' with name='TreeEnsembleClassifier'"
                f" and attributes={{'base_values': array([{values}], dtype=float32),\n ...}}"
            ) from cause
    except ValueError as exc:
        detail = _converter_failure(exc)
    assert detail.startswith("ValueError: Unable to create node 'TreeEnsembleClassifier'")
    assert "array(" not in detail
    assert "caused by TypeError: Field onnx.AttributeProto.ints: Expected an int" in detail
    assert "protobuf<7.34" in detail


def _edge_model(folder: Path) -> Any:
    """The bundle's own predict.py, imported from the bundle folder."""
    spec = importlib.util.spec_from_file_location("edge_predict", folder / "predict.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["edge_predict"] = module
    spec.loader.exec_module(module)
    return module.EdgeModel(folder)


@pytest.mark.parametrize("kind", ["symbols", "dropped-date", "text-constant"])
def test_the_edge_runner_feeds_renamed_and_dropped_columns(
    client: Shipyard, tmp_path: Path, kind: str
) -> None:
    model, X = everyday(kind)
    _, y = churn()
    version = client.registry.log_model(model.fit(X, y), "churn", sample=X)
    out = tmp_path / "bundle"
    edge.export_edge(client.registry, version.ref, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graph"]["layout"] == "columns"
    assert {i["column"] for i in manifest["graph"]["inputs"]} <= set(X.columns)
    rows = _requests(X)
    for row in rows:  # a date the model does not use need not be sent to the runner
        row.pop("signup", None)
    answers = _edge_model(out).predict(rows)
    # The runners read a blank text as missing (CSV has no other way to say it).
    same = [{k: (None if v == "" else v) for k, v in row.items()} for row in _requests(X)]
    original = client.registry.load(version.ref)
    classes = [str(c) for c in original.classes]
    got = np.array([[a["probabilities"][c] for c in classes] for a in answers])
    np.testing.assert_allclose(got, original.predict_proba(same), atol=1e-5)
    assert [a["prediction"] for a in answers] == original.predict(same).tolist()
