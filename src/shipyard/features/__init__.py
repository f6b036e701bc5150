"""The feature store: definitions, point-in-time training sets, online features.

Feast's concepts and names (entities, sources, feature views with a TTL,
on-demand views, ``view:feature`` references) on DuckDB offline and SQLite
(default) or Redis online. The functions below use the default client
(:func:`shipyard.client`, which plugs itself in when ``shipyard``'s API is
first used; before that, a service on the settings from the environment);
``client.features`` is the same service.

>>> import shipyard.features as features                                     # doctest: +SKIP
>>> train = features.training_set(entity_df, ["driver_stats:conv_rate"])     # doctest: +SKIP
>>> features.online(["driver_stats:conv_rate"], [{"driver_id": 1001}])       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.config import Settings
from shipyard.features.definitions import (
    Definitions,
    Entity,
    Feature,
    FeatureView,
    OnDemandFeatureView,
    Source,
    load_definitions,
)
from shipyard.features.refs import FeatureRef, parse_refs
from shipyard.features.registry import ApplyResult
from shipyard.features.service import FeatureService, FeatureSet, MaterializeResult

_default: Callable[[], FeatureService] | None = None


def use_default(factory: Callable[[], FeatureService]) -> None:
    """Make ``factory`` give the service the functions below use (the API's client does)."""
    global _default
    _default = factory


def _service() -> FeatureService:
    if _default is None:
        standalone = FeatureService.from_settings(Settings())
        use_default(lambda: standalone)
    assert _default is not None
    return _default()


def apply(
    definitions: Definitions | str | Path, *, force: bool = False, reason: str | None = None
) -> ApplyResult:
    """Validate and version definitions (a YAML path or :class:`Definitions`)."""
    return _service().apply(definitions, force=force, reason=reason)


def training_set(
    entity_df: pd.DataFrame,
    features: str | Iterable[str],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """Point-in-time correct features for every row of ``entity_df``, in its order.

    Naive timestamps are taken to be UTC. Inside a run the training set's
    fingerprint and the view versions are recorded, and ``log_model`` keeps them.
    """
    return _service().training_set(
        entity_df,
        features,
        timestamp_column=timestamp_column,
        full_feature_names=full_feature_names,
    )


def materialize(
    views: Sequence[str] | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    incremental: bool = False,
) -> list[MaterializeResult]:
    """Load each key's newest values into the online store."""
    return _service().materialize(views, start=start, end=end, incremental=incremental)


def online(
    features: str | Iterable[str],
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """Features for ``entity_rows`` from the online store; missing or stale ones are null."""
    return _service().online(features, entity_rows, full_feature_names=full_feature_names)


__all__ = [
    "ApplyResult",
    "Definitions",
    "Entity",
    "Feature",
    "FeatureRef",
    "FeatureService",
    "FeatureSet",
    "FeatureView",
    "MaterializeResult",
    "OnDemandFeatureView",
    "Source",
    "apply",
    "load_definitions",
    "materialize",
    "online",
    "parse_refs",
    "training_set",
    "use_default",
]
