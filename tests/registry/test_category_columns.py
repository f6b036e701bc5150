"""Boosters trained on pandas ``category`` columns: logged, loaded, compiled, refused clearly.

LightGBM and XGBoost split on a category's *code*, its position in the training
categories. The signature keeps those categories in their order, and input in
any form (strings from JSON, a frame whose categories are in another order)
becomes that very dtype, so every row reaches the trees with the right code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from category_data import (
    CATEGORICAL,
    CONCAVITY_BANDS,
    RADIUS_BANDS,
    banded_cancer,
    category_splits,
    lightgbm_model,
    records,
    xgboost_model,
)
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.errors import InvalidInputError, SchemaError
from shipyard.registry.optimize import (
    CompiledPredictor,
    compiled_model,
    describe_optimization,
    optimize_version,
)
from shipyard.registry.signature import Signature
from shipyard.validation.contract_checks import check_contract
from shipyard.validation.service import get_contract

BUILDERS = {"lightgbm": lightgbm_model, "xgboost": xgboost_model}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    return banded_cancer()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    c = Shipyard(Settings(home=tmp_path_factory.mktemp("categories") / "home", user="t"))
    yield c
    c.close()


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def logged(
    request: pytest.FixtureRequest, client: Shipyard, data: tuple[pd.DataFrame, pd.Series]
) -> tuple[str, Any]:
    X, y = data
    model = BUILDERS[request.param](X, y)
    assert category_splits(model) == set(CATEGORICAL)  # the trees use the categories
    version = client.registry.log_model(model, f"cancer-{request.param}", sample=X)
    return version.ref, model


def test_the_signature_keeps_each_category_column_with_its_categories_in_order(
    client: Shipyard, logged: tuple[str, Any]
) -> None:
    ref, _ = logged
    signature = client.registry.load(ref).signature
    specs = {c.name: c for c in signature.inputs}
    assert specs["radius_band"].categorical and specs["radius_band"].dtype == "string"
    assert list(specs["radius_band"].categories) == RADIUS_BANDS
    assert list(specs["concavity_band"].categories) == CONCAVITY_BANDS
    assert not specs["mean_texture"].categorical
    stored = client.registry.manifest(client.registry.resolve(ref)).signature
    assert Signature.from_dict(stored) == signature  # survives the manifest round trip
    assert {c["name"]: c.get("categorical", False) for c in stored["inputs"]}["radius_band"]


def test_the_data_contract_and_drift_profile_know_the_categories(
    client: Shipyard, logged: tuple[str, Any], data: tuple[pd.DataFrame, pd.Series]
) -> None:
    ref, _ = logged
    X, _ = data
    record = client.registry.resolve(ref)
    contract = get_contract(client.validation, record)
    assert list(contract.column("radius_band").categories) == RADIUS_BANDS
    assert check_contract(contract, X).passed
    assert check_contract(contract, X.astype({c: object for c in CATEGORICAL})).passed
    unknown = X.astype({"radius_band": object}).head(3).copy()
    unknown.loc[0, "radius_band"] = "r9"
    assert not check_contract(contract, unknown).passed
    profile = client.references.load(record)
    assert profile.columns["radius_band"].type.value == "categorical"
    assert sorted(profile.columns["radius_band"].keys) == sorted(RADIUS_BANDS)


def test_every_input_form_answers_like_the_model_itself(
    client: Shipyard, logged: tuple[str, Any], data: tuple[pd.DataFrame, pd.Series]
) -> None:
    ref, model = logged
    X, _ = data
    loaded = client.registry.load(ref)
    expected = model.predict_proba(X)
    sorted_order = X.assign(radius_band=X["radius_band"].cat.set_categories(sorted(RADIUS_BANDS)))
    assert list(sorted_order["radius_band"].cat.categories) != RADIUS_BANDS
    plain = X.astype({c: object for c in CATEGORICAL})
    for form in (X, records(X), sorted_order, plain):
        np.testing.assert_allclose(loaded.predict_proba(form), expected, rtol=0, atol=1e-12)
    prepared = loaded.prepare(records(X))
    assert prepared["radius_band"].dtype == pd.CategoricalDtype(RADIUS_BANDS)
    np.testing.assert_array_equal(
        prepared["radius_band"].cat.codes.to_numpy(), X["radius_band"].cat.codes.to_numpy()
    )


def test_an_unknown_category_names_the_column_row_and_categories(
    client: Shipyard, logged: tuple[str, Any], data: tuple[pd.DataFrame, pd.Series]
) -> None:
    ref, _ = logged
    X, _ = data
    rows = records(X.head(3))
    rows[2]["radius_band"] = "r9"
    with pytest.raises(SchemaError, match="'radius_band' has 'r9' at row 2") as info:
        client.registry.load(ref).predict(rows)
    assert info.value.field == "radius_band" and info.value.rows == [2]
    assert str(RADIUS_BANDS) in str(info.value)


def test_the_model_is_the_authority_on_its_categories(
    client: Shipyard, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    """A sample rebuilt outside the training frame (another order, fewer categories,
    plain text) still gives the signature the model's own categories, in its order."""
    X, y = data
    xgb = xgboost_model(X, y)
    head = X[X["radius_band"].isin(["r2", "r5", "r7", "r8"])].head(40)
    partial = head.assign(radius_band=pd.Categorical(head["radius_band"].astype(str)))
    assert set(partial["radius_band"].cat.categories) < set(RADIUS_BANDS)
    for sample in (partial, head.astype({c: object for c in CATEGORICAL})):
        version = client.registry.log_model(xgb, "rebuilt-xgb", sample=sample)
        spec = client.registry.load(version.ref).signature.inputs[3]
        assert spec.name == "radius_band" and list(spec.categories) == RADIUS_BANDS
        contract = get_contract(client.validation, version)
        assert list(contract.column("radius_band").categories) == RADIUS_BANDS
    lgb = lightgbm_model(X, y)
    version = client.registry.log_model(lgb, "rebuilt-lgb", sample=partial)
    assert list(client.registry.load(version.ref).signature.inputs[3].categories) == RADIUS_BANDS
    outside = head.astype({"radius_band": object}).copy()
    outside.loc[outside.index[0], "radius_band"] = "r9"
    with pytest.raises(InvalidInputError, match=r"holds 'r9'.*trained with"):
        client.registry.log_model(xgb, "rebuilt-xgb", sample=outside)
    # LightGBM records its categories by position only: a sample without category
    # columns cannot be matched to them, and saying so beats a library traceback.
    with pytest.raises(InvalidInputError, match="trained with 2 pandas category column"):
        client.registry.log_model(lgb, "rebuilt-lgb", sample=head.astype({"radius_band": object}))


