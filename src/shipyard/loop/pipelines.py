"""Training pipelines: a ``module:function`` entry point, the data it is given, what it returns.

A pipeline is any function ``train(data, params) -> (model, metrics)``:
``data`` is the exact DataFrame the loop read and fingerprinted (target
column included), ``params`` the config's parameters. It returns a fitted
model and its training metrics (a :class:`TrainResult` works too). The
loop does everything around it: reading and pinning the data, the holdout
split, tracking, registering.

>>> train = resolve_entry_point("shipyard.loop.examples:train_iris")
>>> train.__name__
'train_iris'
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from shipyard.errors import ConfigError, InvalidInputError, reason
from shipyard.loop.config import DataSource
from shipyard.tables import SqlSource, locate, read_table
from shipyard.tables.locations import ACCEPTED, is_table_file
from shipyard.tracking.fingerprint import fingerprint

Pipeline = Callable[[pd.DataFrame, dict[str, Any]], Any]


@dataclass(frozen=True)
class TrainResult:
    """What a pipeline hands back: the fitted model and its training metrics."""

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSnapshot:
    """The data one retrain used: the frame, and its lineage (fingerprint, source, time range)."""

    frame: pd.DataFrame
    lineage: dict[str, Any]

    @property
    def n_rows(self) -> int:
        return len(self.frame)


def resolve_entry_point(spec: str, code_path: str | Path | None = None) -> Pipeline:
    """Import ``package.module:function`` and return the function.

    ``code_path`` (the loop config's folder, unless it says otherwise) is put at
    the front of the import path first, as Python does with a script's own
    folder, and stays there: the pipeline may import its neighbours later.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"Pipeline entry point {spec!r} is not 'package.module:function'.")
    where = ""
    if code_path is not None:
        folder = str(Path(code_path).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
        where = f" (looked in {folder}, then the installed packages)"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"Cannot import module {module_name!r} of pipeline entry point {spec!r}{where}: "
            f"{reason(exc)}. "
            "Put the module beside the loop config, set `pipeline.code_path` to its folder, "
            "or install its package."
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(
            f"Module {module_name!r} has no function {attr!r} (entry point {spec!r})."
        )
    return fn  # type: ignore[no-any-return]


def run_pipeline(
    spec: str,
    data: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    code_path: str | Path | None = None,
) -> TrainResult:
    """Call the pipeline (imported from ``code_path`` first) and check what it returned."""
    out = resolve_entry_point(spec, code_path)(data, dict(params))
    if isinstance(out, TrainResult):
        result = out
    elif isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        result = TrainResult(out[0], dict(out[1]))
    else:
        raise InvalidInputError(
            f"Pipeline {spec} returned {type(out).__name__}; expected (model, metrics) "
            "or a TrainResult."
        )
    if not hasattr(result.model, "predict"):
        raise InvalidInputError(
            f"Pipeline {spec} returned a {type(result.model).__name__}, which has no "
            "predict method; return the fitted model."
        )
    metrics = {}
    for key, value in result.metrics.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"Pipeline {spec} returned metric {key!r} = {value!r}, which is not a number."
            ) from exc
    return TrainResult(result.model, metrics)


# -- data sources -------------------------------------------------------------------------


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_table_file(p))
        if not files:
            raise InvalidInputError(f"Data folder {path} holds no table files. {ACCEPTED}")
        return files
    if not path.exists():
        raise InvalidInputError(f"Data source {path} does not exist.")
    return [path]


def read_source(source: DataSource) -> pd.DataFrame:
    """Read a file, every data file of a folder (concatenated, in name order), or a table."""
    if source.table is not None:
        return read_table(locate(str(source.url), table=source.table))
    frames = [read_table(f) for f in _files(Path(str(source.path)))]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def count_rows(source: DataSource) -> int:
    """Rows in a source without loading it where the format allows (Parquet footers, COUNT)."""
    if source.table is not None:
        return int(SqlSource(str(source.url), table=source.table).total_rows() or 0)
    total = 0
    for file in _files(Path(str(source.path))):
        if file.suffix in (".parquet", ".pq"):
            total += pq.ParquetFile(file).metadata.num_rows
        else:
            total += len(read_table(file))
    return total


def snapshot(source: DataSource) -> DataSnapshot:
    """Read ``source`` and pin it: content fingerprint, where it came from, its time range."""
    frame = read_source(source)
    if frame.empty:
        raise InvalidInputError(f"Data source {source.describe()} has no rows.")
    lineage = fingerprint(frame, source=source.describe()).to_dict()
    if source.time_column is not None:
        if source.time_column not in frame.columns:
            raise InvalidInputError(
                f"Data source {source.describe()} has no time column {source.time_column!r}; "
                f"its columns are {list(frame.columns)[:20]}."
            )
        times = pd.to_datetime(frame[source.time_column], utc=True, errors="coerce")
        if times.isna().all():
            raise InvalidInputError(
                f"Time column {source.time_column!r} of {source.describe()} holds no timestamps."
            )
        lineage["time_range"] = {
            "column": source.time_column,
            "start": times.min().isoformat(),
            "end": times.max().isoformat(),
        }
    return DataSnapshot(frame, lineage)


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """Drop NaN/inf metrics (a registry record wants real numbers)."""
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


__all__ = [
    "DataSnapshot",
    "Pipeline",
    "TrainResult",
    "count_rows",
    "read_source",
    "resolve_entry_point",
    "run_pipeline",
    "snapshot",
]
