"""The HTML report: self-contained, every column drawn, renders in real Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.drift import DriftDetector
from shipyard.drift.report_html import render_html, write_html


@pytest.fixture(scope="module")
def report_inputs():
    rng = np.random.default_rng(3)
    n = 1500
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "churned": rng.random(n) < 0.2,
            "label<&>": rng.choice(["x", "y"], n),
            "note": [f"note {i}" for i in range(n)],
        }
    )
    cur = ref.assign(age=ref["age"] + 8, plan=rng.choice(["basic", "pro", "team", "max"], n))
    det = DriftDetector().fit(ref)
    return det.score(cur), det, cur


def test_report_is_self_contained(report_inputs) -> None:
    html = render_html(*report_inputs, generated_at=datetime(2024, 5, 1, tzinfo=UTC))
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "2024-05-01 00:00:00 UTC" in html
    assert "label&lt;&amp;&gt;" in html and "label<&>" not in html


def test_summary_then_drifted_columns_first(report_inputs) -> None:
    result, *_ = report_inputs
    html = render_html(*report_inputs)
    assert ("Drift detected" if result.dataset_drift else "No drift") in html
    order = re.findall(r'<section class="column[^"]*" id="col-\d+" data-column="([^"]+)"', html)
    assert (
        order[: result.n_drifted] == [c.column for c in result.sorted_columns()][: result.n_drifted]
    )
    assert set(order[: result.n_drifted]) == set(result.drifted_columns)
    assert html.count("<svg") == result.n_columns
    assert "note" in html and "free text" in html  # the skipped column is listed


@pytest.mark.browser
def test_report_renders_in_chromium_without_network(
    report_inputs, tmp_path: Path, offline_page
) -> None:
    result, det, cur = report_inputs
    path = write_html(tmp_path / "drift.html", result, det, cur)
    page = offline_page.page
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert (
        page.locator("#verdict")
        .inner_text()
        .strip()
        .endswith("Drift detected" if result.dataset_drift else "No drift")
    )
    assert page.locator("#drifted-count").inner_text() == (
        f"{result.n_drifted} of {result.n_columns}"
    )
    for col in result.columns:
        section = page.locator(f'section.column[data-column="{col.column}"]')
        assert section.count() == 1
        assert section.locator("svg").count() == 1
        assert section.locator("svg").bounding_box()["height"] > 40
    page.screenshot(path=str(tmp_path / "drift.png"), full_page=True)
    assert offline_page.blocked == []
    assert offline_page.errors == []
    assert (tmp_path / "drift.png").stat().st_size > 10_000
