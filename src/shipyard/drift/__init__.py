"""Data drift detection: statistical tests, a detector, HTML and JSON reports.

    >>> import pandas as pd
    >>> from shipyard.drift import DriftDetector
    >>> ref = pd.DataFrame({"x": [float(i % 50) for i in range(2000)]})
    >>> DriftDetector().fit(ref).score(ref + 25).dataset_drift
    True
"""

from shipyard.drift.columns import ColumnType, infer_column_type
from shipyard.drift.detector import DriftDetector, NotFittedError, score_frames
from shipyard.drift.profile import ColumnProfile, ReferenceProfile
from shipyard.drift.result import ColumnDrift, DriftResult, SkippedColumn
from shipyard.drift.stattests import STATTESTS, StatTest, default_stattest, get_stattest

__all__ = [
    "STATTESTS",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnType",
    "DriftDetector",
    "DriftResult",
    "NotFittedError",
    "ReferenceProfile",
    "SkippedColumn",
    "StatTest",
    "default_stattest",
    "get_stattest",
    "infer_column_type",
    "score_frames",
]
