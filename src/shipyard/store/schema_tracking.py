"""Tables that make tracking a place to keep experiments: run artifacts and latest metrics.

- ``run_artifacts``: a file a run kept (a plot, a table, a note, a model), by
  its path inside the run; the bytes are a blob of the content-addressed
  artifact store, so the row holds only the digest and the size.
- ``run_latest_metrics``: the latest value of each metric of each run (highest
  step, then the last logged), kept up to date as points are written. Search
  filters and sorts on it in SQL, and a run is shown without reading its whole
  metric history.

Migration ``0008_tracking_artifacts_and_search`` creates them and the
``runs.parent_id`` column of nested runs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.clock import utc_now
from shipyard.store.schema import Base


class RunArtifactRow(Base):
    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class RunLatestMetricRow(Base):
    __tablename__ = "run_latest_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(default=utc_now)
