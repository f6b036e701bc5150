"""Every table of the metadata database, in one ``MetaData``.

Two readers need all of them: Alembic's autogenerate (a module left out would
have its tables proposed for dropping) and :func:`shipyard.store.db.migrate`,
which creates a new database's tables at the newest revision in one step. A
module that declares tables must be imported here.
"""

from __future__ import annotations

from sqlalchemy import MetaData


def all_tables() -> MetaData:
    """The metadata holding every Shipyard table (imports each schema module)."""
    import shipyard.store.schema_data
    import shipyard.store.schema_features
    import shipyard.store.schema_loop
    import shipyard.store.schema_monitor
    import shipyard.store.schema_rollout
    import shipyard.store.schema_tracking
    import shipyard.store.schema_validation  # noqa: F401
    from shipyard.store.schema import Base

    return Base.metadata


__all__ = ["all_tables"]
