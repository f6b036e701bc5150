"""Import experiment history from MLflow: a file store (``mlruns/``) or a SQLite tracking database.

    shipyard runs import-mlflow ./mlruns
    shipyard runs import-mlflow sqlite:///mlflow.db --experiment churn

Copied per run: its id (MLflow's run ids are 32 hex digits, like Shipyard's),
name, status, start and end times, user, params, tags (``mlflow.*`` ones
included), every metric point with its step and timestamp, the parent run
(``mlflow.parentRunId``) and the files under its artifact folder, stored
content-addressed like any run artifact. Runs MLflow marked deleted are left
out. Importing again skips the runs already there, so an interrupted import
can simply be run again.

MLflow experiment names that are not valid Shipyard names (``/Users/ann/exp
1``) get their other characters replaced by ``-``; the report says so.
Non-finite metric values (MLflow keeps NaN) cannot be stored and are counted
in the report, not copied.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from shipyard.clock import utc_now
from shipyard.errors import InvalidInputError
from shipyard.names import NAME
from shipyard.store.run_store import Point, RunStore
from shipyard.tracking.artifacts import RunArtifacts

__all__ = ["ImportReport", "import_mlflow", "open_source"]

# MLflow's RunStatus numbers, as the file store writes them.
_FILE_STATUS = {1: "RUNNING", 2: "RUNNING", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_STATUSES = {"RUNNING", "FINISHED", "FAILED", "KILLED"}
_PARENT_TAG = "mlflow.parentRunId"
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_NAME_RE = re.compile(NAME)


@dataclass
class MlflowRun:
    run_id: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    user: str
    deleted: bool
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[tuple[str, float, int, int]]  # key, value, step, timestamp (ms)
    artifact_dir: Path | None
    artifact_uri: str

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(_PARENT_TAG)


@dataclass
class MlflowExperiment:
    name: str
    deleted: bool
    runs: list[MlflowRun]


@dataclass
class ImportReport:
    source: str
    experiments: dict[str, str] = field(default_factory=dict)  # MLflow name -> Shipyard name
    runs: int = 0
    skipped_existing: int = 0
    skipped_deleted: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    artifacts: int = 0
    warnings: list[str] = field(default_factory=list)


def open_source(location: str) -> Iterator[MlflowExperiment]:
    """The experiments of an MLflow file store folder or SQLite database (path or URI)."""
    if location.startswith("sqlite:///"):
        return _sqlite_experiments(Path(unquote(location[len("sqlite:///") :])))
    if location.startswith("file:"):
        location = unquote(urlsplit(location).path)
    elif "://" in location:
        raise InvalidInputError(
            f"Cannot import from {location!r}: expected an MLflow file store folder "
            "(e.g. ./mlruns), a file:// URI or a sqlite:///path/mlflow.db tracking URI."
        )
    path = Path(location)
    if path.is_dir():
        return _file_experiments(path)
    if path.is_file():
        return _sqlite_experiments(path)
    raise InvalidInputError(
        f"Cannot import from {location}: no such folder or file. Give the MLflow "
        "file store folder (mlruns) or its SQLite tracking database."
    )


def import_mlflow(
    runs: RunStore,
    artifacts: Any,
    location: str,
    *,
    experiment: str | None = None,
    actor: str = "unknown",
) -> ImportReport:
    """Copy MLflow's history into ``runs`` (and run files into ``artifacts``); see module doc."""
    report = ImportReport(source=location)
    seen_any = False
    names: list[str] = []
    for exp in open_source(location):
        names.append(exp.name)
        if experiment is not None and exp.name != experiment:
            continue
        seen_any = True
        if exp.deleted:
            report.skipped_deleted += len(exp.runs)
            continue
        target = _shipyard_name(exp.name)
        report.experiments[exp.name] = target
        runs.get_or_create_experiment(target)  # an experiment without runs is copied too
        if target != exp.name:
            report.warnings.append(f"MLflow experiment {exp.name!r} imported as {target!r}.")
        _import_runs(runs, artifacts, target, exp.runs, report, actor)
    if experiment is not None and not seen_any:
        known = ", ".join(repr(n) for n in names) or "none"
        raise InvalidInputError(
            f"No MLflow experiment named {experiment!r} in {location}. It has: {known}."
        )
    return report


