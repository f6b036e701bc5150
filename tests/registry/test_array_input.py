"""A scikit-learn model fitted on a DataFrame scores a float matrix only when that is
exactly the same computation; otherwise it keeps getting a DataFrame."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import IRIS_RECORD, iris_frame
from shipyard.registry.array_input import array_input_model


@pytest.fixture
def client(tmp_path: Path) -> Shipyard:
    c = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    yield c
    c.close()


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=500),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        RandomForestClassifier(n_estimators=10, random_state=0),
    ],
    ids=["logistic", "pipeline", "forest"],
)
def test_a_dataframe_fitted_model_scores_a_matrix_with_the_same_answers(
    client: Shipyard, estimator: object
) -> None:
    X, y = iris_frame()
    fitted = estimator.fit(X, y)  # type: ignore[attr-defined]
    version = client.registry.log_model(fitted, "m", sample=X, optimize=False)
    original = client.registry.load(version.ref)
    assert not original.takes_array  # fitted on names: a DataFrame by default
    fast = array_input_model(original)
    assert fast.takes_array
    assert fast.prepare(IRIS_RECORD).dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        labels, proba = fast.predict_with_proba(X)
    assert labels.tolist() == fitted.predict(X).tolist()
    np.testing.assert_array_equal(proba, fitted.predict_proba(X))
    # The registered model itself still checks names on a DataFrame.
    assert hasattr(original.predictor.model, "feature_names_in_")  # type: ignore[attr-defined]


def test_a_pipeline_that_hands_on_pandas_frames_keeps_the_dataframe(client: Shipyard) -> None:
    X, y = iris_frame()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipeline.set_output(transform="pandas")  # the second step was fitted on names too
    version = client.registry.log_model(pipeline.fit(X, y), "p", sample=X, optimize=False)
    original = client.registry.load(version.ref)
    assert array_input_model(original) is original


def test_a_model_fitted_on_arrays_is_left_as_it_is(client: Shipyard) -> None:
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    version = client.registry.log_model(model, "a", sample=X, optimize=False)
    original = client.registry.load(version.ref)
    assert original.takes_array and array_input_model(original) is original


def test_a_copy_that_warns_while_scoring_keeps_the_dataframe(
    client: Shipyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning from the matrix copy (as scikit-learn's "X does not have valid feature
    names") means the two are not the same computation."""
    from shipyard.registry import array_input
    from shipyard.registry.flavors.base import EstimatorPredictor

    class WarningPredictor(EstimatorPredictor):
        def predict(self, X: object) -> np.ndarray:
            warnings.warn("scored differently", UserWarning, stacklevel=2)
            return super().predict(X)

    monkeypatch.setattr(array_input, "EstimatorPredictor", WarningPredictor)
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    original = client.registry.load(client.registry.log_model(model, "w", sample=X).ref)
    assert array_input_model(original) is original


def test_a_warning_in_another_thread_during_the_check_is_not_made_an_error(
    client: Shipyard,
) -> None:
    """The check runs while the server answers requests (a hot swap): warning filters
    are process-wide, so the check must not turn other threads' warnings into errors."""
    import threading

    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    original = client.registry.load(client.registry.log_model(model, "t", sample=X).ref)
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve_requests() -> None:
        while not stop.is_set():
            try:
                warnings.warn("a request's own warning", UserWarning, stacklevel=1)
            except BaseException as exc:  # the defect: an "error" filter from the check
                errors.append(exc)
                return

    worker = threading.Thread(target=serve_requests)
    worker.start()
    try:
        for _ in range(5):
            array_input_model(original)
    finally:
        stop.set()
        worker.join()
    assert errors == []
