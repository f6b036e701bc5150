"""Each flavor saves a real model in its safe format and loads it back unchanged."""

from __future__ import annotations

import array
import gc
import json
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from shipyard.errors import InvalidInputError, ManifestError, UnsafeArtifactError
from shipyard.registry.flavors import FLAVORS, flavor_for_model, get_flavor
from shipyard.registry.flavors.base import EstimatorPredictor, label_is_most_probable
from shipyard.registry.flavors.sklearn import is_trusted_type, load_skops

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def double_features(X: Any) -> Any:
    """A custom function: skops must refuse to import it unless trusted."""
    return X * 2


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS
    return X, y.to_numpy()


def _round_trip(flavor_name: str, model: Any, tmp_path: Path, *, trusted: bool = False) -> Any:
    flavor = get_flavor(flavor_name)
    options = flavor.save(model, tmp_path, trusted_pickle=trusted)
    json.dumps(options)  # flavor options go into the JSON manifest
    return flavor.load(tmp_path, options, trusted_pickle=trusted), options


# -- the registry of flavors ---------------------------------------------------------------


def test_detection_picks_the_most_specific_flavor(iris: tuple[pd.DataFrame, Any]) -> None:
    X, y = iris
    onx = to_onnx(LinearRegression().fit(X, y), X.to_numpy(np.float32)[:1])
    cases = {
        "sklearn": [LogisticRegression(), make_pipeline(LogisticRegression())],
        "xgboost": [xgb.XGBClassifier(), xgb.XGBRegressor()],
        "lightgbm": [lgb.LGBMClassifier(), lgb.LGBMRegressor()],
        "onnx": [onx, onx.SerializeToString(), "models/iris.onnx"],
        "pyfunc": ["my_package.models:predict", lambda X: X, double_features],
    }
    for expected, models in cases.items():
        for model in models:
            assert flavor_for_model(model).name == expected, model


def test_unknown_model_and_flavor_are_clear_errors() -> None:
    with pytest.raises(InvalidInputError, match=r"cannot save a builtins\.object"):
        flavor_for_model(object())
    with pytest.raises(InvalidInputError, match="Unknown flavor 'torch'; Shipyard knows"):
        get_flavor("torch")
    assert sorted(FLAVORS) == ["lightgbm", "onnx", "pyfunc", "sklearn", "xgboost"]


def test_option_file_must_stay_inside_the_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="must be a file name inside"):
        get_flavor("sklearn").load(
            tmp_path, {"format": "skops", "file": "../x.skops"}, trusted_pickle=False
        )


# -- scikit-learn ---------------------------------------------------------------------------


def test_sklearn_random_forest_round_trips_via_trust_list(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, SPECIES[y])
    predictor, options = _round_trip("sklearn", model, tmp_path)
    assert options["format"] == "skops" and (tmp_path / "model.skops").is_file()
    # The forest's trees are a type skops does not trust by default; ours does.
    assert "sklearn.tree._tree.Tree" in sio.get_untrusted_types(file=tmp_path / "model.skops")
    np.testing.assert_array_equal(predictor.predict(X), model.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), model.predict_proba(X))
    assert predictor.classes.tolist() == SPECIES.tolist()
    assert predictor.feature_names == tuple(IRIS)


def test_trust_rule_refuses_code_outside_scikit_learn() -> None:
    for name in ("builtins.eval", "os.system", "subprocess.run", f"{__name__}.double_features"):
        assert not is_trusted_type(name), name


