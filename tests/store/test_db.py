"""The metadata database engine: migrations run once, then stay out of the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shipyard.store.db import HEAD_REVISION, create_db_engine, head_revision, migrate


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
