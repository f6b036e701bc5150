"""Where a store keeps its artifacts: recorded in its database, shared by every client.

The metadata database and the artifact store are one store. Before, each
client derived the artifact folder from its own settings, so a second machine
(or the same machine in another folder) pointed at a shared PostgreSQL with
only ``SHIPYARD_DB`` set saw every model and could load none of them: their
files were under the first client's ``./shipyard-data/artifacts``.

Now the first client to use a database records the artifact root in it
(table ``store_settings``), and every later client uses the recorded root:

- no ``SHIPYARD_ARTIFACTS``: the recorded root;
- ``SHIPYARD_ARTIFACTS`` naming the same place: fine;
- ``SHIPYARD_ARTIFACTS`` naming another place: :class:`ConfigError`, since
  writing there would leave versions that the other clients cannot load.

A SQLite database whose artifacts sit in its own folder (the embedded
default, ``<home>/shipyard.db`` beside ``<home>/artifacts``) records the root
relative to that folder, so a home that is moved or copied keeps working. A
shared database (anything but SQLite) whose root is a local folder gets a
warning: only this machine can read that folder.

>>> resolve_artifact_root(db, settings)       # doctest: +SKIP
'/srv/shipyard/artifacts'
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from shipyard.config import Settings
from shipyard.errors import ConfigError, StoreError
from shipyard.store.database import Database
from shipyard.store.schema import StoreSettingRow

logger = logging.getLogger("shipyard.store")

#: The ``store_settings`` key holding the artifact root.
ARTIFACT_ROOT = "artifact_root"


def resolve_artifact_root(db: Database, settings: Settings) -> str:
    """The artifact root every client of ``db``'s database uses (see module doc)."""
    shared, base = _database_location(settings.database_url)
    configured = _normalise(settings.artifact_url)
    recorded = _recorded(db)
    if recorded is None:
        recorded = _record(db, _relative_to(configured, base), actor=settings.actor)
    root = _absolute(recorded, base)
    if settings.artifacts is not None and configured != root:
        raise ConfigError(
            f"The database {db.safe_url} keeps its artifacts in {root} (recorded when it "
            f"was first used), but SHIPYARD_ARTIFACTS says {configured}. Versions written "
            f"there could not be loaded by the other clients: unset SHIPYARD_ARTIFACTS to "
            f"use {root}, or set it to that location."
        )
    if shared and _is_local(root):
        logger.warning(
            "The shared database %s keeps its artifacts in the local folder %s: other "
            "machines see the models but cannot load them. Use a shared location "
            "(SHIPYARD_ARTIFACTS=s3://bucket/prefix, or a folder every machine mounts) "
            "when the database is first used.",
            db.safe_url,
            root,
        )
    return root


def _recorded(db: Database) -> str | None:
    with db.read() as session:
        row = session.get(StoreSettingRow, ARTIFACT_ROOT)
        return None if row is None else row.value


def _record(db: Database, value: str, *, actor: str) -> str:
    """Record ``value`` unless another client recorded one first; return the winner."""

    def work(session: Session) -> None:
        if session.get(StoreSettingRow, ARTIFACT_ROOT) is None:
            session.add(StoreSettingRow(key=ARTIFACT_ROOT, value=value, created_by=actor))

    try:
        db.write(work)
    except StoreError as exc:
        if not isinstance(exc.__cause__, SAIntegrityError):
            raise
    recorded = _recorded(db)
    assert recorded is not None
    return recorded


def _database_location(url: str) -> tuple[bool, Path | None]:
    """(whether other machines share the database, the folder of its SQLite file)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True, None
    database = parsed.database
    if not database or database == ":memory:":
        return False, None
    return False, Path(database).resolve().parent


def _normalise(location: str) -> str:
    """A local folder as an absolute path (``file://`` URLs too); a URL as given."""
    if "://" not in location:
        return str(Path(location).resolve())
    parts = urlsplit(location)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return str(Path(unquote(parts.path)).resolve())
    return location.rstrip("/")


def _is_local(root: str) -> bool:
    return "://" not in root


def _relative_to(root: str, base: Path | None) -> str:
    if base is not None and _is_local(root) and Path(root).is_relative_to(base):
        return Path(root).relative_to(base).as_posix() or "."
    return root


def _absolute(recorded: str, base: Path | None) -> str:
    if base is not None and _is_local(recorded) and not Path(recorded).is_absolute():
        return str((base / recorded).resolve())
    return recorded


__all__ = ["ARTIFACT_ROOT", "resolve_artifact_root"]
