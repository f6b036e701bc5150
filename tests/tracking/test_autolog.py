"""Autologging through ``shipyard.autolog()`` with real scikit-learn, XGBoost and LightGBM fits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

import shipyard
from everyday_models import visits_with_late_values
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[Shipyard]:
    client = shipyard.configure(Settings(home=tmp_path / "home", db=database_url, user="ann"))
    shipyard.autolog(experiment="auto")
    yield client
    shipyard.autolog(disable=True)
    shipyard.configure(Settings(home=tmp_path / "unused"))


def _runs(client: Shipyard) -> list:
    client.tracker.writer.flush()
    return list(reversed(client.runs.list_runs(limit=1000)))


def _artifact(client: Shipyard, run_id: str, path: str) -> bytes:
    found = {a.path: a for a in client.runs.list_artifacts(run_id)}
    return client.artifacts.get_bytes(found[path].digest)


def test_sklearn_estimator(client: Shipyard) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0, stratify=y)
    model = LogisticRegression(C=0.5, max_iter=500).fit(X_train, y_train)
    validation = model.score(X_val, y_val)
    (run,) = _runs(client)
    assert run.experiment == "auto" and run.name == "LogisticRegression"
    assert run.status == "FINISHED"
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "500"
    predicted = model.predict(X_train)
    assert run.metrics["training_accuracy_score"] == pytest.approx(
        accuracy_score(y_train, predicted)
    )
    assert run.metrics["training_f1_score"] == pytest.approx(
        f1_score(y_train, predicted, average="weighted")
    )
    assert "training_log_loss" in run.metrics and "training_roc_auc" in run.metrics
    assert run.metrics["validation_score"] == pytest.approx(validation)
    signature = json.loads(_artifact(client, run.id, "model/signature.json"))
    assert [c["name"] for c in signature["inputs"]] == list(X.columns)
    kept = skops.io.loads(
        _artifact(client, run.id, "model/model.skops"),
        trusted=skops.io.get_untrusted_types(data=_artifact(client, run.id, "model/model.skops")),
    )
    assert (kept.predict(X_val) == model.predict(X_val)).all()
    # Registered only when asked.
    assert client.models.list_models() == []


def test_register_as_registers_a_version_linked_to_the_run(client: Shipyard) -> None:
    shipyard.autolog(experiment="auto", register_as="iris")
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    (run,) = _runs(client)
    version = client.models.get_version("iris", 1)
    assert version.run_id == run.id
    loaded = shipyard.load_model("iris:1")
    assert list(loaded.predict(X.head(5))) == list(model.predict(X.head(5)))


def test_a_pipeline_is_one_run(client: Shipyard) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(X, y)
    (run,) = _runs(client)
    assert run.name == "Pipeline"
    assert run.params["ridge__alpha"] == "2.0" and run.params["standardscaler"] == "StandardScaler"
    assert {"training_r2_score", "training_root_mean_squared_error"} <= set(run.metrics)


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_a_search_is_a_parent_and_one_child_per_candidate(client: Shipyard, kind: str) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    estimator = LogisticRegression(max_iter=500)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    if kind == "grid":
        search = GridSearchCV(estimator, grid, cv=3)
    else:
        search = RandomizedSearchCV(estimator, grid, n_iter=3, cv=3, random_state=0)
    search.fit(X, y)
    runs = _runs(client)
    parent = runs[0]
    children = [r for r in runs if r.parent_id == parent.id]
    assert len(runs) == 1 + len(search.cv_results_["params"])  # no run for inner fits
    assert len(children) == len(search.cv_results_["params"])
    assert parent.params["best_C"] == str(search.best_params_["C"])
    assert parent.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert parent.params["estimator"] == "LogisticRegression"
    by_c = {c.params["C"]: c for c in children}
    for i, params in enumerate(search.cv_results_["params"]):
        child = by_c[str(params["C"])]
        assert child.metrics["mean_test_score"] == pytest.approx(
            search.cv_results_["mean_test_score"][i]
        )
        assert child.params["max_iter"] == "500"
    best = [c for c in children if c.tags.get("autolog.best") == "true"]
    assert len(best) == 1 and best[0].params["C"] == str(search.best_params_["C"])
    assert "model/model.skops" in {a.path for a in client.runs.list_artifacts(parent.id)}


def test_xgboost_iterations_and_best_iteration(client: Shipyard) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
    model = xgboost.XGBClassifier(
        n_estimators=200, learning_rate=0.3, max_depth=3, early_stopping_rounds=5
    )
    model.fit(X_train, y_train, eval_set=[(X_train, y_train), (X_val, y_val)], verbose=False)
    (run,) = _runs(client)
    assert run.name == "XGBClassifier" and run.params["max_depth"] == "3"
    history = client.runs.metric_history(run.id, "validation_1-logloss")
    rounds = model.get_booster().num_boosted_rounds()
    assert [p.step for p in history] == list(range(rounds))
    logged = [p.value for p in history]
    expected = model.evals_result()["validation_1"]["logloss"]
    assert np.allclose(logged, expected)
    assert len(client.runs.metric_history(run.id, "validation_0-logloss")) == rounds
    assert run.metrics["best_iteration"] == model.best_iteration < rounds - 1
    assert "model/model.xgb.json" in {a.path for a in client.runs.list_artifacts(run.id)}
    booster = xgboost.Booster()
    booster.load_model(bytearray(_artifact(client, run.id, "model/model.xgb.json")))
    assert booster.num_boosted_rounds() == rounds


def test_xgboost_native_train(client: Shipyard) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    dtrain = xgboost.DMatrix(X, y)
    xgboost.train(
        {"objective": "binary:logistic", "eta": 0.5},
        dtrain,
        7,
        evals=[(dtrain, "train")],
        verbose_eval=False,
    )
    (run,) = _runs(client)
    assert run.params["eta"] == "0.5" and run.params["num_boost_round"] == "7"
    assert len(client.runs.metric_history(run.id, "train-logloss")) == 7


def test_lightgbm_iterations_and_best_iteration(client: Shipyard) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
    model = lightgbm.LGBMRegressor(n_estimators=300, learning_rate=0.2, verbose=-1)
    model.fit(
        X_train,
        y_train,
        eval_X=(X_val,),
        eval_y=(y_val,),
        callbacks=[lightgbm.early_stopping(5, verbose=False)],
    )
    (run,) = _runs(client)
    assert run.name == "LGBMRegressor" and run.params["learning_rate"] == "0.2"
    history = client.runs.metric_history(run.id, "valid_0-l2")
    assert np.allclose([p.value for p in history], model.evals_result_["valid_0"]["l2"])
    assert run.metrics["best_iteration"] == model.best_iteration_ > 0
    # LightGBM keeps the best score per evaluation set and metric.
    assert run.metrics["best_score.valid_0-l2"] == model.best_score_["valid_0"]["l2"]
    assert "training_r2_score" in run.metrics
    text = _artifact(client, run.id, "model/model.lgb.txt").decode()
    booster = lightgbm.Booster(model_str=text)
    assert np.allclose(booster.predict(X_val), model.booster_.predict(X_val))


def test_lightgbm_native_train_logs_its_rounds(client: Shipyard) -> None:
    X, y = load_diabetes(return_X_y=True)
    train_set = lightgbm.Dataset(X, y)
    lightgbm.train({"objective": "regression", "verbose": -1}, train_set, num_boost_round=9)
    (run,) = _runs(client)
    assert run.params["num_boost_round"] == "9" and run.params["objective"] == "regression"


def test_inside_an_open_run_autolog_logs_into_it(client: Shipyard) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with shipyard.start_run("mine", name="manual") as run:
        run.log_param("note", "hand-made")
        LogisticRegression(max_iter=500).fit(X, y)
    (only,) = _runs(client)
    assert only.id == run.id and only.params["note"] == "hand-made"
    assert "training_score" in only.metrics


def test_a_failed_fit_fails_its_run(client: Shipyard) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with pytest.raises(ValueError):
        LogisticRegression(C=-1.0).fit(X, y)
    (run,) = _runs(client)
    assert run.status == "FAILED" and run.params["C"] == "-1.0"


def test_disable_restores_the_libraries(client: Shipyard) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    assert getattr(LogisticRegression.fit, "__shipyard_autolog__", False)
    shipyard.autolog(disable=True)
    assert not getattr(LogisticRegression.fit, "__shipyard_autolog__", False)
    assert not getattr(xgboost.train, "__shipyard_autolog__", False)
    assert not getattr(lightgbm.LGBMClassifier.fit, "__shipyard_autolog__", False)
    LogisticRegression(max_iter=500).fit(X, y)
    assert _runs(client) == []


def _churn_by_date(rows: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    return visits_with_late_values(rows, late_from=1000, seed=7)


def _churn_pipeline() -> Any:
    prepare = ColumnTransformer(
        [
            ("age", make_pipeline(SimpleImputer(), StandardScaler()), ["age"]),
            ("plan", OneHotEncoder(), ["plan"]),
        ],
        remainder="passthrough",
    )
    return make_pipeline(prepare, LogisticRegression(max_iter=500))


def test_register_as_learns_from_every_training_row(client: Shipyard, tmp_path: Path) -> None:
    # Late rows (past the first 1,000) hold what the early ones lack: the signature,
    # the contract and the drift reference must come from all of them.
    X, y = _churn_by_date()
    shipyard.autolog(experiment="auto", register_as="churn_auto3")
    model = _churn_pipeline().fit(X, y)
    row = {"age": None, "plan": "enterprise", "visits": 3.0}
    loaded = shipyard.load_model("churn_auto3:1")
    expected = model.predict(pd.DataFrame([row]).astype({"age": float}))
    assert list(loaded.predict(row)) == list(expected)
    age, plan, _ = loaded.signature.inputs
    assert age.nullable and plan.categories == ("basic", "enterprise", "pro")
    # The run's signature says the same.
    (run,) = _runs(client)
    logged = json.loads(_artifact(client, run.id, "model/signature.json"))
    assert logged["inputs"][0]["nullable"] is True
    assert logged["inputs"][1]["categories"] == ["basic", "enterprise", "pro"]
    # The training data itself passes the contract inferred from it.
    X.to_csv(tmp_path / "visits.csv", index=False)
    result = CliRunner().invoke(
        app, ["validate", "data", "churn_auto3:1", str(tmp_path / "visits.csv"), "--json"],
        obj=client,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True
    profile = client.references.load(client.models.get_version("churn_auto3", 1))
    assert profile.n_rows == len(X)


def test_register_as_names_the_columns_of_an_array(client: Shipyard) -> None:
    X, y = load_iris(return_X_y=True)
    shipyard.autolog(experiment="auto", register_as="iris_array")
    model = LogisticRegression(max_iter=500).fit(X, y)
    loaded = shipyard.load_model("iris_array:1")
    assert loaded.signature.names == ("0", "1", "2", "3")
    assert list(loaded.predict(X[:5])) == list(model.predict(X[:5]))
