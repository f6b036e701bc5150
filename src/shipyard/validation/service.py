"""Validation service functions: what the CLI, the Python API and the registry call.

They resolve references, read files, run the pure checks of
:mod:`~shipyard.validation.contract_checks` and :mod:`~shipyard.validation.gates`,
and store the outcome with the version through
:class:`~shipyard.store.validation_store.ValidationStore`.

>>> client = Shipyard(Settings(home="/tmp/demo"))                        # doctest: +SKIP
>>> version, result = validate_data(client, "iris:4", Path("batch.csv"))  # doctest: +SKIP
>>> result.passed                                                         # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.store import records
from shipyard.store.metadata import MetadataStore
from shipyard.store.validation_store import ContractRecord, GateRecord, ValidationStore
from shipyard.tables import read_table, storage_options
from shipyard.validation.approvals import current_status
from shipyard.validation.contract_checks import ContractResult, check_contract
from shipyard.validation.contracts import DataContract, infer_contract
from shipyard.validation.gate_results import GateReport
from shipyard.validation.gates import GateSpec, evaluate_gates

if TYPE_CHECKING:
    from shipyard._client import Shipyard


def read_data(client: Shipyard, source: str | Path) -> pd.DataFrame:
    """The table at ``source``: a file (CSV, Parquet, JSON lines; local or s3://) or
    ``URL#TABLE`` (see :mod:`shipyard.tables`), read with the client's S3 settings."""
    return read_table(source, storage_options=storage_options(client.settings))


# -- contracts ------------------------------------------------------------------------------


def store_contract_for_version(
    metadata: MetadataStore,
    version: records.ModelVersion,
    training_data: pd.DataFrame,
    *,
    actor: str,
) -> ContractRecord:
    """Infer the data contract from ``training_data`` and store it with ``version``.

    The hook the registry calls right after a version is logged. Pass the
    training inputs (all of them, or a large sample: the ranges and quantiles
    are only as good as the rows they saw).
    """
    contract = infer_contract(training_data)
    return ValidationStore(metadata).save_contract(
        version.model, version.version, contract.to_dict(), source="inferred", actor=actor
    )


def get_contract(metadata: MetadataStore, version: records.ModelVersion) -> DataContract:
    """The contract in force for ``version`` (ContractNotFoundError if it has none)."""
    record = ValidationStore(metadata).get_contract(version.model, version.version)
    return DataContract.from_dict(record.contract)


def import_contract(
    metadata: MetadataStore,
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
    return ValidationStore(metadata).save_contract(
        version.model,
        version.version,
        contract.to_dict(),
        source="imported",
        actor=actor,
        reason=reason,
    )


def validate_data(
    client: Shipyard, ref: str, path: Path | str, *, strict: bool = False
) -> tuple[records.ModelVersion, ContractResult]:
    """Check the table at ``path`` against the contract of the version ``ref`` names.

    ``strict`` fails the result on warnings (soft expectations) too.
    """
    version = client.registry.resolve(ref)
    contract = get_contract(client.metadata, version)
    return version, check_contract(contract, read_data(client, path), strict=strict)


# -- gates ----------------------------------------------------------------------------------


def validate_model(
    client: Shipyard,
    candidate_ref: str,
    *,
    data: pd.DataFrame,
    target: str,
    spec: GateSpec,
    against: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[GateRecord, GateReport]:
    """Gate ``candidate_ref`` on ``data`` and store the result with the candidate version.

    ``against`` defaults to the model's ``production`` alias when it has one and
    it is not the candidate itself.
    """
    registry = client.registry
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
        package_bytes = package_size(client, candidate_version)
    report = evaluate_gates(
        candidate,
        data,
        target,
        spec,
        champion=champion,
        package_bytes=package_bytes,
        clock=clock,
    )
    stored = ValidationStore(client.metadata).save_gate_result(
        candidate_version.model,
        candidate_version.version,
        passed=report.passed,
        report=report.to_dict(),
        against=None if champion_version is None else champion_version.ref,
        actor=client.settings.actor,
    )
    return stored, report


def package_size(client: Shipyard, version: records.ModelVersion) -> int:
    """Bytes of the version's package: every file plus the manifest."""
    registry = client.registry
    manifest = registry.manifest(version)
    manifest_path = registry.package_dir(version) / "shipyard.json"
    return sum(f.size for f in manifest.files.values()) + manifest_path.stat().st_size


# -- for `models show` ----------------------------------------------------------------------


def describe_validation(metadata: MetadataStore, version: records.ModelVersion) -> list[str]:
    """Lines for ``shipyard models show``: contract, latest gates, approvals.

    Example:
        >>> describe_validation(client.metadata, version)  # doctest: +SKIP
        ['contract: revision 1 (inferred), 4 columns', 'gates: passed ...', 'approvals: 1/1 ...']
    """
    store = ValidationStore(metadata)
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
    "describe_validation",
    "get_contract",
    "import_contract",
    "package_size",
    "read_data",
    "store_contract_for_version",
    "validate_data",
    "validate_model",
]
