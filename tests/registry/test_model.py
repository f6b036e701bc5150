"""LoadedModel: validate once, then predict; clear errors for bad input and missing proba."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from shipyard.errors import InvalidInputError, ManifestError, SchemaError, UnscorableInputError
from shipyard.registry.model import LoadedModel
from shipyard.registry.package import read_package, write_package

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


class CountingPredictor:
    """Wraps a real predictor and counts how often the model actually ran."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.classes = inner.classes
        self.feature_names = inner.feature_names
        self.accepts_array = inner.accepts_array
        if hasattr(inner, "predict_proba"):
            self.predict_proba = inner.predict_proba

    def predict(self, X: Any) -> np.ndarray:
        self.calls += 1
        return self.inner.predict(X)


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS
    return X, y.to_numpy()


def _load(model: Any, sample: pd.DataFrame, dest: Path) -> tuple[LoadedModel, CountingPredictor]:
    write_package(model, dest, name="iris", version=4, sample=sample)
    manifest, predictor = read_package(dest)
    counting = CountingPredictor(predictor)
    return LoadedModel(manifest, counting), counting


@pytest.fixture(scope="module")
def classifier(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[LoadedModel, CountingPredictor, LogisticRegression]:
    X, y = iris
    clf = LogisticRegression(max_iter=300).fit(X, SPECIES[y])
    loaded, counting = _load(clf, X.head(30), tmp_path_factory.mktemp("clf") / "pkg")
    return loaded, counting, clf


def test_attributes(classifier: tuple[LoadedModel, CountingPredictor, Any]) -> None:
    loaded, _, _ = classifier
    assert (loaded.name, loaded.version, loaded.flavor, loaded.ref) == (
        "iris",
        4,
        "sklearn",
        "iris:4",
    )
    assert loaded.signature.names == tuple(IRIS)
    assert loaded.classes.tolist() == SPECIES.tolist()
    assert loaded.has_proba
    assert "iris:4" in repr(loaded)


def test_every_input_shape_gives_the_same_answer(
    classifier: tuple[LoadedModel, CountingPredictor, LogisticRegression],
    iris: tuple[pd.DataFrame, np.ndarray],
) -> None:
    loaded, _, clf = classifier
    X, _ = iris
    rows = X.head(3)
    expected = clf.predict(rows)
    inputs = [rows, rows.to_dict("records"), rows.to_numpy(), rows.to_numpy().tolist()]
    for data in inputs:
        got = loaded.predict(data)
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, expected)
    assert loaded.predict(RECORD).tolist() == clf.predict(pd.DataFrame([RECORD])).tolist()
    proba = loaded.predict_proba(rows.to_dict("records"))
    np.testing.assert_allclose(proba, clf.predict_proba(rows))
    assert proba.shape == (3, 3)


