"""Models and versions, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from shipyard.errors import (
    ConflictError,
    ModelNotFoundError,
    RunNotFoundError,
    VersionNotFoundError,
)
from shipyard.store.database import Database
from shipyard.store.model_store import ModelStore
from shipyard.store.run_store import RunStore


def _register(models: ModelStore, name: str = "iris", **kwargs: object) -> int:
    return models.create_version(
        name, write_manifest=lambda v: f"{v:064x}", flavor="sklearn", **kwargs
    ).version


def test_versions_are_numbered_from_one(models: ModelStore) -> None:
    assert [_register(models) for _ in range(3)] == [1, 2, 3]
    versions = models.list_versions("iris")
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[0].manifest_digest == f"{1:064x}"
    assert versions[0].created_at.tzinfo is not None
    assert models.get_model("iris").latest_version == 3


def test_failed_manifest_write_uses_no_number(models: ModelStore) -> None:
    _register(models)

    def broken(version: int) -> str:
        raise OSError("disk full")

    with pytest.raises(OSError):
        models.create_version("iris", write_manifest=broken, flavor="sklearn")
    assert _register(models) == 2


def test_unknown_model_lists_what_exists(models: ModelStore) -> None:
    _register(models, "iris")
    _register(models, "churn")
    with pytest.raises(ModelNotFoundError, match=r"'wine'.*churn, iris"):
        models.get_model("wine")


def test_unknown_version_lists_versions(models: ModelStore) -> None:
    _register(models)
    with pytest.raises(VersionNotFoundError, match=r"no version 7\. Versions: 1"):
        models.get_version("iris", 7)


def test_archived_model_takes_no_versions(models: ModelStore) -> None:
    _register(models)
    models.set_model_archived("iris", True, actor="ann", reason="retired")
    assert models.list_models() == []
    assert [m.name for m in models.list_models(include_archived=True)] == ["iris"]
    with pytest.raises(ConflictError, match="archived"):
        _register(models)


def test_version_links_to_run(models: ModelStore, runs: RunStore) -> None:
    run = runs.create_run("exp")
    _register(models, run_id=run.id, data_fingerprint={"n_rows": 3})
    version = models.get_version("iris", 1)
    assert version.run_id == run.id
    assert version.data_fingerprint == {"n_rows": 3}
    with pytest.raises(RunNotFoundError):
        _register(models, run_id="missing")
    assert models.count_versions("iris") == 1


def _register_many(url: str, count: int, queue: mp.Queue) -> None:
    db = Database(url)
    try:
        queue.put([_register(ModelStore(db), "race") for _ in range(count)])
    except Exception as exc:  # report to the parent rather than dying silently
        queue.put(repr(exc))
    finally:
        db.close()


def test_concurrent_registration_is_gap_free(database_url: str) -> None:
    """Two processes registering at once get distinct, gap-free numbers, no lock errors."""
    db = Database(database_url)
    ModelStore(db).ensure_model("race")
    db.close()
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    count = 15
    workers = [ctx.Process(target=_register_many, args=(database_url, count, queue)) for _ in "ab"]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert all(isinstance(r, list) for r in results), results
    numbers = sorted(n for r in results for n in r)
    assert numbers == list(range(1, 2 * count + 1))


def test_lists_read_aliases_and_tags_as_one_model_or_version_does(
    models: ModelStore, database: Database
) -> None:
    from shipyard.store.alias_store import AliasStore

    aliases = AliasStore(database)
    for name in ("a", "b", "c"):
        for _ in range(3):
            _register(models, name, tags={"owner": name})
    models.set_version_tags("b", 2, {"stage": "qa"})
    aliases.set_alias("b", "production", 2, actor="t")
    aliases.set_alias("b", "staging", 2, actor="t")
    aliases.set_alias("c", "production", 1, actor="t")
    listed = models.list_models()
    assert listed == [models.get_model(n) for n in ("a", "b", "c")]
    assert listed[1].aliases == {"production": 2, "staging": 2}
    versions = models.list_versions("b")
    assert versions == [models.get_version("b", n) for n in (1, 2, 3)]
    assert versions[1].aliases == ("production", "staging")
    assert versions[1].tags == {"owner": "b", "stage": "qa"} and versions[0].tags == {"owner": "b"}
