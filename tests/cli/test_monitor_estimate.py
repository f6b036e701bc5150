"""``shipyard monitor estimate`` through the real CLI app, on real scikit-learn models and data.

Binary (breast cancer) and multi-class (wine) classifiers, a regressor
(diabetes), the calibration fitted once and reused, the one fitted by the model
gates' holdout, the same numbers as a real server's monitor job, and bad input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from live_server import LiveServer
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.serving import ServeOptions, create_app

CHUNK_KEYS = {"start", "rows", "accuracy", "f1_macro", "roc_auc", "calibrated", "band"}


def frame(loader: object) -> tuple[pd.DataFrame, pd.Series]:
    X, y = loader(return_X_y=True, as_frame=True)  # type: ignore[operator]
    X.columns = [c.replace(" ", "_").replace("/", "_") for c in X.columns]
    return X, y


def run(client: Shipyard, *args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args)], obj=client)


def estimate(client: Shipyard, *args: str | Path) -> dict:
    result = run(client, "monitor", "estimate", *args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Shipyard]:
    made = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    yield made
    made.close()


@pytest.fixture
def cancer(client: Shipyard, tmp_path: Path) -> dict[str, Path]:
    """A random forest on breast cancer (probabilities squeezed toward 0.5), a labelled
    reference table and a table of current inputs."""
    X, y = frame(load_breast_cancer)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X.iloc[order].reset_index(drop=True), y.iloc[order].reset_index(drop=True)
    model = RandomForestClassifier(40, max_depth=3, random_state=0).fit(X[:250], y[:250])
    client.registry.log_model(model, "cancer", sample=X[:50])
    paths = {"reference": tmp_path / "reference.csv", "current": tmp_path / "current.csv"}
    X[250:420].assign(target=y[250:420]).to_csv(paths["reference"], index=False)
    X[420:].to_csv(paths["current"], index=False)
    paths["truth"] = tmp_path / "truth.csv"
    y[420:].to_frame("target").to_csv(paths["truth"], index=False)
    return paths


def test_binary_estimates_per_chunk_in_the_documented_shape(
    client: Shipyard, cancer: dict[str, Path]
) -> None:
    raw = estimate(client, "cancer:1", "--current", cancer["current"], "--chunk-size", "50")
    rows = len(pd.read_csv(cancer["current"]))
    assert [c["start"] for c in raw["chunks"]] == list(range(0, rows, 50))
    assert sum(c["rows"] for c in raw["chunks"]) == rows
    for chunk in raw["chunks"]:
        assert set(chunk) == CHUNK_KEYS and chunk["calibrated"] is False
        for metric in ("accuracy", "f1_macro", "roc_auc"):
            low, high = chunk["band"][metric]
            assert 0 <= low <= chunk[metric] <= high <= 1

    # The reference, given once, calibrates; later runs (without it) reuse the stored one.
    fitted = estimate(
        client,
        "cancer:1",
        "--current",
        cancer["current"],
        "--reference",
        cancer["reference"],
        "--target",
        "target",
        "--chunk-size",
        "50",
    )
    again = estimate(client, "cancer:1", "--current", cancer["current"], "--chunk-size", "50")
    assert again == fitted
    assert all(c["calibrated"] is True for c in again["chunks"])
    # The depth-3 forest is underconfident: calibration moves the estimate toward
    # the realized accuracy of the chunk.
    X = pd.read_csv(cancer["current"])
    truth = pd.read_csv(cancer["truth"])["target"].to_numpy()
    predicted = client.registry.load("cancer:1").predict(X)
    realized = float(np.mean(predicted == truth))
    whole = estimate(client, "cancer:1", "--current", cancer["current"], "--chunk-size", "1000")
    raw_whole = float(np.mean([c["accuracy"] for c in raw["chunks"]]))
    assert abs(whole["chunks"][0]["accuracy"] - realized) < abs(raw_whole - realized)

    table = run(client, "monitor", "estimate", "cancer:1", "--current", cancer["current"])
    assert table.exit_code == 0, table.output
    assert "CBPE, calibrated" in table.output


def test_multiclass_roc_auc_and_f1_are_estimated(client: Shipyard, tmp_path: Path) -> None:
    X, y = frame(load_wine)
    order = np.random.default_rng(1).permutation(len(X))  # the file is sorted by class
    X, y = X.iloc[order].reset_index(drop=True), y.iloc[order].reset_index(drop=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    client.registry.log_model(model, "wine", sample=X[:20])
    X.to_csv(tmp_path / "wine.csv", index=False)
    found = estimate(client, "wine:1", "--current", tmp_path / "wine.csv", "--chunk-size", "60")
    assert len(found["chunks"]) == math.ceil(len(X) / 60)
    for chunk in found["chunks"]:
        assert 0.5 < chunk["roc_auc"] <= 1 and 0.5 < chunk["f1_macro"] <= 1
        assert chunk["band"]["roc_auc"] is not None


def test_the_model_gates_holdout_fits_the_calibration(
    client: Shipyard, cancer: dict[str, Path]
) -> None:
    gated = run(
        client,
        "validate",
        "model",
        "cancer:1",
        "--data",
        cancer["reference"],
        "--target",
        "target",
        "--threshold",
        "accuracy>=0.8",
        "--json",
    )
    assert gated.exit_code == 0, gated.output
    assert json.loads(gated.output)["cbpe_calibration"].startswith("CBPE calibration fitted")
    found = estimate(client, "cancer:1", "--current", cancer["current"])
    assert all(c["calibrated"] is True for c in found["chunks"])


def test_a_regressor_gets_direct_loss_estimation_with_a_reference(
    client: Shipyard, tmp_path: Path
) -> None:
    X, y = frame(load_diabetes)
    model = GradientBoostingRegressor(random_state=0).fit(X[:200], y[:200])
    client.registry.log_model(model, "sugar", sample=X[:20])
    X[200:330].assign(y=y[200:330]).to_csv(tmp_path / "reference.csv", index=False)
    X[330:].to_csv(tmp_path / "current.csv", index=False)

    refused = run(client, "monitor", "estimate", "sugar:1", "--current", tmp_path / "current.csv")
    assert refused.exit_code == 1
    assert "direct loss estimation" in refused.output and "--reference" in refused.output

    found = estimate(
        client,
        "sugar:1",
        "--current",
        tmp_path / "current.csv",
        "--reference",
        tmp_path / "reference.csv",
        "--target",
        "y",
        "--chunk-size",
        "200",
    )
    (chunk,) = found["chunks"]
    error = y[330:].to_numpy() - model.predict(X[330:])
    realized_mae = float(np.mean(np.abs(error)))
    realized_rmse = float(np.sqrt(np.mean(error**2)))
    assert chunk["rows"] == len(error)
    # Estimated without labels, within a fifth of the realized figures.
    assert chunk["mae"] == pytest.approx(realized_mae, rel=0.2)
    assert chunk["rmse"] == pytest.approx(realized_rmse, rel=0.2)


def test_bad_input_gets_one_line_errors(client: Shipyard, cancer: dict[str, Path]) -> None:
    cases = [
        (["--current", "missing.csv"], "missing.csv"),
        (["--current", cancer["current"], "--reference", cancer["reference"]], "go together"),
        (
            ["--current", cancer["current"], "--reference", cancer["reference"], "--target", "x"],
            "no target column 'x'",
        ),
    ]
    for args, message in cases:
        result = run(client, "monitor", "estimate", "cancer:1", *args)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
    zero = run(client, "monitor", "estimate", "cancer:1", "--current", cancer["current"],
               "--chunk-size", "0")  # fmt: skip
    assert zero.exit_code == 2 and "--chunk-size" in zero.output


def test_the_same_numbers_as_the_monitor_job_of_a_real_server(
    client: Shipyard, cancer: dict[str, Path]
) -> None:
    estimate(
        client,
        "cancer:1",
        "--current",
        cancer["reference"],
        "--reference",
        cancer["reference"],
        "--target",
        "target",
    )
    rows = pd.read_csv(cancer["current"])
    server = LiveServer(
        create_app(client, "cancer:1", options=ServeOptions(monitor_interval=3600))
    ).start()
    try:
        with server.client() as http:
            answer = http.post("/predict", json=rows.to_dict("records"))
            assert answer.status_code == 200, answer.text
            client.prediction_log.flush()
            server.app.state.monitor.run_once()
            metrics = http.get("/metrics").text
    finally:
        server.stop()
    labels = 'deployment="",model="cancer",variant="default",version="1"'
    exported = next(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(f"shipyard_estimated_accuracy_ratio{{{labels}}}")
    )
    assert f"shipyard_estimate_calibrated{{{labels}}} 1.0" in metrics
    found = estimate(client, "cancer:1", "--current", cancer["current"], "--chunk-size", "1000")
    assert found["chunks"][0]["accuracy"] == pytest.approx(exported, abs=1e-9)


def zip_code_table(rows: int, seed: int) -> pd.DataFrame:
    """Customers with a zip code (596 distinct ones, leading zeros kept: a text column a
    model reads), a tenure, and a signup date of 900 distinct days the model never reads."""
    rng = np.random.default_rng(seed)
    zips = np.array([f"{z:05d}" for z in np.random.default_rng(7).choice(99_999, 596, False)])
    return pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 60, rows).astype(float),
            "zip": zips[rng.integers(0, len(zips), rows)],
            "signup_date": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 900, rows), unit="D"),
        }
    )


def zip_encoder() -> object:
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    return make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["zip"]), remainder="passthrough"
    )


def lifetime_value(X: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The truth: its noise, so the model's error, grows with tenure."""
    noise = rng.normal(0, 1, len(X)) * X["tenure_months"].to_numpy() / 5
    return np.asarray(3 * X["tenure_months"].to_numpy() + noise)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_regressor_with_a_high_cardinality_text_input_and_unused_columns(
    client: Shipyard, tmp_path: Path, fmt: str
) -> None:
    """DLE learns from the model's own columns (not the 900-day signup date it never
    reads) and takes a text input with more distinct values than the booster's 255
    categories: the most frequent keep their own, the rest share one."""
    from sklearn.linear_model import Ridge

    reference = zip_code_table(3000, seed=0)
    rng = np.random.default_rng(1)
    y = lifetime_value(reference, rng)
    features = reference[["tenure_months", "zip"]]
    model = make_pipeline(zip_encoder(), Ridge()).fit(features, y)
    client.registry.log_model(model, "ltv", sample=features[:500])

    current = zip_code_table(1000, seed=2)  # longer-tenured customers: larger errors
    current["tenure_months"] = np.clip(current["tenure_months"] + 25, 1, 90)
    labelled = reference.assign(ltv=y)
    paths = {"reference": tmp_path / f"train.{fmt}", "current": tmp_path / f"shifted.{fmt}"}
    if fmt == "csv":
        labelled.to_csv(paths["reference"], index=False)
        current.to_csv(paths["current"], index=False)
    else:
        labelled.to_parquet(paths["reference"])
        current.to_parquet(paths["current"])

    found = estimate(
        client,
        "ltv:1",
        "--current",
        paths["current"],
        "--reference",
        paths["reference"],
        "--target",
        "ltv",
        "--chunk-size",
        "1000",
    )
    (chunk,) = found["chunks"]
    error = lifetime_value(current, rng) - model.predict(current[["tenure_months", "zip"]])
    reference_mae = float(np.mean(np.abs(y - model.predict(features))))
    assert chunk["mae"] == pytest.approx(float(np.mean(np.abs(error))), rel=0.2)
    assert chunk["rmse"] == pytest.approx(float(np.sqrt(np.mean(error**2))), rel=0.2)
    assert chunk["mae"] > 1.5 * reference_mae  # the shift toward larger errors is seen

    # Columns the model does not read change nothing: the same figures without them.
    plain = tmp_path / "plain.parquet"
    labelled.drop(columns=["signup_date"]).to_parquet(plain)
    args = ["--current", paths["current"], "--target", "ltv", "--chunk-size", "1000"]
    assert estimate(client, "ltv:1", *args, "--reference", plain) == found

    # A model column missing from the table is one line naming it, not a traceback.
    current.drop(columns=["zip"]).to_parquet(tmp_path / "nozip.parquet")
    refused = run(client, "monitor", "estimate", "ltv:1", "--current", tmp_path / "nozip.parquet",
                  "--reference", paths["reference"], "--target", "ltv")  # fmt: skip
    assert refused.exit_code == 1 and refused.exception is not None
    assert isinstance(refused.exception, SystemExit), refused.exception
    assert refused.output.startswith("Error: ") and "'zip'" in refused.output


