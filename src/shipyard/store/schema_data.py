"""Tables of data and pipeline versions: dataset versions, who used them, run pipelines.

A dataset version's rows live in the artifact store as content-addressed
Parquet chunks listed by a manifest blob; the row here points at the manifest
and keeps what ``data list`` / ``data show`` print without opening it.
Datasets are named, not keyed, like loop runs refer to models: a version is
immutable once written and only ``data prune`` removes it.
Migration ``0012_data_versions`` creates these tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.clock import utc_now
from shipyard.store.schema import Base


class DatasetVersionRow(Base):
    """One immutable, numbered version of a named dataset."""

    __tablename__ = "dataset_versions"

    dataset: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Digest of the manifest blob (chunks, schema); None for a Delta Lake reference.
    manifest_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[dict[str, Any]] = mapped_column()
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Bytes of every chunk the version lists, and of those no earlier version had.
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    new_bytes: Mapped[int] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    created_by: Mapped[str] = mapped_column(String(255))


class DatasetUseRow(Base):
    """A tracking run read a dataset version (``training``, ``holdout``...)."""

    __tablename__ = "dataset_uses"

    dataset: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    context: Mapped[str] = mapped_column(String(64), primary_key=True)


class RunPipelineRow(Base):
    """The pipeline version a run ran: entry point, code hash, config, params, seed, env."""

    __tablename__ = "run_pipelines"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    entry_point: Mapped[str] = mapped_column(String(255))
    code_hash: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]] = mapped_column()
