"""The Shipyard client: one object holding the stores for one set of settings.

The CLI, the HTTP server and the module-level Python API all go through a
client, so they share one code path. Constructing it does no I/O: the database
is opened (and migrated) on first use.

>>> client = Shipyard(Settings(home="/tmp/demo"))     # doctest: +SKIP
>>> client.registry.load("iris@production")           # doctest: +SKIP
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.store.metadata import MetadataStore

# Each service is imported with its first use, so a command that only reads the
# metadata (``shipyard models list``) does not load pandas, pyarrow and the registry.
if TYPE_CHECKING:
    from shipyard.monitoring.prediction_log import PredictionLog
    from shipyard.registry.service import Registry
    from shipyard.store.artifacts import ArtifactStore
    from shipyard.tracking.runs import Tracker


class Shipyard:
    """Entry point to every store and service, for one :class:`Settings`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()

    @cached_property
    def metadata(self) -> MetadataStore:
        return MetadataStore(self.settings.database_url)

    @cached_property
    def artifact_root(self) -> str:
        """Where this store keeps artifacts: recorded in its database at first use."""
        from shipyard.store.artifact_root import resolve_artifact_root

        return resolve_artifact_root(self.metadata, self.settings)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from shipyard.store.artifacts import open_artifact_store

        return open_artifact_store(self.store_settings)

    @cached_property
    def registry(self) -> Registry:
        from shipyard.registry.service import Registry

        return Registry(
            self.metadata,
            self.artifacts,
            cache_dir=self.settings.home / "cache" / "packages",
            actor=self.settings.actor,
        )

    @cached_property
    def prediction_log(self) -> PredictionLog:
        """This process's prediction log (create it after a fork, never before)."""
        from shipyard.monitoring.prediction_log import open_prediction_log

        return open_prediction_log(self.store_settings)

    @cached_property
    def tracker(self) -> Tracker:
        from shipyard.tracking.runs import Tracker

        return Tracker(self.metadata, actor=self.settings.actor)

    @property
    def store_settings(self) -> Settings:
        """These settings with the store's own artifact root, for the stores that follow it."""
        return self.settings.model_copy(update={"artifacts": self.artifact_root})

    def close(self) -> None:
        if "prediction_log" in self.__dict__:
            self.prediction_log.close()
        if "metadata" in self.__dict__:
            self.metadata.close()
