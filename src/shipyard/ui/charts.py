"""Line charts drawn on the server as inline SVG: no script, no font, nothing fetched.

Each series is a ``<g class="series" data-series="NAME">`` with its path and a
marker per point (a ``<title>`` tooltip, and a link when the point has one:
a drift point opens that window's drift report). A threshold is a dashed
line. Every text is escaped here, so names typed by users stay text.

>>> svg = line_chart([Series("loss", [(0, 1.0), (1, 0.5)])], title="loss")
>>> 'data-series="loss"' in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

__all__ = ["PALETTE", "Series", "fmt", "line_chart", "time_label"]

PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
)
WIDTH, HEIGHT = 760, 240
#: Series longer than this are drawn without a marker per point.
MAX_MARKERS = 60
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 14, 30


@dataclass(frozen=True)
class Series:
    """One named line: ``(x, y)`` points (y None: a gap) and optional links per point."""

    name: str
    points: Sequence[tuple[float, float | None]]
    links: Sequence[str | None] = field(default_factory=tuple)
    color: str | None = None
    dashed: bool = False


def fmt(value: float | None) -> str:
    """A number in 3-4 significant digits (``-`` for unknown)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def time_label(seconds: float) -> str:
    """An x value holding epoch seconds, as a short UTC time."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%m-%d %H:%M")


def _ticks(low: float, high: float, n: int = 4) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / n for i in range(n + 1)]


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    x_label: Callable[[float], str] = fmt,
    y_min: float | None = None,
    y_max: float | None = None,
) -> str:
    """An SVG chart of ``series`` sharing both axes (an empty note when nothing to draw)."""
    xs = [x for s in series for x, y in s.points if y is not None]
    ys = [y for s in series for _, y in s.points if y is not None and math.isfinite(y)]
    if threshold is not None:
        ys.append(threshold)
    label = escape(title)
    if not xs or not ys:
        return f'<p class="empty" data-chart="{label}">No data for {label}.</p>'
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    lo = min(ys) if y_min is None else y_min
    hi = max(ys) if y_max is None else y_max
    if hi == lo:
        lo, hi = lo - 0.5 if lo else 0.0, hi + 0.5 if hi else 1.0
    pad = (hi - lo) * 0.05
    lo, hi = (lo - pad if y_min is None else lo), (hi + pad if y_max is None else hi)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + ph - (y - lo) / (hi - lo) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'class="chart" role="img" aria-label="{label}" data-chart="{label}">',
        f"<title>{label}</title>",
    ]
    for ty in _ticks(lo, hi):
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(ty):.1f}" y2="{py(ty):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{py(ty) + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(fmt(ty))}</text>"
        )
    for tx in _ticks(x0, x1):
        parts.append(
            f'<text x="{px(tx):.1f}" y="{HEIGHT - 10}" text-anchor="middle" class="tick">'
            f"{escape(x_label(tx))}</text>"
        )
    if threshold is not None:
        parts.append(
            f'<g class="threshold" data-threshold="{threshold:g}">'
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(threshold):.1f}" '
            f'y2="{py(threshold):.1f}" stroke="#e45756" stroke-dasharray="6 4"/>'
            f'<text x="{LEFT + pw - 4}" y="{py(threshold) - 4:.1f}" text-anchor="end" '
            f'class="tick">{escape(threshold_label)} {escape(fmt(threshold))}</text></g>'
        )
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        name = escape(s.name)
        parts.append(f'<g class="series" data-series="{name}">')
        path: list[str] = []
        pen_up = True
        for x, y in s.points:
            if y is None or not math.isfinite(y):
                pen_up = True
                continue
            path.append(f"{'M' if pen_up else 'L'}{px(x):.1f},{py(y):.1f}")
            pen_up = False
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        # A long series is a line: a marker (and its tooltip) per point would weigh more
        # than the rest of the page. Linked points always get theirs: they are clicked.
        markers = len(s.points) <= MAX_MARKERS
        for j, (x, y) in enumerate(s.points):
            if y is None or not math.isfinite(y):
                continue
            link = s.links[j] if j < len(s.links) else None
            if not markers and not link:
                continue
            tip = f"<title>{name} at {escape(x_label(x))}: {escape(fmt(y))}</title>"
            dot = (
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}" '
                f'class="point">{tip}</circle>'
            )
            if link:
                dot = f'<a href="{escape(link)}" class="point-link">{dot}</a>'
            parts.append(dot)
        parts.append("</g>")
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{s.color or PALETTE[i % len(PALETTE)]}"></i>'
        f"{escape(s.name)}</span>"
        for i, s in enumerate(series)
    )
    return (
        f'<figure class="figure"><div class="chart-title">{label}</div>{"".join(parts)}'
        f"<figcaption>{legend}</figcaption></figure>"
    )
