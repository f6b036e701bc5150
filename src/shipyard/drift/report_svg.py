"""Inline SVG charts of reference vs current distributions (no scripts, no network).

Numerical columns: two overlaid histograms on shared bins. Categorical ones:
horizontal bar pairs per value, values new in the current data marked.

    >>> from shipyard.drift.distributions import Distribution
    >>> svg = chart_svg(Distribution("bars", [0.5, 0.5], [0.2, 0.8], labels=["a", "b"]), "c")
    >>> svg.startswith("<svg")
    True
"""

from __future__ import annotations

from html import escape

from shipyard.drift.distributions import Distribution

REFERENCE_COLOR = "#4c78a8"
CURRENT_COLOR = "#f58518"
WIDTH = 900


def fmt_number(value: float) -> str:
    """Short human form: 3-4 significant digits, scientific when tiny or huge."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%" if share >= 0.001 or share == 0 else "<0.1%"


def _histogram(dist: Distribution, column: str) -> str:
    height, left, right, top, bottom = 240, 56, 14, 12, 34
    pw, ph = WIDTH - left - right, height - top - bottom
    edges = dist.edges or [0.0, 1.0]
    n = len(dist.reference)
    ymax = max([*dist.reference, *dist.current, 1e-12]) * 1.1
    bw = pw / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="Distribution of {escape(column)}">',
        f"<title>Reference vs current distribution of {escape(column)}</title>",
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + ph - frac * ph
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_pct(frac * ymax)}</text>"
        )
    for i in range(n):
        x = left + i * bw
        pairs = ((dist.reference[i], REFERENCE_COLOR), (dist.current[i], CURRENT_COLOR))
        for share, color in pairs:
            h = share / ymax * ph
            if h > 0:
                parts.append(
                    f'<rect x="{x + 0.5:.1f}" y="{top + ph - h:.1f}" '
                    f'width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}" '
                    f'fill="{color}" fill-opacity="0.5">'
                    f"<title>[{fmt_number(edges[i])}, {fmt_number(edges[i + 1])}): "
                    f"{_pct(share)}</title></rect>"
                )
    for frac, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        value = edges[0] + frac * (edges[-1] - edges[0])
        parts.append(
            f'<text x="{left + frac * pw:.1f}" y="{height - 12}" text-anchor="{anchor}" '
            f'class="tick">{fmt_number(value)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" class="axis"/></svg>'
    )
    return "".join(parts)


def _bars(dist: Distribution, column: str) -> str:
    labels = dist.labels or []
    new = dist.new_in_current or [False] * len(labels)
    row, bar, label_w, top = 28, 10, 200, 6
    height = top * 2 + row * len(labels)
    bar_w = WIDTH - label_w - 70
    smax = max([*dist.reference, *dist.current, 1e-12])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="Value shares of {escape(column)}">',
        f"<title>Reference vs current value shares of {escape(column)}</title>",
    ]
    for i, label in enumerate(labels):
        y = top + i * row
        short = label if len(label) <= 24 else label[:23] + "…"
        mark = ' class="label new"' if new[i] else ' class="label"'
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end"{mark}>'
            f"<title>{escape(label)}</title>{escape(short)}{' (new)' if new[i] else ''}</text>"
        )
        for j, (share, color) in enumerate(
            ((dist.reference[i], REFERENCE_COLOR), (dist.current[i], CURRENT_COLOR))
        ):
            by = y + 3 + j * (bar + 2)
            w = share / smax * bar_w
            side = "reference" if j == 0 else "current"
            parts.append(
                f'<rect x="{label_w}" y="{by:.1f}" width="{max(w, 0.5 if share else 0):.1f}" '
                f'height="{bar}" fill="{color}"><title>{side}: {_pct(share)}</title></rect>'
                f'<text x="{label_w + w + 5:.1f}" y="{by + bar - 1:.1f}" class="tick">'
                f"{_pct(share)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def chart_svg(dist: Distribution, column: str) -> str:
    """The SVG markup for one column's distribution."""
    if dist.kind == "histogram":
        return _histogram(dist, column)
    return _bars(dist, column)
