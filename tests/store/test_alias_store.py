"""Aliases and their audit entries, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC

import pytest

from shipyard.errors import AliasNotFoundError, ConflictError
from shipyard.store.alias_store import AliasStore
from shipyard.store.audit_store import AuditStore
from shipyard.store.model_store import ModelStore


def _register(models: ModelStore, name: str = "iris", **kwargs: object) -> int:
    return models.create_version(
        name, write_manifest=lambda v: f"{v:064x}", flavor="sklearn", **kwargs
    ).version


def test_alias_moves_are_audited(
    models: ModelStore, aliases: AliasStore, audit: AuditStore
) -> None:
    _register(models)
    _register(models)
    assert aliases.set_alias("iris", "production", 1, actor="ann") is None
    assert aliases.set_alias("iris", "production", 2, actor="bob", reason="better") == 1
    assert aliases.get_alias("iris", "production") == 2
    assert models.get_version("iris", 2).aliases == ("production",)
    entries = audit.log(model="iris")
    assert [(e.actor, e.from_value, e.to_value) for e in entries] == [
        ("bob", "1", "2"),
        ("ann", None, "1"),
    ]
    assert entries[0].reason == "better"
    assert entries[0].at.tzinfo == UTC


def test_setting_same_alias_twice_writes_one_entry(
    models: ModelStore, aliases: AliasStore, audit: AuditStore
) -> None:
    _register(models)
    aliases.set_alias("iris", "staging", 1, actor="ann")
    aliases.set_alias("iris", "staging", 1, actor="ann")
    assert len(audit.log()) == 1


def test_missing_alias_names_existing_ones(models: ModelStore, aliases: AliasStore) -> None:
    _register(models)
    aliases.set_alias("iris", "staging", 1, actor="ann")
    with pytest.raises(AliasNotFoundError, match=r"no alias 'production' \(aliases: staging\)"):
        aliases.get_alias("iris", "production")
    assert aliases.delete_alias("iris", "staging", actor="ann") == 1
    with pytest.raises(AliasNotFoundError):
        aliases.get_alias("iris", "staging")


def test_archived_version_cannot_take_alias(
    models: ModelStore, aliases: AliasStore, audit: AuditStore
) -> None:
    _register(models)
    _register(models)
    models.set_version_archived("iris", 1, True, actor="ann", reason="stale")
    with pytest.raises(ConflictError, match="archived"):
        aliases.set_alias("iris", "production", 1, actor="ann")
    assert models.latest_version("iris").version == 2
    actions = [e.action for e in audit.log()]
    assert actions == ["archive_version"]


def test_version_holding_alias_cannot_be_archived(models: ModelStore, aliases: AliasStore) -> None:
    _register(models)
    aliases.set_alias("iris", "production", 1, actor="ann")
    with pytest.raises(ConflictError, match="holds alias production"):
        models.set_version_archived("iris", 1, True, actor="ann", reason=None)
    assert models.get_version("iris", 1).status == "ready"
