"""A small store telling the whole story, for the UI's tests: runs with stepped
metrics, two versions of iris (one in production), a canary rolled back, and a
day of logged predictions whose inputs drift in the last hours, with labels.

Names typed by users hold ``<script>``: every page must show them as text.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from shipyard._client import Shipyard
from shipyard.clock import utc_now
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.records import PredictionBatch
from shipyard.quickstart import iris_frame
from shipyard.rollout.records import RolloutPolicy
from shipyard.store.rollout_records import VariantCounters

PASSWORD = "correct horse battery"
XSS = "<script>window.__xss = 1</script>"
HOURS = 24


def seed(client: Shipyard) -> dict[str, object]:
    X, y = iris_frame()
    tracker = client.tracker
    run_ids = []
    for name, c, slope in (("baseline", 1.0, 0.02), ("strong", 10.0, 0.03)):
        run = client.runs.create_run("iris", name=name, actor="ann")
        client.runs.log_params(run.id, {"C": c, "max_iter": 500})
        client.runs.set_run_tags(run.id, {"team": "ml", "note": XSS})
        for step in range(20):
            client.runs.log_metrics(
                run.id,
                {"loss": 1.0 / (1 + slope * step * 10), "accuracy": 0.6 + slope * step},
                step=step,
            )
        client.runs.end_run(run.id)
        run_ids.append(run.id)
    del tracker
    client.models.create_model("iris", description=f"Iris classifier {XSS}")
    registry = client.registry
    v1 = registry.log_model(
        LogisticRegression(max_iter=500, C=1.0).fit(X, y),
        "iris",
        sample=X,
        metrics={"accuracy": 0.96},
        run_id=run_ids[0],
        optimize=False,
    )
    registry.set_alias("iris", "production", v1.version, reason="first release")
    v2 = registry.log_model(
        LogisticRegression(max_iter=500, C=10.0).fit(X, y),
        "iris",
        sample=X,
        metrics={"accuracy": 0.98},
        run_id=run_ids[1],
        optimize=False,
    )
    registry.set_alias("iris", "staging", v2.version, reason="candidate")
    deployments = client.deployments.acting_as("ann")
    deployments.create("web", "iris", v1.version, follows="production", reason="go live")
    deployments.set_canary(
        "web", v2.version, policy=RolloutPolicy(steps=(10, 50, 100)), force=True, reason="try v2"
    )
    deployments.abort_canary("web", reason=f"canary errors {XSS}")
    deployments.set_canary(
        "web", v2.version, policy=RolloutPolicy(steps=(10, 50, 100)), force=True, reason="again"
    )
    _report_requests(client, v1.version, v2.version)
    _log_predictions(client, X, y, v1.version)
    return {"runs": run_ids, "v1": v1.version, "v2": v2.version}


def _report_requests(client: Shipyard, v1: int, v2: int) -> None:
    """What a server worker of ``web`` reported: the aborted canary's epoch and this one."""
    web = client.deployments.get("web")
    client.rollouts.report_worker(
        "web",
        worker="w1",
        revision=web.revision - 1,
        epoch=web.epoch - 1,
        counters=[VariantCounters("primary", v1, 400, 2, {})],
    )
    client.rollouts.report_worker(
        "web",
        worker="w1",
        revision=web.revision,
        epoch=web.epoch,
        counters=[
            VariantCounters("primary", v1, 180, 1, {}),
            VariantCounters("canary", v2, 20, 3, {}),
        ],
    )


def _log_predictions(client: Shipyard, X: pd.DataFrame, y: pd.Series, version: int) -> None:
    """One request of 20 rows every 15 minutes for a day; the last 4 hours drift."""
    log = client.prediction_log
    model = client.registry.load(f"iris:{version}")
    rng = np.random.default_rng(0)
    now = utc_now()
    start = now - timedelta(hours=HOURS)
    labels = []
    for i in range(HOURS * 4):
        at = start + timedelta(minutes=15 * i)
        rows = rng.choice(len(X), size=20, replace=False)
        inputs = X.iloc[rows].reset_index(drop=True)
        if at > now - timedelta(hours=4):
            inputs = inputs.assign(petal_length=inputs["petal_length"] + 3.0)
        proba = np.asarray(model.predict_proba(inputs))
        classes = tuple(model.classes)
        predictions = np.asarray(classes)[proba.argmax(axis=1)]
        request_id = f"req-{i}"
        log.write(
            PredictionBatch(
                request_id=request_id,
                timestamp=at,
                model="iris",
                version=version,
                inputs=inputs,
                predictions=predictions,
                probabilities=proba,
                classes=classes,
                latency_seconds=0.002 + 0.001 * (i % 5),
                variant="primary",
                source="online",
                deployment="web",  # web's traffic, as its servers stamp it
            )
        )
        truth = y.iloc[rows].to_numpy()
        labels += [
            {"request_id": request_id, "row": r, "label": str(truth[r])} for r in range(0, 20, 2)
        ]
    record_feedback(log, labels, model="iris")
    log.flush(timeout=30)
