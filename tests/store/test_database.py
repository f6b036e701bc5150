"""The database core: write transactions commit audit entries with the change, or neither."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from shipyard.errors import ConflictError, StoreError
from shipyard.store.audit_store import AuditStore
from shipyard.store.database import Database
from shipyard.store.db import POOL_SIZE


def test_audit_entries_commit_and_roll_back_with_their_transaction(database: Database) -> None:
    audit = AuditStore(database)

    def change(session: Session) -> None:
        database.audit(session, actor="ann", action="kept", model="iris")

    def broken(session: Session) -> None:
        database.audit(session, actor="ann", action="lost", model="iris")
        raise ConflictError("someone else changed it")

    database.write(change)
    with pytest.raises(ConflictError):
        database.write(broken)
    assert [e.action for e in audit.log(model="iris")] == ["kept"]


def test_database_errors_become_store_errors_naming_the_database(database: Database) -> None:
    with (
        pytest.raises(StoreError, match="Metadata database error") as caught,
        database.read() as session,
    ):
        session.execute(text("SELECT * FROM no_such_table"))
    assert "no_such_table" in str(caught.value)
    assert "password" not in str(caught.value).lower()


def test_open_pool_opens_every_kept_connection_once(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    database.open_pool()
    assert database.engine.pool.checkedin() == POOL_SIZE  # type: ignore[attr-defined]
    database.open_pool()  # again: the same connections, none added
    assert database.engine.pool.checkedin() == POOL_SIZE  # type: ignore[attr-defined]
    database.close()


def test_open_pool_on_an_in_memory_database_keeps_its_one_connection() -> None:
    database = Database("sqlite://")
    database.open_pool()
    with database.read() as session:
        assert session.execute(text("select 1")).scalar() == 1
    database.close()
