"""Validation service functions: what the CLI, the Python API and the registry call.

They resolve references, read files, run the pure checks of
:mod:`~shipyard.validation.contract_checks` and :mod:`~shipyard.validation.gates`,
and store the outcome with the version through
:class:`~shipyard.store.validation_store.ValidationStore`.

>>> client = Shipyard(Settings(home="/tmp/demo"))                        # doctest: +SKIP
>>> version, result = validate_data(                                      # doctest: +SKIP
...     client.registry, client.validation, "iris:4", Path("batch.csv"))
>>> result.passed                                                         # doctest: +SKIP
True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.registry.hooks import LoggedVersion
from shipyard.registry.service import Registry
from shipyard.registry.signature import Signature
from shipyard.store import records
from shipyard.store.validation_records import ContractRecord, GateRecord
from shipyard.store.validation_store import ValidationStore
from shipyard.tables import read_table, storage_options
from shipyard.validation.approvals import current_status
from shipyard.validation.contract_checks import ContractResult, check_contract
from shipyard.validation.contracts import DataContract, infer_contract
from shipyard.validation.gate_results import GateReport
from shipyard.validation.gates import GateSpec, evaluate_gates

if TYPE_CHECKING:
    from shipyard.config import Settings


def read_data(settings: Settings, source: str | Path) -> pd.DataFrame:
    """The table at ``source``: a file (CSV, Parquet, JSON lines; local or s3://) or
    ``URL#TABLE`` (see :mod:`shipyard.tables`), read with the settings' S3 options."""
    return read_table(source, storage_options=storage_options(settings))


# -- contracts ------------------------------------------------------------------------------


def store_contract_for_version(
    store: ValidationStore,
    version: records.ModelVersion,
    training_data: pd.DataFrame,
    *,
    actor: str,
    signature: Signature | None = None,
) -> ContractRecord:
    """Infer the data contract from ``training_data`` and store it with ``version``.

    Pass the training inputs (all of them, or a large sample: the ranges and
    quantiles are only as good as the rows they saw). ``signature``, the
    version's, widens nullability and categories to what the model handles.
    """
    contract = infer_contract(training_data, signature=signature)
    return store.save_contract(
        version.model, version.version, contract.to_dict(), source="inferred", actor=actor
    )


class ContractInference:
    """Registry hook (:class:`~shipyard.registry.hooks.VersionLoggedHook`): every version
    logged with a training sample gets the data contract inferred from it."""

    def __init__(self, store: ValidationStore, *, actor: str) -> None:
        self.store = store
        self.actor = actor

    def __call__(self, logged: LoggedVersion) -> None:
        store_contract_for_version(
            self.store,
            logged.version,
            logged.sample,
            actor=self.actor,
            signature=logged.signature,
        )


def get_contract(store: ValidationStore, version: records.ModelVersion) -> DataContract:
    """The contract in force for ``version`` (ContractNotFoundError if it has none)."""
    record = store.get_contract(version.model, version.version)
    return DataContract.from_dict(record.contract)


def import_contract(
    store: ValidationStore,
    version: records.ModelVersion,
    path: Path,
    *,
    actor: str,
    reason: str | None,
) -> ContractRecord:
    """Replace ``version``'s contract with the (edited) JSON contract in ``path``; audit-logged."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"Cannot read contract file {path}: {exc}") from exc
    contract = DataContract.from_json(text, source=str(path))
    return store.save_contract(
        version.model,
        version.version,
        contract.to_dict(),
        source="imported",
        actor=actor,
        reason=reason,
    )


def validate_data(
    registry: Registry,
    store: ValidationStore,
    ref: str,
    path: Path | str,
    *,
    strict: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[records.ModelVersion, ContractResult]:
    """Check the table at ``path`` against the contract of the version ``ref`` names.

    ``strict`` fails the result on warnings (soft expectations) too; ``options``
    are the storage options of an ``s3://`` table.
    """
    version = registry.resolve(ref)
    contract = get_contract(store, version)
    return version, check_contract(
        contract, read_table(path, storage_options=options), strict=strict
    )


# -- gates ----------------------------------------------------------------------------------


def validate_model(
    registry: Registry,
    store: ValidationStore,
    candidate_ref: str,
    *,
    data: pd.DataFrame,
    target: str,
    spec: GateSpec,
    against: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[GateRecord, GateReport]:
    """Gate ``candidate_ref`` on ``data`` and store the result with the candidate version.

    ``against`` defaults to the model's ``production`` alias when it has one and
    it is not the candidate itself. The result is stored as the registry's actor.
    """
    candidate_version = registry.resolve(candidate_ref)
    champion_version = None
    if against is not None:
        champion_version = registry.resolve(against)
    else:
        try:
            default = registry.resolve(f"{candidate_version.model}@production")
        except NotFoundError:
            default = None
        if default is not None and default.version != candidate_version.version:
            champion_version = default
    candidate = registry.load(candidate_version.ref)
    champion = None if champion_version is None else registry.load(champion_version.ref)
    package_bytes = None
    if spec.size_budget_mb is not None:
        package_bytes = package_size(registry, candidate_version)
    report = evaluate_gates(
        candidate,
        data,
        target,
        spec,
        champion=champion,
        package_bytes=package_bytes,
        clock=clock,
    )
    stored = store.save_gate_result(
        candidate_version.model,
        candidate_version.version,
        passed=report.passed,
        report=report.to_dict(),
        against=None if champion_version is None else champion_version.ref,
        actor=registry.actor,
    )
    return stored, report


def package_size(registry: Registry, version: records.ModelVersion) -> int:
    """Bytes of the version's package: every file plus the manifest."""
    manifest = registry.manifest(version)
    manifest_path = registry.package_dir(version) / "shipyard.json"
    return sum(f.size for f in manifest.files.values()) + manifest_path.stat().st_size


# -- for `models show` ----------------------------------------------------------------------


def describe_validation(store: ValidationStore, version: records.ModelVersion) -> list[str]:
    """Lines for ``shipyard models show``: contract, latest gates, approvals.

    Example:
        >>> describe_validation(client.validation, version)  # doctest: +SKIP
        ['contract: revision 1 (inferred), 4 columns', 'gates: passed ...', 'approvals: 1/1 ...']
    """
    facts = store.promotion_facts(version.model, version.version)
    lines = []
    if facts.extra.get("contract_revisions"):
        contract = store.get_contract(version.model, version.version)
        n_columns = len(contract.contract.get("columns", []))
        lines.append(
            f"contract: revision {contract.revision} ({contract.source} by "
            f"{contract.created_by}), {n_columns} columns"
        )
    else:
        lines.append("contract: none")
    gate = facts.latest_gate
    if gate is None:
        lines.append("gates: never run")
    else:
        summary = gate.report.get("summary", "passed" if gate.passed else "failed")
        lines.append(
            f"gates: {'PASSED' if gate.passed else 'FAILED'} {gate.created_at:%Y-%m-%d %H:%M} "
            f"by {gate.created_by}: {summary}"
        )
    status = current_status(store, version.model, version.version)
    lines.append(f"approvals: {status.describe()}")
    for d in facts.decisions:
        comment = f": {d.comment}" if d.comment else ""
        lines.append(f"  {d.at:%Y-%m-%d %H:%M} {d.decision} by {d.actor}{comment}")
    return lines


__all__ = [
    "ContractInference",
    "describe_validation",
    "get_contract",
    "import_contract",
    "package_size",
    "read_data",
    "store_contract_for_version",
    "validate_data",
    "validate_model",
]
