"""Experiment runs as context managers: params, metrics, tags, datasets, artifacts.

>>> with tracker.start_run("iris") as run:         # doctest: +SKIP
...     run.log_params({"C": 1.0})
...     run.log_metric("accuracy", 0.97)
...     run.log_dataset(train_df, context="training")
...     run.log_figure(fig, "confusion.png")
...     with tracker.start_run(nested=True) as fold:  # a child of ``run``
...         fold.log_metric("accuracy", 0.95)

A run that leaves its ``with`` block through an exception ends ``FAILED``,
otherwise ``FINISHED`` (``sys.exit(n)`` with n other than 0 counts as a
failure). A run still open when the process exits is ended then: ``FAILED``
after an uncaught exception, otherwise ``FINISHED`` (a ``sys.exit(n)`` outside
every ``with`` block cannot be told from a normal exit). The innermost open run is the
*active* run, which :func:`shipyard.log_model` links a new version to.

Metrics are written in batches by a background thread
(:mod:`shipyard.tracking.metric_writer`); every read through the run and
every run end waits for them.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from shipyard.clock import utc_now
from shipyard.errors import InvalidInputError
from shipyard.store import records
from shipyard.store.run_store import Point, RunStore, check_metric
from shipyard.tracking.artifacts import RunArtifacts
from shipyard.tracking.metric_writer import MetricWriter

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.store.artifacts import ArtifactStore
    from shipyard.tracking.fingerprint import DatasetFingerprint
    from shipyard.tracking.system_metrics import SystemMetrics

#: (frame, dataset name, run id, context) -> the ``name:version`` it was stored as.
Snapshotter = Callable[["pd.DataFrame", str, str, str, str | None], str]


class ActiveRun:
    """A run being recorded; use it as a context manager."""

    def __init__(self, tracker: Tracker, run: records.Run) -> None:
        self._tracker = tracker
        self._store = tracker.store
        self.id = run.id
        self.name = run.name
        self.experiment = run.experiment
        self.parent_id = run.parent_id
        self.datasets: dict[str, DatasetFingerprint] = {}
        # What a feature-store training set in this run used; log_model keeps it.
        self.features: dict[str, Any] | None = None
        self.ended = False
        self._artifacts: RunArtifacts | None = None
        self._system: SystemMetrics | None = None

    # -- params, metrics, tags -------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self._store.log_params(self.id, {key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        self._store.log_params(self.id, params)

    def log_metric(self, key: str, value: float, *, step: int = 0) -> None:
        """Queue one point; the background writer stores it (see module doc)."""
        self._tracker.writer.add(self.id, Point(key, check_metric(key, value), step, utc_now()))

    def log_metrics(self, metrics: dict[str, float], *, step: int = 0) -> None:
        at = utc_now()
        points = [Point(k, check_metric(k, v), step, at) for k, v in metrics.items()]
        self._tracker.writer.add_many(self.id, points)

    def flush(self) -> None:
        """Write the metrics still queued (reads through the run do it for you)."""
        self._tracker.writer.flush()

    def set_tag(self, key: str, value: str) -> None:
        self._store.set_run_tags(self.id, {key: value})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._store.set_run_tags(self.id, tags)

    def log_dataset(
        self,
        data: pd.DataFrame,
        *,
        context: str = "training",
        source: str | None = None,
        snapshot: bool = False,
        name: str | None = None,
    ) -> DatasetFingerprint:
        """Fingerprint ``data`` and record it with the run under ``context``.

        ``snapshot=True`` also stores the rows as the next version of dataset
        ``name`` (default ``<experiment>-<context>``), recorded as read by this run;
        the returned fingerprint's ``snapshot`` is then that version (``name:3``).
        """
        from shipyard.tracking.fingerprint import fingerprint

        fp = fingerprint(data, source=source)
        recorded = fp.to_dict()
        if snapshot:
            if self._tracker.snapshot is None:
                raise InvalidInputError(
                    "This tracker cannot snapshot data: it was made without a dataset store."
                )
            dataset = name or f"{self.experiment}-{context}"
            ref = self._tracker.snapshot(data, dataset, self.id, context, source)
            recorded["snapshot"] = ref
            fp = replace(fp, snapshot=ref)
        self._store.log_dataset(self.id, context, recorded)
        self.datasets[context] = fp
        return fp

    # -- artifacts -------------------------------------------------------------------

    @property
    def artifacts(self) -> RunArtifacts:
        if self._artifacts is None:
            self._artifacts = RunArtifacts(self._store, self._tracker.artifact_store(), self.id)
        return self._artifacts

    def log_artifact(
        self, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> records.RunArtifact:
        """Keep the file at ``path`` with the run (under the folder ``artifact_path``)."""
        return self.artifacts.log_file(path, artifact_path)

    def log_artifacts(
        self, folder: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[records.RunArtifact]:
        """Keep every file under ``folder``, keeping their relative paths."""
        return self.artifacts.log_folder(folder, artifact_path)

    def log_figure(self, figure: Any, path: str) -> records.RunArtifact:
        """Keep a matplotlib figure as an image (.png, .jpg, .svg or .pdf by ``path``)."""
        return self.artifacts.log_figure(figure, path)

    def log_table(self, frame: pd.DataFrame, path: str) -> records.RunArtifact:
        """Keep a DataFrame as .parquet, .csv or .json (lines) by ``path``."""
        return self.artifacts.log_table(frame, path)

    def log_text(self, text: str, path: str) -> records.RunArtifact:
        return self.artifacts.log_text(text, path)

    def log_dict(self, data: dict[str, Any], path: str) -> records.RunArtifact:
        """Keep a dict as .json or .yaml by ``path``."""
        return self.artifacts.log_dict(data, path)

    def list_artifacts(self) -> list[records.RunArtifact]:
        return self._store.list_artifacts(self.id)

    # -- life cycle ------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        if self.ended:
            return
        self.ended = True
        try:
            if self._system is not None:
                self._system.stop()
            self._tracker.writer.flush()
        finally:
            self._store.end_run(self.id, status)
            self._tracker._forget(self)

    def info(self) -> records.Run:
        self._tracker.writer.flush()
        return self._store.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc_type is not None and not issubclass(exc_type, SystemExit | GeneratorExit)
        if isinstance(exc, SystemExit):
            failed = exc.code not in (None, 0)
        self.end("FAILED" if failed else "FINISHED")


class Tracker:
    """Starts runs and remembers which one is active in this process."""

    def __init__(
        self,
        store: RunStore,
        *,
        actor: str,
        artifacts: Callable[[], ArtifactStore] | None = None,
        snapshot: Snapshotter | None = None,
    ) -> None:
        self.store = store
        self.actor = actor
        self._artifacts = artifacts
        #: Stores a frame as a dataset version read by a run; returns its ``name:version``.
        self.snapshot = snapshot
        self._stack: list[ActiveRun] = []
        self._lock = threading.Lock()
        self.writer = MetricWriter(store)
        self._exit_hook_installed = False

    def artifact_store(self) -> ArtifactStore:
        if self._artifacts is None:
            raise InvalidInputError(
                "This tracker has no artifact store; use the one of a Shipyard client "
                "(shipyard.start_run or Shipyard().tracker)."
            )
        return self._artifacts()

    def start_run(
        self,
        experiment: str | None = None,
        *,
        name: str | None = None,
        parent: ActiveRun | str | None = None,
        nested: bool = False,
        tags: dict[str, str] | None = None,
        system_metrics: bool = False,
        system_metrics_interval: float = 10.0,
    ) -> ActiveRun:
        """Start a run; ``nested=True`` makes it a child of the active run, ``parent`` of that run.

        A child run goes to its parent's experiment unless ``experiment`` says
        otherwise. ``system_metrics=True`` samples CPU and memory (and GPU where
        present) every ``system_metrics_interval`` seconds as stepped metrics.
        """
        if system_metrics and not system_metrics_interval > 0:
            raise InvalidInputError(
                f"system_metrics_interval={system_metrics_interval!r}: expected a positive "
                "number of seconds."
            )
        if parent is None and nested:
            parent = self.active_run
        parent_id = parent.id if isinstance(parent, ActiveRun) else parent
        if experiment is None:
            if isinstance(parent, ActiveRun):
                experiment = parent.experiment
            elif parent_id is not None:
                experiment = self.store.get_run(parent_id).experiment
            else:
                experiment = "default"
        record = self.store.create_run(experiment, name=name, actor=self.actor, parent_id=parent_id)
        run = ActiveRun(self, record)
        if tags:
            run.set_tags(tags)
        if system_metrics:
            from shipyard.tracking.system_metrics import SystemMetrics

            run._system = SystemMetrics(run, interval=system_metrics_interval)
            run._system.start()
        with self._lock:
            self._stack.append(run)
            self._install_exit_hook()
        return run

    @property
    def active_run(self) -> ActiveRun | None:
        return self._stack[-1] if self._stack else None

    def _forget(self, run: ActiveRun) -> None:
        with self._lock:
            if run in self._stack:
                self._stack.remove(run)

    def _install_exit_hook(self) -> None:
        if self._exit_hook_installed:
            return
        self._exit_hook_installed = True
        _watch_uncaught_exceptions()
        atexit.register(self._end_open_runs)

    def _end_open_runs(self) -> None:
        """At exit: end the runs still open, newest first; their metrics are written first."""
        status = "FAILED" if _uncaught["seen"] else "FINISHED"
        for run in reversed(list(self._stack)):
            run.end(status)
        self.writer.flush()


# Set by the excepthook below, read at exit to end open runs FAILED.
_uncaught: dict[str, bool] = {"seen": False}


def _watch_uncaught_exceptions() -> None:
    previous = sys.excepthook
    if getattr(previous, "_shipyard", False):
        return

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _uncaught["seen"] = True
        previous(exc_type, exc, tb)

    hook._shipyard = True  # type: ignore[attr-defined]
    sys.excepthook = hook
