"""Engine creation and schema migrations for the metadata database.

SQLite (the embedded default) runs in WAL mode with a long busy timeout, and
every write transaction starts with ``BEGIN IMMEDIATE`` so two processes never
deadlock upgrading a read lock: the second one waits instead of failing with
"database is locked". PostgreSQL needs nothing special.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from shipyard.errors import ConfigError, StoreError
from shipyard.store.schema_all import all_tables

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

#: Alembic's own bookkeeping table, as Alembic creates it: a new database is
#: stamped at ``HEAD_REVISION`` by writing it directly, so later migrations
#: (run by Alembic) start from there.
_VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


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

    A new, empty database gets every table at once from the declared schema and is
    stamped at the newest revision; replaying each migration with Alembic (what an
    older database gets) costs a third of a second more of the first command
    (importing Alembic and running each step), for the same tables:
    tests/store/test_db.py compares the two schemas on SQLite and PostgreSQL.

    A lock serialises concurrent callers: a PostgreSQL advisory lock, or the
    SQLite write lock that ``BEGIN IMMEDIATE`` takes.
    """
    try:
        if _current_revision(engine) == HEAD_REVISION:
            return
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            # Read again under the lock: another process may have just done it.
            if _read_revision(conn) == HEAD_REVISION:
                return
            if _is_new(conn):
                create_at_head(conn)
            else:
                replay_migrations(conn)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"Could not migrate the metadata database at {engine.url!r}: {exc}"
        ) from exc


def _is_new(conn: Connection) -> bool:
    """No Alembic bookkeeping and none of Shipyard's tables (other tables may be there)."""
    names = set(sa_inspect(conn).get_table_names())
    return _VERSION_TABLE.name not in names and not names & set(all_tables().tables)


def create_at_head(conn: Connection) -> None:
    """Create every table of the declared schema and stamp the newest revision."""
    all_tables().create_all(conn, checkfirst=False)
    _VERSION_TABLE.create(conn)
    conn.execute(_VERSION_TABLE.insert().values(version_num=HEAD_REVISION))


def replay_migrations(conn: Connection) -> None:
    """Run every migration the database has not had yet, with Alembic."""
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")


def _current_revision(engine: Engine) -> str | None:
    """The revision the database is at, read without Alembic (None: not migrated yet)."""
    with engine.connect() as conn:
        return _read_revision(conn)


def _read_revision(conn: Connection) -> str | None:
    if not sa_inspect(conn).has_table(_VERSION_TABLE.name):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