def test_predictions_with_probabilities_in_one_pass(
    classifier: tuple[LoadedModel, CountingPredictor, LogisticRegression],
    iris: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    loaded, _, clf = classifier
    X, _ = iris
    labels, proba = loaded.predict_with_proba(X.to_dict("records"))
    np.testing.assert_array_equal(labels, clf.predict(X))
    assert proba is not None
    np.testing.assert_array_equal(proba, clf.predict_proba(X))
    reg = LinearRegression().fit(X[IRIS[:3]], X["petal_width"])
    regressor, _ = _load(reg, X[IRIS[:3]].head(20), tmp_path / "pkg")
    values, none = regressor.predict_with_proba(X[IRIS[:3]])
    assert none is None
    np.testing.assert_allclose(values, reg.predict(X[IRIS[:3]]))


def test_bad_input_is_rejected_before_the_model_runs(
    classifier: tuple[LoadedModel, CountingPredictor, Any],
) -> None:
    loaded, counting, _ = classifier
    before = counting.calls
    with pytest.raises(SchemaError) as info:
        loaded.predict({**RECORD, "petal_width": "wide"})
    assert (info.value.field, info.value.expected) == ("petal_width", "float")
    with pytest.raises(SchemaError, match="'sepal_length' is missing; expected a float"):
        loaded.predict({k: v for k, v in RECORD.items() if k != "sepal_length"})
    assert counting.calls == before


def test_predict_proba_on_a_regressor(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    reg = LinearRegression().fit(X[IRIS[:3]], X["petal_width"])
    loaded, _ = _load(reg, X[IRIS[:3]].head(20), tmp_path / "pkg")
    assert loaded.classes is None and not loaded.has_proba
    with pytest.raises(InvalidInputError, match=r"iris:4 \(sklearn, regression\) does not"):
        loaded.predict_proba(X[IRIS[:3]].head(2))
    np.testing.assert_allclose(loaded.predict(X[IRIS[:3]]), reg.predict(X[IRIS[:3]]))


def test_numeric_models_without_names_take_the_array_path(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    booster_model = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    loaded, _ = _load(booster_model, X.head(20), tmp_path / "xgb")
    assert isinstance(loaded.prepare(RECORD), np.ndarray)
    np.testing.assert_array_equal(loaded.predict(X), booster_model.predict(X))


def test_unseen_category_is_a_schema_error(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    colored = X.assign(color=np.where(y == 0, "red", "green"))
    pipe = Pipeline(
        [
            (
                "pre",
                ColumnTransformer([("oh", OneHotEncoder(), ["color"])], remainder="passthrough"),
            ),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    ).fit(colored, y)
    loaded, _ = _load(pipe, colored, tmp_path / "pkg")
    assert not isinstance(loaded.prepare(colored.head(1)), np.ndarray)
    with pytest.raises(SchemaError, match="'color' has 'purple'") as info:
        loaded.predict([{**RECORD, "color": "red"}, {**RECORD, "color": "purple"}])
    assert info.value.rows == [1]


def test_bad_signature_in_manifest(classifier: tuple[LoadedModel, CountingPredictor, Any]) -> None:
    loaded, counting, _ = classifier
    broken = loaded.manifest.model_copy(update={"signature": {"inputs": "nope"}})
    with pytest.raises(ManifestError, match="bad signature"):
        LoadedModel(broken, counting)


def test_non_finite_outputs_are_refused_for_their_rows(
    classifier: tuple[LoadedModel, CountingPredictor, Any],
    iris: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    """1e308 passes the signature but overflows inside the model: NaN probabilities must
    not become the first class's label, nor an infinite regression value an answer."""
    loaded, _, clf = classifier
    huge = {**dict.fromkeys(IRIS, 1e300), "petal_width": 1e308}
    assert np.isnan(clf.predict_proba(pd.DataFrame([huge]))).all()  # the model's own output
    for call in (loaded.predict_with_proba, loaded.predict_proba):
        with pytest.raises(UnscorableInputError, match=r"row 1 .*not finite") as info:
            call([RECORD, huge])
        assert info.value.rows == [1]
        assert "petal_width 1e+308 (training" in str(info.value)
        # The field an HTTP answer names: the column furthest outside its training range.
        assert info.value.field == "petal_width"
    X, _ = iris
    _, proba = loaded.score(loaded.prepare(X.head(5)))
    assert proba is not None and np.isfinite(proba).all()
    # Fitted on an array: the fast array path is checked too.
    reg = LinearRegression().fit(X[IRIS[:3]].to_numpy(), X["petal_width"] * 1000)
    regressor, _ = _load(reg, X[IRIS[:3]].head(20), tmp_path / "reg")
    assert isinstance(regressor.prepare(RECORD), np.ndarray)
    rows = [dict.fromkeys(IRIS[:3], 1.0), dict.fromkeys(IRIS[:3], 1e308)]
    for call in (regressor.predict, regressor.predict_with_proba):
        with pytest.raises(UnscorableInputError, match="prediction for row 1") as info:
            call(rows)
        assert info.value.rows == [1]


def test_a_model_that_raises_on_huge_inputs_names_the_row_and_field(tmp_path: Path) -> None:
    """A forest refuses 1e308 (its float32 cast overflows: "Input X contains infinity or a
    value too large"); through load_model that is UnscorableInputError naming the row and
    the column, not the model's ValueError."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    loaded, _ = _load(forest, X.head(100), tmp_path / "rf")
    rows = X.head(6).copy()
    rows.loc[[1, 4], "bmi"] = [1e308, -1e308]
    with pytest.raises(ValueError, match="too large"):
        forest.predict(rows)  # the model's own answer
    for call in (loaded.predict, loaded.predict_with_proba):
        with pytest.raises(UnscorableInputError, match=r"score rows 1, 4 \(0-based\)") as info:
            call(rows)
        assert info.value.rows == [1, 4]
        assert info.value.field == "bmi"
        assert "bmi = 1e+308" in str(info.value) or "bmi = -1e+308" in str(info.value)
    np.testing.assert_allclose(loaded.predict(X.head(3)), forest.predict(X.head(3)))


def test_a_model_failing_on_in_range_input_keeps_its_own_error(
    classifier: tuple[LoadedModel, CountingPredictor, Any],
    iris: tuple[pd.DataFrame, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only input outside the training ranges is the caller's fault (a 4xx); a model that
    fails on ordinary rows is a fault of the model, and its error is not disguised."""
    loaded, counting, _ = classifier

    def broken(X: Any) -> np.ndarray:
        raise ValueError("the model is broken")

    monkeypatch.setattr(counting, "predict", broken)
    X, _ = iris
    with pytest.raises(ValueError, match="the model is broken"):
        loaded.predict(X.head(3))