def test_sklearn_custom_function_is_untrusted(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = make_pipeline(FunctionTransformer(double_features), LogisticRegression(max_iter=300))
    model.fit(X, y)
    flavor = get_flavor("sklearn")
    options = flavor.save(model, tmp_path, trusted_pickle=False)
    with pytest.raises(UnsafeArtifactError) as info:
        flavor.load(tmp_path, options, trusted_pickle=False)
    message = str(info.value)
    assert f"{__name__}.double_features" in message
    assert "trusted_pickle=True" in message
    # Someone who trusts the author can still load it.
    trusted = flavor.load(tmp_path, options, trusted_pickle=True)
    np.testing.assert_array_equal(trusted.predict(X), model.predict(X))


def test_sklearn_lambda_cannot_be_saved(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = make_pipeline(FunctionTransformer(lambda v: v), LogisticRegression(max_iter=300))
    model.fit(X, y)
    with pytest.raises(InvalidInputError, match="lambda"):
        get_flavor("sklearn").save(model, tmp_path, trusted_pickle=True)
    assert not list(tmp_path.iterdir())


def test_sklearn_falls_back_to_pickle_only_when_trusted(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, y)
    model.notes_ = array.array("d", [1.0])  # skops cannot store array.array; pickle can
    flavor = get_flavor("sklearn")
    with pytest.raises(UnsafeArtifactError, match="skops cannot save"):
        flavor.save(model, _mk(tmp_path / "a"), trusted_pickle=False)
    assert not list((tmp_path / "a").iterdir())  # the half-written skops file is gone
    options = flavor.save(model, _mk(tmp_path / "b"), trusted_pickle=True)
    assert options["format"] == "pickle"
    with pytest.raises(UnsafeArtifactError, match="is a pickle"):
        flavor.load(tmp_path / "b", options, trusted_pickle=False)
    loaded = flavor.load(tmp_path / "b", options, trusted_pickle=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_load_skops_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "model.skops"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ManifestError, match="not a readable skops file"):
        load_skops(bad)


# -- XGBoost ---------------------------------------------------------------------------------


def test_xgboost_classifier_and_regressor(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    predictor, options = _round_trip("xgboost", clf, _mk(tmp_path / "c"))
    assert options["kind"] == "classifier" and options["classes"] == [0, 1, 2]
    np.testing.assert_array_equal(predictor.predict(X), clf.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), clf.predict_proba(X))
    assert predictor.classes.tolist() == [0, 1, 2] and predictor.accepts_array
    reg = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X["sepal_length"])
    predictor, _ = _round_trip("xgboost", reg, _mk(tmp_path / "r"))
    np.testing.assert_allclose(predictor.predict(X), reg.predict(X))
    assert predictor.classes is None and not hasattr(predictor, "predict_proba")


def test_xgboost_raw_booster(iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    X, y = iris
    dtrain = xgb.DMatrix(X, label=(y == 2).astype(int))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, dtrain, 5)
    predictor, options = _round_trip("xgboost", booster, tmp_path)
    assert options["kind"] == "booster"
    p = booster.predict(xgb.DMatrix(X))
    np.testing.assert_allclose(predictor.predict_proba(X)[:, 1], p)
    np.testing.assert_array_equal(predictor.predict(X), (p > 0.5).astype(int))
    assert predictor.classes.tolist() == [0, 1]
    _assert_both_match(predictor, X)


def _assert_both_match(predictor: Any, X: Any) -> None:
    """One ``predict_both`` pass answers exactly what the two separate calls answer."""
    labels, proba = predictor.predict_both(X)
    np.testing.assert_array_equal(labels, predictor.predict(X))
    np.testing.assert_array_equal(proba, predictor.predict_proba(X))


# -- scikit-learn: labels from one predict_proba call --------------------------------------


def _near_borders(X: pd.DataFrame, n: int = 3000) -> pd.DataFrame:
    """Points between random pairs of rows: many land next to a class border."""
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, len(X), n), rng.integers(0, len(X), n)
    t = rng.random((n, 1))
    mixed = X.to_numpy()[a] * t + X.to_numpy()[b] * (1 - t)
    return pd.DataFrame(mixed, columns=X.columns)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(max_iter=1000),
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        lambda: ExtraTreesClassifier(n_estimators=20, random_state=0),
        lambda: DecisionTreeClassifier(random_state=0),
        lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
        lambda: HistGradientBoostingClassifier(max_iter=20),
        lambda: GaussianNB(),
        lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    ],
    ids=["lr", "forest", "extra", "tree", "gbm", "hgb", "nb", "mlp", "pipeline"],
)
@pytest.mark.parametrize("binary", [False, True], ids=["3 classes", "2 classes"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_most_probable_label_classifier_is_scored_in_one_call(
    iris: tuple[pd.DataFrame, np.ndarray], make: Any, binary: bool
) -> None:
    X, y = iris
    labels = np.where(y == 2, "virginica", "other") if binary else SPECIES[y]
    model = make().fit(X, labels)
    predictor = EstimatorPredictor(model)
    assert label_is_most_probable(model) and hasattr(predictor, "predict_both")
    grid = _near_borders(X)
    got_labels, got_proba = predictor.predict_both(grid)
    np.testing.assert_array_equal(got_labels, model.predict(grid))
    np.testing.assert_array_equal(got_proba, model.predict_proba(grid))
    assert got_labels.dtype == model.predict(grid).dtype


@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_other_classifiers_keep_two_calls(iris: tuple[pd.DataFrame, np.ndarray]) -> None:
    """An SVC's Platt probabilities can disagree with its label: never derive one."""
    X, y = iris
    svc = SVC(probability=True, random_state=0).fit(X, y)
    assert not hasattr(EstimatorPredictor(svc), "predict_both")
    grid = _near_borders(X)
    disagree = svc.classes_[svc.predict_proba(grid).argmax(axis=1)] != svc.predict(grid)
    assert disagree.any(), "the case this guards against should exist"

    class TunedForest(RandomForestClassifier):  # a subclass may redefine predict
        pass

    assert not label_is_most_probable(TunedForest())
    assert not hasattr(EstimatorPredictor(LinearRegression().fit(X, y)), "predict_both")


# -- LightGBM --------------------------------------------------------------------------------


def test_lightgbm_classifier_with_string_labels(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    clf = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, SPECIES[y])
    predictor, options = _round_trip("lightgbm", clf, tmp_path)
    assert options["classes"] == SPECIES.tolist() and (tmp_path / "model.txt").is_file()
    np.testing.assert_array_equal(predictor.predict(X), clf.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(predictor.predict(X.to_numpy()), clf.predict(X))
    _assert_both_match(predictor, X)


def test_lightgbm_binary_regressor_and_booster(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    binary = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y == 1)
    predictor, _ = _round_trip("lightgbm", binary, _mk(tmp_path / "b"))
    np.testing.assert_array_equal(predictor.predict(X), binary.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), binary.predict_proba(X))
    reg = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y)
    predictor, options = _round_trip("lightgbm", reg, _mk(tmp_path / "r"))
    assert options["kind"] == "regressor"
    np.testing.assert_allclose(predictor.predict(X), reg.predict(X))
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, y), 5
    )
    predictor, options = _round_trip("lightgbm", booster, _mk(tmp_path / "raw"))
    assert options["classes"] == [0, 1, 2]
    np.testing.assert_array_equal(predictor.predict(X), booster.predict(X).argmax(axis=1))
    _assert_both_match(predictor, X)


