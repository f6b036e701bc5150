"""Alembic environment: always driven from :func:`shipyard.store.db.migrate`,
which hands over a connection already inside a locked transaction."""

from alembic import context

import shipyard.store.schema_data

# Every module that declares tables must be imported here, or autogenerate
# would propose dropping its tables.
import shipyard.store.schema_features
import shipyard.store.schema_loop
import shipyard.store.schema_monitor
import shipyard.store.schema_rollout
import shipyard.store.schema_tracking
import shipyard.store.schema_validation  # noqa: F401
from shipyard.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
context.run_migrations()
