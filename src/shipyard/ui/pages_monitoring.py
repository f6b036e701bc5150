"""Monitoring per model and deployment, from the prediction log.

Requests and latency percentiles, failed requests (from the deployments'
counters: :mod:`shipyard.ui.error_data`), the prediction distribution, per-feature
drift with each test's threshold, and realized / estimated (CBPE) accuracy
with label coverage against the training baseline, per bucket of the chosen
window (1 h to 30 d). Each drift point links to the full drift report of its
bucket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import HTMLResponse, Response

from shipyard.clock import utc_now
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.monitoring.durations import floor_time
from shipyard.store import records
from shipyard.ui.charts import Series, line_chart, time_label
from shipyard.ui.error_data import ERROR_MEANING, error_epochs, error_series
from shipyard.ui.monitor_data import WINDOWS, Buckets, read_monitor_data
from shipyard.ui.variants import variant_figures
from shipyard.ui.web import UiState, render, state

router = APIRouter()


@router.get("/monitoring")
def monitoring_index(request: Request) -> Response:
    client = state(request).client
    models = client.models.list_models()
    deployments = client.deployments.list_deployments()
    return render(request, "monitoring_index.html", models=models, deployments=deployments)


def _until(text: str) -> datetime:
    if not text:
        return utc_now()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(
            400, f"The field 'until' is not an ISO time (2024-05-01T12:00:00+00:00): {text!r}."
        ) from None
    if value.tzinfo is None:
        raise HTTPException(400, f"The field 'until' needs a time zone (+00:00): {text!r}.")
    return value


def _version_for(
    ui: UiState, model: str, version: int | None, deployment: str | None
) -> records.ModelVersion | None:
    """The version whose reference and baseline the page compares against."""
    client = ui.client
    if version is not None:
        return client.models.get_version(model, version)
    if deployment:
        d = client.deployments.get(deployment)
        if d.model != model:
            raise HTTPException(
                400, f"Deployment {deployment!r} serves {d.model!r}, not {model!r}."
            )
        return client.models.get_version(model, d.primary)
    try:
        return client.registry.resolve(f"{model}@production")
    except NotFoundError:
        pass
    try:
        return client.models.latest_version(model)
    except NotFoundError:
        return None


def _task(ui: UiState, version: records.ModelVersion | None) -> str | None:
    if version is None:
        return None
    try:
        signature = ui.client.registry.manifest(version).signature
    except ShipyardError:
        return None
    task = (signature.get("output") or {}).get("task")
    return task if task in ("classification", "regression") else None


def _detector(ui: UiState, version: records.ModelVersion | None) -> Any | None:
    if version is None or not ui.client.references.has(version):
        return None
    from shipyard.drift import DriftDetector

    return DriftDetector().fit(ui.client.references.load(version))


def _performance(
    ui: UiState,
    model: str,
    version: int | None,
    buckets: Buckets,
    task: str | None,
    reference: records.ModelVersion | None,
    deployment: str | None = None,
) -> tuple[list[Series], list[float | None], float | None, str, list[str]]:
    """Realized and estimated accuracy (or a regressor's error) per bucket, label coverage,
    the training baseline, the metric's name and notes (of ``deployment``'s rows only,
    when one is chosen)."""
    from shipyard.monitoring.bucket_figures import bucket_accuracy
    from shipyard.monitoring.performance import baseline_metrics, performance

    log = ui.client.prediction_log
    xs = buckets.starts()
    recorded = reference.metrics if reference is not None else {}
    if task == "regression":
        # A regressor's errors need every value; its log is read whole.
        report = performance(
            log,
            model,
            version,
            window=buckets.step,
            since=buckets.start,
            until=buckets.start + buckets.count * buckets.step,
            task="regression",
            baseline=recorded,
            deployment=deployment,
        )
        metric = report.metrics[0]
        series = [
            Series(
                f"realized {metric}",
                [(x, b.realized.get(metric)) for x, b in zip(xs, report.buckets, strict=False)],
            )
        ]
        coverage = [b.coverage for b in report.buckets]
        return series, coverage, report.baseline.get(metric), metric, list(report.notes)
    # A classifier's accuracy figures are sums: DuckDB adds them up over the whole window.
    sums = {
        b.index: b
        for b in bucket_accuracy(
            log.store,
            model,
            since=buckets.start,
            step=buckets.step,
            count=buckets.count,
            version=version,
            # Each version's stored calibration, as `shipyard monitor estimate` and
            # `monitor performance` use it.
            calibration=ui.client.calibrations.latest,
            deployment=deployment,
        )
    }
    realized = [sums[i].realized_accuracy if i in sums else None for i in range(buckets.count)]
    estimated = [sums[i].estimated_accuracy if i in sums else None for i in range(buckets.count)]
    coverage = [sums[i].coverage if i in sums else None for i in range(buckets.count)]
    notes = []
    n_estimated = sum(b.n_estimated for b in sums.values())
    n_calibrated = sum(b.n_calibrated for b in sums.values())
    if sums and not n_estimated:
        notes.append(
            "No class probabilities were logged for this model, so accuracy cannot be "
            "estimated before labels arrive (CBPE needs probabilities)."
        )
    if n_estimated and n_calibrated == n_estimated:
        how = "CBPE, calibrated"
        notes.append(
            "Estimated accuracy (CBPE) reads the logged probabilities through the "
            "calibration stored with each version, as `shipyard monitor estimate` does."
        )
    elif n_calibrated:
        how = "CBPE, partly calibrated"
        notes.append(
            f"Estimated accuracy (CBPE): {n_calibrated} of {n_estimated} rows went through "
            "their version's stored calibration; the versions without one are read raw."
        )
    else:
        how = "CBPE, raw probabilities"
        if n_estimated:
            notes.append(
                "Estimated accuracy (CBPE) reads the raw logged probabilities: no calibration "
                "is stored with these versions (`shipyard validate model` fits one on the "
                "holdout; `shipyard monitor estimate REF --reference FILE --target COL` on a "
                "labelled file)."
            )
    series = [
        Series("realized accuracy", list(zip(xs, realized, strict=True))),
        Series(f"estimated accuracy ({how})", list(zip(xs, estimated, strict=True)), dashed=True),
    ]
    baseline = baseline_metrics(recorded, "classification").get("accuracy")
    return series, coverage, baseline, "accuracy", notes


@router.get("/monitoring/{model}")
def monitoring_page(
    request: Request,
    model: str,
    window: str = "24h",
    version: int | None = Query(default=None, ge=1),
    deployment: str = "",
    until: str = "",
) -> Response:
    if window not in WINDOWS:
        raise HTTPException(400, f"The window {window!r} is not one of {', '.join(WINDOWS)}.")
    ui = state(request)
    client = ui.client
    client.models.get_model(model)  # an unknown model is a 404 naming it
    span, step = WINDOWS[window]
    end = _until(until)
    start = floor_time(end - span, step)
    count = int(-(-(end - start) // step))
    buckets = Buckets(start, step, count)
    reference = _version_for(ui, model, version, deployment or None)
    task = _task(ui, reference)
    detector = _detector(ui, reference)
    log = client.prediction_log
    data = read_monitor_data(
        log.store,
        model,
        buckets,
        version=version,
        deployment=deployment or None,
        detector=detector,
        task=task,
    )
    xs = buckets.starts()
    charts: dict[str, str] = {}
    charts["requests"] = line_chart(
        [Series("requests", list(zip(xs, data.requests, strict=True)))],
        title="Requests per bucket",
        x_label=time_label,
        y_min=0,
    )
    charts["latency"] = line_chart(
        [Series(q, list(zip(xs, v, strict=True))) for q, v in data.latency.items()],
        title="Latency (seconds)",
        x_label=time_label,
        y_min=0,
    )
    window_end = start + count * step
    epochs = error_epochs(
        client, model, start, window_end, deployment=deployment or None, version=version
    )
    charts["errors"] = line_chart(
        error_series(epochs, start, window_end),
        title="Server errors (share of requests, per epoch)",
        x_label=time_label,
        y_min=0,
    )
    title = "Predicted classes (share)" if data.prediction_kind == "classes" else "Predicted values"
    charts["predictions"] = line_chart(
        [Series(k, list(zip(xs, v, strict=True))) for k, v in data.predictions.items()],
        title=title,
        x_label=time_label,
    )
    drift_charts = []
    for feature in data.drift:
        links = []
        for i in range(count):
            lo, hi = buckets.bounds(i)
            query = {"since": lo.isoformat(), "until": hi.isoformat()}
            if version is not None:
                query["version"] = str(version)
            if deployment:
                query["deployment"] = deployment
            links.append(f"/monitoring/{model}/drift?{urlencode(query)}")
        drift_charts.append(
            line_chart(
                [Series(feature.feature, list(zip(xs, feature.scores, strict=True)), links)],
                title=f"Drift of {feature.feature} ({feature.stattest})",
                threshold=feature.threshold,
                x_label=time_label,
            )
        )
    perf_series, coverage, baseline, metric, notes = _performance(
        ui, model, version, buckets, task, reference, deployment or None
    )
    charts["performance"] = line_chart(
        perf_series,
        title=f"{metric} against the training baseline",
        threshold=baseline,
        threshold_label="training baseline",
        x_label=time_label,
    )
    charts["coverage"] = line_chart(
        [Series("label coverage", list(zip(xs, coverage, strict=True)))],
        title="Label coverage",
        x_label=time_label,
        y_min=0,
        y_max=1,
    )
    figures = variant_figures(
        client,
        model,
        start,
        start + count * step,
        step,
        version=version,
        task=task,
        reference=reference,
        versions=client.deployments.get(deployment).versions() if deployment else None,
        deployment=deployment or None,
    )
    return render(
        request,
        "monitoring.html",
        figures=figures,
        model_name=model,
        model=model,
        window=window,
        windows=list(WINDOWS),
        version=version,
        deployment=deployment,
        deployments=client.deployments.list_deployments(model),
        reference=reference,
        data=data,
        charts=charts,
        drift_charts=drift_charts,
        notes=notes,
        error_epochs=epochs,
        error_meaning=ERROR_MEANING,
        since=start,
        until=start + count * step,
        until_param=until,
    )


@router.get("/monitoring/{model}/drift")
def drift_report(
    request: Request,
    model: str,
    since: str,
    until: str,
    version: int | None = Query(default=None, ge=1),
    deployment: str = "",
) -> Response:
    """The full drift report of one window: what a drift point on the chart links to."""
    from shipyard.drift.report_html import render_html

    ui = state(request)
    start, end = _until(since), _until(until)
    if start >= end:
        raise HTTPException(400, "The field 'since' must be before 'until'.")
    if end - start > timedelta(days=31):
        raise HTTPException(400, "A drift report covers at most 31 days.")
    reference = _version_for(ui, model, version, deployment or None)
    detector = _detector(ui, reference)
    if detector is None or reference is None:
        raise HTTPException(404, f"{model} has no drift reference profile to compare with.")
    frame = ui.client.prediction_log.read_inputs(model, since=start, until=end, version=version)
    if frame.empty:
        raise HTTPException(
            404, f"No predictions of {model!r} were logged between {start} and {end}."
        )
    result = detector.score(frame)
    title = (
        f"Drift of {model} {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC vs {reference.ref}"
    )
    page = render_html(result, detector, frame, title=title)
    return HTMLResponse(page)
