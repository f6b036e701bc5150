"""How the stages plug into the registry: typed hooks, registered by the stage that owns them.

The registry imports no stage. After a version is logged with a training
sample it calls each :class:`VersionLoggedHook` (the validation stage infers
the data contract, the drift reference profile is stored; an ONNX compile
step would register here too), and before an alias moves it asks the
:class:`PromotionGuard` (gates and approvals for protected aliases). A
:class:`ReferenceSampleSource` gives back the rows kept from a version's
training sample (the drift reference), for checks that need real rows. The
:class:`~shipyard.Shipyard` client wires them.

>>> def note(logged: LoggedVersion) -> None:
...     print(logged.version.ref, list(logged.sample.columns))
>>> registry = Registry(..., after_log=[note])      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.registry.signature import Signature
    from shipyard.store.records import ModelVersion


@dataclass(frozen=True)
class LoggedVersion:
    """A version just logged, with the training sample it was logged with.

    ``sample`` already has the model's training categories as category dtypes
    (as the signature does), so every hook sees the same columns.
    """

    version: ModelVersion
    sample: pd.DataFrame
    signature: Signature


class VersionLoggedHook(Protocol):
    """Called once per version logged with a sample, in registration order."""

    def __call__(self, logged: LoggedVersion) -> None: ...


class ReferenceSampleSource(Protocol):
    """The rows a stage kept from ``version``'s training sample, or None (for ONNX checks)."""

    def __call__(self, version: ModelVersion) -> pd.DataFrame | None: ...


class PromotionGuard(Protocol):
    """Decides whether ``name:version`` may take ``alias``.

    Raises (a :class:`~shipyard.errors.ConflictError`) to refuse; returns the
    problems that ``force`` overrode (empty when nothing was blocked, or the
    alias is not protected), which the registry audit-logs as ``force_alias``.
    """

    def __call__(
        self, name: str, alias: str, version: int, *, force: bool, reason: str | None
    ) -> list[str]: ...


__all__ = ["LoggedVersion", "PromotionGuard", "ReferenceSampleSource", "VersionLoggedHook"]
