"""The Shipyard client: one object holding the stores and services for one set of settings.

The CLI, the HTTP server and the module-level Python API all go through a
client, so they share one code path. Constructing it does no I/O: the database
is opened (and migrated) on first use. Every store and service is built once
(a cached property), and this is the one place the stages are plugged into the
registry (:mod:`shipyard.registry.hooks`).

>>> client = Shipyard(Settings(home="/tmp/demo"))     # doctest: +SKIP
>>> client.registry.load("iris@production")           # doctest: +SKIP
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.store.alias_store import AliasStore
from shipyard.store.audit_store import AuditStore
from shipyard.store.database import Database
from shipyard.store.model_store import ModelStore

# Each service, and each store but the model, alias and audit stores, is imported
# with its first use, so a command that only reads the metadata (``shipyard models
# list``) does not load pandas, pyarrow and the registry, nor the other stores' tables.
if TYPE_CHECKING:
    import pandas as pd

    from shipyard.data.snapshots import DataVersions
    from shipyard.features.service import FeatureService
    from shipyard.monitoring.prediction_log import PredictionLog
    from shipyard.registry.service import Registry
    from shipyard.store.artifacts import ArtifactStore
    from shipyard.store.dataset_store import DatasetStore
    from shipyard.store.feature_store import FeatureStore
    from shipyard.store.loop_store import LoopStore
    from shipyard.store.monitor_store import MonitorStore
    from shipyard.store.rollout_store import RolloutStore
    from shipyard.store.run_query import RunQueries
    from shipyard.store.run_search import RunSearch
    from shipyard.store.run_store import RunStore
    from shipyard.store.validation_store import ValidationStore
    from shipyard.tracking.runs import Tracker

if TYPE_CHECKING:
    # The stages are imported where they are wired, so a client that only reads
    # the registry does not load them.
    from shipyard.monitoring.calibrations import Calibrations
    from shipyard.monitoring.references import ReferenceProfiles
    from shipyard.rollout.service import Deployments


class Shipyard:
    """Entry point to every store and service, for one :class:`Settings`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()

    # -- stores (one database) -------------------------------------------------------

    @cached_property
    def database(self) -> Database:
        return Database(self.settings.database_url)

    @cached_property
    def runs(self) -> RunStore:
        from shipyard.store.run_store import RunStore

        return RunStore(self.database)

    @cached_property
    def run_queries(self) -> RunQueries:
        """The runs table's filtered, sorted, paged queries (the web UI's)."""
        from shipyard.store.run_query import RunQueries

        return RunQueries(self.database)

    @cached_property
    def run_search(self) -> RunSearch:
        from shipyard.store.run_search import RunSearch

        return RunSearch(self.database)

    @cached_property
    def models(self) -> ModelStore:
        return ModelStore(self.database)

    @cached_property
    def aliases(self) -> AliasStore:
        return AliasStore(self.database)

    @cached_property
    def audit(self) -> AuditStore:
        return AuditStore(self.database)

    @cached_property
    def validation(self) -> ValidationStore:
        from shipyard.store.validation_store import ValidationStore

        return ValidationStore(self.database)

    @cached_property
    def rollouts(self) -> RolloutStore:
        from shipyard.store.rollout_store import RolloutStore

        return RolloutStore(self.database)

    @cached_property
    def loops(self) -> LoopStore:
        from shipyard.store.loop_store import LoopStore

        return LoopStore(self.database)

    @cached_property
    def monitors(self) -> MonitorStore:
        from shipyard.store.monitor_store import MonitorStore

        return MonitorStore(self.database)

    @cached_property
    def feature_store(self) -> FeatureStore:
        from shipyard.store.feature_store import FeatureStore

        return FeatureStore(self.database)

    @cached_property
    def artifact_root(self) -> str:
        """Where this store keeps artifacts: recorded in its database at first use."""
        from shipyard.store.artifact_root import resolve_artifact_root

        return resolve_artifact_root(self.database, self.settings)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from shipyard.store.artifacts import open_artifact_store

        return open_artifact_store(self.store_settings)

    # -- services ----------------------------------------------------------------------

    @cached_property
    def references(self) -> ReferenceProfiles:
        """The drift reference stored with each version logged with a sample."""
        from shipyard.monitoring.references import ReferenceProfiles

        return ReferenceProfiles(self.models, self.artifacts)

    @cached_property
    def calibrations(self) -> Calibrations:
        """The CBPE calibration fitted on labelled reference data, stored with each version."""
        from shipyard.monitoring.calibrations import Calibrations

        return Calibrations(self.models, self.artifacts)

    @cached_property
    def registry(self) -> Registry:
        from shipyard.registry.service import Registry, RegistryStores
        from shipyard.validation.approvals import PromotionPolicy
        from shipyard.validation.service import ContractInference

        # The contract is inferred before the drift reference is stored, as before.
        return Registry(
            RegistryStores(self.models, self.aliases, self.audit, self.runs),
            self.artifacts,
            cache_dir=self.settings.home / "cache" / "packages",
            actor=self.settings.actor,
            after_log=[
                ContractInference(self.validation, actor=self.settings.actor),
                self.references,
            ],
            promotion_guard=PromotionPolicy(self.validation),
            reference_sample=self.references.sample,
        )

    @cached_property
    def deployments(self) -> Deployments:
        """Deployments changed as this client's actor (``acting_as`` for another)."""
        from shipyard.rollout.service import Deployments

        return Deployments(self.rollouts, self.validation, self.aliases, actor=self.settings.actor)

    @cached_property
    def prediction_log(self) -> PredictionLog:
        """This process's prediction log (create it after a fork, never before)."""
        from shipyard.monitoring.prediction_log import open_prediction_log

        return open_prediction_log(self.store_settings)

    @cached_property
    def tracker(self) -> Tracker:
        from shipyard.tracking.runs import Tracker

        return Tracker(
            self.runs,
            actor=self.settings.actor,
            artifacts=lambda: self.artifacts,
            snapshot=self._snapshot_for_run,
        )

    @cached_property
    def features(self) -> FeatureService:
        """The feature store: definitions, training sets, online features."""
        from shipyard.features.service import FeatureService

        return FeatureService.from_settings(
            self.settings, self.feature_store, active_run=lambda: self.tracker.active_run
        )

    @cached_property
    def datasets(self) -> DatasetStore:
        from shipyard.store.dataset_store import DatasetStore

        return DatasetStore(self.database)

    @cached_property
    def data(self) -> DataVersions:
        """Dataset versions: snapshots stored in the artifact store (``shipyard data``)."""
        from shipyard.data.snapshots import DataVersions
        from shipyard.tables import storage_options

        return DataVersions(
            self.datasets,
            self.artifacts,
            actor=self.settings.actor,
            storage_options=storage_options(self.settings),
        )

    def _snapshot_for_run(
        self, frame: pd.DataFrame, name: str, run_id: str, context: str, source: str | None
    ) -> str:
        """Snapshot ``frame`` as the next version of ``name``, used by ``run_id``."""
        version = self.data.snapshot(
            frame, name=name, message=f"logged by run {run_id}", described=source
        )
        self.datasets.record_use(version.dataset, version.version, run_id, context)
        return version.ref

    @property
    def store_settings(self) -> Settings:
        """These settings with the store's own artifact root, for the stores that follow it."""
        return self.settings.model_copy(update={"artifacts": self.artifact_root})

    def close(self) -> None:
        if "features" in self.__dict__:
            self.features.close()
        if (
            "tracker" in self.__dict__
        ):  # metrics still queued are written before the database closes
            self.tracker.writer.close()
        if "prediction_log" in self.__dict__:
            self.prediction_log.close()
        if "database" in self.__dict__:
            self.database.close()
