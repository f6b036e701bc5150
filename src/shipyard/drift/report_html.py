"""One self-contained HTML drift report: inline CSS and SVG, no scripts, no network.

The page opens with the dataset verdict (share and counts of drifted
columns), then a table of every tested column, then each column's reference
and current distributions drawn over each other, drifted columns first. A
Content-Security-Policy forbids every fetch, so the file renders the same
offline, in a mail attachment or in CI artifacts.

    >>> import pandas as pd
    >>> from shipyard.drift import DriftDetector
    >>> ref = pd.DataFrame({"x": [float(i % 40) for i in range(400)]})
    >>> det = DriftDetector().fit(ref)
    >>> html = render_html(det.score(ref + 5), det, ref + 5)
    >>> "<script" in html, "Drift detected" in html
    (False, True)
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import pandas as pd
from markupsafe import Markup

from shipyard.clock import utc_now
from shipyard.drift.distributions import column_distributions
from shipyard.drift.report_svg import CURRENT_COLOR, REFERENCE_COLOR, chart_svg, fmt_number
from shipyard.drift.result import VANISHED, ColumnDrift, DriftResult
from shipyard.drift.stattests import STATTESTS

if TYPE_CHECKING:  # the detector imports nothing from here; avoid a cycle anyway
    from shipyard.drift.detector import DriftDetector

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("shipyard.drift", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class _ColumnView:
    column: str
    type: str
    test_name: str
    score_text: str
    threshold_text: str
    rule: str
    drift_detected: bool
    anchor: str
    svg: Markup | None


def _rule(col: ColumnDrift) -> str:
    if col.stattest == VANISHED:
        return "values left <"
    if col.stattest == "ks":
        return "p-value ≤"
    if STATTESTS[col.stattest].is_pvalue:
        return "p-value <"
    return "score ≥"


def _test_name(col: ColumnDrift) -> str:
    if col.stattest == VANISHED:
        return "vanished: no values left after dropping NaN/inf"
    return STATTESTS[col.stattest].display_name


def _version() -> str:
    try:
        return importlib.metadata.version("shipyard")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "dev"


def render_html(
    result: DriftResult,
    detector: DriftDetector,
    current: pd.DataFrame,
    *,
    title: str = "Data drift report",
    generated_at: datetime | None = None,
) -> str:
    """Render ``result`` (from ``detector.score(current)``) as one HTML page."""
    ordered = result.sorted_columns()
    dists = column_distributions(detector, current, [c.column for c in ordered])
    views = []
    for i, col in enumerate(ordered):
        dist = dists.get(col.column)
        views.append(
            _ColumnView(
                column=col.column,
                type=col.type,
                test_name=_test_name(col),
                score_text=fmt_number(col.score),
                threshold_text=fmt_number(col.threshold),
                rule=_rule(col),
                drift_detected=col.drift_detected,
                anchor=f"col-{i}",
                svg=Markup(chart_svg(dist, col.column)) if dist else None,
            )
        )
    when = (generated_at or utc_now()).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return _ENV.get_template("drift_report.html.j2").render(
        title=title,
        result=result,
        columns=views,
        generated_at=when,
        reference_rows=f"{detector.profile_.n_rows:,}",
        current_rows=f"{len(current):,}",
        ref_color=REFERENCE_COLOR,
        cur_color=CURRENT_COLOR,
        version=_version(),
    )


def write_html(
    path: str | Path,
    result: DriftResult,
    detector: DriftDetector,
    current: pd.DataFrame,
    **options,
) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_html(result, detector, current, **options), encoding="utf-8")
    return path
