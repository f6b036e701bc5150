"""The runs table's query string: what a person picks, checked with a clear message."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from shipyard.ui.filters import columns, parse_status


def test_status_and_columns() -> None:
    assert parse_status("finished") == "FINISHED" and parse_status("") is None
    with pytest.raises(HTTPException, match="not one of"):
        parse_status("done")
    assert columns("a, b,,a ") == ["a", "b"]
