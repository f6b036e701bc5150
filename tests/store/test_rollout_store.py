"""RolloutStore: compare-and-set revisions, history, counters and heartbeats, on both back ends."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from shipyard.errors import ConflictError, InvalidInputError, VersionNotFoundError
from shipyard.registry.service import Registry, RegistryStores
from shipyard.store.alias_store import AliasStore
from shipyard.store.artifacts import LocalArtifactStore
from shipyard.store.audit_store import AuditStore
from shipyard.store.database import Database
from shipyard.store.model_store import ModelStore
from shipyard.store.rollout_records import DeploymentNotFoundError, VariantCounters
from shipyard.store.rollout_store import RolloutStore
from shipyard.store.run_store import RunStore


@pytest.fixture
def store(database: Database, tmp_path) -> RolloutStore:  # type: ignore[no-untyped-def]
    stores = RegistryStores(
        ModelStore(database), AliasStore(database), AuditStore(database), RunStore(database)
    )
    registry = Registry(
        stores,
        LocalArtifactStore(tmp_path / "artifacts"),
        cache_dir=tmp_path / "cache",
        actor="t",
    )
    sample = pd.DataFrame({"x": [1.0, 2.0]})
    for _ in range(3):
        registry.log_model("numpy:asarray", "m", sample=sample)
    stores.models.set_version_archived("m", 3, True, actor="t", reason="old")
    return RolloutStore(database)


def test_create_update_history(store: RolloutStore) -> None:
    created = store.create("web", "m", {"primary": 1}, versions=[1], actor="ann", reason="go")
    assert (created.revision, created.model, created.spec) == (1, "m", {"primary": 1})
    updated = store.update(
        "web", {"primary": 2}, expected_revision=1, versions=[2], actor="bob", action="promote"
    )
    assert (updated.revision, updated.spec, updated.updated_by) == (2, {"primary": 2}, "bob")
    changes = store.changes("web")
    assert [(c.revision, c.action, c.spec) for c in changes] == [
        (2, "promote", {"primary": 2}),
        (1, "deploy_create", {"primary": 1}),
    ]
    assert [d.name for d in store.list_deployments()] == ["web"]


def test_stale_revision_conflicts_and_changes_nothing(store: RolloutStore) -> None:
    store.create("web", "m", {"primary": 1}, versions=[1], actor="ann")
    store.update("web", {"primary": 2}, expected_revision=1, versions=[2], actor="a", action="x")
    with pytest.raises(ConflictError, match="at revision 2, this change was based on revision 1"):
        store.update("web", {"primary": 1}, expected_revision=1, versions=[], actor="b", action="y")
    assert store.get("web").spec == {"primary": 2} and len(store.changes("web")) == 2


def test_racing_writers_exactly_one_wins(store: RolloutStore) -> None:
    store.create("web", "m", {"primary": 1}, versions=[1], actor="ann")
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.update(
                "web",
                {"primary": 2, "by": i},
                expected_revision=1,
                versions=[2],
                actor=f"w{i}",
                action="x",
            )
            outcomes.append("won")
        except ConflictError:
            outcomes.append("told")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["told", "told", "told", "won"]
    assert store.get("web").revision == 2 and len(store.changes("web")) == 2


def test_versions_are_checked_in_the_transaction(store: RolloutStore) -> None:
    with pytest.raises(VersionNotFoundError, match="no version 9"):
        store.create("web", "m", {"primary": 9}, versions=[9], actor="ann")
    store.create("web", "m", {"primary": 1}, versions=[1], actor="ann")
    with pytest.raises(InvalidInputError, match="m:3 is archived"):
        store.update(
            "web", {"primary": 3}, expected_revision=1, versions=[3], actor="a", action="x"
        )
    with pytest.raises(ConflictError, match="already exists"):
        store.create("web", "m", {"primary": 1}, versions=[1], actor="ann")
    with pytest.raises(DeploymentNotFoundError, match="deployments: web"):
        store.get("nope")


def test_counters_and_heartbeats(store: RolloutStore) -> None:
    store.create("web", "m", {"primary": 1}, versions=[1], actor="ann")
    c1 = VariantCounters("primary", 1, 10, 1, {"0.005": 10})
    store.report_worker("web", worker="w1", revision=1, epoch=1, counters=[c1])
    c2 = VariantCounters("primary", 1, 12, 1, {"0.005": 12})
    store.report_worker("web", worker="w1", revision=2, epoch=1, counters=[c2])  # overwrite
    store.report_worker("web", worker="w2", revision=2, epoch=1, counters=[c1])
    rows = sorted(store.counters("web", 1), key=lambda r: r.worker)
    assert [(r.worker, r.requests, r.latency) for r in rows] == [
        ("w1", 12, {"0.005": 12}),
        ("w2", 10, {"0.005": 10}),
    ]
    assert store.counters("web", 2) == []
    assert [(w.worker, w.revision) for w in store.workers("web")] == [("w1", 2), ("w2", 2)]
    store.forget_worker("web", "w1")
    assert [w.worker for w in store.workers("web")] == ["w2"]


def test_epoch_counts_sum_workers_per_variant_with_the_epochs_start(store: RolloutStore) -> None:
    store.create("web", "m", {"primary": 1}, versions=[1], actor="ann")
    store.update(
        "web",
        {"primary": 2, "epoch": 2},
        expected_revision=1,
        versions=[2],
        actor="ann",
        action="promote",
    )
    changes = {c.revision: c.at for c in store.changes("web")}
    store.report_worker(
        "web", worker="w1", revision=1, epoch=1, counters=[VariantCounters("primary", 1, 10, 1)]
    )
    for worker, errors in (("w1", 2), ("w2", 5)):
        store.report_worker(
            "web",
            worker=worker,
            revision=2,
            epoch=2,
            counters=[
                VariantCounters("primary", 2, 100, errors),
                VariantCounters("canary", 1, 7, 0),
            ],
        )
    counts = store.epoch_counts("web")
    assert [(c.epoch, c.variant, c.version, c.requests, c.errors) for c in counts] == [
        (1, "primary", 1, 10, 1),
        (2, "canary", 1, 14, 0),
        (2, "primary", 2, 200, 7),
    ]
    assert [c.started_at for c in counts] == [changes[1], changes[2], changes[2]]
    assert all(c.reported_at >= c.started_at for c in counts if c.started_at is not None)
