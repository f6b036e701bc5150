"""Serving a feature-backed model: request rows (entity keys + request-time fields) in,
model inputs out, fetched from the online store and computed by the same on-demand
functions as in training.

A model logged in a run that built a training set carries a ``features`` entry
in its manifest (:class:`~shipyard.features.service.FeatureSet`). The server
hands each request's rows to :meth:`OnlineJoin.join`: one batched online read
per view for all the rows of the request, then the on-demand functions. A key
with no fresh row is refused with a 422 naming the key and the view (counted),
never predicted from missing values; an online store that cannot be reached
is a 503 (:class:`~shipyard.features.online.OnlineStoreUnavailable`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from shipyard.errors import SchemaError
from shipyard.features.registry import Catalog
from shipyard.features.service import FeatureService, FeatureSet, LookupCounter

__all__ = ["OnlineJoin", "request_fields"]

_CATALOG_SECONDS = 30.0  # how long a server trusts its copy of the definitions


def request_fields(spec: Mapping[str, Any]) -> dict[str, str]:
    """The fields a request carries: each join key and request-time field, with its dtype."""
    feature_set = FeatureSet.from_dict(spec)
    fields = {key: feature_set.key_types.get(key, "string") for key in feature_set.join_keys}
    fields.update(feature_set.request_types)
    return fields


class OnlineJoin:
    """Builds model inputs from request rows, on one :class:`FeatureService`."""

    def __init__(self, service: FeatureService, *, on_lookup: LookupCounter | None = None) -> None:
        self.service = service
        self.on_lookup = on_lookup  # e.g. a Prometheus counter of missing and stale keys
        self._catalog: Catalog | None = None
        self._catalog_at = 0.0

    def catalog(self) -> Catalog:
        now = time.monotonic()
        if self._catalog is None or now - self._catalog_at > _CATALOG_SECONDS:
            self._catalog = self.service.catalog()
            self._catalog_at = now
        return self._catalog

    def join(self, spec: Mapping[str, Any], data: Any) -> pd.DataFrame:
        """Request rows + fetched and on-demand features, one row per request row."""
        feature_set = FeatureSet.from_dict(spec)
        rows = _records(data)
        for i, row in enumerate(rows):
            missing = [k for k in feature_set.join_keys if row.get(k) is None]
            if missing:
                where = f"record {i}: " if len(rows) > 1 else ""
                raise SchemaError(
                    f"{where}missing entity key {missing[0]!r}: this model fetches its "
                    f"features by {', '.join(feature_set.join_keys)}; send e.g. "
                    f'{{"{feature_set.join_keys[0]}": 1001, ...}}.',
                    field=missing[0],
                    expected="an entity key",
                )
        frame = self.service.online(
            feature_set.refs,
            rows,
            full_feature_names=feature_set.full_feature_names,
            catalog=self.catalog(),
            on_lookup=self.on_lookup,
        )
        self._refuse_missing(frame, feature_set)
        return frame

    def _refuse_missing(self, frame: pd.DataFrame, feature_set: FeatureSet) -> None:
        """A row whose stored features are all null found no fresh row: say which key."""
        catalog = self.catalog()
        for view in feature_set.views:
            if view not in catalog.views:
                continue
            applied = catalog.views[view]
            columns = [
                c
                for ref in feature_set.refs
                if ref.startswith(f"{view}:")
                for c in [
                    f"{view}__{ref.partition(':')[2]}"
                    if feature_set.full_feature_names
                    else ref.partition(":")[2]
                ]
                if c in frame.columns
            ]
            if not columns:
                continue
            empty = frame[columns].isna().all(axis=1)
            if empty.any():
                i = int(empty.to_numpy().argmax())
                key = ", ".join(f"{k}={frame[k].iloc[i]}" for k in applied.join_keys)
                raise SchemaError(
                    f"No online features for {key} in view {view!r}: never materialized, or "
                    f"older than its TTL. Run `shipyard features materialize`, or check the key.",
                    field=applied.join_keys[0],
                    expected="a key with fresh feature values",
                )


def _records(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, pd.DataFrame):
        return list(data.to_dict(orient="records"))
    if isinstance(data, Mapping):
        return [dict(data)]
    if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
        return [dict(r) for r in data]
    raise SchemaError(
        "A feature-backed model takes records: send a JSON object (or a list of them) with "
        "the entity keys and request-time fields.",
        expected="object",
    )
