"""Stages plug into the registry through hooks; the registry and the store import no stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.errors import ConflictError
from shipyard.registry.hooks import LoggedVersion
from shipyard.registry.service import Registry, RegistryStores
from shipyard.store.validation_records import ContractNotFoundError

STAGES = ("validation", "drift", "monitoring", "serving", "batch", "rollout", "loop")
SAMPLE = pd.DataFrame({"x": [1.0, 2.0, 3.0], "color": pd.Categorical(["red", "blue", "red"])})


def _registry(client: Shipyard, **hooks: object) -> Registry:
    stores = RegistryStores(client.models, client.aliases, client.audit, client.runs)
    return Registry(
        stores,
        client.artifacts,
        cache_dir=client.settings.home / "cache",
        actor="ann",
        **hooks,  # type: ignore[arg-type]
    )


def test_after_log_hooks_run_in_order_with_the_typed_sample(settings: Settings) -> None:
    client = Shipyard(settings)
    seen: list[tuple[str, str, str]] = []

    def first(logged: LoggedVersion) -> None:
        seen.append(("first", logged.version.ref, str(logged.sample["color"].dtype)))

    def second(logged: LoggedVersion) -> None:
        seen.append(("second", logged.version.ref, ",".join(logged.signature.names)))

    registry = _registry(client, after_log=[first, second])
    registry.log_model("numpy:asarray", "m", sample=SAMPLE)
    assert seen == [("first", "m:1", "category"), ("second", "m:1", "x,color")]
    client.close()


def test_a_bare_registry_stores_no_stage_output(settings: Settings) -> None:
    """Without hooks nothing of the stages happens: they are plugged in, not imported."""
    client = Shipyard(settings)
    version = _registry(client).log_model("numpy:asarray", "m", sample=SAMPLE)
    with pytest.raises(ContractNotFoundError):
        client.validation.get_contract("m", version.version)
    assert "drift_profile" not in version.tags
    # The client's registry has both stages wired.
    wired = client.registry.log_model("numpy:asarray", "m", sample=SAMPLE)
    assert client.validation.get_contract("m", wired.version).source == "inferred"
    assert client.references.load(wired).sample.shape[0] == 3
    client.close()


def test_the_promotion_guard_decides_and_force_is_audited(settings: Settings) -> None:
    client = Shipyard(settings)
    calls: list[tuple[str, int, bool]] = []

    def guard(name: str, alias: str, version: int, *, force: bool, reason: str | None) -> list[str]:
        calls.append((alias, version, force))
        if alias == "production" and not force:
            raise ConflictError("not yet")
        return ["not yet"] if alias == "production" else []

    registry = _registry(client, promotion_guard=guard)
    registry.log_model("numpy:asarray", "m", sample=SAMPLE)
    registry.set_alias("m", "staging", 1)
    with pytest.raises(ConflictError, match="not yet"):
        registry.set_alias("m", "production", 1)
    registry.set_alias("m", "production", 1, force=True, reason="hotfix")
    assert calls == [("staging", 1, False), ("production", 1, False), ("production", 1, True)]
    [forced] = [e for e in client.audit.log(model="m") if e.action == "force_alias"]
    assert forced.details == {"overridden": ["not yet"]} and forced.reason == "hotfix"
    client.close()


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at module level, in functions or under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["registry", "store"])
def test_registry_and_store_import_no_stage(package: str) -> None:
    root = Path(shipyard.__file__).parent
    wrong = [
        f"{path.relative_to(root)} imports {module}"
        for path in sorted((root / package).rglob("*.py"))
        for module in _imports(path)
        if module.split(".")[:2] in (["shipyard", stage] for stage in STAGES)
        or module == "shipyard._client"
    ]
    assert wrong == []
