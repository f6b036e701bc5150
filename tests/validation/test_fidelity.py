"""Fidelity gates: metric drop and label agreement of a candidate against its source."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from shipyard.errors import InvalidInputError
from shipyard.quickstart import iris_frame
from shipyard.registry.manifest import Manifest
from shipyard.registry.model import LoadedModel
from shipyard.registry.package import write_package
from shipyard.validation.fidelity import FidelitySpec, evaluate_fidelity, parse_max_drop


def _loaded(tmp_path, model, X, name: str) -> LoadedModel:  # type: ignore[no-untyped-def]
    from shipyard.registry.package import read_package

    write_package(model, tmp_path / name, name=name, version=1, sample=X)
    manifest, predictor = read_package(tmp_path / name)
    assert isinstance(manifest, Manifest)
    return LoadedModel(manifest, predictor)


def test_a_weaker_candidate_fails_on_drop_and_agreement(tmp_path) -> None:  # type: ignore[no-untyped-def]
    X, y = iris_frame()
    source = _loaded(tmp_path, LogisticRegression(max_iter=1000).fit(X, y), X, "src")
    stump = _loaded(tmp_path, DecisionTreeClassifier(max_depth=1).fit(X, y), X, "stump")
    data = X.assign(species=np.asarray(y))
    report = evaluate_fidelity(stump, source, data, "species", FidelitySpec({"accuracy": 0.05}))
    assert not report.passed
    drop, agree = report.checks
    assert drop.kind == "max_drop" and drop.observed is not None and drop.observed > 0.2
    assert agree.kind == "agreement" and agree.observed is not None and agree.observed < 0.8
    same = evaluate_fidelity(source, source, data, "species", FidelitySpec({"accuracy": 0.0}, 1.0))
    assert same.passed and same.checks[1].observed == 1.0
    # Without labels only agreement is checked, on the rows given.
    unlabelled = evaluate_fidelity(stump, source, X, None, FidelitySpec())
    assert [c.kind for c in unlabelled.checks] == ["agreement"]


def test_parse_max_drop() -> None:
    assert parse_max_drop(["accuracy:0.01", "roc_auc:0.005"]) == {
        "accuracy": 0.01,
        "roc_auc": 0.005,
    }
    with pytest.raises(InvalidInputError, match="METRIC:AMOUNT"):
        parse_max_drop(["accuracy=0.01"])
    with pytest.raises(InvalidInputError, match="unknown metric"):
        FidelitySpec({"speed": 0.1})
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        FidelitySpec({}, 1.5)
