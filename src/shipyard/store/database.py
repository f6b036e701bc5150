"""The database core: one engine, read and write transactions, the audit log entry.

Every store (runs, models, aliases, audit, validation, rollout, loop, monitor)
takes one :class:`Database` and uses only its public methods, so a store never
reaches into another. The same code serves SQLite and PostgreSQL.

>>> db = Database("sqlite:///:memory:")
>>> db.write(lambda session: Database.audit(session, actor="ann", action="note"))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from shipyard.errors import ShipyardError, StoreError
from shipyard.store.db import WRITE, create_db_engine, migrate
from shipyard.store.schema import AuditRow

__all__ = ["Database"]

T = TypeVar("T")

_RETRIES = 5


class Database:
    """The metadata database; opened and migrated on first use, not at construction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            engine = create_db_engine(self.url)
            migrate(engine)
            self._engine = engine
        return self._engine

    def open_pool(self) -> None:
        """Open every connection the pool keeps, now rather than when load first needs them.

        For a long-running server: its open files (a SQLite database and its WAL
        per connection) are then fixed from start-up instead of growing the first
        time requests, the monitor job and the log writer meet in the database.
        """
        engine = self.engine
        size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
        connections = [engine.connect() for _ in range(size)]
        for connection in connections:
            connection.close()

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction; database errors become :class:`StoreError`."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except ShipyardError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"Metadata database error ({self.safe_url}): {exc}") from exc

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one write transaction, retrying transient lock errors.

        SQLite waits up to its busy timeout before reporting a lock; a retry
        covers the rare case where even that ran out under heavy contention.
        ``work`` may run more than once, so it must only touch the session.
        """
        for attempt in range(_RETRIES):
            try:
                with (
                    self.engine.connect().execution_options(**WRITE) as conn,
                    Session(bind=conn, expire_on_commit=False) as session,
                    session.begin(),
                ):
                    return work(session)
            except ShipyardError:
                raise
            except OperationalError as exc:
                if "locked" in str(exc).lower() and attempt < _RETRIES - 1:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise StoreError(f"Metadata database error ({self.safe_url}): {exc}") from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"Metadata database error ({self.safe_url}): {exc}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def audit(
        session: Session,
        *,
        actor: str,
        action: str,
        model: str | None = None,
        subject: str | None = None,
        from_value: str | None = None,
        to_value: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add an audit entry inside the caller's write transaction (it commits with it)."""
        session.add(
            AuditRow(
                actor=actor,
                action=action,
                model=model,
                subject=subject,
                from_value=from_value,
                to_value=to_value,
                reason=reason,
                details=details or {},
            )
        )
