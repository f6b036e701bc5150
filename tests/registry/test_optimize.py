"""ONNX compilation: agreement with the original, fallback with a reason, serving with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
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


# -- pipelines with text columns (per-column inputs, string tensors) -----------------------


def diabetes_with_text() -> tuple[pd.DataFrame, pd.Series]:
    """Diabetes with its sex as text and the age in named bands: real string columns."""
    from shipyard.quickstart import diabetes_frame

    X, target = diabetes_frame()
    X = X.copy()
    X["sex"] = np.where(X["sex"] > 0, "male", "female")
    X["age_band"] = pd.cut(X["age"], 4, labels=["young", "adult", "middle", "senior"]).astype(str)
    return X, (target > 140).map({True: "high", False: "low"}).rename("progression")


def text_pipeline(final: object) -> Pipeline:
    X, _ = diabetes_with_text()
    numbers = [c for c in X.columns if c not in ("sex", "age_band")]
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), numbers),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["sex", "age_band"]),
        ]
    )
    return Pipeline([("pre", encode), ("clf", final)])


def test_a_column_transformer_with_text_columns_converts_with_string_inputs(
    client: Shipyard,
) -> None:
    import onnx

    X, y = diabetes_with_text()
    pipe = text_pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    version = client.registry.log_model(pipe, "diabetes", sample=X)
    for sample in (X, None):  # the training rows, then rows drawn from ranges and categories
        outcome = optimize_version(client.registry, version.ref, sample=sample)
        assert outcome.status == "verified", outcome.detail
    record = client.registry.resolve(version.ref)
    graph = onnx.load_model_from_string(client.registry.artifacts.get_bytes(outcome.digest))
    kinds = {i.name: i.type.tensor_type.elem_type for i in graph.graph.input}
    assert set(kinds) == set(X.columns)  # one input per column, by name
    assert kinds["sex"] == onnx.TensorProto.STRING and kinds["bmi"] == onnx.TensorProto.FLOAT
    fast = compiled_model(client.registry, record, client.registry.load(version.ref))
    assert isinstance(fast.predictor, CompiledPredictor)
    rows = X.sample(50, random_state=0)
    assert fast.predict(rows.to_dict("records")).tolist() == pipe.predict(rows).tolist()
    np.testing.assert_allclose(fast.predict_proba(rows), pipe.predict_proba(rows), atol=1e-5)


def test_text_without_known_values_is_verified_on_the_stored_training_rows(
    client: Shipyard,
) -> None:
    """A text column with more than 20 distinct values has no categories to draw from:
    without a sample, the version's stored training rows are the reference."""
    X, y = diabetes_with_text()
    X["clinic"] = [f"clinic-{i % 37}" for i in range(len(X))]
    numbers = [c for c in X.columns if c not in ("sex", "age_band", "clinic")]
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), numbers),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["sex", "age_band", "clinic"]),
        ]
    )
    pipe = Pipeline([("pre", encode), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y)
    version = client.registry.log_model(pipe, "clinics", sample=X)
    outcome = optimize_version(client.registry, version.ref)
    assert outcome.status == "verified", outcome.detail
    assert outcome.detail.startswith(f"{len(X)} rows")


def test_log_model_optimize_true_compiles_a_text_pipeline(tmp_path: Path) -> None:
    import shipyard

    X, y = diabetes_with_text()
    pipe = text_pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    configured = shipyard.configure(Settings(home=tmp_path / "home", user="api"))
    try:
        version = shipyard.log_model(pipe, "diabetes", sample=X, optimize=True)
        assert version.tags["onnx_status"] == "verified", version.tags.get("onnx_detail")
        # One that cannot be compiled is registered all the same, with a warning.
        custom = NearestMeanClassifier().fit(X.select_dtypes("number"), y)
        with pytest.warns(UserWarning, match="not compiled to ONNX"):
            other = shipyard.log_model(
                custom, "custom", sample=X.select_dtypes("number"), optimize=True,
                trusted_pickle=True,
            )  # fmt: skip
        assert other.tags["onnx_status"] == "failed"
    finally:
        configured.close()


def test_a_compiled_text_pipeline_serves_through_onnxruntime(client: Shipyard) -> None:
    from live_server import LiveServer
    from shipyard.serving import ServeOptions, create_app

    X, y = diabetes_with_text()
    pipe = text_pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    version = client.registry.log_model(pipe, "diabetes", sample=X)
    assert optimize_version(client.registry, version.ref, sample=X).verified
    client.registry.set_alias("diabetes", "production", version.version)
    app = create_app(client, "diabetes", options=ServeOptions(prediction_log=False))
    server = LiveServer(app).start()
    try:
        assert isinstance(app.state.runtime.require().model.predictor, CompiledPredictor)
        rows = X.sample(40, random_state=1)
        with server.client() as http:
            body = http.post("/predict", json=rows.to_dict("records")).json()
            assert body["predictions"] == pipe.predict(rows).tolist()
            got = np.array([[p[c] for c in pipe.classes_] for p in body["probabilities"]])
            np.testing.assert_allclose(got, pipe.predict_proba(rows), atol=1e-5)
            csv = http.post(
                "/invocations", content=rows.to_csv(index=False),
                headers={"content-type": "text/csv"},
            )  # fmt: skip
            assert csv.json()["predictions"] == pipe.predict(rows).tolist()
    finally:
        server.stop()


def _cli(client: Shipyard, *args: str) -> Any:
    from shipyard.cli.main import app

    return CliRunner().invoke(app, list(args), obj=client)


def test_cli_optimize_exit_status_says_whether_it_worked(client: Shipyard) -> None:
    X, y = diabetes_with_text()
    pipe = text_pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    client.registry.log_model(pipe, "diabetes", sample=X)
    done = _cli(client, "optimize", "diabetes:1")
    assert done.exit_code == 0, done.output
    assert "verified" in done.stdout and "onnxruntime" in done.stdout
    # A graph that disagrees (a zero tolerance: float rounding) fails, and says why.
    disagrees = _cli(client, "optimize", "diabetes:1", "--atol", "0")
    assert disagrees.exit_code == 1
    message = " ".join(disagrees.stderr.split())
    assert message.startswith("Error: diabetes:1: the ONNX graph")
    assert "does not answer like the original" in message and "--atol" in message
    assert "keep answering with the original model (sklearn)" in message
    # A model no converter knows fails without --strict too, naming it in plain words.
    iris_x, labels = iris_frame()
    client.registry.log_model(
        NearestMeanClassifier().fit(iris_x, labels), "custom", sample=iris_x, trusted_pickle=True
    )
    failed = _cli(client, "optimize", "custom:1", "--trusted-pickle")
    assert failed.exit_code == 1
    message = " ".join(failed.stderr.split())
    assert "ONNX conversion failed" in message and "NearestMeanClassifier" in message
    assert "Traceback" not in failed.output and "shape calculator" not in message
    as_json = _cli(client, "optimize", "custom:1", "--trusted-pickle", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["status"] == "failed"


@pytest.mark.parametrize("kind", ["forest", "boosting"])
def test_cli_optimize_verifies_regressors_with_a_relative_tolerance(
    client: Shipyard, kind: str
) -> None:
    """Regression values in the hundreds of thousands (a price) come out of a float32
    graph a few hundredths apart: exact to 7 digits, so verified; an absolute tolerance
    made for probabilities refused every such regressor."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    price = y * 1_000 + 100_000
    model = (
        RandomForestRegressor(n_estimators=10, random_state=0)
        if kind == "forest"
        else GradientBoostingRegressor(n_estimators=30, random_state=0)
    ).fit(X, price)
    client.registry.log_model(model, "price", sample=X)
    done = _cli(client, "optimize", "price:1", "--json")
    assert done.exit_code == 0, done.output
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "verified", outcome["detail"]
    assert "rtol" in outcome["detail"]
    served = compiled_model(
        client.registry, client.registry.resolve("price:1"), client.registry.load("price:1")
    )
    np.testing.assert_allclose(served.predict(X.head(50)), model.predict(X.head(50)), rtol=1e-4)


def test_cli_optimize_refuses_a_regressor_graph_that_answers_wrong(
    client: Shipyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversion that gives other values (here: the graph of a forest fitted on another
    target) is refused whatever the relative tolerance allows for rounding."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    from shipyard.registry import optimize as optimize_module

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    client.registry.log_model(
        RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y * 1_000), "price", sample=X
    )
    client.registry.log_model(
        RandomForestRegressor(n_estimators=10, random_state=1).fit(X, y * 1_010), "other", sample=X
    )
    wrong = client.registry.load("other:1")
    real_convert = optimize_module.convert
    monkeypatch.setattr(optimize_module, "convert", lambda _m, **kw: real_convert(wrong, **kw))
    refused = _cli(client, "optimize", "price:1", "--json")
    assert refused.exit_code == 1
    outcome = json.loads(refused.stdout)
    assert outcome["status"] == "disagrees", outcome["detail"]
    assert "max |prediction diff|" in outcome["detail"]


def test_cli_optimize_rtol_flag_reaches_the_verification(client: Shipyard) -> None:
    """``--rtol`` is what verifies a large-valued regressor: with it at zero (and
    ``--atol`` at zero) the same float32 graph is refused, with the default it passes."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    price = y * 1_000.37 + 100_000.123  # not whole: float32 rounds it
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, price)
    client.registry.log_model(model, "price", sample=X, optimize=False)
    refused = _cli(client, "optimize", "price:1", "--rtol", "0", "--atol", "0", "--json")
    assert refused.exit_code == 1, refused.output
    assert json.loads(refused.stdout)["status"] != "verified"
    done = _cli(client, "optimize", "price:1", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "verified"


# -- named inputs fed straight from validated columns (the serving path) -------------------


def iris_with_colour() -> tuple[pd.DataFrame, pd.Series]:
    """Iris with a text column (never missing in training: a missing one is refused)."""
    X, y = iris_frame()
    colour = np.random.default_rng(0).choice(["red", "green", "blue"], len(X))
    return X.assign(colour=colour), y


def _colour_pipeline() -> Pipeline:
    numbers = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), numbers),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
        ]
    )
    return Pipeline([("pre", encode), ("clf", LogisticRegression(max_iter=1000))])


