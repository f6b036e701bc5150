"""Each variant's figures over a time range, as ``shipyard monitor performance`` gives them.

The monitoring and deployment pages show, per variant (primary, canary, A/B
arm, shadow) and the version it served: predictions, labels, coverage and each
metric realized on the labelled rows and estimated by CBPE, through each
version's stored calibration where it has one, and say whether the estimates
are calibrated. The figures equal :func:`shipyard.monitoring.performance.performance`'s
over the range as one bucket, so the page and the command agree.

With logged class probabilities, ``performance`` reads every labelled row into
pandas (for ROC AUC and the F1 estimates): 13.6 s of a 30-day page over a
million rows. Accuracy, its CBPE estimate, coverage and the counts are sums,
so the page takes them from DuckDB's aggregates per variant and version
(:func:`~shipyard.monitoring.bucket_figures.variant_accuracy`) and points to
``shipyard monitor performance`` for macro F1 and ROC AUC, which need every
row. A log without probabilities (or a regressor) goes through ``performance``,
which aggregates in DuckDB already.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard._client import Shipyard
    from shipyard.monitoring.performance import VariantPerformance
    from shipyard.store import records

__all__ = ["VariantFigures", "variant_figures"]


@dataclass(frozen=True)
class VariantFigures:
    """The variants of one model over one range, and what the estimates rest on."""

    metrics: tuple[str, ...]
    variants: tuple[VariantPerformance, ...]
    #: As the report's: True every estimate calibrated, False none, None some (or none made).
    calibrated: bool | None
    #: One sentence saying it, for the page ("" when nothing was estimated).
    calibration: str
    has_probabilities: bool
    #: Metrics of ``performance`` left off the page (they need every row), and the
    #: command that gives them; () and "" when none is.
    omitted: tuple[str, ...] = ()
    command: str = ""


def variant_figures(
    client: Shipyard,
    model: str,
    since: datetime,
    until: datetime,
    step: timedelta,
    *,
    version: int | None = None,
    task: str | None = None,
    reference: records.ModelVersion | None = None,
    versions: Collection[int] | None = None,
    deployment: str | None = None,
) -> VariantFigures:
    """Per-variant figures of ``model`` from ``since`` to ``until`` (only ``versions``, if given).

    ``since`` should fall on a ``step`` boundary (the pages' buckets do). With a
    ``deployment``, only the rows its servers logged count (not a batch job's
    ``primary`` rows of the same version, not direct traffic).
    """
    from shipyard.monitoring.performance import performance
    from shipyard.monitoring.queries import labelled_columns
    from shipyard.monitoring.records import PROBA_PREFIX

    names = labelled_columns(client.prediction_log.store, model, since=since, until=until)
    if task != "regression" and any(n.startswith(PROBA_PREFIX) for n in names):
        return _summed(
            client,
            model,
            since,
            until,
            step,
            version=version,
            versions=versions,
            deployment=deployment,
        )
    report = performance(
        client.prediction_log,
        model,
        version,
        # ``since`` on a ``step`` boundary: the range is not widened to a bucket's start.
        window=step,
        since=since,
        until=until,
        task=task if task in ("classification", "regression") else None,  # type: ignore[arg-type]
        baseline=reference.metrics if reference is not None else None,
        calibration=client.calibrations.latest,
        deployment=deployment,
    )
    variants = tuple(
        v for v in report.variants if versions is None or v.version is None or v.version in versions
    )
    text = ""
    if report.task == "classification" and report.has_probabilities and not report.empty:
        text = _calibration_text(report.calibrated)
    return VariantFigures(
        report.metrics, variants, report.calibrated, text, report.has_probabilities
    )


def _calibration_text(calibrated: bool | None) -> str:
    if calibrated is None:
        return "Estimates (CBPE): calibrated for some versions only."
    if calibrated:
        return "Estimates (CBPE): calibrated on labelled reference data."
    return (
        "Estimates (CBPE): from the raw probabilities, not calibrated "
        "(no calibration is stored with these versions)."
    )


def _summed(
    client: Shipyard,
    model: str,
    since: datetime,
    until: datetime,
    step: timedelta,
    *,
    version: int | None,
    versions: Collection[int] | None,
    deployment: str | None = None,
) -> VariantFigures:
    """A classifier's per-variant accuracy figures from DuckDB's sums (no row read)."""
    from shipyard.monitoring.bucket_figures import variant_accuracy
    from shipyard.monitoring.performance import BucketPerformance, VariantPerformance

    sums = variant_accuracy(
        client.prediction_log.store,
        model,
        since=since,
        until=until,
        version=version,
        calibration=client.calibrations.latest,
        deployment=deployment,
    )
    # As performance() says it: True when every row's version has a calibration, False
    # when none has, None when some have (or nothing was logged).
    flags = {s.version_calibrated for s in sums}
    calibrated = None if len(flags) != 1 else flags.pop()
    variants = tuple(
        VariantPerformance(
            s.variant,
            s.version,
            BucketPerformance(
                start=since,
                end=until,
                n_predictions=s.n_predictions,
                n_labelled=s.n_labelled,
                coverage=s.coverage,
                median_label_delay_seconds=s.median_label_delay_seconds,
                realized={"accuracy": s.realized_accuracy},
                estimated={"accuracy": s.estimated_accuracy},
            ),
        )
        for s in sums
        if versions is None or s.version is None or s.version in versions
    )
    seconds = int(step.total_seconds())
    unit, size = next(
        (u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0
    )
    window = f"{seconds // size}{unit}"
    target = model if version is None else f"{model}:{version}"
    command = (
        f"shipyard monitor performance {target} --window {window} "
        f"--since {since.isoformat()} --until {until.isoformat()}"
        + (" --all-versions" if version is None else "")
        + (f" --deployment {deployment}" if deployment is not None else "")
    )
    return VariantFigures(
        ("accuracy",),
        variants,
        calibrated,
        _calibration_text(calibrated) if sums else "",
        True,
        omitted=("f1_macro", "roc_auc"),
        command=command,
    )
