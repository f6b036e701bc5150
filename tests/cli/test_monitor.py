"""``shipyard monitor ...`` through Typer's CliRunner, on a real registry, log and labels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from click.testing import Result
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli._common import console
from shipyard.cli.main import app as root_app
from shipyard.config import Settings
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.prediction_log import open_prediction_log
from shipyard.monitoring.records import PredictionRecord
from shipyard.quickstart import iris_frame

T0 = datetime(2024, 5, 1, 9, tzinfo=UTC)
RANGE = ["--since", "2024-05-01T09:00:00Z", "--until", "2024-05-01T12:00:00Z"]


def _app() -> typer.Typer:
    return root_app


APP = _app()


def flat(text: str) -> str:
    """Output without line breaks and Rich's box drawing, for substring checks."""
    return re.sub(r"[\s│┃╭╮╰╯─━┏┓┗┛┡┩└┘┌┐├┤┼╇╈╋┳┻]+", " ", text)


def run(client: Shipyard, *args: str | Path) -> Result:
    return CliRunner().invoke(APP, ["monitor", *map(str, args)], obj=client)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # CliRunner is no terminal, so Rich assumes 80 columns and wraps the table's
    # cells; a wide one keeps each row on one line for the substring checks.
    monkeypatch.setattr(console, "width", 160)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    """iris:1 labelled truthfully (healthy), iris:2 labelled wrongly (degraded), both
    recorded accuracy 0.97 at training; 3 hours of logged predictions each."""
    client = Shipyard(Settings(home=tmp_path_factory.mktemp("monitor") / "home", user="tester"))
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    for _ in (1, 2):
        client.registry.log_model(model, "iris", sample=X, metrics={"accuracy": 0.97})
    client.registry.set_alias("iris", "production", 1)
    client.registry.log_model(model, "plain", sample=X)  # no training metrics

    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(X), 300)
    proba = model.predict_proba(X.iloc[rows])
    predicted = model.classes_[proba.argmax(axis=1)]
    log = open_prediction_log(client.settings)
    labels = []
    for version in (1, 2):
        records = [
            PredictionRecord(
                request_id=f"v{version}-{i}",
                timestamp=T0 + timedelta(seconds=36 * i),
                model="iris",
                version=version,
                inputs=X.iloc[row].to_dict(),
                prediction=predicted[i],
                probabilities=dict(zip(model.classes_, proba[i], strict=True)),
            )
            for i, row in enumerate(rows)
        ]
        log.write(records)
        truth = y.iloc[rows].tolist()
        classes = list(model.classes_)
        # Labels for version 2 always name another class than the model predicted.
        wrong = [classes[(classes.index(p) + 1) % 3] for p in predicted]
        labels += [
            {"request_id": f"v{version}-{i}", "label": t if version == 1 else w}
            for i, (t, w) in enumerate(zip(truth, wrong, strict=True))
        ]
    log.write(
        [
            PredictionRecord("p-0", T0, "plain", 1, {"sepal_length": 5.0}, 0, {0: 1.0, 1: 0.0}),
        ]
    )
    record_feedback(log, labels)
    yield client
    client.close()


