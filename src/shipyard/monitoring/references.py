"""Drift references stored with each version: its training sample, profiled at registration.

:class:`ReferenceProfiles` is the registry hook that stores the profile when
a version is logged with a sample, and the reader the monitor, ``shipyard
drift`` and the loop use later. It lives with monitoring, not in ``drift``:
``drift`` computes on frames and imports only the base layer.

>>> references = ReferenceProfiles(models, artifacts)          # doctest: +SKIP
>>> registry = Registry(..., after_log=[references])           # doctest: +SKIP
>>> references.load(client.registry.resolve("iris")).columns   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.drift.profile import ReferenceProfile
from shipyard.errors import ArtifactNotFoundError, IntegrityError, NotFoundError
from shipyard.store import records
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.model_store import ModelStore

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.registry.hooks import LoggedVersion

#: Version tag holding the artifact digest of the version's drift reference profile.
PROFILE_TAG = "drift_profile"


class ReferenceProfiles:
    """Store (as a registry :class:`~shipyard.registry.hooks.VersionLoggedHook`) and read
    drift references."""

    def __init__(self, models: ModelStore, artifacts: ArtifactStore) -> None:
        self.models = models
        self.artifacts = artifacts

    def __call__(self, logged: LoggedVersion) -> None:
        """Profile the inputs the model reads in the training sample and tag the version."""
        sample = logged.sample
        # A column the model never reads (``unused``) is left out: it may stop arriving
        # without harm, which drift would otherwise report as a vanished feature.
        inputs = [
            c.name for c in logged.signature.inputs if c.name in sample.columns and not c.unused
        ]
        self.attach(logged.version, ReferenceProfile.from_frame(sample[inputs]))

    def attach(self, version: records.ModelVersion, profile: ReferenceProfile) -> None:
        """Store ``profile`` as ``version``'s drift reference."""
        digest = self.artifacts.put_bytes(profile.to_bytes())
        self.models.set_version_tags(version.model, version.version, {PROFILE_TAG: digest})

    def has(self, version: records.ModelVersion) -> bool:
        """Whether ``version`` has a stored drift reference."""
        return PROFILE_TAG in version.tags

    def load(self, version: records.ModelVersion) -> ReferenceProfile:
        """The drift reference stored with ``version`` (its training sample, profiled)."""
        digest = version.tags.get(PROFILE_TAG)
        if digest is None:
            raise NotFoundError(
                f"{version.ref} has no stored drift reference (it was registered without a "
                "training sample); pass --reference FILE instead."
            )
        try:
            data = self.artifacts.get_bytes(digest)
        except (ArtifactNotFoundError, IntegrityError) as exc:
            raise type(exc)(
                f"Cannot read the drift reference stored with {version.ref}. {exc}"
            ) from exc
        return ReferenceProfile.from_bytes(data)

    def sample(self, version: records.ModelVersion) -> pd.DataFrame | None:
        """The rows kept in ``version``'s drift reference, or None if it has none."""
        if PROFILE_TAG not in version.tags:
            return None
        return self.load(version).sample


__all__ = ["PROFILE_TAG", "ReferenceProfiles"]
