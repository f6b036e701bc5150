"""Who uses a dataset version: the runs that read it and the model versions they made.

``data show`` lists them; ``data prune`` keeps every version that has one.
A model version refers to a snapshot through its run (``dataset_uses``) or
directly, through the ``snapshot`` of its recorded data fingerprint (the loop
records it there).
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.store.data_records import DatasetVersion
from shipyard.store.dataset_store import DatasetStore
from shipyard.store.model_store import ModelStore


@dataclass(frozen=True)
class Users:
    runs: list[str]
    model_versions: list[str]


class DatasetUsers:
    """Finds the runs and live model versions that refer to dataset versions."""

    def __init__(self, datasets: DatasetStore, models: ModelStore) -> None:
        self.datasets = datasets
        self.models = models

    def of(self, version: DatasetVersion) -> Users:
        runs = sorted({u.run_id for u in self.datasets.uses(version.dataset, version.version)})
        live = []
        for model in self.models.list_models():
            for mv in self.models.list_versions(model.name):
                if mv.status.upper() == "ARCHIVED":
                    continue
                snap = (mv.data_fingerprint or {}).get("snapshot")
                if mv.run_id in runs or snap == version.ref:
                    live.append(mv.ref)
        return Users(runs=runs, model_versions=live)

    def holder(self, version: DatasetVersion) -> str | None:
        """Why ``version`` must be kept (``run abc``, ``model iris:3``), or None."""
        users = self.of(version)
        if users.model_versions:
            return f"model version {users.model_versions[0]}"
        if users.runs:
            return f"run {users.runs[0]}"
        return None


__all__ = ["DatasetUsers", "Users"]
