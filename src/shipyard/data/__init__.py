"""Data versions: tables snapshotted as immutable, numbered, deduplicated dataset versions.

    chunking     row-order-stable, content-defined cuts of a table into Parquet chunks
    sources      what a snapshot reads: files, folders, globs, SQL, DataFrames, Delta Lake
    snapshots    DataVersions: snapshot, read, get, show, prune
    diff         rows added / removed / changed by key between two versions

>>> versions = DataVersions(datasets, artifacts, actor="ann")     # doctest: +SKIP
>>> versions.snapshot("data/visits.parquet", name="visits").ref    # doctest: +SKIP
'visits:1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.lazy import lazy_exports

# public name -> module that defines it, imported on first use (PEP 562): a snapshot
# of a numeric Parquet file loads neither ``diff`` nor pandas.
_EXPORTS = {
    "DataVersions": "shipyard.data.snapshots",
    "DatasetDiff": "shipyard.data.diff",
    "PruneResult": "shipyard.data.snapshots",
    "diff_versions": "shipyard.data.diff",
    "parse_data_ref": "shipyard.data.refs",
}

__all__ = ["DataVersions", "DatasetDiff", "PruneResult", "diff_versions", "parse_data_ref"]


__getattr__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from shipyard.data.diff import DatasetDiff, diff_versions
    from shipyard.data.refs import parse_data_ref
    from shipyard.data.snapshots import DataVersions, PruneResult