def test_feedback_file_reports_accepted_and_unknown(client: Shipyard, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["p-0", "ghost"], "label": [0, 1]}).to_csv(labels, index=False)
    result = run(client, "feedback", labels)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "Accepted 2 label(s)" in out
    assert (
        "1 matched a logged prediction, 1 for 1 unknown request id(s), 0 for rows their "
        "logged request does not have, 0 duplicate(s)"
    ) in out
    assert "ghost" in flat(result.stderr)

    as_json = run(client, "feedback", labels, "--model", "plain", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {
        "accepted": 2,
        "matched": 1,
        "unknown": 1,
        "unknown_ids": ["ghost"],
        "unknown_id_labels": 1,
        "unknown_rows": [],
        "duplicates": 2,  # both were labelled by the first call
    }


def test_feedback_for_a_batch_job_counts_each_label_by_its_row(tmp_path: Path) -> None:
    """A batch job whose rows 10, 30, 50 and 20000 were rejected logged 29,996 rows under
    one request id: of 30,000 labels, 29,996 match and the 4 for the rejected rows are
    reported as rows with no prediction, not the job's id as unknown."""
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    try:
        X, y = iris_frame()
        client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
        rows = X.sample(30_000, replace=True, random_state=0).reset_index(drop=True)
        rows = rows.astype(object)
        rejected = [10, 30, 50, 20_000]
        rows.loc[rejected, "petal_length"] = "oops"
        rows.to_csv(tmp_path / "in.csv", index=False)
        scored = CliRunner().invoke(
            APP,
            ["predict", "iris:1", "--input", str(tmp_path / "in.csv"), "--output",
             str(tmp_path / "out.parquet"), "--chunk-size", "10000", "--json"],
            obj=client,
        )  # fmt: skip
        assert scored.exit_code == 0, scored.output
        job = json.loads(scored.output)["job_id"]
        labels = pd.DataFrame({"request_id": job, "row": range(30_000), "label": "setosa"})
        labels.to_csv(tmp_path / "labels.csv", index=False)

        result = run(client, "feedback", tmp_path / "labels.csv")
        assert result.exit_code == 0, result.output
        assert (
            "Accepted 30000 label(s) from " in flat(result.stdout)
            and "29996 matched a logged prediction, 0 for 0 unknown request id(s), 4 for rows "
            "their logged request does not have"
            in flat(result.stdout)
        ), result.stdout
        told = flat(result.stderr)
        assert "Unknown request ids" not in told
        assert "Rows with no logged prediction" in told
        assert all(f"{job} row {n}" in told for n in rejected), told

        again = run(client, "feedback", tmp_path / "labels.csv", "--model", "iris", "--json")
        assert again.exit_code == 0, again.output
        found = json.loads(again.stdout)
        assert (found["accepted"], found["matched"], found["unknown_ids"]) == (30_000, 29_996, [])
        assert found["unknown_rows"] == [{"request_id": job, "row": n} for n in rejected]
        assert found["unknown_id_labels"] == 0
    finally:
        client.close()


def test_feedback_file_errors_exit_1_naming_the_file(client: Shipyard, tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("id,label\nx,1\n")
    result = run(client, "feedback", bad)
    assert result.exit_code == 1
    assert "labels.csv: missing column(s) ['request_id']" in flat(result.stderr)


@pytest.mark.parametrize("row", ["2147483648", "4294967296", "99999999999999999999", "-1"])
def test_feedback_file_rows_outside_32_bits_exit_1_naming_the_line(
    client: Shipyard, tmp_path: Path, row: str
) -> None:
    """Rows are stored as 32-bit integers: a larger one is refused, never wrapped."""
    labels = tmp_path / "labels.csv"
    labels.write_text(f"request_id,label,row\np-0,0,0\np-1,1,{row}\n")
    result = run(client, "feedback", labels)
    assert result.exit_code == 1, result.output
    message = flat(result.stderr)
    assert "labels.csv line 3: row must be a whole number from 0 to 2147483647" in message


def test_healthy_model_exits_0_with_a_table(client: Shipyard) -> None:
    result = run(client, "performance", "iris", *RANGE)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "Performance of iris:1" in out
    for heading in ("predictions", "labelled", "label delay", "accuracy", "f1_macro", "roc_auc"):
        assert heading in out
    assert "realized on labelled rows / estimated from probabilities (CBPE)" in out
    assert "1h buckets" in out
    assert "2024-05-01 09:00 100 100 (100%)" in out
    assert "baseline (training)" in out and "0.970" in out
    assert "Healthy:" in out


def test_degraded_model_exits_1_and_says_why(client: Shipyard) -> None:
    result = run(client, "performance", "iris:2", "--window", "1h", *RANGE)
    assert result.exit_code == 1, result.output
    out = flat(result.stdout)
    assert "Degraded:" in out
    assert "accuracy worse than 0.92 (baseline 0.97 - margin 0.05)" in out
    assert "for 3 consecutive buckets" in out


def test_json_output_holds_buckets_and_the_verdict(client: Shipyard) -> None:
    result = run(client, "performance", "iris:2", *RANGE, "--sustained", "4", "--json")
    assert result.exit_code == 0, result.output  # 3 bad buckets < 4 needed
    report = json.loads(result.stdout)
    assert report["ref"] == "iris:2" and report["task"] == "classification"
    assert [b["n_predictions"] for b in report["buckets"]] == [100, 100, 100]
    assert all(b["realized"]["accuracy"] == 0.0 for b in report["buckets"])
    assert all(b["estimated"]["accuracy"] > 0.8 for b in report["buckets"])
    assert report["degradation"]["flagged"] is False
    assert report["baseline"] == {"accuracy": 0.97}


def test_an_empty_window_is_a_message_and_exit_0(client: Shipyard) -> None:
    result = run(client, "performance", "iris", "--since", "2h")  # nothing logged lately
    assert result.exit_code == 0, result.output
    assert "No predictions of iris (version 1)" in flat(result.stderr)
    as_json = run(client, "performance", "iris", "--since", "2h", "--json")
    assert json.loads(as_json.stdout)["degradation_note"].startswith("No predictions")


def test_without_a_training_baseline_nothing_is_judged(client: Shipyard) -> None:
    result = run(client, "performance", "plain:1", *RANGE)
    assert result.exit_code == 0, result.output
    assert "Verdict: not judged. No training baseline for accuracy" in flat(result.stdout)


def test_errors_exit_1(client: Shipyard) -> None:
    unknown = run(client, "performance", "nosuchmodel", *RANGE)
    assert unknown.exit_code == 1
    assert "Error:" in unknown.stderr
    bad_window = run(client, "performance", "iris", "--window", "soon")
    assert bad_window.exit_code == 1 and "duration" in flat(bad_window.stderr)
    bad_metric = run(client, "performance", "iris", *RANGE, "--metric", "mae")
    assert bad_metric.exit_code == 1 and "not reported for a classification" in flat(
        bad_metric.stderr
    )


def test_prune_applies_retention(client: Shipyard) -> None:
    result = run(client, "prune", "--older-than", "100000d")
    assert result.exit_code == 0, result.output
    assert "Removed 0 day partition(s)" in result.stdout


def test_compact_merges_small_segments(client: Shipyard) -> None:
    log = open_prediction_log(client.settings)
    for i in range(3):
        log.write([PredictionRecord(f"c-{i}", T0 + timedelta(days=3), "plain", 1, {"x": 1.0}, 0)])
    result = run(client, "compact")
    assert result.exit_code == 0, result.output
    merged = re.search(r"Merged (\d+) segment\(s\) into (\d+) file\(s\)", result.stdout)
    assert merged is not None and int(merged[1]) >= 3
    assert len(log.store.files("predictions", "plain", first=(T0 + timedelta(days=3)).date())) == 1