def _import_runs(
    runs: RunStore,
    artifacts: Any,
    experiment: str,
    found: list[MlflowRun],
    report: ImportReport,
    actor: str,
) -> None:
    by_id = {r.run_id: r for r in found}
    done: set[str] = set()

    def visit(run: MlflowRun, path: tuple[str, ...]) -> None:
        if run.run_id in done:
            return
        done.add(run.run_id)
        parent = by_id.get(run.parent_id or "")
        if parent is not None and parent.run_id not in path:
            visit(parent, (*path, run.run_id))  # parents first: the child points at them
        _import_run(runs, artifacts, experiment, run, report, actor)

    for run in found:
        visit(run, ())


def _import_run(
    runs: RunStore,
    artifacts: Any,
    experiment: str,
    run: MlflowRun,
    report: ImportReport,
    actor: str,
) -> None:
    if run.deleted:
        report.skipped_deleted += 1
        return
    if not _RUN_ID.fullmatch(run.run_id):
        report.warnings.append(f"Run {run.run_id!r} skipped: its id is not 32 hex digits.")
        return
    if runs.run_exists(run.run_id):
        report.skipped_existing += 1
        return
    parent = run.parent_id if run.parent_id and runs.run_exists(run.parent_id) else None
    runs.create_run(
        experiment,
        name=run.name[:255] or None,
        actor=run.user or actor,
        parent_id=parent,
        run_id=run.run_id,
        status=run.status if run.status in _STATUSES else "FINISHED",
        start_time=_when(run.start_ms) or utc_now(),
        end_time=_when(run.end_ms),
    )
    if run.params:
        runs.log_params(run.run_id, run.params)
        report.params += len(run.params)
    if run.tags:
        runs.set_run_tags(run.run_id, run.tags)
        report.tags += len(run.tags)
    points = []
    for key, value, step, ts in run.metrics:
        if not math.isfinite(value):
            report.warnings.append(
                f"Run {run.run_id}: metric {key!r} step {step} is {value}, not imported."
            )
            continue
        points.append(Point(key, value, step, _when(ts) or utc_now()))
    points.sort(key=lambda p: (p.step, p.timestamp))  # the latest value: highest step, then time
    for i in range(0, len(points), 10_000):
        runs.log_points(run.run_id, points[i : i + 10_000])
    report.metric_points += len(points)
    if run.artifact_dir is not None and run.artifact_dir.is_dir():
        kept = RunArtifacts(runs, artifacts, run.run_id).log_folder(run.artifact_dir)
        report.artifacts += len(kept)
    elif run.artifact_uri and run.artifact_dir is None:
        report.warnings.append(
            f"Run {run.run_id}: artifacts at {run.artifact_uri} are not a local folder; "
            "not imported."
        )
    report.runs += 1


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _shipyard_name(name: str) -> str:
    if _NAME_RE.fullmatch(name):
        return name
    clean = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name).strip("-_.")[:255]
    return clean or "mlflow-import"


def _local_dir(uri: str | None, base: Path) -> Path | None:
    """A local artifact folder for ``uri`` (absolute, file:// or relative to ``base``)."""
    if not uri:
        return None
    if uri.startswith("file:"):
        return Path(unquote(urlsplit(uri).path))
    if "://" in uri or uri.startswith("mlflow-artifacts:"):
        return None
    path = Path(uri)
    return path if path.is_absolute() else (base / path).resolve()


