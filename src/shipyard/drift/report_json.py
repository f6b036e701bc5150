"""The JSON drift report: exactly :meth:`DriftResult.to_dict`.

``{"columns": [{column, type, stattest, threshold, score, drift_detected}],
"dataset": {n_columns, n_drifted, share, dataset_drift}, "skipped": [...]}``.
A score that is not a number (it cannot happen with the built-in tests on
clean data) is written as ``null``.

    >>> import json
    >>> from shipyard.drift.result import ColumnDrift, DriftResult
    >>> result = DriftResult.from_columns(
    ...     [ColumnDrift("x", "numerical", "ks", 0.05, 0.2, False)], drift_share=0.5)
    >>> json.loads(to_json(result))["dataset"]["dataset_drift"]
    False
"""

from __future__ import annotations

from pathlib import Path

import orjson

from shipyard.drift.result import DriftResult


def to_json(result: DriftResult, *, indent: bool = True) -> str:
    """Serialize ``result`` to a JSON string (2-space indented by default)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(result.to_dict(), option=option).decode()


def write_json(path: str | Path, result: DriftResult) -> Path:
    """Write :func:`to_json` to ``path`` and return the path."""
    path = Path(path)
    path.write_text(to_json(result) + "\n", encoding="utf-8")
    return path
