"""One drift comparison, start to finish: read the tables, test every column, write reports.

What ``shipyard drift`` (and any script) calls. The reference is a table
location, a DataFrame or a stored :class:`~shipyard.drift.profile.ReferenceProfile`;
the current data a table location or a DataFrame. Tables are read by
:mod:`shipyard.tables`, so every format it knows works here, and a bad file
raises its :class:`~shipyard.errors.TableError`. This module imports only the
base layer: resolving a model reference to its profile is the caller's job.

>>> result = compare("reference.parquet", "current.csv.gz", html="drift.html")  # doctest: +SKIP
>>> result.dataset_drift                                                       # doctest: +SKIP
False
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from shipyard.drift.columns import split_names
from shipyard.drift.detector import DriftDetector
from shipyard.drift.profile import ReferenceProfile
from shipyard.drift.report_html import write_html
from shipyard.drift.report_json import write_json
from shipyard.drift.result import DriftResult
from shipyard.tables import read_table

#: What a comparison takes on each side.
Reference: TypeAlias = pd.DataFrame | ReferenceProfile | str | Path
Current: TypeAlias = pd.DataFrame | str | Path


def compare(
    reference: Reference,
    current: Current,
    *,
    stattest: str | None = None,
    threshold: float | None = None,
    drift_share: float = 0.5,
    fdr: bool = False,
    categorical: str | Sequence[str] | None = None,
    numerical: str | Sequence[str] | None = None,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> DriftResult:
    """Test every column of ``current`` against ``reference``; write the reports asked for.

    ``categorical`` / ``numerical`` take ``"a,b"`` or a list of names; ``html``
    gets a self-contained HTML report, ``json_path`` the JSON result.
    ``storage_options`` reach fsspec for ``s3://`` tables.

    Example:
        >>> ref = pd.DataFrame({"x": [float(i % 50) for i in range(2000)]})
        >>> compare(ref, ref + 25).dataset_drift
        True
    """
    ref = _frame(reference, storage_options)
    cur = _frame(current, storage_options)
    detector = DriftDetector(
        stattest=stattest,
        threshold=threshold,
        drift_share=drift_share,
        fdr=fdr,
        categorical=split_names(categorical),
        numerical=split_names(numerical),
    )
    result = detector.fit(ref).score(cur)
    if html is not None:
        write_html(html, result, detector, cur)
    if json_path is not None:
        write_json(json_path, result)
    return result


def _frame(
    data: pd.DataFrame | ReferenceProfile | str | Path, storage_options: dict[str, Any] | None
) -> pd.DataFrame | ReferenceProfile:
    if isinstance(data, str | Path):
        return read_table(data, storage_options=storage_options)
    return data


__all__ = ["Current", "Reference", "compare"]
