"""The SVG charts: series, gaps, thresholds, links, and names kept as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from shipyard.ui.charts import Series, line_chart

NS = {"svg": "http://www.w3.org/2000/svg"}


def _svg(html: str) -> ET.Element:
    return ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])


def test_series_points_threshold_and_links() -> None:
    html = line_chart(
        [
            Series("a<b>", [(0, 1.0), (1, None), (2, 3.0)], links=["/x?a=1&b=2", None, None]),
            Series("b", [(0, 2.0), (2, 2.5)], dashed=True),
        ],
        title="t <i>",
        threshold=2.2,
    )
    svg = _svg(html)  # well-formed XML: every name was escaped
    groups = svg.findall("svg:g[@class='series']", NS)
    assert [g.get("data-series") for g in groups] == ["a<b>", "b"]
    # The unknown point is a gap: two separate pens, two markers.
    path = groups[0].find("svg:path", NS)
    assert path is not None and path.get("d", "").count("M") == 2
    assert len(groups[0].findall(".//svg:circle", NS)) == 2
    link = groups[0].find("svg:a", NS)
    assert link is not None and link.get("href") == "/x?a=1&b=2"
    threshold = svg.find("svg:g[@class='threshold']", NS)
    assert threshold is not None and threshold.get("data-threshold") == "2.2"
    assert "<i>" not in html and "&lt;i&gt;" in html


def test_nothing_to_draw_says_so() -> None:
    html = line_chart([Series("a", [(0, None)])], title="<x>")
    assert html.startswith('<p class="empty"') and "&lt;x&gt;" in html
