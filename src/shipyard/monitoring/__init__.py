"""Monitoring: the prediction log, ground-truth feedback, performance over time, concept drift.

    PredictionLog        background, batched, bounded writer of every prediction
      └─ SegmentStore    day-partitioned Parquet segments (folder or s3://), read with DuckDB
    record_feedback      late labels, stored beside the log, joined by request id
    performance          realized + CBPE-estimated metrics per time bucket vs training
    detect_degradation   sustained drop below the baseline: concept drift

>>> from shipyard.monitoring import open_prediction_log, performance    # doctest: +SKIP
>>> log = open_prediction_log(settings)                                   # doctest: +SKIP
>>> detect_degradation(performance(log, "iris", 3), "accuracy").flagged   # doctest: +SKIP
False
"""

from shipyard.monitoring.concept import BucketVerdict, Degradation, detect_degradation
from shipyard.monitoring.feedback import (
    FeedbackIn,
    FeedbackOut,
    read_feedback_file,
    record_feedback,
)
from shipyard.monitoring.log_metrics import PredictionLogMetrics
from shipyard.monitoring.performance import (
    BucketPerformance,
    PerformanceReport,
    baseline_metrics,
    performance,
)
from shipyard.monitoring.prediction_log import (
    DEFAULT_RETENTION,
    PredictionLog,
    open_prediction_log,
)
from shipyard.monitoring.records import (
    FeedbackItem,
    FeedbackResult,
    LogStats,
    PredictionBatch,
    PredictionRecord,
)
from shipyard.monitoring.segments import SegmentSink, SegmentStore

__all__ = [
    "DEFAULT_RETENTION",
    "BucketPerformance",
    "BucketVerdict",
    "Degradation",
    "FeedbackIn",
    "FeedbackItem",
    "FeedbackOut",
    "FeedbackResult",
    "LogStats",
    "PerformanceReport",
    "PredictionBatch",
    "PredictionLog",
    "PredictionLogMetrics",
    "PredictionRecord",
    "SegmentSink",
    "SegmentStore",
    "baseline_metrics",
    "detect_degradation",
    "open_prediction_log",
    "performance",
    "read_feedback_file",
    "record_feedback",
]
