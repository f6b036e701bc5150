"""Each variant's figures over a time range, as ``shipyard monitor performance`` gives them.

The monitoring and deployment pages show, per variant (primary, canary, A/B
arm, shadow) and the version it served: predictions, labels, coverage and each
metric realized on the labelled rows and estimated by CBPE, through each
version's stored calibration where it has one, and say whether the estimates
are calibrated. The figures are :func:`shipyard.monitoring.performance.performance`'s
own, over the range as one bucket, so the page and the command agree.
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
) -> VariantFigures:
    """Per-variant figures of ``model`` from ``since`` to ``until`` (only ``versions``, if given).

    ``since`` should fall on a ``step`` boundary (the pages' buckets do).
    """
    from shipyard.monitoring.performance import performance

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
    )
    variants = tuple(
        v for v in report.variants if versions is None or v.version is None or v.version in versions
    )
    text = ""
    if report.task == "classification" and report.has_probabilities and not report.empty:
        if report.calibrated is None:
            text = "Estimates (CBPE): calibrated for some versions only."
        elif report.calibrated:
            text = "Estimates (CBPE): calibrated on labelled reference data."
        else:
            text = (
                "Estimates (CBPE): from the raw probabilities, not calibrated "
                "(no calibration is stored with these versions)."
            )
    return VariantFigures(
        report.metrics, variants, report.calibrated, text, report.has_probabilities
    )
