"""ONNX compilation: agreement with the original, fallback with a reason, serving with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import iris_frame
from shipyard.registry.optimize import (
    CompiledPredictor,
    compiled_model,
    describe_optimization,
    log_model_optimized,
    optimize_version,
    reference_sample,
)


class NearestMeanClassifier(ClassifierMixin, BaseEstimator):
    """A home-made estimator: no ONNX converter knows it."""

    def fit(self, X: pd.DataFrame, y: pd.Series) -> NearestMeanClassifier:
        self.classes_ = np.unique(y)
        self.means_ = np.array(
            [np.asarray(X)[np.asarray(y) == c].mean(axis=0) for c in self.classes_]
        )
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        d = ((np.asarray(X)[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        w = np.exp(-d)
        return w / w.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@pytest.fixture
def client(settings: Settings) -> Shipyard:
    c = Shipyard(settings)
    yield c
    c.close()


def _check_agreement(client: Shipyard, ref: str, X: pd.DataFrame) -> None:
    record = client.registry.resolve(ref)
    original = client.registry.load(ref)
    fast = compiled_model(client.registry, record, original)
    assert isinstance(fast.predictor, CompiledPredictor)
    assert fast.predict(X).tolist() == original.predict(X).tolist()
    np.testing.assert_allclose(fast.predict_proba(X), original.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize(
    "estimator",
    [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        RandomForestClassifier(n_estimators=20, random_state=0),
    ],
    ids=["pipeline-logistic", "forest"],
)
def test_sklearn_models_are_verified_and_agree(client: Shipyard, estimator: object) -> None:
    X, y = iris_frame()
    version = client.registry.log_model(estimator.fit(X, y), "iris", sample=X)  # type: ignore[attr-defined]
    outcome = optimize_version(client.registry, version.ref)
    assert outcome.status == "verified", outcome.detail
    assert "classes equal" in outcome.detail and outcome.converter.startswith("skl2onnx")
    record = client.registry.resolve(version.ref)
    assert record.tags["onnx_digest"] == outcome.digest
    assert client.registry.artifacts.exists(outcome.digest)
    _check_agreement(client, version.ref, X)
    (line,) = describe_optimization(client, record)
    assert line.startswith("Runtime: onnxruntime") and "verified" in line


def test_boosted_trees_convert_with_onnxmltools(client: Shipyard) -> None:
    import lightgbm
    import xgboost

    X, y = iris_frame()
    codes = pd.Series(pd.factorize(y, sort=True)[0])
    xgb = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, codes)
    lgb = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    for name, model in (("xgb", xgb), ("lgb", lgb)):
        version = client.registry.log_model(model, name, sample=X)
        outcome = optimize_version(client.registry, version.ref)
        assert outcome.status == "verified", (name, outcome.detail)
        assert outcome.converter.startswith("onnxmltools")
        _check_agreement(client, version.ref, X)


def test_an_unconvertible_model_keeps_the_original_and_says_why(client: Shipyard) -> None:
    X, y = iris_frame()
    model = NearestMeanClassifier().fit(X, y)
    version, outcome = log_model_optimized(
        client.registry, model, "custom", sample=X, trusted_pickle=True
    )
    assert outcome.status == "failed"
    assert "conversion failed" in outcome.detail and "NearestMeanClassifier" in outcome.detail
    record = client.registry.resolve(version.ref)
    assert "onnx_digest" not in record.tags
    original = client.registry.load(version.ref, trusted_pickle=True)
    assert compiled_model(client.registry, record, original) is original
    (line,) = describe_optimization(client, record)
    assert "Runtime: original" in line and "not converted" in line


def test_a_graph_that_disagrees_is_stored_but_not_served(client: Shipyard) -> None:
    X, y = iris_frame()
    version = client.registry.log_model(
        LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X
    )
    # A tolerance of zero: float arithmetic in the graph differs in the last bits.
    outcome = optimize_version(client.registry, version.ref, atol=0.0)
    assert outcome.status == "disagrees", outcome.detail
    record = client.registry.resolve(version.ref)
    original = client.registry.load(version.ref)
    assert compiled_model(client.registry, record, original) is original
    assert "disagrees" in describe_optimization(client, record)[0]


def test_reference_sample_stays_in_the_training_ranges(client: Shipyard) -> None:
    X, y = iris_frame()
    version = client.registry.log_model(
        LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X
    )
    sample = reference_sample(client.registry.load(version.ref).signature, rows=200)
    assert len(sample) == 200 and list(sample.columns) == list(X.columns)
    assert (sample.min() >= X.min()).all() and (sample.max() <= X.max()).all()


def test_cli_optimize(client: Shipyard) -> None:
    from shipyard.cli import models
    from shipyard.cli._common import ShipyardGroup
    from shipyard.cli.optimize import optimize_command

    X, y = iris_frame()
    model = NearestMeanClassifier().fit(X, y)
    client.registry.log_model(model, "custom", sample=X, trusted_pickle=True)
    app = typer.Typer(cls=ShipyardGroup)
    app.command("optimize")(optimize_command)
    app.add_typer(models.app, name="models")

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = client

    result = CliRunner().invoke(app, ["optimize", "custom:1", "--trusted-pickle", "--strict"])
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "original model" in result.output
    shown = CliRunner().invoke(app, ["models", "show", "custom:1"])
    assert shown.exit_code == 0, shown.output
    assert "Runtime: original" in shown.output and "not converted" in shown.output
