"""Fixtures shared by the whole suite: isolated settings and the real back ends.

Services (PostgreSQL, Redis, Chromium, moto's S3 server) are real. When one cannot be reached the
test skips with the reason, except under CI (``CI=true``), where it fails: a
green CI run must mean the back end was really exercised.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services import AWS_ENVIRONMENT, moto_s3_server, new_bucket, require_service
from shipyard.config import Settings
from shipyard.store.alias_store import AliasStore
from shipyard.store.audit_store import AuditStore
from shipyard.store.database import Database
from shipyard.store.model_store import ModelStore
from shipyard.store.run_store import RunStore

POSTGRES_URL = os.environ.get(
    "SHIPYARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def _thaw_frozen_objects() -> Iterator[None]:
    """A server freezes the objects alive when its model loads (see
    ``freeze_long_lived_objects``): right for one long-lived server, but a test
    process starts hundreds. Thawing after each test lets their apps be collected."""
    yield
    gc.unfreeze()


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    require_service(_postgres_available(), f"PostgreSQL is not reachable at {POSTGRES_URL}")
    engine = sa.create_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.close()


# One store per aggregate, all on the same database (as the client wires them).
@pytest.fixture
def models(database: Database) -> ModelStore:
    return ModelStore(database)


@pytest.fixture
def aliases(database: Database) -> AliasStore:
    return AliasStore(database)


@pytest.fixture
def audit(database: Database) -> AuditStore:
    return AuditStore(database)


@pytest.fixture
def runs(database: Database) -> RunStore:
    return RunStore(database)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a private folder: SQLite plus a local artifact folder."""
    return Settings(home=tmp_path / "home", user="tester")


@pytest.fixture
def backend_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings on each metadata back end (SQLite and PostgreSQL)."""
    return Settings(home=tmp_path / "home", db=database_url, user="tester")


CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out, which this
# machine's closed network refuses; --no-sandbox because tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class OfflinePage:
    """A headless Chromium page that may only load ``file://`` URLs and servers on
    127.0.0.1 (a test's own server).

    ``errors`` collects console errors and uncaught exceptions; ``blocked``
    the URLs of any request that tried to go anywhere else.
    """

    def __init__(self, page: object) -> None:
        self.page = page
        self.errors: list[str] = []
        self.blocked: list[str] = []


@pytest.fixture
def offline_page() -> Iterator[OfflinePage]:
    """Headless Chromium (Debian's package) with the network cut off, for HTML reports
    and the pages of a test server on 127.0.0.1."""
    from pathlib import Path as _Path

    require_service(_Path(CHROMIUM).exists(), f"headless Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            offline = OfflinePage(page)

            def route(r) -> None:  # type: ignore[no-untyped-def]
                if r.request.url.startswith(("file://", "http://127.0.0.1:")):
                    r.continue_()
                else:
                    offline.blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on(
                "console", lambda m: offline.errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: offline.errors.append(str(e)))
            yield offline
        finally:
            browser.close()


@pytest.fixture
def redis_online_url() -> Iterator[str]:
    """A Redis online feature store URL under a key prefix of its own, emptied afterwards."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        available = True
    except (redis.RedisError, OSError):
        available = False
    require_service(available, f"Redis is not reachable at {REDIS_URL}")
    prefix = f"shipyard-test-{uuid.uuid4().hex}"
    yield f"{REDIS_URL}?key_prefix={prefix}"
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + ":*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["sqlite", "postgres+redis"])
def feature_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The embedded set-up (SQLite, local files, SQLite online store) and the scaled one
    (PostgreSQL metadata, Redis online store)."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        return Settings(home=home, user="tester")
    return Settings(
        home=home,
        user="tester",
        db=request.getfixturevalue("postgres_url"),
        online_store=request.getfixturevalue("redis_online_url"),
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 API, started once per test process (each xdist worker runs its own).

    Tests share the server, never a bucket they write to: take one of your own
    with ``s3_bucket`` (or ``services.new_bucket``).
    """
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the shared S3 server, for this test alone."""
    return new_bucket(s3_endpoint, "test")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standard AWS variables set to the test credentials, as production reads them."""
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