def test_dle_pools_rare_and_unseen_text_values_in_one_category() -> None:
    from shipyard.monitoring.estimate import DLE_MAX_CATEGORIES, DirectLossEstimator

    rng = np.random.default_rng(0)
    # 600 distinct values; the 10 frequent ones carry large errors, the rare ones none.
    frequent = [f"f{i}" for i in range(10)]
    values = np.array(frequent * 150 + [f"r{i}" for i in range(590)], dtype=object)
    inputs = pd.DataFrame({"city": values})
    error = np.where(np.isin(values, frequent), 10.0, 0.0) * rng.choice([-1, 1], len(values))
    dle = DirectLossEstimator().fit(inputs, np.zeros(len(values)), error)
    assert len(dle.categories_["city"]) == DLE_MAX_CATEGORIES
    assert set(frequent) <= set(dle.categories_["city"])
    current = pd.DataFrame({"city": ["f3"] * 50 + ["never-seen"] * 50 + [None] * 10})
    (chunk,) = dle.estimate(current[:50], np.zeros(50), chunk_size=100)
    assert chunk.metrics["mae"] == pytest.approx(10.0, rel=0.1)
    (chunk,) = dle.estimate(current[50:100], np.zeros(50), chunk_size=100)
    assert chunk.metrics["mae"] < 2.0  # "other": the rare reference values' errors
    (chunk,) = dle.estimate(current[100:], np.zeros(10), chunk_size=100)
    assert chunk.metrics["mae"] is not None


