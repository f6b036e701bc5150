"""The runs table's query string: the status picked and the chosen columns, checked.

The filter itself is MLflow's syntax (``metrics.accuracy > 0.9 and tags.team =
'risk'``), parsed once by :mod:`shipyard.store.run_filter` for the table, the
Python API and ``shipyard runs search`` alike; nothing here parses it again.

>>> columns("accuracy, loss,,accuracy")
['accuracy', 'loss']
"""

from __future__ import annotations

from fastapi import HTTPException

from shipyard.store.run_store import RUN_STATUSES

__all__ = ["columns", "parse_status"]


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
