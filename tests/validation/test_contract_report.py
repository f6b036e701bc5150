"""The HTML report, rendered in headless Chromium: it shows every violation, cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from shipyard.validation.contract_checks import check_contract
from shipyard.validation.contract_report import render_contract_report
from shipyard.validation.contracts import infer_contract


def bad_batch(adult: pd.DataFrame) -> pd.DataFrame:
    bad = adult.copy()
    bad.loc[[3, 8], "age"] = [200, 300]
    bad.loc[4, "workclass"] = "<script>alert(1)</script>"
    return bad


def test_report_is_self_contained_and_escaped(adult) -> None:
    contract = infer_contract(adult)
    html = render_contract_report(contract, check_contract(contract, bad_batch(adult)), title="a:1")
    assert "<script>" not in html  # data is escaped, and the report needs no script
    assert "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside
    assert html.count('class="violation"') == 2


@pytest.mark.browser
def test_report_renders_in_chromium(adult, tmp_path: Path, offline_page) -> None:
    contract = infer_contract(adult)
    result = check_contract(contract, bad_batch(adult))
    page_path = tmp_path / "report.html"
    page_path.write_text(render_contract_report(contract, result, title="adult:1"), "utf-8")
    page = offline_page.page
    page.goto(page_path.as_uri())
    assert page.locator("#status").inner_text().strip() == "FAILED"
    rows = page.locator("#violations tr.violation")
    assert rows.count() == len(result.violations) == 2
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("age" in t and "2 / 400" in t and "3, 8" in t for t in texts)
    assert any("<script>alert(1)</script>" in t for t in texts)  # shown as text
    assert page.locator("#contract tbody tr").count() == len(contract.columns)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    if os.environ.get("SHIPYARD_KEEP_SCREENSHOT"):
        page.screenshot(path=os.environ["SHIPYARD_KEEP_SCREENSHOT"], full_page=True)
    assert offline_page.errors == []
    assert offline_page.blocked == []
