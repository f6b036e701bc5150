"""The runs table's query string, read into a :class:`~shipyard.store.run_query.RunQuery`.

Checked here, at the edge, with a message naming the field and what was
expected: ``metric`` is ``KEY OP NUMBER`` joined by ``and``
(``accuracy >= 0.9 and loss < 0.3``), ``tag`` is ``KEY=VALUE``.

>>> parse_metric_filter("accuracy >= 0.9 and loss < 0.3")[1]
MetricCondition(key='loss', op='<', value=0.3)
"""

from __future__ import annotations

import re

from fastapi import HTTPException

from shipyard.store.run_query import OPERATORS, MetricCondition
from shipyard.store.run_store import RUN_STATUSES

__all__ = ["columns", "parse_metric_filter", "parse_status", "parse_tags"]

_CONDITION = re.compile(r"^\s*([^\s<>=!]+)\s*(<=|>=|!=|==|=|<|>)\s*(\S+)\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def parse_metric_filter(text: str) -> list[MetricCondition]:
    if not text.strip():
        return []
    out = []
    for part in _AND.split(text.strip()):
        match = _CONDITION.match(part)
        if match is None:
            raise HTTPException(
                400,
                f"The metric filter {part!r} is not KEY OP NUMBER: write e.g. "
                f"'accuracy >= 0.9 and loss < 0.3' (operators: {', '.join(OPERATORS)}).",
            )
        key, op, number = match.groups()
        try:
            value = float(number)
        except ValueError:
            raise HTTPException(
                400, f"The metric filter {part!r} compares with {number!r}, not a number."
            ) from None
        out.append(MetricCondition(key, "=" if op == "==" else op, value))
    return out


def parse_tags(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for text in values:
        if not text.strip():
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise HTTPException(400, f"The tag filter {text!r} is not KEY=VALUE (e.g. team=fraud).")
        out.append((key.strip(), value.strip()))
    return out


def parse_status(text: str) -> str | None:
    if not text:
        return None
    status = text.upper()
    if status not in RUN_STATUSES:
        raise HTTPException(
            400, f"The status filter {text!r} is not one of {', '.join(RUN_STATUSES)}."
        )
    return status


def columns(text: str) -> list[str]:
    """A comma-separated list of column keys, blanks and repeats dropped."""
    seen: list[str] = []
    for part in text.split(","):
        key = part.strip()
        if key and key not in seen:
            seen.append(key)
    return seen
