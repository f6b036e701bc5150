"""The metadata store, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC

import pytest

from shipyard.errors import (
    AliasNotFoundError,
    ConflictError,
    ExperimentNotFoundError,
    ModelNotFoundError,
    RunNotFoundError,
    VersionNotFoundError,
)
from shipyard.store.metadata import MetadataStore


def _register(store: MetadataStore, name: str = "iris", **kwargs: object) -> int:
    return store.create_version(
        name, write_manifest=lambda v: f"{v:064x}", flavor="sklearn", **kwargs
    ).version


def test_versions_are_numbered_from_one(metadata_store: MetadataStore) -> None:
    assert [_register(metadata_store) for _ in range(3)] == [1, 2, 3]
    versions = metadata_store.list_versions("iris")
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[0].manifest_digest == f"{1:064x}"
    assert versions[0].created_at.tzinfo is not None
    assert metadata_store.get_model("iris").latest_version == 3


def test_failed_manifest_write_uses_no_number(metadata_store: MetadataStore) -> None:
    _register(metadata_store)

    def broken(version: int) -> str:
        raise OSError("disk full")

    with pytest.raises(OSError):
        metadata_store.create_version("iris", write_manifest=broken, flavor="sklearn")
    assert _register(metadata_store) == 2


def test_unknown_model_lists_what_exists(metadata_store: MetadataStore) -> None:
    _register(metadata_store, "iris")
    _register(metadata_store, "churn")
    with pytest.raises(ModelNotFoundError, match=r"'wine'.*churn, iris"):
        metadata_store.get_model("wine")


def test_unknown_version_lists_versions(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    with pytest.raises(VersionNotFoundError, match=r"no version 7\. Versions: 1"):
        metadata_store.get_version("iris", 7)


def test_alias_moves_are_audited(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    _register(metadata_store)
    assert metadata_store.set_alias("iris", "production", 1, actor="ann") is None
    assert metadata_store.set_alias("iris", "production", 2, actor="bob", reason="better") == 1
    assert metadata_store.get_alias("iris", "production") == 2
    assert metadata_store.get_version("iris", 2).aliases == ("production",)
    entries = metadata_store.audit_log(model="iris")
    assert [(e.actor, e.from_value, e.to_value) for e in entries] == [
        ("bob", "1", "2"),
        ("ann", None, "1"),
    ]
    assert entries[0].reason == "better"
    assert entries[0].at.tzinfo == UTC


def test_setting_same_alias_twice_writes_one_entry(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    metadata_store.set_alias("iris", "staging", 1, actor="ann")
    metadata_store.set_alias("iris", "staging", 1, actor="ann")
    assert len(metadata_store.audit_log()) == 1


def test_missing_alias_names_existing_ones(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    metadata_store.set_alias("iris", "staging", 1, actor="ann")
    with pytest.raises(AliasNotFoundError, match=r"no alias 'production' \(aliases: staging\)"):
        metadata_store.get_alias("iris", "production")
    assert metadata_store.delete_alias("iris", "staging", actor="ann") == 1
    with pytest.raises(AliasNotFoundError):
        metadata_store.get_alias("iris", "staging")


def test_archived_version_cannot_take_alias(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    _register(metadata_store)
    metadata_store.set_version_archived("iris", 1, True, actor="ann", reason="stale")
    with pytest.raises(ConflictError, match="archived"):
        metadata_store.set_alias("iris", "production", 1, actor="ann")
    assert metadata_store.latest_version("iris").version == 2
    actions = [e.action for e in metadata_store.audit_log()]
    assert actions == ["archive_version"]


def test_version_holding_alias_cannot_be_archived(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    metadata_store.set_alias("iris", "production", 1, actor="ann")
    with pytest.raises(ConflictError, match="holds alias production"):
        metadata_store.set_version_archived("iris", 1, True, actor="ann", reason=None)
    assert metadata_store.get_version("iris", 1).status == "ready"


def test_archived_model_takes_no_versions(metadata_store: MetadataStore) -> None:
    _register(metadata_store)
    metadata_store.set_model_archived("iris", True, actor="ann", reason="retired")
    assert metadata_store.list_models() == []
    assert [m.name for m in metadata_store.list_models(include_archived=True)] == ["iris"]
    with pytest.raises(ConflictError, match="archived"):
        _register(metadata_store)


def test_runs_record_params_metrics_tags_and_data(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run("iris-exp", name="baseline", actor="ann")
    assert run.status == "RUNNING"
    metadata_store.log_params(run.id, {"C": 1.0, "penalty": "l2"})
    metadata_store.log_metrics(run.id, {"loss": 0.9}, step=0)
    metadata_store.log_metrics(run.id, {"loss": 0.4}, step=1)
    metadata_store.set_run_tags(run.id, {"team": "ds"})
    metadata_store.log_dataset(run.id, "training", {"n_rows": 150, "content_hash": "ab"})
    metadata_store.end_run(run.id)
    loaded = metadata_store.get_run(run.id)
    assert loaded.params == {"C": "1.0", "penalty": "l2"}
    assert loaded.metrics == {"loss": 0.4}
    assert loaded.tags == {"team": "ds"}
    assert loaded.datasets["training"]["n_rows"] == 150
    assert loaded.status == "FINISHED" and loaded.end_time is not None
    assert [p.value for p in metadata_store.metric_history(run.id, "loss")] == [0.9, 0.4]
    assert [r.id for r in metadata_store.list_runs("iris-exp")] == [run.id]


def test_params_are_immutable(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run("exp")
    metadata_store.log_params(run.id, {"C": 1})
    metadata_store.log_params(run.id, {"C": 1})  # same value: fine
    with pytest.raises(ConflictError, match="immutable"):
        metadata_store.log_params(run.id, {"C": 2})


def test_unknown_run_and_experiment(metadata_store: MetadataStore) -> None:
    with pytest.raises(RunNotFoundError):
        metadata_store.get_run("nope")
    with pytest.raises(ExperimentNotFoundError):
        metadata_store.list_runs("nope")


def test_version_links_to_run(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run("exp")
    _register(metadata_store, run_id=run.id, data_fingerprint={"n_rows": 3})
    version = metadata_store.get_version("iris", 1)
    assert version.run_id == run.id
    assert version.data_fingerprint == {"n_rows": 3}
    with pytest.raises(RunNotFoundError):
        _register(metadata_store, run_id="missing")
    assert metadata_store.count_versions("iris") == 1


def _register_many(url: str, count: int, queue: mp.Queue) -> None:
    store = MetadataStore(url)
    try:
        queue.put([_register(store, "race") for _ in range(count)])
    except Exception as exc:  # report to the parent rather than dying silently
        queue.put(repr(exc))
    finally:
        store.close()


def test_concurrent_registration_is_gap_free(database_url: str) -> None:
    """Two processes registering at once get distinct, gap-free numbers, no lock errors."""
    MetadataStore(database_url).ensure_model("race")
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
