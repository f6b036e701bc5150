"""SVG charts: numbers formatted short, labels escaped, one bar pair per value."""

from __future__ import annotations

from shipyard.drift.distributions import Distribution
from shipyard.drift.report_svg import chart_svg, fmt_number


def test_fmt_number() -> None:
    assert fmt_number(0) == "0"
    assert fmt_number(0.123456) == "0.1235"
    assert fmt_number(1.5e-7) == "1.5e-07"
    assert fmt_number(123456789.0) == "1.23e+08"


def test_bars_escape_labels_and_mark_new_values() -> None:
    dist = Distribution(
        "bars",
        [0.5, 0.5, 0.0],
        [0.4, 0.3, 0.3],
        labels=["<b>", "x", "new"],
        new_in_current=[False, False, True],
    )
    svg = chart_svg(dist, "col<1>")
    assert "<b>" not in svg
    assert "&lt;b&gt;" in svg and "col&lt;1&gt;" in svg
    assert svg.count("<rect") == 6 and "new (new)" in svg


def test_histogram_draws_both_sides() -> None:
    dist = Distribution("histogram", [0.5, 0.5], [0.0, 1.0], edges=[0.0, 1.0, 2.0])
    svg = chart_svg(dist, "x")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 3  # the empty current bin is not drawn
