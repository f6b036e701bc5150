"""A small ``sample=`` is widened by what the fitted scikit-learn model shows it handles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from typer.testing import CliRunner

import shipyard
from everyday_models import visits_with_late_values
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import SchemaError
from shipyard.registry import package
from shipyard.registry.flavors.sklearn import SklearnPredictor
from shipyard.registry.flavors.sklearn_inputs import input_facts
from shipyard.registry.optimize import CompiledPredictor, compiled_model
from shipyard.registry.signature import (
    MAX_CATEGORIES,
    ColumnSpec,
    InputFacts,
    OutputSpec,
    Signature,
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Shipyard]:
    client = shipyard.configure(Settings(home=tmp_path / "home", user="ann"))
    yield client
    shipyard.configure(Settings(home=tmp_path / "unused"))


def _visits(rows: int = 600) -> tuple[pd.DataFrame, np.ndarray]:
    return visits_with_late_values(rows, late_from=100, seed=3)


def _pipeline() -> Any:
    plan = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    prepare = ColumnTransformer(
        [("age", make_pipeline(SimpleImputer(), StandardScaler()), ["age"]), ("plan", plan, [1])],
        remainder="passthrough",
    )
    return make_pipeline(prepare, LogisticRegression(max_iter=500))


def test_a_five_row_sample_takes_what_the_pipeline_handles(
    client: Shipyard, tmp_path: Path
) -> None:
    X, y = _visits()
    model = _pipeline().fit(X, y)
    shipyard.log_model(model, "churn", sample=X.head(5))
    loaded = shipyard.load_model("churn:1")
    row = {"age": None, "plan": "enterprise", "visits": 3.0}
    expected = model.predict(pd.DataFrame([row]).astype({"age": float}))
    assert list(loaded.predict(row)) == list(expected)
    age, plan, visits = loaded.signature.inputs
    # The imputer's constant is not a plan; nothing vouches for a missing visit count.
    assert age.nullable and plan.nullable and not visits.nullable
    assert plan.categories == ("basic", "enterprise", "pro")
    with pytest.raises(SchemaError, match="'visits' has missing values"):
        loaded.predict({"age": 30.0, "plan": "pro", "visits": None})
    # The contract stored with the version takes the same facts: the training data passes.
    X.to_csv(tmp_path / "visits.csv", index=False)
    result = CliRunner().invoke(
        app, ["validate", "data", "churn:1", str(tmp_path / "visits.csv"), "--json"], obj=client
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True


def test_a_category_the_model_never_saw_is_still_reported(client: Shipyard, tmp_path: Path) -> None:
    X, y = _visits()
    shipyard.log_model(_pipeline().fit(X, y), "churn", sample=X.head(5))
    X.head(3).assign(plan=["pro", "free", "basic"]).to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(
        app, ["validate", "data", "churn:1", str(tmp_path / "new.csv"), "--json"], obj=client
    )
    assert result.exit_code == 1, result.output
    [violation] = json.loads(result.stdout)["violations"]
    assert violation["column"] == "plan" and violation["expectation"] == "in_set"


def test_an_encoder_that_learnt_missing_values_makes_the_column_nullable(
    client: Shipyard,
) -> None:
    X, y = _visits()
    X = X.assign(region=np.where(X.index % 7 == 0, None, np.where(X.index % 2, "n", "s")))
    X["region"] = X["region"].astype("str").where(X["region"].notna())
    prepare = ColumnTransformer(
        [
            ("region", OrdinalEncoder(encoded_missing_value=-1), ["region"]),
            ("plan", OneHotEncoder(), ["plan"]),
        ],
        remainder="drop",
    )
    model = make_pipeline(prepare, LogisticRegression(max_iter=500)).fit(X, y)
    shipyard.log_model(model, "region", sample=X.iloc[1:4])
    loaded = shipyard.load_model("region:1")
    by_name = {c.name: c for c in loaded.signature.inputs}
    assert by_name["region"].nullable and by_name["region"].categories == ("n", "s")
    assert not by_name["plan"].nullable  # OneHotEncoder saw no missing plan
    # Dropped by the model (remainder="drop"), so never read: optional and nullable.
    assert by_name["age"].unused and by_name["age"].nullable and by_name["visits"].unused
    assert not by_name["region"].unused and not by_name["plan"].unused
    missing = X[X["region"].isna()].head(3)
    assert list(loaded.predict(missing)) == list(model.predict(missing))
    assert len(loaded.predict({"age": 40.0, "plan": "pro", "visits": 2.0, "region": None})) == 1


@pytest.mark.parametrize(
    ("columns", "remainder", "unused"),
    [
        (["plan"], "drop", {"age", "visits"}),
        (["plan"], "passthrough", set()),  # the remainder is read
        ([1], "drop", set()),  # by position: not certain, so nothing is unused
        # A callable is resolved to names once, at fit, and transform uses those.
        (lambda frame: ["plan"], "drop", {"age", "visits"}),
    ],
)
def test_only_a_by_name_column_transformer_that_drops_the_rest_makes_columns_unused(
    columns: Any, remainder: str, unused: set[str]
) -> None:
    X, y = _visits()
    X = X.fillna({"age": 40.0})  # a passed-through age must not hold NaN
    prepare = ColumnTransformer([("plan", OneHotEncoder(), columns)], remainder=remainder)
    model = make_pipeline(prepare, LogisticRegression(max_iter=500)).fit(X, y)
    facts = input_facts(model, list(X.columns))
    assert {name for name, fact in facts.items() if fact.unused} == unused
    searched = GridSearchCV(model, {"logisticregression__C": [1.0]}, cv=2).fit(X, y)
    assert {n for n, f in input_facts(searched, list(X.columns)).items() if f.unused} == unused


# -- which steps count --------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1.0, np.nan, 3.0, 4.0],
            "c": ["x", "y", np.nan, "z"],
            "n": [1.0, 2.0, 3.0, 4.0],
        }
    )


def test_only_steps_that_see_the_raw_columns_count() -> None:
    X = _frame()
    # After a transformer that changes values, an encoder's categories are not the data's.
    binned = make_pipeline(KBinsDiscretizer(n_bins=2, encode="ordinal"), OneHotEncoder())
    assert input_facts(binned.fit(X[["n"]]), ["n"]) == {}
    relabel = make_pipeline(FunctionTransformer(np.char.upper), OneHotEncoder())
    assert input_facts(relabel.fit(np.array([["x"], ["y"]], dtype=str)), ["c"]) == {}
    # An imputer whose missing value is not NaN says nothing about NaN.
    assert input_facts(SimpleImputer(missing_values=-1).fit(X[["n"]]), ["n"]) == {}


def test_an_imputer_then_an_encoder_maps_through_dropped_and_indicator_columns() -> None:
    X = _frame().assign(empty=np.nan)
    # The imputer drops 'empty' (never seen) and appends indicators; the encoder's
    # columns are 'a', 'c', 'n' and then indicators, which are no input of the model.
    model = make_pipeline(
        SimpleImputer(strategy="most_frequent", add_indicator=True),
        OneHotEncoder(handle_unknown="ignore"),
    ).fit(X)
    facts = input_facts(model, list(X.columns))
    assert facts["c"] == InputFacts(nullable=True, categories=("x", "y", "z"))
    assert facts["empty"] == InputFacts(nullable=True)
    assert set(facts) == {"a", "c", "n", "empty"}


def test_positions_feature_unions_and_searches() -> None:
    X = _frame()
    array = X[["a", "n"]].to_numpy()
    union = FeatureUnion([("fill", SimpleImputer()), ("scale", StandardScaler())])
    facts = input_facts(union.fit(array), ["a", "n"])  # fitted on an array: by position
    assert facts == {"a": InputFacts(nullable=True), "n": InputFacts(nullable=True)}
    by_mask = ColumnTransformer([("enc", OrdinalEncoder(), [False, True, False])]).fit(X)
    assert input_facts(by_mask, list(X.columns))["c"].categories == ("x", "y", "z")
    search = GridSearchCV(
        make_pipeline(SimpleImputer(), LogisticRegression()), {"logisticregression__C": [1.0]}, cv=2
    ).fit(X[["a", "n"]], [0, 1, 0, 1])
    assert input_facts(search, ["a", "n"])["a"].nullable
    assert input_facts(KMeans(n_clusters=2, n_init=1).fit(array[2:]), ["a", "n"]) == {}


def test_widening_never_narrows_and_has_the_inference_limit() -> None:
    signature = Signature(
        (
            ColumnSpec("c", "string", categories=("a",)),
            ColumnSpec("open", "string"),  # more than MAX_CATEGORIES in the sample
            ColumnSpec("x", "float", nullable=True),
            ColumnSpec("k", "string", categories=("a", "b"), categorical=True),
        ),
        OutputSpec("regression", "float"),
    )
    many = tuple(f"v{i:02d}" for i in range(MAX_CATEGORIES))
    wide = signature.widened(
        {
            "c": InputFacts(categories=many),
            "open": InputFacts(nullable=True, categories=("a",)),
            "x": InputFacts(),
            "k": InputFacts(categories=("z",)),
        }
    )
    c, open_, x, k = wide.inputs
    assert c.categories is None  # 21 categories: no fixed set, as inference decides
    assert open_.nullable and open_.categories is None
    assert x.nullable
    assert k.categories == ("a", "b")  # a category column keeps its training dtype


# -- the output, on a bounded number of rows ------------------------------------------------


def test_the_output_is_told_by_a_bounded_number_of_rows(
    client: Shipyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 3 * package.PROBE_ROWS
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    seen: list[int] = []
    original = SklearnPredictor.predict

    def predict(self: SklearnPredictor, data: Any) -> np.ndarray:
        seen.append(len(data))
        return original(self, data)

    monkeypatch.setattr(SklearnPredictor, "predict", predict)
    client.registry.log_model(model, "m", sample=X, optimize=False)
    assert seen == [package.PROBE_ROWS]
    assert shipyard.load_model("m:1").signature.output.classes == (0, 1)


def test_labels_without_classes_come_from_every_row(client: Shipyard) -> None:
    # A clusterer lists no classes: its labels are the output's. The one far point sits
    # at a row the evenly spaced probe skips, in a cluster of its own.
    rows = 3 * package.PROBE_ROWS
    rng = np.random.default_rng(1)
    points = np.where(rng.random((rows, 1)) < 0.5, 0.0, 10.0) + rng.normal(size=(rows, 2))
    points[1] = [1000.0, 1000.0]
    X = pd.DataFrame(points, columns=["a", "b"])
    model = KMeans(n_clusters=3, n_init=3, random_state=0).fit(X)
    assert 1 not in np.linspace(0, rows - 1, package.PROBE_ROWS).astype(int)
    client.registry.log_model(model, "clusters", sample=X, optimize=False)
    assert shipyard.load_model("clusters:1").signature.output.classes == (0, 1, 2)


def test_the_onnx_graph_is_checked_on_the_missing_values_the_sample_lacks(
    client: Shipyard,
) -> None:
    X, y = _visits()
    prepare = ColumnTransformer(
        [
            ("age", make_pipeline(SimpleImputer(), StandardScaler()), ["age"]),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ],
        remainder="passthrough",
    )
    model = make_pipeline(prepare, LogisticRegression(max_iter=500)).fit(X, y)
    version = shipyard.log_model(model, "churn", sample=X.head(5), optimize=True)
    # The five rows, then the same five with age missing, since a server may get those.
    assert version.tags["onnx_status"] == "verified"
    assert version.tags["onnx_detail"].startswith("10 rows: classes equal")
    served = compiled_model(client.registry, version, shipyard.load_model("churn:1"))
    assert isinstance(served.predictor, CompiledPredictor)
    missing = X[X["age"].isna()].head(20)
    assert np.allclose(served.predict_proba(missing), model.predict_proba(missing), atol=1e-4)
