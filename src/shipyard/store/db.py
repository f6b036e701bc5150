"""Engine creation and schema migrations for the metadata database.

SQLite (the embedded default) runs in WAL mode with a long busy timeout, and
every write transaction starts with ``BEGIN IMMEDIATE`` so two processes never
deadlock upgrading a read lock: the second one waits instead of failing with
"database is locked". PostgreSQL needs nothing special.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from shipyard.errors import ConfigError, StoreError

_MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000

#: Connections an engine keeps open between uses (SQLAlchemy's default, stated
#: here because a long-running server opens all of them at start, see
#: :meth:`shipyard.store.database.Database.open_pool`). Up to ``POOL_OVERFLOW``
#: more are opened at peaks and closed as soon as they are returned.
POOL_SIZE = 5
POOL_OVERFLOW = 10

#: Execution option that marks a connection about to write (see module doc).
WRITE = {"shipyard_write": True}


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url``; for SQLite also create its folder."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigError(
            f"SHIPYARD_DB={url!r} is not a database URL; expected e.g. "
            "'sqlite:///path/shipyard.db' or 'postgresql+psycopg://user@host/db'."
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        if (
            parsed.get_driver_name() in ("psycopg2", "default")
            and parsed.drivername == "postgresql"
        ):
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        return create_engine(
            url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
        )
    raise ConfigError(
        f"SHIPYARD_DB uses {parsed.get_backend_name()!r}; supported back ends are "
        "SQLite and PostgreSQL."
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pool: dict[str, Any] = {}
    if database and database != ":memory:":  # an in-memory database has one connection
        pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("shipyard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


#: The newest migration. A database already there is opened without loading
#: Alembic (a tenth of a second of every command); tests/store/test_db.py checks
#: it names the head of ``migrations/``.
HEAD_REVISION = "0012"


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The head of ``migrations/`` as Alembic reads it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to call from many processes.

    A lock serialises concurrent callers: a PostgreSQL advisory lock, or the
    SQLite write lock that ``BEGIN IMMEDIATE`` takes.
    """
    try:
        if _current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.runtime.migration import MigrationContext

        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            if MigrationContext.configure(conn).get_current_revision() != HEAD_REVISION:
                command.upgrade(_alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise StoreError(
            f"Could not migrate the metadata database at {engine.url!r}: {exc}"
        ) from exc


def _current_revision(engine: Engine) -> str | None:
    """The revision the database is at, read without Alembic (None: not migrated yet)."""
    with engine.connect() as conn:
        if not sa_inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