def test_raw_boosters_with_category_columns(
    client: Shipyard, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    import lightgbm
    import xgboost

    X, y = data
    lgb_booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5},
        lightgbm.Dataset(X, y),
        num_boost_round=20,
    )
    xgb_booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3},
        xgboost.DMatrix(X, y, enable_categorical=True),
        num_boost_round=20,
    )
    expected = {
        "raw-lgb": lgb_booster.predict(X),
        "raw-xgb": xgb_booster.predict(xgboost.DMatrix(X, enable_categorical=True)),
    }
    for name, booster in (("raw-lgb", lgb_booster), ("raw-xgb", xgb_booster)):
        version = client.registry.log_model(booster, name, sample=X)
        loaded = client.registry.load(version.ref)
        got = loaded.predict_proba(records(X))[:, 1]
        np.testing.assert_allclose(got, expected[name], rtol=0, atol=1e-6)


def test_a_category_column_of_unsupported_values_is_refused_with_what_to_do(
    client: Shipyard, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    """pd.cut without labels makes Interval categories, which no JSON client can send."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = data
    intervals = X.assign(radius_band=pd.cut(X["mean_texture"], 4))
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["radius_band"])), LogisticRegression()
    ).fit(intervals, y)
    with pytest.raises(InvalidInputError, match=r"interval values.*astype\(str\)"):
        client.registry.log_model(model, "intervals", sample=intervals, trusted_pickle=True)


def test_onnx_compiles_category_columns_as_codes_and_agrees(
    client: Shipyard, logged: tuple[str, Any], data: tuple[pd.DataFrame, pd.Series]
) -> None:
    ref, model = logged
    X, _ = data
    outcome = optimize_version(client.registry, ref, sample=X)
    assert outcome.status == "verified", outcome.detail
    record = client.registry.resolve(ref)
    fast = compiled_model(client.registry, record, client.registry.load(ref))
    assert isinstance(fast.predictor, CompiledPredictor)
    shuffled = X.assign(radius_band=X["radius_band"].cat.set_categories(sorted(RADIUS_BANDS)))
    for form in (records(X), shuffled):
        np.testing.assert_allclose(fast.predict_proba(form), model.predict_proba(X), atol=1e-5)
    assert fast.predict(records(X)).tolist() == model.predict(X).tolist()
    assert describe_optimization(client, record)[0].startswith("Runtime: onnxruntime")
    # Without a sample, rows are drawn from the ranges and the categories.
    assert optimize_version(client.registry, ref).status == "verified"
