"""What a version knows about its data, carried with its package: contract and drift profile.

A version's data contract and drift reference profile live in the registry,
beside the immutable package. ``shipyard package`` copies them into the package
folder's ``reference/`` sub-folder so that a server started on the package in a
fresh home (a container) checks the same contract and monitors drift against
the same reference as the registry it came from::

    <package>/reference/
      index.json            the manifest's SHA-256 these belong to, each file's SHA-256
      contract.json         the data contract (as `validate contract --export json`)
      drift_profile.parquet the drift reference profile

``reference/`` is not part of the package's own checksums (the manifest is
written once, when the version is logged, and the contract can be edited
later); ``index.json`` binds it to that manifest instead, and every file is
checked against it before it is read.

Example:
    >>> write_version_reference(pkg, manifest_sha256=sha, contract=c, profile=b)  # doctest: +SKIP
    >>> read_version_reference(pkg, manifest_sha256=sha)                         # doctest: +SKIP
    ({'columns': [...]}, b'PAR1...')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.errors import IntegrityError
from shipyard.store.artifacts import sha256_file

REFERENCE_DIR = "reference"
INDEX_NAME = "index.json"
CONTRACT_NAME = "contract.json"
PROFILE_NAME = "drift_profile.parquet"


def write_version_reference(
    package_dir: Path,
    *,
    manifest_sha256: str,
    contract: dict[str, Any] | None,
    profile: bytes | None,
) -> Path | None:
    """Write ``reference/`` into ``package_dir``; None (nothing written) when there is neither."""
    if contract is None and profile is None:
        return None
    folder = Path(package_dir) / REFERENCE_DIR
    folder.mkdir()
    files: dict[str, str] = {}
    if contract is not None:
        path = folder / CONTRACT_NAME
        path.write_text(json.dumps(contract, indent=2, sort_keys=True), encoding="utf-8")
        files[CONTRACT_NAME] = sha256_file(path)
    if profile is not None:
        path = folder / PROFILE_NAME
        path.write_bytes(profile)
        files[PROFILE_NAME] = sha256_file(path)
    index = {"manifest_sha256": manifest_sha256, "files": files}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2), encoding="utf-8")
    return folder


def read_version_reference(
    package_dir: Path, *, manifest_sha256: str
) -> tuple[dict[str, Any] | None, bytes | None]:
    """The contract (as a dict) and drift profile (bytes) in ``package_dir``, each or None.

    Raises :class:`~shipyard.errors.IntegrityError` when ``reference/`` belongs to
    another manifest or a file does not match its checksum.
    """
    folder = Path(package_dir) / REFERENCE_DIR
    index_path = folder / INDEX_NAME
    if not index_path.is_file():
        return None, None
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        files = dict(index["files"])
        owner = str(index["manifest_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{index_path} is not a readable reference index: {exc}") from exc
    if owner != manifest_sha256:
        raise IntegrityError(
            f"{folder} belongs to another package (manifest sha256 {owner[:12]}…, this one "
            f"is {manifest_sha256[:12]}…). Write the package again with `shipyard package`."
        )
    for name, digest in files.items():
        path = folder / str(name)
        if name not in (CONTRACT_NAME, PROFILE_NAME) or not path.is_file():
            raise IntegrityError(f"{index_path} lists {name!r}, which {folder} does not hold.")
        if sha256_file(path) != digest:
            raise IntegrityError(
                f"{path} does not match its checksum in {index_path}: it was changed after "
                "the package was written. Write the package again with `shipyard package`."
            )
    contract = None
    if CONTRACT_NAME in files:
        contract = json.loads((folder / CONTRACT_NAME).read_text(encoding="utf-8"))
    profile = (folder / PROFILE_NAME).read_bytes() if PROFILE_NAME in files else None
    return contract, profile


__all__ = [
    "REFERENCE_DIR",
    "read_version_reference",
    "write_version_reference",
]
