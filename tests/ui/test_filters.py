"""The runs table's query string: what a person types, checked with a clear message."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from shipyard.store.run_query import MetricCondition
from shipyard.ui.filters import columns, parse_metric_filter, parse_status, parse_tags


def test_metric_expressions() -> None:
    assert parse_metric_filter("acc>=0.9 AND loss == 1e-3") == [
        MetricCondition("acc", ">=", 0.9),
        MetricCondition("loss", "=", 0.001),
    ]
    assert parse_metric_filter("  ") == []
    for bad, message in (("acc ~ 1", "KEY OP NUMBER"), ("acc > high", "not a number")):
        with pytest.raises(HTTPException, match=message):
            parse_metric_filter(bad)


def test_tags_status_and_columns() -> None:
    assert parse_tags(["team=red", "", "note = a=b"]) == [("team", "red"), ("note", "a=b")]
    with pytest.raises(HTTPException, match="KEY=VALUE"):
        parse_tags(["team"])
    assert parse_status("finished") == "FINISHED" and parse_status("") is None
    with pytest.raises(HTTPException, match="not one of"):
        parse_status("done")
    assert columns("a, b,,a ") == ["a", "b"]