def _classifiers(X: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    return {
        "sklearn": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
        "xgboost": xgb.train(
            {"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(X, label=y), 3
        ),
        "lightgbm": lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, SPECIES[y]),
        "onnx": to_onnx(LogisticRegression(max_iter=300).fit(X, y), X.to_numpy(np.float32)[:1]),
    }


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm", "onnx"])
def test_a_loaded_classifier_is_freed_without_the_cycle_collector(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, flavor: str
) -> None:
    """A predictor that kept its own bound method (``self.predict_both =
    self._predict_both``) was a reference cycle: once a server froze it (its first
    model), it stayed in memory after every hot swap."""
    X, y = iris
    predictor, _ = _round_trip(flavor, _classifiers(X, y)[flavor], tmp_path)
    assert hasattr(predictor, "predict_proba")  # the capabilities are still there
    if flavor != "onnx":
        _assert_both_match(predictor, X)
    gone = weakref.ref(predictor)
    gc.disable()  # only reference counting may free it
    try:
        del predictor
        assert gone() is None, f"a loaded {flavor} predictor is part of a reference cycle"
    finally:
        gc.enable()


# -- ONNX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_classifier_outputs(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, zipmap: bool
) -> None:
    X, y = iris
    clf = LogisticRegression(max_iter=300).fit(X, SPECIES[y])
    options = None if zipmap else {id(clf): {"zipmap": False}}
    onx = to_onnx(clf, X.to_numpy(np.float32)[:1], options=options)
    predictor, _ = _round_trip("onnx", onx, tmp_path)
    assert predictor.classes.tolist() == SPECIES.tolist()
    np.testing.assert_array_equal(predictor.predict(X), clf.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), clf.predict_proba(X), atol=1e-5)


