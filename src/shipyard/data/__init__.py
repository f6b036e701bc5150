"""Data versions: tables snapshotted as immutable, numbered, deduplicated dataset versions.

    chunking     row-order-stable, content-defined cuts of a table into Parquet chunks
    sources      what a snapshot reads: files, folders, globs, SQL, DataFrames, Delta Lake
    snapshots    DataVersions: snapshot, read, get, show, prune
    diff         rows added / removed / changed by key between two versions

>>> versions = DataVersions(datasets, artifacts, actor="ann")     # doctest: +SKIP
>>> versions.snapshot("data/visits.parquet", name="visits").ref    # doctest: +SKIP
'visits:1'
"""

from shipyard.data.diff import DatasetDiff, diff_versions
from shipyard.data.refs import parse_data_ref
from shipyard.data.snapshots import DataVersions, PruneResult

__all__ = ["DataVersions", "DatasetDiff", "PruneResult", "diff_versions", "parse_data_ref"]