def _requests(X: pd.DataFrame, text: list[str]) -> list[dict[str, Any]]:
    """Training rows, some with text the model never saw."""
    records = X.sample(30, random_state=2).to_dict("records")
    for i, record in enumerate(records):
        if i % 5 == 1:
            record[text[i % len(text)]] = "never-seen"
    return records


@pytest.mark.parametrize("dataset", ["diabetes", "iris-colour"])
def test_columns_feed_answers_what_the_frame_feed_answers(client: Shipyard, dataset: str) -> None:
    from shipyard.errors import SchemaError
    from shipyard.registry.signature import ColumnBatch

    if dataset == "diabetes":
        X, y = diabetes_with_text()
        pipe, text = text_pipeline(LogisticRegression(max_iter=1000)).fit(X, y), ["sex", "age_band"]
    else:
        X, y = iris_with_colour()
        pipe, text = _colour_pipeline().fit(X, y), ["colour"]
    version = client.registry.log_model(pipe, dataset, sample=X)
    assert version.tags["onnx_status"] == "verified", version.tags.get("onnx_detail")
    fast = compiled_model(client.registry, client.registry.resolve(version.ref),
                          client.registry.load(version.ref))  # fmt: skip
    records = _requests(X, text)
    batch = fast.prepare_request(records)
    assert isinstance(batch, ColumnBatch)
    pd.testing.assert_frame_equal(batch.frame(), fast.prepare(records))
    want_labels, want_proba = fast.score(fast.prepare(records))
    got_labels, got_proba = fast.score(batch)
    assert got_labels.tolist() == want_labels.tolist()
    assert want_proba is not None and got_proba is not None
    assert np.array_equal(got_proba, want_proba)
    # One record at a time, and those records merged as the batcher merges them.
    singles = [fast.prepare_request(r) for r in records]
    merged_labels, merged_proba = fast.score(ColumnBatch.concat(singles))
    assert merged_labels.tolist() == want_labels.tolist()
    assert np.array_equal(merged_proba, want_proba)
    for record, single in list(zip(records, singles, strict=True))[:8]:
        labels, proba = fast.score(single)
        frame_labels, frame_proba = fast.score(fast.prepare(record))
        assert labels.tolist() == frame_labels.tolist()
        assert np.array_equal(proba, frame_proba)
    # A number beyond float32: the original model answers it, on either path.
    huge = [records[2], {**records[3], X.select_dtypes("number").columns[0]: 1e39}]
    assert fast.predictor.predict_both_columns(fast.prepare_request(huge).columns) is None
    labels, proba = fast.score(fast.prepare_request(huge))
    frame_labels, frame_proba = fast.score(fast.prepare(huge))
    assert labels.tolist() == frame_labels.tolist() and np.array_equal(proba, frame_proba)
    # Bad input: the same error, word for word. Missing values are refused here (the
    # training rows had none; a graph fed "" for a missing text would not verify).
    number = X.select_dtypes("number").columns[1]
    for bad in (
        {**records[0], text[0]: 5},
        [records[1], {**records[0], text[-1]: None}],
        [{**records[0], number: float("nan")}],
    ):
        with pytest.raises(SchemaError) as by_frame:
            fast.prepare(bad)
        with pytest.raises(SchemaError) as by_columns:
            fast.prepare_request(bad)
        assert str(by_columns.value) == str(by_frame.value)
