"""Serving a feature-backed model: request rows (entity keys + request-time fields) in,
model inputs out, fetched from the online store and computed by the same on-demand
functions as in training.

A model logged in a run that built a training set carries a ``features`` entry
in its manifest (:class:`~shipyard.features.service.FeatureSet`). The server
hands the rows of the requests that arrived together (a micro-batch) to
:meth:`OnlineJoin.join_many`: one online read per view for all their rows, then
each request's own rows are built (and the on-demand functions applied) as if
it had come alone. A key
with no fresh row is refused with a 422 naming the key and the view (counted),
never predicted from missing values; an online store that cannot be reached
is a 503 (:class:`~shipyard.features.online.OnlineStoreUnavailable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shipyard.errors import SchemaError
from shipyard.features.keys import check_keys
from shipyard.features.online import OnlineStoreUnavailable
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

    def __init__(
        self,
        service: FeatureService,
        *,
        on_lookup: LookupCounter | None = None,
        on_read: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.service = service
        self.on_lookup = on_lookup  # e.g. a Prometheus counter of missing and stale keys
        # Told how each online read ended (None: the store answered, else what it raised),
        # e.g. serving's readiness check; called in the reading thread.
        self.on_read = on_read
        self._catalog: Catalog | None = None
        self._catalog_at = 0.0

    @property
    def inline(self) -> bool:
        """An SQLite online store answers in microseconds from a local file: the server
        reads it on the event loop; a networked one (Redis) is read in a thread."""
        from shipyard.features.online import SqliteOnlineStore

        return isinstance(self.service.online_store, SqliteOnlineStore)

    @property
    def target(self) -> str:
        """The online store's name for messages (no credentials: a Redis URL's host and port)."""
        return self.service.online_store.target

    def ping(self) -> None:
        """Raise :class:`~shipyard.features.online.OnlineStoreUnavailable` unless the online
        store answers (``/ready`` of a feature-backed model)."""
        self.service.online_store.ping()

    def catalog(self) -> Catalog:
        now = time.monotonic()
        if self._catalog is None or now - self._catalog_at > _CATALOG_SECONDS:
            self._catalog = self.service.catalog()
            self._catalog_at = now
        return self._catalog

    def join(
        self, spec: Mapping[str, Any], data: Any
    ) -> dict[str, Any] | list[dict[str, Any]] | pd.DataFrame:
        """Request rows + fetched (and on-demand) features, one row per request row.

        Without on-demand features the rows stay plain records (the request's own
        form, no DataFrame built per request); with them, a DataFrame, since the
        functions take one.
        """
        (outcome,) = self.join_many(spec, [data])
        if isinstance(outcome, SchemaError):
            raise outcome
        return outcome

    def join_many(self, spec: Mapping[str, Any], payloads: Sequence[Any]) -> list[Any]:
        """:meth:`join` of several requests' rows (a micro-batch) with one online read per
        view for all of them. Each request gets its own joined rows, built as :meth:`join`
        of it alone builds them, or its own :class:`SchemaError` (a missing or unknown
        key), returned in its place: one request's bad key never fails its neighbours.
        An online store that cannot be reached raises (every request of the batch gets
        the 503).
        """
        feature_set = FeatureSet.from_dict(spec)
        outcomes: list[Any] = [None] * len(payloads)
        good: list[int] = []
        groups: list[list[dict[str, Any]]] = []
        for i, data in enumerate(payloads):
            try:
                groups.append(_checked_rows(feature_set, data))
                good.append(i)
            except SchemaError as exc:
                outcomes[i] = exc
        if not groups:
            return outcomes
        catalog = self.catalog()
        full = feature_set.full_feature_names
        checks = _missing_checks(feature_set, catalog)  # once per micro-batch, not per request
        if full or any(r.partition(":")[0] in catalog.on_demand for r in feature_set.refs):
            with self._reading():
                frames = self.service.online_many(
                    feature_set.refs, groups, full_feature_names=full, catalog=catalog,
                    on_lookup=self.on_lookup,
                )  # fmt: skip
            for i, frame in zip(good, frames, strict=True):
                outcomes[i] = _refused_frame(frame, checks) or frame
            return outcomes
        with self._reading():
            joined = self.service.get_online_many(
                feature_set.refs, groups, catalog=catalog, on_lookup=self.on_lookup, copy=False
            )
        for i, records in zip(good, joined, strict=True):
            # A single record stays one: the model's one-row path is its quickest.
            outcomes[i] = _refused_rows(records, checks) or (
                records[0] if isinstance(payloads[i], Mapping) else records
            )
        return outcomes

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Tell ``on_read`` how the online read inside ended: only an unreachable store
        counts against it (a key with no row, or a failing on-demand function, does not)."""
        try:
            yield
        except OnlineStoreUnavailable as exc:
            if self.on_read is not None:
                self.on_read(exc)
            raise
        if self.on_read is not None:
            self.on_read(None)


class _MissingCheck(NamedTuple):
    """A view's stored features in the joined rows: all null in a row = no fresh row."""

    view: str
    join_keys: list[str]
    columns: list[str]


def _missing_checks(feature_set: FeatureSet, catalog: Catalog) -> list[_MissingCheck]:
    checks = []
    for view in feature_set.views:
        if view not in catalog.views:
            continue
        columns = [
            f"{view}__{feature}" if feature_set.full_feature_names else feature
            for ref in feature_set.refs
            for name, _, feature in [ref.partition(":")]
            if name == view
        ]
        if columns:
            checks.append(_MissingCheck(view, catalog.views[view].join_keys, columns))
    return checks


def _refused_rows(rows: list[dict[str, Any]], checks: list[_MissingCheck]) -> SchemaError | None:
    """The 422 of the first row (view by view) whose stored features are all null."""
    for check in checks:
        for row in rows:
            if all(_is_null(row.get(c)) for c in check.columns):
                return _no_features(check, row)
    return None


def _refused_frame(frame: pd.DataFrame, checks: list[_MissingCheck]) -> SchemaError | None:
    """:func:`_refused_rows` of a joined frame, column-wise (no record per row built)."""
    for check in checks:
        present = [c for c in check.columns if c in frame.columns]
        if present:
            empty = frame[present].isna().all(axis=1).to_numpy()
        else:  # no such column: every value is missing
            empty = np.ones(len(frame), dtype=bool)
        if empty.any():
            position = int(empty.argmax())
            row = {k: frame[k].iloc[position] for k in check.join_keys if k in frame.columns}
            return _no_features(check, row)
    return None


def _no_features(check: _MissingCheck, row: Mapping[str, Any]) -> SchemaError:
    key = ", ".join(f"{k}={row.get(k)}" for k in check.join_keys)
    return SchemaError(
        f"No online features for {key} in view {check.view!r}: never materialized, "
        "or older than its TTL. Run `shipyard features materialize`, or check the key.",
        field=check.join_keys[0],
        expected="a key with fresh feature values",
    )


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _checked_rows(feature_set: FeatureSet, data: Any) -> list[dict[str, Any]]:
    """The request's rows, each with every entity key of its declared type (else a 422
    naming the key)."""
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
    # A key of the wrong type is named as such, not looked up and called "never materialized".
    check_keys(rows, feature_set.key_types)
    return rows


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
