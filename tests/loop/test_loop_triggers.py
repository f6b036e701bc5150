"""Each trigger kind fires when it should and stays quiet when it should not."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from loop_support import T0, ManualClock, RecordingCanary, append_rows, make_config

from shipyard import Shipyard
from shipyard.loop.config import LoopConfig
from shipyard.loop.controller import LoopController
from shipyard.loop.examples import FEATURES, iris_frame, train_iris
from shipyard.loop.triggers import TriggerContext, Verdict, evaluate_trigger, window_key
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.records import PredictionRecord
from shipyard.store import records
from shipyard.store.loop_records import LoopRun


def _evaluate(client: Shipyard, config: LoopConfig, now: datetime, champion: Any = None) -> Verdict:
    ctx = TriggerContext(client, config, client.loops, now, champion)
    return evaluate_trigger(config.triggers[0], ctx)


def _claim(client: Shipyard, verdict: Verdict, now: datetime, **details: Any) -> None:
    assert verdict.firing is not None
    store = client.loops
    run = store.claim(
        "iris",
        verdict.firing.kind,
        verdict.firing.key,
        reason=verdict.firing.reason,
        actor="t",
        now=now,
        details={**verdict.firing.details, **details},
    )
    assert isinstance(run, LoopRun)
    store.update_run(run.id, now=now, status="rejected")


def _champion(client: Shipyard, n_rows: int | None = None) -> records.ModelVersion:
    data = iris_frame()
    model, metrics = train_iris(data, {"cv": 2})
    version = client.registry.log_model(
        model,
        "iris",
        sample=data[list(FEATURES)],
        metrics=metrics,
        data_fingerprint=None if n_rows is None else {"n_rows": n_rows},
    )
    client.registry.set_alias("iris", "production", version.version)
    return client.registry.resolve("iris@production")


# -- schedule -------------------------------------------------------------------------------


def test_schedule_fires_once_per_due_time_and_skips_long_missed_ones(
    client: Shipyard, iris_csv: Path
) -> None:
    config = make_config(iris_csv, {"kind": "schedule", "cron": "0 3 * * *", "max_delay": "1h"})
    on_time = _evaluate(client, config, datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    assert on_time.firing is not None and on_time.firing.key == "2026-03-02T03:00:00+00:00"
    verdict = _evaluate(client, config, T0)
    assert verdict.firing is not None and verdict.firing.key == on_time.firing.key
    _claim(client, verdict, T0)
    again = _evaluate(client, config, T0 + timedelta(minutes=5))
    assert not again.fired and "already handled" in again.reason
    late = _evaluate(client, config, T0 + timedelta(hours=2))
    assert not late.fired and "missed by more than max_delay" in late.reason
    before = _evaluate(client, config, datetime(2026, 3, 2, 2, 59, tzinfo=UTC))
    assert not before.fired  # yesterday's 03:00 is a day late
    tomorrow = _evaluate(client, config, T0 + timedelta(days=1))
    assert tomorrow.firing is not None and tomorrow.firing.key == "2026-03-03T03:00:00+00:00"


# -- drift ----------------------------------------------------------------------------------


def _drift_config(data: Path, current: Path, **trigger: Any) -> LoopConfig:
    spec = {"kind": "drift", "current": {"path": str(current)}, "sustained": 3, **trigger}
    return make_config(data, spec)


def test_drift_fires_only_when_sustained_over_n_checks(
    client: Shipyard, iris_csv: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current.csv"
    config = _drift_config(iris_csv, current)
    iris_frame(rows=150, seed=5).to_csv(current, index=False)
    calm = _evaluate(client, config, T0)
    assert not calm.fired and "dataset drift in 0 of the last 1 checks" in calm.reason

    iris_frame(rows=150, seed=5, shift=1.5).to_csv(current, index=False)
    first = _evaluate(client, config, T0 + timedelta(hours=1))
    second = _evaluate(client, config, T0 + timedelta(hours=2))
    assert not first.fired and not second.fired
    assert "3 in a row needed" in second.reason
    third = _evaluate(client, config, T0 + timedelta(hours=3))
    assert third.firing is not None, third.reason
    assert third.firing.key == window_key(T0 + timedelta(hours=3), timedelta(hours=24))
    assert third.firing.cooldown == timedelta(hours=24)
    assert set(third.firing.details["drifted_columns"]) >= {"petal_length", "petal_width"}
    checks = client.loops.recent_checks("iris", "drift", limit=10)
    assert [c.positive for c in checks] == [True, True, True, False]

    # After a drift run, only checks after it count: the next incident starts from zero.
    _claim(client, third, T0 + timedelta(hours=3))
    after = _evaluate(client, config, T0 + timedelta(hours=4))
    assert not after.fired and "1 of the last 1" in after.reason


def test_drift_check_needs_enough_rows_and_shared_columns(
    client: Shipyard, iris_csv: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current.csv"
    iris_frame(rows=5).to_csv(current, index=False)
    few = _evaluate(client, _drift_config(iris_csv, current), T0)
    assert not few.fired and "only 5 current rows" in few.reason
    assert client.loops.recent_checks("iris", "drift", limit=5) == []
    pd.DataFrame({"other": np.arange(50.0)}).to_csv(current, index=False)
    with pytest.raises(Exception, match="shares no column with the reference"):
        _evaluate(client, _drift_config(iris_csv, current), T0)


def test_drift_on_the_prediction_log_window(client: Shipyard, iris_csv: Path) -> None:
    config = make_config(iris_csv, {"kind": "drift", "sustained": 1, "window": "1h"})
    shifted = iris_frame(rows=80, seed=3, shift=2.0)
    rows = [
        PredictionRecord(
            request_id=f"r{i}",
            timestamp=T0 - timedelta(minutes=30),
            model="iris",
            version=1,
            inputs={c: float(row[c]) for c in FEATURES},
            prediction="setosa",
        )
        for i, row in shifted.iterrows()
    ]
    client.prediction_log.write(rows)
    verdict = _evaluate(client, config, T0)
    assert verdict.fired, verdict.reason
    old = _evaluate(client, config, T0 + timedelta(hours=2))  # the window is empty by then
    assert not old.fired and "only 0 current rows" in old.reason


def test_drift_cooldown_holds_one_incident_to_one_retrain(
    client: Shipyard, iris_csv: Path, tmp_path: Path, clock: ManualClock
) -> None:
    current = tmp_path / "current.csv"
    iris_frame(rows=150, seed=5, shift=1.5).to_csv(current, index=False)
    config = _drift_config(iris_csv, current, sustained=1, cooldown="24h")
    config = config.model_copy(
        update={"contract": config.contract.model_copy(update={"enabled": False})}
    )
    controller = LoopController(client, [config], clock=clock, canary=RecordingCanary())
    [first] = controller.tick()
    assert first.run is not None and first.run.trigger_kind == "drift"
    clock.advance(hours=23)  # a new cool-down window key, but still within 24 h of the run
    [cooling] = controller.tick()
    assert cooling.run is None and cooling.verdicts[0].fired
    summary = cooling.summary()
    assert f"drift fired, but cooling down: run {first.run.id} (drift, promoted)" in summary
    assert "no new drift run before 2026-03-03 03:00 UTC" in summary
    clock.advance(hours=2)
    [again] = controller.tick()
    assert again.run is not None and again.run.id != first.run.id
    assert len(controller.history("iris")) == 2


# -- performance ----------------------------------------------------------------------------


def _log_predictions(client: Shipyard, accuracy_by_hour: list[float], version: int) -> None:
    """60 predictions per hour before T0, labelled so that each hour has the given accuracy."""
    log = client.prediction_log
    predictions, labels = [], []
    for h, accuracy in enumerate(accuracy_by_hour):
        start = T0.replace(minute=0, second=0) - timedelta(hours=len(accuracy_by_hour) - h)
        for i in range(60):
            rid = f"h{h}-{i}"
            right = i < round(accuracy * 60)
            predictions.append(
                PredictionRecord(
                    request_id=rid,
                    timestamp=start + timedelta(seconds=30 * i),
                    model="iris",
                    version=version,
                    inputs={c: 1.0 for c in FEATURES},
                    prediction="setosa",
                    probabilities={"setosa": 0.9, "versicolor": 0.05, "virginica": 0.05},
                )
            )
            labels.append({"request_id": rid, "label": "setosa" if right else "virginica"})
    log.write(predictions)
    record_feedback(log, labels, model="iris")


def test_performance_fires_on_sustained_accuracy_below_threshold(
    client: Shipyard, iris_csv: Path
) -> None:
    trigger = {"kind": "performance", "threshold": 0.8, "sustained": 3, "lookback": "6h"}
    config = make_config(iris_csv, trigger)
    assert not _evaluate(client, config, T0).fired  # no champion: nothing to judge
    champion = _champion(client)
    _log_predictions(client, [0.95, 0.9, 0.6, 0.5, 0.55], champion.version)
    verdict = _evaluate(client, config, T0, champion)
    assert verdict.firing is not None, verdict.reason
    assert "accuracy worse than 0.8" in verdict.firing.reason
    assert verdict.firing.reason.startswith("iris:1")


def test_performance_does_not_fire_on_a_short_dip(client: Shipyard, iris_csv: Path) -> None:
    config = make_config(iris_csv, {"kind": "performance", "threshold": 0.8, "lookback": "6h"})
    champion = _champion(client)
    _log_predictions(client, [0.95, 0.5, 0.6, 0.9, 0.92], champion.version)
    verdict = _evaluate(client, config, T0, champion)
    assert not verdict.fired and "3 are needed" in verdict.reason
    [check] = client.loops.recent_checks("iris", "performance", limit=5)
    assert check.positive is False and check.details["threshold"] == 0.8


# -- new data ---------------------------------------------------------------------------------


def test_new_data_in_a_file_fires_past_the_row_threshold(client: Shipyard, iris_csv: Path) -> None:
    config = make_config(iris_csv, {"kind": "new_data", "min_new_rows": 100})
    first = _evaluate(client, config, T0)  # nothing trained yet: 150 rows are all new
    assert first.firing is not None and first.firing.key == "rows:150"
    champion = _champion(client, n_rows=150)
    quiet = _evaluate(client, config, T0, champion)
    assert not quiet.fired and "+0 since the 150" in quiet.reason
    append_rows(iris_csv, 60)
    assert not _evaluate(client, config, T0, champion).fired
    append_rows(iris_csv, 40)
    grown = _evaluate(client, config, T0, champion)
    assert grown.firing is not None and grown.firing.details == {
        "rows": 250,
        "baseline_rows": 150,
    }
    # A run on those rows (even one whose challenger was rejected) moves the baseline.
    _claim(client, grown, T0)
    assert not _evaluate(client, config, T0 + timedelta(hours=1), champion).fired


def test_new_data_in_a_folder_by_growth(client: Shipyard, tmp_path: Path) -> None:
    folder = tmp_path / "batches"
    folder.mkdir()
    iris_frame(rows=100, seed=1).to_parquet(folder / "a.parquet")
    iris_frame(rows=100, seed=2).to_parquet(folder / "b.parquet")
    config = make_config(folder, {"kind": "new_data", "min_growth": 0.2})
    champion = _champion(client, n_rows=200)
    assert not _evaluate(client, config, T0, champion).fired
    iris_frame(rows=30, seed=3).to_parquet(folder / "c.parquet")
    assert not _evaluate(client, config, T0, champion).fired  # 15 %
    iris_frame(rows=20, seed=4).to_csv(folder / "d.csv", index=False)
    verdict = _evaluate(client, config, T0, champion)
    assert verdict.firing is not None and verdict.firing.key == "rows:250"


def test_new_data_in_a_table(client: Shipyard, tmp_path: Path, iris_csv: Path) -> None:
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        iris_frame().to_sql("iris", conn, index=False)
    source = {"table": "iris", "url": f"sqlite:///{db}"}
    config = make_config(iris_csv, {"kind": "new_data", "min_new_rows": 50, "source": source})
    champion = _champion(client, n_rows=150)
    assert not _evaluate(client, config, T0, champion).fired
    with sqlite3.connect(db) as conn:
        iris_frame(rows=50).to_sql("iris", conn, index=False, if_exists="append")
    verdict = _evaluate(client, config, T0, champion)
    assert verdict.firing is not None and verdict.firing.key == "rows:200"
