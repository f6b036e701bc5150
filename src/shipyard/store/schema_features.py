"""Tables of the feature store: versioned definitions, their consumers, materialization marks.

A definition (entity, source, feature view, on-demand view) is stored as its
JSON spec; applying a changed spec adds a version, never edits one, so a model
trained on ``driver_stats`` v2 can always be told what v2 was. Migration
``0007_feature_store`` creates them; :mod:`shipyard.store.feature_store` turns
rows into frozen records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.clock import utc_now
from shipyard.store.schema import Base


class FeatureDefinitionRow(Base):
    """One version of one definition (``kind`` is entity, source, view or on_demand)."""

    __tablename__ = "feature_definitions"
    __table_args__ = (UniqueConstraint("kind", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column()
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    created_by: Mapped[str] = mapped_column(String(255))


class FeatureConsumerRow(Base):
    """A model version trained on a feature view version (breaking changes are refused)."""

    __tablename__ = "feature_consumers"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    view: Mapped[str] = mapped_column(String(255), primary_key=True)
    view_version: Mapped[int] = mapped_column(Integer)


class MaterializationRow(Base):
    """How far a view was materialized into an online store (``target`` names it)."""

    __tablename__ = "feature_materializations"

    view: Mapped[str] = mapped_column(String(255), primary_key=True)
    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    view_version: Mapped[int] = mapped_column(Integer)
    watermark: Mapped[datetime] = mapped_column()
    rows: Mapped[int] = mapped_column(Integer)
    materialized_at: Mapped[datetime] = mapped_column(default=utc_now)
