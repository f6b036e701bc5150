"""The ONNX graph of a version: its own model file, or its verified compiled graph.

One place answers "which graph would run this version": an ``onnx`` version is a
graph already; any other version has one when ``shipyard optimize`` (or its
registration) compiled and verified it (:mod:`shipyard.registry.optimize`).
``compile_if_missing`` compiles it now, recording the outcome in the version's tags.

Example:
    >>> data = version_graph(registry, registry.resolve("iris:3"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.errors import InvalidInputError
from shipyard.registry.flavors.onnx import MODEL_FILE
from shipyard.registry.optimize import TAG_DIGEST, TAG_STATUS, VERIFIED, optimize_version
from shipyard.registry.package import MODEL_DIR
from shipyard.store import records

if TYPE_CHECKING:
    from shipyard.registry.service import Registry


class NotCompilableError(InvalidInputError):
    """The version has no ONNX graph that answers like it; the message says why."""


def version_graph(
    registry: Registry,
    record: records.ModelVersion,
    *,
    compile_if_missing: bool = True,
    trusted_pickle: bool = False,
) -> bytes:
    """The graph bytes; NotCompilableError with the converter's reason if there is none."""
    if record.flavor == "onnx":
        manifest = registry.manifest(record)
        file = manifest.flavor_options.get("file", MODEL_FILE)
        return (registry.verified_package_dir(record) / MODEL_DIR / file).read_bytes()
    if record.tags.get(TAG_STATUS) != VERIFIED and compile_if_missing:
        outcome = optimize_version(registry, record.ref, trusted_pickle=trusted_pickle)
        if not outcome.verified:
            raise NotCompilableError(
                f"{record.ref} cannot be compiled to an ONNX graph that answers like it: "
                f"{outcome.detail.removeprefix('conversion failed: ')}"
            )
        record = registry.resolve(record.ref)
    if record.tags.get(TAG_STATUS) != VERIFIED:
        raise NotCompilableError(f"{record.ref} has no verified ONNX graph")
    return registry.artifacts.get_bytes(record.tags[TAG_DIGEST])


__all__ = ["NotCompilableError", "version_graph"]
