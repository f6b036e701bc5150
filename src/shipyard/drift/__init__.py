"""Data drift detection: statistical tests, a detector, HTML and JSON reports.

>>> import pandas as pd
>>> from shipyard.drift import DriftDetector
>>> ref = pd.DataFrame({"x": [float(i % 50) for i in range(2000)]})
>>> DriftDetector().fit(ref).score(ref + 25).dataset_drift
True
"""

from shipyard.drift.columns import ColumnType, infer_column_type
from shipyard.drift.compare import compare
from shipyard.drift.detector import DriftDetector, NotFittedError, score_frames
from shipyard.drift.distributions import Distribution, column_distributions
from shipyard.drift.prediction import model_prediction_drift, prediction_drift, prediction_frame
from shipyard.drift.profile import ColumnProfile, ReferenceProfile
from shipyard.drift.report_html import render_html, write_html
from shipyard.drift.report_json import to_json, write_json
from shipyard.drift.result import ColumnDrift, DriftResult, SkippedColumn
from shipyard.drift.stattests import STATTESTS, StatTest, default_stattest, get_stattest

__all__ = [
    "STATTESTS",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnType",
    "Distribution",
    "DriftDetector",
    "DriftResult",
    "NotFittedError",
    "ReferenceProfile",
    "SkippedColumn",
    "StatTest",
    "column_distributions",
    "compare",
    "default_stattest",
    "get_stattest",
    "infer_column_type",
    "model_prediction_drift",
    "prediction_drift",
    "prediction_frame",
    "render_html",
    "score_frames",
    "to_json",
    "write_html",
    "write_json",
]