def test_onnx_regressor_from_bytes_and_path(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    reg = LinearRegression().fit(X, y)
    data = to_onnx(reg, X.to_numpy(np.float32)[:1]).SerializeToString()
    predictor, _ = _round_trip("onnx", data, _mk(tmp_path / "bytes"))
    np.testing.assert_allclose(predictor.predict(X), reg.predict(X), atol=1e-4)
    assert predictor.classes is None and not hasattr(predictor, "predict_proba")
    path = tmp_path / "reg.onnx"
    path.write_bytes(data)
    predictor, _ = _round_trip("onnx", str(path), _mk(tmp_path / "path"))
    np.testing.assert_allclose(predictor.predict(X.to_numpy()), reg.predict(X), atol=1e-4)


def test_onnx_rejects_invalid_bytes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a valid ONNX model"):
        get_flavor("onnx").save(b"\x00garbage", tmp_path, trusted_pickle=False)


# -- pyfunc ----------------------------------------------------------------------------------


class Doubler:
    """A plain Python model with predict()."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["sepal_length"].to_numpy() * 2


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "shipyard_flavor_test_user_code"
    (tmp_path / f"{name}.py").write_text(
        "def predict(X):\n    return (X['petal_length'] > 2.5).astype(int).to_numpy()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def test_pyfunc_import_path_needs_no_pickle(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, user_module: str
) -> None:
    X, _ = iris
    predictor, options = _round_trip("pyfunc", f"{user_module}:predict", _mk(tmp_path / "p"))
    assert options["format"] == "import"
    assert (tmp_path / "p" / "entrypoint.txt").read_text().strip() == f"{user_module}:predict"
    np.testing.assert_array_equal(predictor.predict(X), (X["petal_length"] > 2.5).astype(int))


def test_pyfunc_bad_import_paths(tmp_path: Path) -> None:
    flavor = get_flavor("pyfunc")
    with pytest.raises(InvalidInputError, match="Cannot import 'no_such_module_xyz'"):
        flavor.save("no_such_module_xyz:predict", tmp_path, trusted_pickle=False)
    with pytest.raises(InvalidInputError, match="has no attribute 'nope'"):
        flavor.save("json:nope", tmp_path, trusted_pickle=False)


def test_pyfunc_object_needs_trusted_pickle(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    flavor = get_flavor("pyfunc")
    with pytest.raises(UnsafeArtifactError, match="import path"):
        flavor.save(Doubler(), tmp_path, trusted_pickle=False)
    assert not list(tmp_path.iterdir())
    predictor, options = _round_trip("pyfunc", Doubler(), tmp_path, trusted=True)
    assert options["format"] == "pickle"
    np.testing.assert_array_equal(predictor.predict(X), X["sepal_length"].to_numpy() * 2)
    with pytest.raises(UnsafeArtifactError, match="trusted_pickle=True"):
        flavor.load(tmp_path, options, trusted_pickle=False)


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
