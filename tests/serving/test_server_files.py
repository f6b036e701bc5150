"""A real server's open database files are fixed from start-up, not grown by load.

Each SQLite connection holds the database file open (and its WAL); a pool that
opens connections on demand grows the server's open files the first time
requests, the alias poll and the monitor job meet in the database, which a soak
run reads as a leak. The server opens its whole pool at start.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from serving_helpers import SETOSA, IrisRegistry, cli_server

from shipyard.store.db import POOL_SIZE


def database_handles(pid: int, database: Path) -> int:
    """How many descriptors of ``pid``'s process tree point at ``database``."""
    root = psutil.Process(pid)
    count = 0
    for process in [root, *root.children(recursive=True)]:
        for fd in Path(f"/proc/{process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            count += target == str(database)
    return count


def test_the_server_opens_its_database_pool_at_start_and_never_more(
    iris: IrisRegistry,
) -> None:
    database = Path(iris.settings.home) / "shipyard.db"
    assert database.exists()
    args = ("iris", "--monitor-interval", "1", "--workers", "1")
    with cli_server(iris.settings, *args) as (pid, url), httpx.Client(base_url=url) as http:
        at_start = database_handles(pid, database)
        assert at_start >= POOL_SIZE  # the pool, and the process that resolved the model

        def busy(i: int) -> None:
            answer = http.post("/predict", json=SETOSA)
            assert answer.status_code == 200, answer.text
            if i % 10 == 0:  # the alias moves under load: every worker re-resolves it
                iris.client.registry.set_alias("iris", "production", 1 + (i // 10) % 2)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(busy, range(400)))
        assert database_handles(pid, database) == at_start
