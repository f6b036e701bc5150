"""Tables of the serving monitor: leases (one worker computes) and the figures it computed.

A lease names a job that exactly one process should run at a time, whoever
holds it until ``expires_at``; the holder renews it while alive, and anyone
takes it over once it expired. The monitor job of every server worker (and
every replica) serving one model version asks for the same lease, so the
window is read once, not once per worker; the holder stores the figures in a
snapshot row that every worker reads and exports. Migration
``0006_monitor_leases`` creates them; :mod:`shipyard.store.monitor_store`
turns rows into frozen records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.store.schema import Base


class LeaseRow(Base):
    """Who runs the job ``name`` until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class MonitorSnapshotRow(Base):
    """The newest figures the monitor computed for one model version and window."""

    __tablename__ = "monitor_snapshots"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    window_seconds: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column()
    computed_by: Mapped[str] = mapped_column(String(255))
    figures: Mapped[dict[str, Any]] = mapped_column()
