"""A version's contract and drift reference, carried in and out of its package folder.

``shipyard package`` writes them beside the package (see
:mod:`shipyard.registry.version_reference` for the layout and checksums), and a
server started on the folder in a fresh home registers them with the version,
so ``--contract-check``, ``validate data`` and drift monitoring work there as at
the source; the version is compiled to ONNX there as ``log_model`` does at the
source, so both answer with the same runtime. Both directions live here, above
the registry: the registry keeps packages, the validation store keeps contracts
and the drift references are monitoring's, and only this step needs all three.

Example:
    >>> stores = (client.validation, client.references)
    >>> write_package_references(*stores, version, out / "model")       # doctest: +SKIP
    >>> register_packaged(client.registry, *stores, folder)             # doctest: +SKIP
    (ModelVersion(model='wine', version=1, ...), False)
"""

from __future__ import annotations

from pathlib import Path

from shipyard.drift.profile import ReferenceProfile
from shipyard.monitoring.references import ReferenceProfiles
from shipyard.registry.optimize import compile_onnx_at_registration
from shipyard.registry.package import MANIFEST_NAME
from shipyard.registry.service import Registry
from shipyard.registry.version_reference import read_version_reference, write_version_reference
from shipyard.store import records
from shipyard.store.artifacts import sha256_file
from shipyard.store.validation_records import ContractNotFoundError
from shipyard.store.validation_store import ValidationStore
from shipyard.validation.contracts import DataContract


def write_package_references(
    validation: ValidationStore,
    references: ReferenceProfiles,
    version: records.ModelVersion,
    package_dir: Path,
) -> Path | None:
    """Copy ``version``'s contract and drift profile into ``package_dir``/reference.

    Returns the folder written, or None when the version has neither.
    """
    try:
        contract = validation.get_contract(version.model, version.version).contract
    except ContractNotFoundError:
        contract = None
    profile = references.load(version).to_bytes() if references.has(version) else None
    return write_version_reference(
        package_dir, manifest_sha256=version.manifest_digest, contract=contract, profile=profile
    )


def register_packaged(
    registry: Registry,
    validation: ValidationStore,
    references: ReferenceProfiles,
    folder: Path,
    *,
    trusted_pickle: bool = False,
    actor: str = "shipyard",
) -> tuple[records.ModelVersion, bool]:
    """Register a package folder with the contract and drift profile it carries.

    Both are checked (checksums, then parsed) before anything is registered, so a
    folder whose ``reference/`` was edited or is unreadable registers nothing.
    Returns the version and whether it was registered before (then it already
    has what the folder carries).
    """
    folder = Path(folder)
    contract, profile = read_version_reference(
        folder, manifest_sha256=sha256_file(folder / MANIFEST_NAME)
    )
    parsed_contract = None if contract is None else DataContract.from_dict(contract).to_dict()
    parsed_profile = None if profile is None else ReferenceProfile.from_bytes(profile)
    version, reused = registry.register_package_folder(folder, trusted_pickle=trusted_pickle)
    if reused:
        return version, True
    if parsed_contract is not None:
        validation.save_contract(
            version.model, version.version, parsed_contract, source="packaged", actor=actor
        )
    if parsed_profile is not None:
        references.attach(version, parsed_profile)
    # Compiled as at the source (the graph is not part of the package), so the
    # container answers with the same runtime as the registry it came from.
    compile_onnx_at_registration(
        registry,
        version,
        None if parsed_profile is None else parsed_profile.sample,
        requested=None,
        trusted_pickle=trusted_pickle,
    )
    return registry.models.get_version(version.model, version.version), False


__all__ = ["register_packaged", "write_package_references"]
