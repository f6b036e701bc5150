"""``shipyard monitor ...``: ground-truth labels, performance over time, log retention.

Exit codes of ``performance``: 0 healthy (or nothing to judge), 1 when a
sustained drop below the training baseline is flagged (a failing verdict) or
on errors, so CI and cron can gate on it; 2 on a usage error.
"""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard._client import Shipyard
from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    err_console,
    get_client,
    print_json,
    table,
)
from shipyard.errors import InvalidInputError, ShipyardError
from shipyard.monitoring.concept import Degradation, detect_degradation
from shipyard.monitoring.durations import parse_duration
from shipyard.monitoring.estimate import DEFAULT_CHUNK_SIZE
from shipyard.monitoring.feedback import read_feedback_file, record_feedback
from shipyard.monitoring.performance import (
    BucketPerformance,
    PerformanceReport,
    Task,
    performance,
)
from shipyard.monitoring.prediction_log import open_prediction_log
from shipyard.store.records import ModelVersion

app = command_group("Monitoring: ground-truth labels, performance over time, concept drift.")

DEGRADED_EXIT_CODE = 1
_SHOW_UNKNOWN = 10


@app.command("feedback")
def feedback_command(
    ctx: typer.Context,
    file: str = typer.Argument(
        ...,
        metavar="TABLE",
        help="CSV, Parquet or JSON lines file (also .gz, s3://) or URL#TABLE with "
        "request_id,label[,timestamp][,row].",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model the labels are for (default: found by request id)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Store late-arriving labels; they join the logged predictions by request id."""
    from shipyard.tables import storage_options

    client = get_client(ctx)
    labels = read_feedback_file(file, storage_options=storage_options(client.settings))
    result = record_feedback(client.prediction_log, labels, model=model)
    if as_json:
        print_json(
            {
                "accepted": result.accepted,
                "matched": result.matched,
                "unknown": result.n_unknown,
                "unknown_ids": result.unknown_ids,
                "unknown_id_labels": result.unknown_id_labels,
                "unknown_rows": [{"request_id": r, "row": n} for r, n in result.unknown_rows],
                "duplicates": result.duplicates,
            }
        )
        return
    console.print(
        f"Accepted {result.accepted} label(s) from {file}: "
        f"{result.matched} matched a logged prediction, "
        f"{result.unknown_id_labels} for {result.n_unknown} unknown request id(s), "
        f"{len(result.unknown_rows)} for rows their logged request does not have, "
        f"{result.duplicates} duplicate(s).",
        markup=False,
    )
    if result.unknown_ids:
        shown = escape(", ".join(result.unknown_ids[:_SHOW_UNKNOWN]))
        more = (
            f" and {result.n_unknown - _SHOW_UNKNOWN} more"
            if result.n_unknown > _SHOW_UNKNOWN
            else ""
        )
        err_console.print(
            f"[yellow]Unknown request ids[/] (stored; they join if their predictions "
            f"are still being written): {shown}{more}",
            highlight=False,
        )
    if result.unknown_rows:
        rows = result.unknown_rows
        shown = escape(", ".join(f"{r} row {n}" for r, n in rows[:_SHOW_UNKNOWN]))
        more = f" and {len(rows) - _SHOW_UNKNOWN} more" if len(rows) > _SHOW_UNKNOWN else ""
        err_console.print(
            f"[yellow]Rows with no logged prediction[/] in a logged request (rows a batch "
            f"job rejected, or a wrong row number; stored, they join if their prediction is "
            f"still being written): {shown}{more}",
            highlight=False,
        )


@app.command("performance")
def performance_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model reference: iris, iris@staging or iris:3."),
    window: str = typer.Option("1h", "--window", "-w", help="Bucket width: 15m, 1h, 1d..."),
    since: str = typer.Option("24h", "--since", help="Start: a duration before now or ISO time."),
    until: str | None = typer.Option(None, "--until", help="End (default: now)."),
    metric: str | None = typer.Option(
        None, "--metric", help="Metric to judge (default: accuracy, or mae for regression)."
    ),
    margin: float = typer.Option(0.05, "--margin", min=0.0, help="Allowed drop below baseline."),
    sustained: int = typer.Option(3, "--sustained", min=1, help="Consecutive buckets to flag."),
    min_labels: int = typer.Option(
        1, "--min-labels", min=1, help="Labels a bucket needs to be judged on realized figures."
    ),
    all_versions: bool = typer.Option(
        False, "--all-versions", help="Include every version's predictions, not just REF's."
    ),
    deployment: str | None = typer.Option(
        None,
        "--deployment",
        help="Only the rows this deployment's servers answered (not batch jobs', not "
        "direct traffic).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Realized and estimated (CBPE) metrics per time bucket, against the training baseline."""
    client = get_client(ctx)
    version = client.registry.resolve(ref)
    if deployment is not None:
        served = client.deployments.get(deployment).model  # unknown: an error naming it
        if served != version.model:
            raise InvalidInputError(
                f"--deployment {deployment!r} serves model {served!r}, not {version.model!r}."
            )
    report = performance(
        client.prediction_log,
        version.model,
        None if all_versions else version.version,
        window=window,
        since=since,
        until=until,
        task=_task_of(client, version),
        baseline=version.metrics,
        calibration=client.calibrations.latest,
        deployment=deployment,
    )
    verdict, why_not = _judge(report, metric, margin, sustained, min_labels)
    if as_json:
        print_json(
            {
                **report.to_dict(),
                "ref": version.ref,
                "degradation": None if verdict is None else _verdict_dict(verdict),
                "degradation_note": why_not,
            }
        )
    else:
        _render(report, version, verdict, why_not)
    if verdict is not None and verdict.flagged:
        raise typer.Exit(DEGRADED_EXIT_CODE)


@app.command("estimate")
def estimate_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model reference: iris, iris@staging or iris:3."),
    current: str = typer.Option(
        ..., "--current", help="Table of inputs to estimate on (CSV, Parquet, JSON lines, s3://)."
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Labelled reference table: fits the version's calibration (stored with it) or, "
        "for a regressor, the loss models of direct loss estimation.",
    ),
    target: str | None = typer.Option(
        None, "--target", help="Label column of --reference (left out of --current if there)."
    ),
    chunk_size: int = typer.Option(
        DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, help="Rows per chunk of estimates."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Estimated accuracy, macro F1 and ROC AUC (MAE and RMSE for a regressor) per chunk
    of a file of inputs, before labels exist, with a confidence band."""
    from shipyard.monitoring.estimate_service import estimate_file
    from shipyard.tables import storage_options

    client = get_client(ctx)
    if (reference is None) != (target is None):
        raise InvalidInputError(
            "--reference and --target go together: the reference table and its label column."
        )
    result = estimate_file(
        client.registry,
        client.calibrations,
        ref,
        current=current,
        reference=reference,
        target=target,
        chunk_size=chunk_size,
        storage_options=storage_options(client.settings),
    )
    if as_json:
        print_json({"chunks": [c.to_dict() for c in result.chunks]})
        return
    metrics = result.metrics
    rows = [
        [str(c.start), str(c.rows), *[_with_band(c.metrics[m], c.band.get(m)) for m in metrics]]
        for c in result.chunks
    ]
    title = f"Estimated performance of {result.ref} ({result.method})"
    console.print(table(title, ["first row", "rows", *metrics], rows))
    for note in result.notes:
        console.print(note, style="dim", markup=False, highlight=False)


def _with_band(value: float | None, band: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if band is None else f"{value:.3f} [{band[0]:.3f}, {band[1]:.3f}]"


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    older_than: str = typer.Option(
        "30d", "--older-than", help="Delete day partitions wholly older than this."
    ),
) -> None:
    """Apply retention: delete logged predictions and labels older than --older-than."""
    keep = parse_duration(older_than)
    log = open_prediction_log(get_client(ctx).store_settings, retention=keep)
    removed = log.prune()
    console.print(f"Removed {len(removed)} day partition(s) older than {older_than}.")


@app.command("compact")
def compact_command(
    ctx: typer.Context,
    min_files: int = typer.Option(2, "--min-files", min=2, help="Merge partitions with this many."),
) -> None:
    """Merge each day's small prediction and label segments into one file per day."""
    done = get_client(ctx).prediction_log.compact(min_files=min_files)
    files = sum(c.files for c in done)
    console.print(f"Merged {files} segment(s) into {len(done)} file(s).")


def _task_of(client: Shipyard, version: ModelVersion) -> Task | None:
    """The task from the version's signature; None (inferred from the log) if unreadable."""
    try:
        signature = client.registry.manifest(version).signature
    except ShipyardError:
        return None
    task = (signature.get("output") or {}).get("task")
    if task == "classification":
        return "classification"
    if task == "regression":
        return "regression"
    return None


def _judge(
    report: PerformanceReport, metric: str | None, margin: float, sustained: int, min_labels: int
) -> tuple[Degradation | None, str | None]:
    if report.empty:
        return None, "No predictions in the range: nothing to judge."
    try:
        return (
            detect_degradation(report, metric, None, margin, sustained, min_labels=min_labels),
            None,
        )
    except InvalidInputError as exc:
        if metric is not None and metric not in report.metrics:
            raise
        return None, str(exc)


def _verdict_dict(verdict: Degradation) -> dict[str, object]:
    return {
        "flagged": verdict.flagged,
        "metric": verdict.metric,
        "baseline": verdict.baseline,
        "margin": verdict.margin,
        "threshold": verdict.threshold,
        "sustained": verdict.sustained,
        "ongoing": verdict.ongoing,
        "reason": verdict.reason,
        "buckets": [
            {"start": v.start.isoformat(), "value": v.value, "source": v.source}
            for v in verdict.buckets
        ],
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _delay(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _row(bucket: BucketPerformance, metrics: tuple[str, ...], label: str) -> list[str]:
    coverage = "-" if bucket.coverage is None else f"{bucket.coverage:.0%}"
    cells = [label, str(bucket.n_predictions), f"{bucket.n_labelled} ({coverage})"]
    cells.append(_delay(bucket.median_label_delay_seconds))
    for metric in metrics:
        cells.append(f"{_fmt(bucket.realized.get(metric))} / {_fmt(bucket.estimated.get(metric))}")
    return cells


def _render(
    report: PerformanceReport,
    version: ModelVersion,
    verdict: Degradation | None,
    why_not: str | None,
) -> None:
    scope = "all versions" if report.version is None else f"version {report.version}"
    span = f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"
    if report.empty:
        err_console.print(
            f"No predictions of {version.model} ({scope}) were logged from {span}. "
            f"Is the server logging predictions, and is the window right (--since)?",
            highlight=False,
        )
        return
    columns = ["bucket (UTC)", "predictions", "labelled", "label delay", *report.metrics]
    rows = [
        _row(b, report.metrics, f"{b.start:%Y-%m-%d %H:%M}")
        for b in report.buckets
        if b.n_predictions
    ]
    rows.append(_row(report.overall, report.metrics, "overall"))
    baseline = ["baseline (training)", "", "", ""]
    baseline += [_fmt(report.baseline.get(m)) for m in report.metrics]
    rows.append(baseline)
    width = _delay(report.window.total_seconds()).replace(".0", "")
    title = f"Performance of {version.ref} ({scope}), {report.task}, {width} buckets"
    console.print(table(title, columns, rows))
    if len(report.variants) > 1 or any(v.variant not in ("default", "") for v in report.variants):
        per_variant = [
            _row(v.figures, report.metrics, f"{v.variant} ({version.model}:{v.version})")
            for v in report.variants
        ]
        console.print(table("Per variant, whole range", ["variant", *columns[1:]], per_variant))
    estimated = ""
    if report.task == "classification" and report.has_probabilities:
        if report.calibrated is None:
            estimated = "; estimates: calibrated for some versions only"
        elif report.calibrated:
            estimated = "; estimates: calibrated on reference data"
        else:
            estimated = "; estimates: raw probabilities, not calibrated"
    console.print(
        "Metric cells: realized on labelled rows / estimated from probabilities (CBPE)"
        f"{estimated}.",
        style="dim",
        highlight=False,
    )
    for note in report.notes:
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    if verdict is None:
        console.print(f"Verdict: not judged. {why_not}", highlight=False, markup=False)
    elif verdict.flagged:
        console.print(f"[bold red]Degraded:[/] {escape(verdict.reason)}", highlight=False)
    else:
        console.print(f"[green]Healthy:[/] {escape(verdict.reason)}", highlight=False)


__all__ = ["app"]
