"""What the loop uses of Shipyard: the stores and services it reads and changes.

The loop's steps, triggers, canary runner and lineage take this interface, not
the ``Shipyard`` client class, so the loop depends on what it uses; the client
satisfies it (mypy checks that where ``shipyard loop`` builds the controller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.data.snapshots import DataVersions
    from shipyard.monitoring.calibrations import Calibrations
    from shipyard.monitoring.prediction_log import PredictionLog
    from shipyard.registry.service import Registry
    from shipyard.rollout.service import Deployments
    from shipyard.store.dataset_store import DatasetStore
    from shipyard.store.loop_store import LoopStore
    from shipyard.store.model_store import ModelStore
    from shipyard.store.run_store import RunStore
    from shipyard.store.validation_store import ValidationStore
    from shipyard.tracking.runs import Tracker


class LoopServices(Protocol):
    """The stores and services a loop run needs (the ``Shipyard`` client has them all)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def models(self) -> ModelStore: ...
    @property
    def runs(self) -> RunStore: ...
    @property
    def tracker(self) -> Tracker: ...
    @property
    def validation(self) -> ValidationStore: ...
    @property
    def deployments(self) -> Deployments: ...
    @property
    def loops(self) -> LoopStore: ...
    @property
    def prediction_log(self) -> PredictionLog: ...
    @property
    def calibrations(self) -> Calibrations: ...
    @property
    def datasets(self) -> DatasetStore: ...
    @property
    def data(self) -> DataVersions: ...


__all__ = ["LoopServices"]
