"""Aliases: named, movable pointers to versions; every move is audit-logged.

:func:`move_alias` works inside the caller's write transaction, so a
deployment change can move the alias it follows atomically with itself.

>>> aliases = AliasStore(Database("sqlite:///:memory:"))   # doctest: +SKIP
>>> aliases.set_alias("iris", "production", 3, actor="ann")  # doctest: +SKIP
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.clock import utc_now
from shipyard.errors import AliasNotFoundError, ConflictError
from shipyard.names import check_alias_name
from shipyard.store.database import Database
from shipyard.store.rows import model_row, version_row
from shipyard.store.schema import AliasRow, ModelRow


def move_alias(
    session: Session,
    name: str,
    alias: str,
    version: int,
    *,
    actor: str,
    reason: str | None = None,
) -> int | None:
    """Point ``alias`` at ``version`` in ``session``'s transaction; the version it had before."""
    check_alias_name(alias)
    model = model_row(session, name)
    row = version_row(session, model, version)
    if row.status == "archived":
        raise ConflictError(
            f"Version {name}:{version} is archived and cannot take alias {alias!r}; "
            f"restore it with `shipyard models archive {name}:{version} --restore`."
        )
    current = session.get(AliasRow, (model.id, alias), with_for_update=True)
    previous = current.version if current else None
    if previous == version:
        return previous
    if current is None:
        session.add(AliasRow(model_id=model.id, alias=alias, version=version))
    else:
        current.version = version
        current.updated_at = utc_now()
    Database.audit(
        session,
        actor=actor,
        action="set_alias",
        model=name,
        subject=f"{name}@{alias}",
        from_value=None if previous is None else str(previous),
        to_value=str(version),
        reason=reason,
    )
    return previous


class AliasStore:
    """Set, read and delete aliases, on one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed to before."""
        return self.db.write(
            lambda session: move_alias(session, name, alias, version, actor=actor, reason=reason)
        )

    def delete_alias(self, name: str, alias: str, *, actor: str, reason: str | None = None) -> int:
        def work(session: Session) -> int:
            model = model_row(session, name)
            current = session.get(AliasRow, (model.id, alias))
            if current is None:
                raise _no_alias(session, model, alias)
            previous = current.version
            session.delete(current)
            self.db.audit(
                session,
                actor=actor,
                action="delete_alias",
                model=name,
                subject=f"{name}@{alias}",
                from_value=str(previous),
                to_value=None,
                reason=reason,
            )
            return previous

        return self.db.write(work)

    def get_alias(self, name: str, alias: str) -> int:
        with self.db.read() as session:
            model = model_row(session, name)
            row = session.get(AliasRow, (model.id, alias))
            if row is None:
                raise _no_alias(session, model, alias)
            return row.version


def _no_alias(session: Session, model: ModelRow, alias: str) -> AliasNotFoundError:
    held = sorted(session.scalars(select(AliasRow.alias).where(AliasRow.model_id == model.id)))
    return AliasNotFoundError(
        f"Model {model.name!r} has no alias {alias!r} (aliases: {', '.join(held) or 'none'}). "
        f"Set one with `shipyard models alias {model.name} {alias} VERSION`."
    )
