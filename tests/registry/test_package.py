"""Model packages: write, verify, read; real models round-trip with equal predictions."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from shipyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ManifestError,
    UnsafeArtifactError,
)
from shipyard.registry.manifest import MANIFEST_NAME, Manifest
from shipyard.registry.model import LoadedModel
from shipyard.registry.package import (
    MODEL_DIR,
    REQUIREMENTS_NAME,
    package_files,
    read_package,
    write_package,
)
from shipyard.registry.signature import Signature

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])
UNPICKLED: list[str] = []  # filled by Canary.__setstate__: proves whether a pickle was loaded


def double_features(X: Any) -> Any:
    return X * 2


class Canary:
    """A pyfunc model that records every time it is unpickled."""

    def __init__(self) -> None:
        self.threshold = 2.5  # non-empty state, so unpickling calls __setstate__

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["petal_length"].to_numpy() > self.threshold

    def __setstate__(self, state: dict[str, Any]) -> None:
        UNPICKLED.append("canary")
        self.__dict__.update(state)


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def iris_colored(iris: tuple[pd.DataFrame, np.ndarray]) -> pd.DataFrame:
    X, y = iris
    colored = X.copy()
    colored["color"] = np.where(y == 0, "red", np.where(y == 1, "green", "blue"))
    return colored


def _onnx(X: pd.DataFrame, y: np.ndarray) -> Any:
    from skl2onnx import to_onnx

    clf = LogisticRegression(max_iter=300).fit(X, SPECIES[y])
    return to_onnx(clf, X.to_numpy(np.float32)[:1]), clf


def _pipeline(colored: pd.DataFrame, y: np.ndarray) -> Pipeline:
    pre = ColumnTransformer(
        [("onehot", OneHotEncoder(), ["color"]), ("scale", StandardScaler(), IRIS)]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=300))]).fit(colored, y)


# Each case: (flavor, build(X, colored, y) -> (model to package, reference with predict, data)).
CASES: dict[str, Callable[[pd.DataFrame, pd.DataFrame, np.ndarray], tuple[Any, Any, Any]]] = {
    "logistic": lambda X, c, y: (m := LogisticRegression(max_iter=300).fit(X, y), m, X),
    "forest": lambda X, c, y: (
        m := RandomForestClassifier(n_estimators=5, random_state=0).fit(X, SPECIES[y]),
        m,
        X,
    ),
    "pipeline": lambda X, c, y: (m := _pipeline(c, y), m, c),
    "xgb_classifier": lambda X, c, y: (
        m := xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y),
        m,
        X,
    ),
    "xgb_regressor": lambda X, c, y: (
        m := xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X["sepal_length"]),
        m,
        X,
    ),
    "lgbm_classifier": lambda X, c, y: (
        m := lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, SPECIES[y]),
        m,
        X,
    ),
    "lgbm_regressor": lambda X, c, y: (
        m := lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y),
        m,
        X,
    ),
    "onnx": lambda X, c, y: (*_onnx(X, y), X),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_predictions_equal(
    case: str,
    iris: tuple[pd.DataFrame, np.ndarray],
    iris_colored: pd.DataFrame,
    tmp_path: Path,
) -> None:
    X, y = iris
    model, reference, data = CASES[case](X, iris_colored, y)
    written = write_package(model, tmp_path / "pkg", name="iris", version=1, sample=data.head(40))
    manifest, predictor = read_package(tmp_path / "pkg")
    assert manifest == written
    loaded = LoadedModel(manifest, predictor)
    expected = reference.predict(data)
    got = loaded.predict(data)
    if np.asarray(expected).dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)
    if hasattr(reference, "predict_proba"):
        np.testing.assert_allclose(
            loaded.predict_proba(data), reference.predict_proba(data), atol=1e-5
        )
        assert manifest.signature["output"]["task"] == "classification"
    else:
        assert manifest.signature["output"]["task"] == "regression"
    # One record, as the HTTP layer will send it, gives the same answer as row 0.
    record = data.iloc[0].to_dict()
    np.testing.assert_array_equal(loaded.predict(record), got[:1])


def test_package_layout_and_manifest(iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, SPECIES[y])
    manifest = write_package(
        model,
        tmp_path / "pkg",
        name="iris",
        version=None,
        sample=X.head(20),
        metrics={"accuracy": 0.97},
        params={"C": "1.0"},
        data_fingerprint={"sha256": "f" * 64, "rows": 150},
        run_id="run-1",
        description="iris classifier",
    )
    pkg = tmp_path / "pkg"
    assert [p.as_posix() for p in package_files(pkg)] == [
        "model/model.skops",
        REQUIREMENTS_NAME,
        MANIFEST_NAME,
    ]
    assert set(manifest.files) == {"model/model.skops", REQUIREMENTS_NAME}
    assert manifest.files[REQUIREMENTS_NAME].size == (pkg / REQUIREMENTS_NAME).stat().st_size
    assert manifest.flavor == "sklearn" and manifest.flavor_options["format"] == "skops"
    assert not manifest.trusted_pickle
    requirements = (pkg / REQUIREMENTS_NAME).read_text().splitlines()
    assert f"scikit-learn=={manifest.environment['packages']['scikit-learn']}" in requirements
    assert any(line.startswith("skops==") for line in requirements)
    signature = Signature.from_dict(manifest.signature)
    assert signature.names == tuple(IRIS)
    assert signature.output.classes == tuple(SPECIES)
    assert Manifest.load(pkg) == manifest
    assert (manifest.metrics, manifest.params, manifest.run_id) == (
        {"accuracy": 0.97},
        {"C": "1.0"},
        "run-1",
    )
    # Nothing left behind next to the package.
    assert [p.name for p in tmp_path.iterdir()] == ["pkg"]


def test_sample_columns_the_model_did_not_see_are_left_out(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, y)
    with_target = X.assign(species=y)[["species", *reversed(IRIS)]]
    manifest = write_package(model, tmp_path / "pkg", name="iris", version=1, sample=with_target)
    assert [c["name"] for c in manifest.signature["inputs"]] == IRIS
    with pytest.raises(InvalidInputError, match=r"fitted on columns \['petal_width'\]"):
        write_package(
            model, tmp_path / "p2", name="iris", version=1, sample=X.drop(columns="petal_width")
        )


def test_explicit_signature_without_sample(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, y)
    from shipyard.registry.signature import infer_signature

    signature = infer_signature(X, classes=[0, 1, 2])
    manifest = write_package(
        model, tmp_path / "pkg", name="iris", version=1, sample=None, signature=signature
    )
    assert Signature.from_dict(manifest.signature) == signature
    with pytest.raises(InvalidInputError, match="Pass sample="):
        write_package(model, tmp_path / "p2", name="iris", version=1, sample=None)


def test_destination_must_be_new_or_empty(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, y)
    (tmp_path / "empty").mkdir()
    write_package(model, tmp_path / "empty", name="iris", version=1, sample=X.head())
    with pytest.raises(ConflictError, match="not empty"):
        write_package(model, tmp_path / "empty", name="iris", version=2, sample=X.head())


# -- integrity: checked before anything is loaded -------------------------------------------


@pytest.fixture
def canary_package(iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> Path:
    X, _ = iris
    pkg = tmp_path / "pkg"
    write_package(Canary(), pkg, name="canary", version=1, sample=X.head(), trusted_pickle=True)
    UNPICKLED.clear()  # write_package loads the model back once to check it
    return pkg


def test_canary_loads_when_intact(canary_package: Path) -> None:
    _, predictor = read_package(canary_package, trusted_pickle=True)
    assert UNPICKLED == ["canary"]
    assert isinstance(predictor.predict(pd.DataFrame({"petal_length": [1.0]})), np.ndarray)


@pytest.mark.parametrize("target", ["model/model.pkl", REQUIREMENTS_NAME])
def test_changed_byte_is_caught_before_loading(canary_package: Path, target: str) -> None:
    path = canary_package / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        read_package(canary_package, trusted_pickle=True)
    assert str(path) in str(info.value) and "Nothing was loaded" in str(info.value)
    assert UNPICKLED == []


def test_missing_and_extra_files(canary_package: Path) -> None:
    (canary_package / "notes.txt").write_text("added later")
    with pytest.raises(IntegrityError, match=r"holds \['notes.txt'\]"):
        read_package(canary_package, trusted_pickle=True)
    (canary_package / "notes.txt").unlink()
    (canary_package / REQUIREMENTS_NAME).unlink()
    with pytest.raises(IntegrityError, match=r"is missing \['requirements.txt'\]"):
        read_package(canary_package, trusted_pickle=True)
    assert UNPICKLED == []


def test_symlinks_are_refused(canary_package: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.symlink(outside, canary_package / "link.txt")
    with pytest.raises(IntegrityError, match="symbolic link"):
        read_package(canary_package, trusted_pickle=True)


def test_missing_or_broken_manifest(canary_package: Path) -> None:
    manifest_path = canary_package / MANIFEST_NAME
    manifest_path.write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_package(canary_package, trusted_pickle=True)
    manifest_path.unlink()
    with pytest.raises(ManifestError, match="No manifest"):
        read_package(canary_package, trusted_pickle=True)


# -- pickles need trust on both sides -----------------------------------------------------------


def test_pickle_refused_without_callers_trust(canary_package: Path) -> None:
    with pytest.raises(UnsafeArtifactError, match="load it with trusted_pickle=True"):
        read_package(canary_package)
    assert UNPICKLED == []


def test_pickle_refused_when_manifest_does_not_record_trust(canary_package: Path) -> None:
    path = canary_package / MANIFEST_NAME
    data = json.loads(path.read_text())
    data["trusted_pickle"] = False  # the manifest is not in the checksummed files
    path.write_text(json.dumps(data))
    with pytest.raises(UnsafeArtifactError, match="does not record"):
        read_package(canary_package, trusted_pickle=True)
    assert UNPICKLED == []


def test_pickle_never_written_without_trust(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    with pytest.raises(UnsafeArtifactError, match="trusted_pickle=True"):
        write_package(Canary(), tmp_path / "pkg", name="c", version=1, sample=X.head())
    assert not (tmp_path / "pkg").exists()
    assert list(tmp_path.iterdir()) == []


def test_untrusted_skops_type(iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    X, y = iris
    model = make_pipeline(FunctionTransformer(double_features), LogisticRegression(max_iter=300))
    model.fit(X, y)
    # Without trust the package cannot even be written: it could never be loaded.
    with pytest.raises(UnsafeArtifactError, match="double_features"):
        write_package(model, tmp_path / "a", name="iris", version=1, sample=X.head())
    write_package(
        model, tmp_path / "b", name="iris", version=1, sample=X.head(), trusted_pickle=True
    )
    with pytest.raises(UnsafeArtifactError, match="outside Shipyard's trust list") as info:
        read_package(tmp_path / "b")
    assert f"{__name__}.double_features" in str(info.value)
    _, predictor = read_package(tmp_path / "b", trusted_pickle=True)
    np.testing.assert_array_equal(predictor.predict(X), model.predict(X))


def test_pyfunc_import_path_package(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = iris
    name = "shipyard_package_test_user_code"
    (tmp_path / f"{name}.py").write_text("def predict(X):\n    return X['sepal_width'] * 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    manifest = write_package(f"{name}:predict", tmp_path / "pkg", name="f", version=1, sample=X)
    assert manifest.flavor == "pyfunc" and not manifest.trusted_pickle
    assert manifest.signature["output"]["task"] == "regression"
    _, predictor = read_package(tmp_path / "pkg")
    np.testing.assert_allclose(predictor.predict(X), X["sepal_width"] * 10)
    assert (tmp_path / "pkg" / MODEL_DIR / "entrypoint.txt").is_file()


def test_lightgbm_on_column_names_with_spaces(tmp_path: Path) -> None:
    """LightGBM records ``mean radius`` as ``mean_radius``: the signature keeps the data's
    own names (what clients send), and a target column in the sample stays out."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    assert "mean_radius" in model.booster_.feature_name()
    manifest = write_package(
        model, tmp_path / "pkg", name="cancer", version=1, sample=X.assign(target=y)
    )
    loaded = LoadedModel(*read_package(tmp_path / "pkg"))
    assert loaded.signature.names == tuple(X.columns)
    assert manifest.signature["inputs"][0]["name"] == "mean radius"
    record = X.iloc[0].to_dict()
    assert loaded.predict(record).tolist() == model.predict(X.head(1)).tolist()
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
