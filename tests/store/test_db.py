"""The metadata database engine: migrations run once, then stay out of the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy import inspect as sa_inspect

from shipyard.store.db import (
    HEAD_REVISION,
    _alembic_config,
    create_db_engine,
    head_revision,
    migrate,
    replay_migrations,
)
from shipyard.store.schema_all import all_tables


def test_the_head_constant_names_the_newest_migration() -> None:
    # A new migration must move HEAD_REVISION too, or databases would stay behind.
    assert head_revision() == HEAD_REVISION


def test_a_database_at_head_opens_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shipyard.db'}"
    engine = create_db_engine(url)
    migrate(engine)  # a new database: Alembic creates the tables
    engine.dispose()
    code = (
        "import sys\n"
        "from shipyard.store.db import create_db_engine, migrate\n"
        f"migrate(create_db_engine({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything the database reports about each table (the version table included)."""
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = sa_inspect(conn)
        for table in sorted(inspector.get_table_names()):
            found[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table),
                "foreign_keys": sorted(
                    inspector.get_foreign_keys(table), key=lambda fk: fk["constrained_columns"]
                ),
                "indexes": sorted(inspector.get_indexes(table), key=lambda ix: str(ix["name"])),
                "unique": sorted(
                    inspector.get_unique_constraints(table), key=lambda uc: str(uc["name"])
                ),
            }
    return found


def _drop_everything(engine: Engine) -> None:
    with engine.begin() as conn:
        all_tables().drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))


def test_a_new_database_gets_the_same_schema_as_replaying_every_migration(
    database_url: str,
) -> None:
    """A new database is created from the declared tables and stamped at head instead of
    replaying each migration: it must be the database the migrations build."""
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            replay_migrations(conn)
        replayed = _schema(engine)
        _drop_everything(engine)
        assert _schema(engine) == {}
        migrate(engine)  # a new database: created at head
        created = _schema(engine)
        assert created == replayed
        with engine.connect() as conn:
            # Alembic reads the stamp, and finds nothing between it and the models.
            assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
            assert compare_metadata(MigrationContext.configure(conn), all_tables()) == []
    finally:
        engine.dispose()


def test_a_database_at_an_older_revision_is_migrated_by_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shipyard.db'}"
    engine = create_db_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0008")
    migrate(engine)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
        assert sa_inspect(conn).has_table("dataset_versions")
    engine.dispose()


def test_tables_of_other_applications_do_not_make_a_database_look_migrated(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shipyard.db'}"
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    migrate(engine)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
        assert sa_inspect(conn).has_table("someone_elses")
        assert sa_inspect(conn).has_table("runs")
    engine.dispose()
