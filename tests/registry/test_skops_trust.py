"""The skops trust rule comes from scikit-learn itself: any of its estimators logs and loads.

Every classifier and regressor ``sklearn.utils.all_estimators()`` lists that fits
with its defaults is saved with skops and loaded through the default (untrusted)
path; models that hold GaussianProcess kernels, SelectKBest score functions or
SciPy's ``BSpline`` (SplineTransformer) go through ``shipyard.log_model`` and
``shipyard.load_model``. Types from outside scikit-learn stay refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.cluster import FeatureAgglomeration
from sklearn.datasets import load_diabetes, load_iris
from sklearn.feature_selection import (
    SelectKBest,
    chi2,
    f_classif,
    f_regression,
    mutual_info_classif,
    mutual_info_regression,
)
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, KBinsDiscretizer, SplineTransformer
from sklearn.utils import all_estimators

import shipyard
from shipyard.config import Settings
from shipyard.errors import UnsafeArtifactError
from shipyard.registry.flavors.sklearn import load_skops
from shipyard.registry.flavors.skops_trust import is_trusted_type


def double_features(X: Any) -> Any:
    """A function of the user's: never trusted without the flag."""
    return X * 2


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return X, y.to_numpy()


def _diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y.to_numpy()


def _quick(estimator: Any) -> Any:
    """Defaults, but few trees and iterations: the test is about saving, not accuracy."""
    params = estimator.get_params(deep=False)
    quick = {"n_estimators": 3, "max_iter": 30, "cv": 2, "n_restarts_optimizer": 0}
    estimator.set_params(**{k: v for k, v in quick.items() if k in params})
    return estimator


def _default_estimators(kind: str) -> list[tuple[str, Any]]:
    found = []
    for name, cls in all_estimators(type_filter=kind):
        try:
            found.append((name, cls))
            cls()
        except TypeError:  # meta-estimators that need an estimator argument
            found.pop()
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "minimum"),
    [("classifier", 30), ("regressor", 30), ("transformer", 30), ("cluster", 8)],
)
def test_every_scikit_learn_estimator_loads_without_trust(
    kind: str, minimum: int, tmp_path: Path
) -> None:
    """Every estimator scikit-learn lists that fits with its defaults: classifiers and
    regressors, and the transformers (imputers, discretizers...) and clusterers that
    pipelines hold. Loaded without trust, it answers as the original does."""
    X, y = _diabetes() if kind == "regressor" else _iris()
    X, y = X.iloc[::3], y[::3]  # 50 iris rows, 148 diabetes rows
    loaded, refused = [], []
    for name, cls in _default_estimators(kind):
        estimator = _quick(cls())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                estimator.fit(X, y)
            except Exception:  # needs other data (positive values, text, sparse input...)
                continue
        path = tmp_path / f"{name}.skops"
        try:
            sio.dump(estimator, path)
        except Exception:  # a type skops cannot write (Birch): saved with pickle instead
            continue
        try:
            model = load_skops(path)
        except UnsafeArtifactError as exc:
            refused.append(f"{name}: {exc}")
            continue
        method = "predict" if kind in ("classifier", "regressor") else "transform"
        method = method if hasattr(estimator, method) else "predict"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = _dense(getattr(estimator, method)(X.head(5)))
            except Exception:  # a transformer taking other input (FeatureHasher)
                if kind in ("classifier", "regressor"):
                    raise
                expected = None
            if expected is not None:
                got = _dense(getattr(model, method)(X.head(5)))
                np.testing.assert_array_equal(got, expected)
        loaded.append(name)
    assert not refused, "\n".join(refused)
    assert len(loaded) >= minimum, loaded


def _dense(values: Any) -> np.ndarray:
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values)


def _components_needing_more_than_a_hand_list() -> list[tuple[str, Any, str]]:
    kernel = ConstantKernel(1.0) * RBF(1.0) + WhiteKernel(0.1)
    return [
        ("gpc", GaussianProcessClassifier(kernel=kernel, n_restarts_optimizer=0), "iris"),
        ("gpr", GaussianProcessRegressor(kernel=kernel), "diabetes"),
        ("kbest-f", make_pipeline(SelectKBest(f_classif, k=2), LogisticRegression()), "iris"),
        ("kbest-mi", make_pipeline(SelectKBest(mutual_info_classif, k=2), Ridge()), "iris"),
        ("kbest-chi2", make_pipeline(SelectKBest(chi2, k=2), LogisticRegression()), "iris"),
        ("kbest-fr", make_pipeline(SelectKBest(f_regression, k=4), Ridge()), "diabetes"),
        ("kbest-mir", make_pipeline(SelectKBest(mutual_info_regression, k=4), Ridge()), "diabetes"),
        ("spline", make_pipeline(SplineTransformer(), LogisticRegression(max_iter=500)), "iris"),
        # numpy.dtype: both keep the dtype they were fitted on.
        ("imputer", make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)), "iris"),
        ("kbins", make_pipeline(KBinsDiscretizer(n_bins=3), Ridge()), "diabetes"),
        # numpy.mean as pooling_func, a default read off scikit-learn's signatures.
        ("agglomeration", make_pipeline(FeatureAgglomeration(n_clusters=2), Ridge()), "diabetes"),
    ]


@pytest.mark.parametrize(
    ("name", "model", "data"),
    _components_needing_more_than_a_hand_list(),
    ids=[c[0] for c in _components_needing_more_than_a_hand_list()],
)
def test_log_and_load_through_the_default_path(
    name: str, model: Any, data: str, tmp_path: Path
) -> None:
    X, y = _iris() if data == "iris" else _diabetes()
    X, y = X.iloc[::2], y[::2]
    model.fit(X, y)
    client = shipyard.configure(Settings(home=tmp_path / "home", user="t"))
    try:
        shipyard.log_model(model, name, sample=X, alias="production")
        loaded = shipyard.load_model(name)
        np.testing.assert_allclose(loaded.predict(X.head(10)), model.predict(X.head(10)))
    finally:
        client.close()


def test_user_functions_stay_refused(tmp_path: Path) -> None:
    X, y = _iris()
    model = make_pipeline(FunctionTransformer(double_features), LogisticRegression(max_iter=300))
    path = tmp_path / "m.skops"
    sio.dump(model.fit(X, y), path)
    with pytest.raises(UnsafeArtifactError, match="double_features"):
        load_skops(path)


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "os.system",
        "sklearn.datasets.fetch_openml",  # network access, not a computation
        "sklearn.datasets._openml.fetch_openml",
        "sklearn.utils.parallel_backend",
        "sklearn.set_config",
        "scipy.io.loadmat",
        "sklearn.no_such_module.Thing",
        "numpy.load",
        "numpy.save",
        "numpy.frombuffer",
        "numpy.dtype.__new__",
        "sklearn.cluster._kmeans.threadpool_limits",  # imported from sklearn.utils
    ],
)
def test_names_outside_the_rule_are_not_trusted(name: str) -> None:
    assert not is_trusted_type(name)
