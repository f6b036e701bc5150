"""Experiment runs as context managers: params, metrics, tags, datasets.

>>> with tracker.start_run("iris") as run:         # doctest: +SKIP
...     run.log_params({"C": 1.0})
...     run.log_metric("accuracy", 0.97)
...     run.log_dataset(train_df, context="training")

A run that leaves its ``with`` block through an exception ends ``FAILED``,
otherwise ``FINISHED``. The innermost open run is the *active* run, which
:func:`shipyard.log_model` links a new version to.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import pandas as pd

from shipyard.errors import InvalidInputError
from shipyard.store import records
from shipyard.store.run_store import RunStore
from shipyard.tracking.fingerprint import DatasetFingerprint, fingerprint

#: (frame, dataset name, run id, context) -> the ``name:version`` it was stored as.
Snapshotter = Callable[[pd.DataFrame, str, str, str], str]


class ActiveRun:
    """A run being recorded; use it as a context manager."""

    def __init__(self, tracker: Tracker, run: records.Run) -> None:
        self._tracker = tracker
        self._store = tracker.store
        self.id = run.id
        self.name = run.name
        self.experiment = run.experiment
        self.datasets: dict[str, DatasetFingerprint] = {}
        self.ended = False

    def log_param(self, key: str, value: Any) -> None:
        self._store.log_params(self.id, {key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        self._store.log_params(self.id, params)

    def log_metric(self, key: str, value: float, *, step: int = 0) -> None:
        self._store.log_metrics(self.id, {key: value}, step=step)

    def log_metrics(self, metrics: dict[str, float], *, step: int = 0) -> None:
        self._store.log_metrics(self.id, metrics, step=step)

    def set_tag(self, key: str, value: str) -> None:
        self._store.set_run_tags(self.id, {key: value})

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
        ``name`` (default ``<experiment>-<context>``), recorded as read by this run.
        """
        fp = fingerprint(data, source=source)
        recorded = fp.to_dict()
        if snapshot:
            if self._tracker.snapshot is None:
                raise InvalidInputError(
                    "This tracker cannot snapshot data: it was made without a dataset store."
                )
            dataset = name or f"{self.experiment}-{context}"
            recorded["snapshot"] = self._tracker.snapshot(data, dataset, self.id, context)
        self._store.log_dataset(self.id, context, recorded)
        self.datasets[context] = fp
        return fp

    def end(self, status: str = "FINISHED") -> None:
        if not self.ended:
            self._store.end_run(self.id, status)
            self.ended = True
            self._tracker._forget(self)

    def info(self) -> records.Run:
        return self._store.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED")


class Tracker:
    """Starts runs and remembers which one is active in this process."""

    def __init__(self, store: RunStore, *, actor: str, snapshot: Snapshotter | None = None) -> None:
        self.store = store
        self.actor = actor
        #: Stores a frame as a dataset version read by a run; returns its ``name:version``.
        self.snapshot = snapshot
        self._stack: list[ActiveRun] = []

    def start_run(self, experiment: str = "default", *, name: str | None = None) -> ActiveRun:
        run = ActiveRun(self, self.store.create_run(experiment, name=name, actor=self.actor))
        self._stack.append(run)
        return run

    @property
    def active_run(self) -> ActiveRun | None:
        return self._stack[-1] if self._stack else None

    def _forget(self, run: ActiveRun) -> None:
        if run in self._stack:
            self._stack.remove(run)