def test_a_classifier_estimate_reads_only_the_model_columns_of_its_reference(
    client: Shipyard, tmp_path: Path
) -> None:
    """The calibration reads the model's probabilities, which read the model's columns:
    a zip code stays text in CSV, the 900-day signup date is never looked at."""
    reference = zip_code_table(2000, seed=0)
    churned = (reference["tenure_months"] < 20).astype(int)
    features = reference[["tenure_months", "zip"]]
    model = make_pipeline(zip_encoder(), LogisticRegression(max_iter=500)).fit(features, churned)
    client.registry.log_model(model, "churn", sample=features[:500])
    reference.assign(churned=churned).to_csv(tmp_path / "train.csv", index=False)
    zip_code_table(600, seed=3).to_csv(tmp_path / "current.csv", index=False)
    found = estimate(
        client,
        "churn:1",
        "--current",
        tmp_path / "current.csv",
        "--reference",
        tmp_path / "train.csv",
        "--target",
        "churned",
        "--chunk-size",
        "300",
    )
    assert [c["rows"] for c in found["chunks"]] == [300, 300]
    assert all(c["calibrated"] is True and c["accuracy"] > 0.8 for c in found["chunks"])


def test_a_model_reading_dates_as_text_still_gets_text_from_csv(
    client: Shipyard, tmp_path: Path
) -> None:
    """Drift types a text column of ISO dates as a datetime; the tables a model reads
    do not change: a model trained on the text ``"2024-03-01"`` still gets it."""
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    cohorts = [f"2024-{m:02d}-01" for m in range(1, 13)]
    X = pd.DataFrame({"cohort": rng.choice(cohorts, 1200), "spend": rng.normal(50, 10, 1200)})
    late = X["cohort"] >= "2024-07-01"
    y = (late ^ (rng.random(1200) < 0.1)).astype(int)
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="error"), ["cohort"]), remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(X, y)
    client.registry.log_model(model, "cohorts", sample=X[:300])
    X[600:].to_csv(tmp_path / "current.csv", index=False)
    X[600:].to_parquet(tmp_path / "current.parquet")
    from_csv = estimate(client, "cohorts:1", "--current", tmp_path / "current.csv")
    from_parquet = estimate(client, "cohorts:1", "--current", tmp_path / "current.parquet")
    assert from_csv == from_parquet
    assert from_csv["chunks"][0]["accuracy"] > 0.85
