"""Data versions: tables snapshotted as immutable, numbered, deduplicated dataset versions.

    chunking     row-order-stable, content-defined cuts of a table into Parquet chunks
    sources      what a snapshot reads: files, folders, globs, SQL, DataFrames, Delta Lake
    reading      a snapshot's reading, started before the stores are open
    snapshots    DataVersions: snapshot, read, get, show, prune
    diff         rows added / removed / changed by key between two versions

>>> versions = DataVersions(datasets, artifacts, actor="ann")     # doctest: +SKIP
>>> versions.snapshot("data/visits.parquet", name="visits").ref    # doctest: +SKIP
'visits:1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.data.diff import DatasetDiff, diff_versions
    from shipyard.data.refs import parse_data_ref
    from shipyard.data.snapshots import DataVersions, PruneResult

# Loaded on first use, so ``shipyard.data.reading`` loads without the store's modules.
_EXPORTS = {
    "DataVersions": "shipyard.data.snapshots",
    "PruneResult": "shipyard.data.snapshots",
    "DatasetDiff": "shipyard.data.diff",
    "diff_versions": "shipyard.data.diff",
    "parse_data_ref": "shipyard.data.refs",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


__all__ = ["DataVersions", "DatasetDiff", "PruneResult", "diff_versions", "parse_data_ref"]