# -- the file store -------------------------------------------------------------------


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"Cannot read MLflow metadata {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _read_tree(folder: Path) -> dict[str, str]:
    """Params or tags: one file per key (keys with '/' are sub-folders), the value inside."""
    if not folder.is_dir():
        return {}
    return {
        f.relative_to(folder).as_posix(): f.read_text(encoding="utf-8")
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _file_metrics(folder: Path) -> list[tuple[str, float, int, int]]:
    out: list[tuple[str, float, int, int]] = []
    if not folder.is_dir():
        return out
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        key = f.relative_to(folder).as_posix()
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                ts, value = int(parts[0]), float(parts[1])
                step = int(parts[2]) if len(parts) > 2 else 0
            except (ValueError, IndexError) as exc:
                raise InvalidInputError(
                    f"Cannot read MLflow metric file {f} line {n}: expected "
                    f"'timestamp value step', got {line!r}."
                ) from exc
            out.append((key, value, step, ts))
    return out


def _file_experiments(root: Path) -> Iterator[MlflowExperiment]:
    folders = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "meta.yaml").is_file()]
    if not folders:
        raise InvalidInputError(
            f"{root} is not an MLflow file store: no experiment folder with a meta.yaml in it. "
            "Give the mlruns folder itself."
        )
    for folder in folders:
        meta = _yaml(folder / "meta.yaml")
        runs = []
        for run_dir in sorted(d for d in folder.iterdir() if (d / "meta.yaml").is_file()):
            rmeta = _yaml(run_dir / "meta.yaml")
            tags = _read_tree(run_dir / "tags")
            artifact_uri = str(rmeta.get("artifact_uri") or "")
            artifact_dir = _local_dir(artifact_uri, root)
            if artifact_dir is not None and not artifact_dir.is_dir():
                # A store copied from elsewhere: its files sit beside the metadata.
                artifact_dir = run_dir / "artifacts"
            runs.append(
                MlflowRun(
                    run_id=str(rmeta.get("run_id") or rmeta.get("run_uuid") or run_dir.name),
                    name=str(rmeta.get("run_name") or tags.get("mlflow.runName") or ""),
                    status=_FILE_STATUS.get(int(rmeta.get("status") or 3), "FINISHED"),
                    start_ms=rmeta.get("start_time"),
                    end_ms=rmeta.get("end_time"),
                    user=str(rmeta.get("user_id") or ""),
                    deleted=rmeta.get("lifecycle_stage") == "deleted",
                    params=_read_tree(run_dir / "params"),
                    tags=tags,
                    metrics=_file_metrics(run_dir / "metrics"),
                    artifact_dir=artifact_dir,
                    artifact_uri=artifact_uri,
                )
            )
        yield MlflowExperiment(
            name=str(meta.get("name") or folder.name),
            deleted=meta.get("lifecycle_stage") == "deleted",
            runs=runs,
        )


# -- the SQLite database --------------------------------------------------------------


def _sqlite_experiments(path: Path) -> Iterator[MlflowExperiment]:
    if not path.is_file():
        raise InvalidInputError(f"Cannot import from {path}: no such SQLite database.")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise InvalidInputError(f"{path} is not a SQLite database: {exc}") from exc
    if not {"experiments", "runs", "metrics", "params", "tags"} <= tables:
        conn.close()
        raise InvalidInputError(
            f"{path} is not an MLflow tracking database: it has no experiments/runs/metrics tables."
        )
    base = path.resolve().parent
    try:
        experiments = conn.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments ORDER BY experiment_id"
        ).fetchall()
        for exp_id, name, stage in experiments:
            runs = []
            for row in conn.execute(
                "SELECT run_uuid, name, status, start_time, end_time, user_id, lifecycle_stage, "
                "artifact_uri FROM runs WHERE experiment_id = ? ORDER BY start_time",
                (exp_id,),
            ).fetchall():
                run_id = row[0]
                params = dict(
                    conn.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
                )
                tags = dict(
                    conn.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))
                )
                metrics = [
                    (key, float("nan") if is_nan else float(value), int(step), int(ts))
                    for key, value, step, ts, is_nan in conn.execute(
                        "SELECT key, value, step, timestamp, is_nan FROM metrics "
                        "WHERE run_uuid = ? ORDER BY key, step, timestamp",
                        (run_id,),
                    )
                ]
                runs.append(
                    MlflowRun(
                        run_id=run_id,
                        name=row[1] or tags.get("mlflow.runName", ""),
                        status=str(row[2] or "FINISHED"),
                        start_ms=row[3],
                        end_ms=row[4],
                        user=row[5] or "",
                        deleted=row[6] == "deleted",
                        params=params,
                        tags=tags,
                        metrics=metrics,
                        artifact_dir=_local_dir(row[7], base),
                        artifact_uri=row[7] or "",
                    )
                )
            yield MlflowExperiment(name=name, deleted=stage == "deleted", runs=runs)
    except sqlite3.DatabaseError as exc:
        raise InvalidInputError(f"Cannot read the MLflow database {path}: {exc}") from exc
    finally:
        conn.close()
