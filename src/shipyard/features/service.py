"""The feature store service: apply definitions, build training sets, materialize, read online.

It takes the stores it needs (the metadata :class:`FeatureStore`, an online
store) and a way to find the active run; the :class:`~shipyard.Shipyard`
client builds one as ``client.features``.

>>> features = client.features                                              # doctest: +SKIP
>>> features.apply("features.yaml")                                         # doctest: +SKIP
>>> train = features.training_set(entity_df, ["driver_stats:conv_rate"])   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from shipyard.clock import Clock, SystemClock
from shipyard.config import Settings
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.features.definitions import Definitions, OnDemandFeatureView, load_definitions
from shipyard.features.materialize import latest_rows
from shipyard.features.offline import ViewPlan, entity_frame, run_join
from shipyard.features.ondemand import apply_on_demand
from shipyard.features.online import OnlineStore, open_online_store
from shipyard.features.refs import FeatureRef, parse_refs
from shipyard.features.registry import (
    ApplyResult,
    Catalog,
    apply_definitions,
    current_definitions,
)
from shipyard.features.sources import connect, register_source, source_family, source_schema
from shipyard.store.database import Database
from shipyard.store.feature_store import FeatureStore
from shipyard.tables import storage_options

__all__ = ["FeatureService", "FeatureSet", "MaterializeResult", "OnlineCounters"]


@dataclass(frozen=True)
class FeatureSet:
    """What a model was trained on: the references, view versions, keys and request fields.

    Kept on the run by :meth:`FeatureService.training_set` and in the manifest of a
    model logged in that run, so serving knows what to fetch.
    """

    refs: list[str]
    views: dict[str, int]
    join_keys: list[str]
    request_fields: list[str]
    full_feature_names: bool = False
    training_set: dict[str, Any] = field(default_factory=dict)
    key_types: dict[str, str] = field(default_factory=dict)  # int64 / string / float64
    request_types: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "refs": self.refs,
            "views": self.views,
            "join_keys": self.join_keys,
            "request_fields": self.request_fields,
            "full_feature_names": self.full_feature_names,
            "training_set": self.training_set,
            "key_types": self.key_types,
            "request_types": self.request_types,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> FeatureSet:
        return FeatureSet(
            list(data["refs"]),
            dict(data["views"]),
            list(data["join_keys"]),
            list(data.get("request_fields", [])),
            bool(data.get("full_feature_names", False)),
            dict(data.get("training_set", {})),
            dict(data.get("key_types", {})),
            dict(data.get("request_types", {})),
        )


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    start: datetime | None
    end: datetime
    read: int
    written: int


#: Told, per view and read, how many keys were ``found``, ``missing`` or ``stale``.
LookupCounter = Callable[[str, str, int], None]


@dataclass
class OnlineCounters:
    """Keys asked for online that had no row (missing) or only one older than the TTL (stale)."""

    lookups: int = 0
    missing: int = 0
    stale: int = 0


class FeatureService:
    """Definitions, training sets and online features on one metadata store."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        actor: str,
        online_store: Callable[[], OnlineStore],
        storage_options: dict[str, Any] | None = None,
        active_run: Callable[[], Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.actor = actor
        self._online_factory = online_store
        self._online: OnlineStore | None = None
        self.storage_options = storage_options or {}
        self._active_run = active_run
        self.clock = clock or SystemClock()
        self.counters = OnlineCounters()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: FeatureStore | None = None,
        *,
        active_run: Callable[[], Any] | None = None,
    ) -> FeatureService:
        """The service for ``settings``: online store from ``online_store``, S3 options."""
        return cls(
            store if store is not None else FeatureStore(Database(settings.database_url)),
            actor=settings.actor,
            online_store=lambda: open_online_store(settings.online_store, settings.home),
            storage_options=storage_options(settings),
            active_run=active_run,
        )

    @property
    def online_store(self) -> OnlineStore:
        if self._online is None:
            self._online = self._online_factory()
        return self._online

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
            self._online = None

    # -- definitions -------------------------------------------------------------------

    def apply(
        self,
        definitions: Definitions | str | Path,
        *,
        force: bool = False,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> ApplyResult:
        """Validate definitions against their sources and version each changed one."""
        defs = (
            definitions if isinstance(definitions, Definitions) else load_definitions(definitions)
        )
        return apply_definitions(
            self.store,
            defs,
            actor=self.actor,
            force=force,
            reason=reason,
            dry_run=dry_run,
            storage_options=self.storage_options,
        )

    def catalog(self) -> Catalog:
        return current_definitions(self.store)

    # -- offline -----------------------------------------------------------------------

    def _split(
        self, catalog: Catalog, refs: list[FeatureRef]
    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Requested features per stored view and per on-demand view; unknown ones refused."""
        stored: dict[str, list[str]] = {}
        on_demand: dict[str, list[str]] = {}
        for ref in refs:
            if ref.view in catalog.on_demand:
                odfv, _ = catalog.on_demand[ref.view]
                if ref.feature not in {f.name for f in odfv.features}:
                    known = ", ".join(f.name for f in odfv.features)
                    raise InvalidInputError(
                        f"Unknown feature {str(ref)!r}: on-demand view {ref.view!r} has {known}."
                    )
                on_demand.setdefault(ref.view, []).append(ref.feature)
                continue
            if ref.view not in catalog.views:
                known = ", ".join(sorted([*catalog.views, *catalog.on_demand])) or "none yet"
                raise InvalidInputError(
                    f"Unknown feature {str(ref)!r}: no feature view {ref.view!r}. "
                    f"Known views: {known}."
                )
            catalog.views[ref.view].view.feature(ref.feature)  # raises naming the feature
            stored.setdefault(ref.view, []).append(ref.feature)
        # An on-demand view's inputs are fetched too (not returned unless asked for).
        for name in on_demand:
            odfv, _ = catalog.on_demand[name]
            for text in odfv.inputs:
                view, _, feature = text.partition(":")
                if view not in catalog.views:
                    raise NotFoundError(
                        f"On-demand view {name!r} needs {text!r}, but no view {view!r} is applied."
                    )
                wanted = stored.setdefault(view, [])
                if feature not in wanted:
                    wanted.append(feature)
        return stored, on_demand

    def feature_set(
        self, features: str | Iterable[str], *, full_feature_names: bool = False
    ) -> FeatureSet:
        """The keys, request fields and view versions serving ``features`` needs."""
        catalog = self.catalog()
        refs = parse_refs(features)
        stored, on_demand = self._split(catalog, refs)
        keys: list[str] = []
        for view in stored:
            for key in catalog.views[view].join_keys:
                if key not in keys:
                    keys.append(key)
        request_types: dict[str, str] = {
            f.name: f.dtype for name in on_demand for f in catalog.on_demand[name][0].request_fields
        }
        versions = catalog.versions()
        used = [*stored, *on_demand]
        return FeatureSet(
            [str(r) for r in refs],
            {v: versions[v] for v in used},
            keys,
            list(request_types),
            full_feature_names,
            request_types=request_types,
        )

    def training_set(
        self,
        entity_df: pd.DataFrame,
        features: str | Iterable[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        source: str | None = None,
        record: bool = True,
    ) -> pd.DataFrame:
        """Point-in-time correct features for every row of ``entity_df``, in its order.

        The entity columns come out as given, followed by one column per feature.
        Inside a run, the training set's fingerprint (context ``training``) and the
        view versions are recorded on it, so ``log_model`` keeps the references
        (``record=False`` skips it: a skew check is not a training set).
        """
        catalog = self.catalog()
        refs = parse_refs(features)
        stored, on_demand = self._split(catalog, refs)
        feature_set = self.feature_set(refs_text(refs), full_feature_names=full_feature_names)
        keys = feature_set.join_keys
        entities = entity_frame(entity_df, keys, timestamp_column)
        con = connect()
        try:
            plans = []
            for i, (name, wanted) in enumerate(stored.items()):
                applied = catalog.views[name]
                register_source(
                    con, applied.source, alias=f"src{i}", storage_options=self.storage_options
                )
                plans.append(
                    ViewPlan(applied.view, applied.source, f"src{i}", applied.join_keys, wanted)
                )
            fetched_refs = [FeatureRef(v, f) for v, fs in stored.items() for f in fs]
            values = run_join(
                con, entities, plans, fetched_refs, full_feature_names=full_feature_names
            )
        finally:
            con.close()
        values.index = entity_df.index
        result = self._finish(entity_df, values, refs, on_demand, catalog, full_feature_names)
        if record:
            self._record(result, feature_set, source)
        return result

    def _finish(
        self,
        entity_df: pd.DataFrame,
        values: pd.DataFrame,
        refs: list[FeatureRef],
        on_demand: dict[str, list[str]],
        catalog: Catalog,
        full: bool,
    ) -> pd.DataFrame:
        """Entity columns, then the requested features in request order (on-demand ones too)."""
        if not on_demand:
            # Columns added to a shallow copy: the entity columns are not copied (1M rows).
            out = entity_df.copy(deep=False)
            for ref in refs:
                column = ref.column(full=full)
                if column not in entity_df.columns:
                    out[column] = (
                        values[column].to_numpy()
                        if isinstance(values[column].dtype, np.dtype)
                        else values[column].array
                    )
            return out
        combined = pd.concat(
            [entity_df, values.drop(columns=[c for c in values.columns if c in entity_df.columns])],
            axis=1,
        )
        for name, wanted in on_demand.items():
            odfv: OnDemandFeatureView = catalog.on_demand[name][0]
            inputs = combined.copy()
            out = apply_on_demand(odfv, inputs, wanted)
            for feature in wanted:
                combined[FeatureRef(name, feature).column(full=full)] = out[feature]
        columns = list(entity_df.columns) + [
            r.column(full=full) for r in refs if r.column(full=full) not in entity_df.columns
        ]
        return combined[columns]

    def _record(self, frame: pd.DataFrame, feature_set: FeatureSet, source: str | None) -> None:
        run = self._active_run() if self._active_run else None
        if run is None:
            return
        fp = run.log_dataset(frame, context="training", source=source or "feature store")
        recorded = FeatureSet(
            feature_set.refs,
            feature_set.views,
            feature_set.join_keys,
            feature_set.request_fields,
            feature_set.full_feature_names,
            {"content_hash": fp.content_hash, "n_rows": fp.n_rows},
            key_types={k: _kind(frame[k]) for k in feature_set.join_keys},
            request_types=feature_set.request_types,
        )
        run.set_tag("shipyard.features", json.dumps(recorded.to_dict(), sort_keys=True))
        run.features = recorded.to_dict()

    # -- online ------------------------------------------------------------------------

    def materialize(
        self,
        views: Sequence[str] | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        incremental: bool = False,
    ) -> list[MaterializeResult]:
        """Write each key's newest row in ``(start, end]`` of each view into the online store."""
        if incremental and start is not None:
            raise InvalidInputError("Give --start/--end or --incremental, not both.")
        end = _utc(end) if end is not None else self.clock.now()
        start = _utc(start) if start is not None else None
        if start is not None and start >= end:
            raise InvalidInputError(
                f"--start {start.isoformat()} is not before --end {end.isoformat()}."
            )
        catalog = self.catalog()
        names = list(views) if views else [n for n, v in catalog.views.items() if v.view.online]
        if not names:
            raise NotFoundError(
                "No feature views to materialize: `shipyard features apply FILE` first."
            )
        store = self.online_store
        results = []
        for name in names:
            applied = catalog.view(name)
            since = start
            if incremental:
                mark = self.store.watermark(name, store.target)
                # A new view version may read other columns: start again from scratch.
                since = mark.watermark if mark and mark.view_version == applied.version else None
            con = connect()
            read = written = 0
            try:
                register_source(
                    con, applied.source, alias="src", storage_options=self.storage_options
                )
                for batch in latest_rows(con, applied, "src", start=since, end=end):
                    read += len(batch)
                    written += store.write(name, batch)
            finally:
                con.close()
            mark = self.store.watermark(name, store.target)
            if incremental or mark is None or mark.watermark < end:
                self.store.set_watermark(
                    name, store.target, view_version=applied.version, watermark=end, rows=written
                )
            results.append(MaterializeResult(name, since, end, read, written))
        return results

    def online(
        self,
        features: str | Iterable[str],
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        full_feature_names: bool = False,
        now: datetime | None = None,
        catalog: Catalog | None = None,
        on_lookup: LookupCounter | None = None,
    ) -> pd.DataFrame:
        """Features for ``entity_rows`` from the online store; missing or stale values are null.

        ``features`` are ``view:feature`` references or view names (all their
        features). On-demand features are computed from the request fields in
        ``entity_rows`` and the fetched features, as in training. A server passes
        the ``catalog`` it keeps, sparing a database read per request.
        """
        return self.online_many(
            features,
            [entity_rows],
            full_feature_names=full_feature_names,
            now=now,
            catalog=catalog,
            on_lookup=on_lookup,
        )[0]

    def online_many(
        self,
        features: str | Iterable[str],
        groups: Sequence[Sequence[Mapping[str, Any]]],
        *,
        full_feature_names: bool = False,
        now: datetime | None = None,
        catalog: Catalog | None = None,
        on_lookup: LookupCounter | None = None,
    ) -> list[pd.DataFrame]:
        """:meth:`online` of each group of entity rows, with one read per view for all of
        them: a server's micro-batch of requests. Each group's frame is built on its own,
        exactly as :meth:`online` of that group alone builds it."""
        catalog = catalog if catalog is not None else self.catalog()
        refs = self._expand(catalog, features)
        stored, on_demand = self._split(catalog, refs)
        parts = [[dict(r) for r in rows] for rows in groups]
        read = self._read_values(
            catalog, stored, [r for rows in parts for r in rows], full_feature_names, now, on_lookup
        )
        types = {
            FeatureRef(view, f).column(full=full_feature_names): catalog.views[view]
            .view.feature(f)
            .dtype
            for view, fs in stored.items()
            for f in fs
        }
        frames = []
        for rows, values in zip(parts, _slices(read, parts), strict=True):
            given = list(dict.fromkeys(c for row in rows for c in row))
            if not on_demand:  # the common case: one DataFrame built once, no concat or copies
                data: dict[str, Any] = {c: [row.get(c) for row in rows] for c in given}
                for r in refs:
                    column = r.column(full=full_feature_names)
                    if column not in data:
                        data[column] = _typed(values[column], types[column])
                frames.append(pd.DataFrame(data))
                continue
            frame = pd.DataFrame(rows, columns=given)
            fetched = pd.DataFrame(
                {c: _typed(v, types[c]) for c, v in values.items()}, index=frame.index
            )
            frames.append(
                self._finish(frame, fetched, refs, on_demand, catalog, full_feature_names)
            )
        return frames

    def get_online(
        self,
        features: str | Iterable[str],
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        now: datetime | None = None,
        catalog: Catalog | None = None,
        on_lookup: LookupCounter | None = None,
    ) -> list[dict[str, Any]]:
        """Like :meth:`online` for stored features, as plain records (no pandas): the
        quickest way to look a few keys up (``shipyard features get``)."""
        return self.get_online_many(
            features, [entity_rows], now=now, catalog=catalog, on_lookup=on_lookup
        )[0]

    def get_online_many(
        self,
        features: str | Iterable[str],
        groups: Sequence[Sequence[Mapping[str, Any]]],
        *,
        now: datetime | None = None,
        catalog: Catalog | None = None,
        on_lookup: LookupCounter | None = None,
        copy: bool = True,
    ) -> list[list[dict[str, Any]]]:
        """:meth:`get_online` of each group of entity rows, with one read per view for all.

        ``copy=False`` adds the features to the given rows themselves (a server's rows,
        already its own copies of the requests'), sparing a copy of every row.
        """
        catalog = catalog if catalog is not None else self.catalog()
        refs = self._expand(catalog, features)
        stored, on_demand = self._split(catalog, refs)
        if on_demand:
            raise InvalidInputError(
                f"On-demand features ({', '.join(on_demand)}) need request fields: use "
                "online() with them in the entity rows."
            )
        parts = (
            [[dict(r) for r in rows] for rows in groups]
            if copy
            else cast("list[list[dict[str, Any]]]", groups)
        )
        rows = [r for part in parts for r in part]
        values = self._read_values(catalog, stored, rows, False, now, on_lookup)
        for column, column_values in values.items():
            for row, value in zip(rows, column_values, strict=True):
                row[column] = value
        return parts

    def key_types(self, features: str | Iterable[str]) -> dict[str, str]:
        """Each join key of the views ``features`` name -> its type in the source
        (``int64``, ``float64``, ``bool`` or ``string``), for a view whose source is a
        local file or folder (DuckDB reads only its schema). Keys of other sources
        (``s3://``, SQL: reading their schema reads them) are left out."""
        catalog = self.catalog()
        views = {ref.view for ref in self._expand(catalog, features)}
        types: dict[str, str] = {}
        con = connect()
        try:
            for i, name in enumerate(sorted(views)):
                applied = catalog.views.get(name)
                if applied is None or "://" in applied.source.path:
                    continue
                register_source(con, applied.source, alias=f"src{i}")
                schema = source_schema(con, f"src{i}")
                for key in applied.join_keys:
                    if key in schema:
                        types[key] = _KEY_TYPES.get(source_family(schema[key]), "string")
        finally:
            con.close()
        return types

    def _expand(self, catalog: Catalog, features: str | Iterable[str]) -> list[FeatureRef]:
        items = features.split(",") if isinstance(features, str) else list(features)
        refs: list[str] = []
        for item in items:
            text = item.strip()
            if ":" in text:
                refs.append(text)
            elif text in catalog.on_demand:
                refs += [f"{text}:{f.name}" for f in catalog.on_demand[text][0].features]
            else:
                refs += [f"{text}:{f.name}" for f in catalog.view(text).view.features]
        return parse_refs(refs)

    def _read_values(
        self,
        catalog: Catalog,
        stored: dict[str, list[str]],
        entity_rows: list[dict[str, Any]],
        full: bool,
        now: datetime | None,
        on_lookup: LookupCounter | None = None,
    ) -> dict[str, list[Any]]:
        """One batched read per view; values past the TTL are nulls (counted as stale)."""
        moment = (_utc(now) if now is not None else self.clock.now()).timestamp()
        columns: dict[str, list[Any]] = {}
        for name, wanted in stored.items():
            applied = catalog.views[name]
            for key in applied.join_keys:
                if any(key not in row for row in entity_rows):
                    raise InvalidInputError(
                        f"Entity rows have no {key!r}: feature view {name!r} is keyed by "
                        f"{', '.join(applied.join_keys)}."
                    )
            keys = [tuple(str(row[k]) for k in applied.join_keys) for row in entity_rows]
            records = self.online_store.read(name, keys)
            ttl = applied.view.ttl
            found: list[dict[str, Any] | None] = []
            missing = stale = 0
            for record in records:
                if record is None:
                    missing += 1
                    found.append(None)
                elif ttl > 0 and record.event_ts < moment - ttl:
                    stale += 1
                    found.append(None)
                else:
                    found.append(record.values)
            self.counters.lookups += len(records)
            self.counters.missing += missing
            self.counters.stale += stale
            if on_lookup is not None:
                on_lookup(name, "found", len(records) - missing - stale)
                on_lookup(name, "missing", missing)
                on_lookup(name, "stale", stale)
            for feature in wanted:
                columns[FeatureRef(name, feature).column(full=full)] = [
                    None if r is None else r.get(feature) for r in found
                ]
        return columns


def _slices(
    values: dict[str, list[Any]], groups: list[list[dict[str, Any]]]
) -> Iterable[dict[str, list[Any]]]:
    """The values read for all groups' rows, cut back into each group's own."""
    start = 0
    for rows in groups:
        stop = start + len(rows)
        yield {column: column_values[start:stop] for column, column_values in values.items()}
        start = stop


_PANDAS_TYPES = {
    "float32": "float32",
    "float64": "float64",
    "int32": "Int32",
    "int64": "Int64",
    "string": "string",
    "bool": "boolean",
}


def _typed(values: list[Any], dtype: str) -> Any:
    """Online values in the dtype the training set gives them (float32 stays float32)."""
    if dtype == "timestamp":
        return pd.to_datetime(values)
    if dtype.startswith("float"):
        return np.array([np.nan if v is None else v for v in values], dtype=dtype)
    return pd.array(values, dtype=_PANDAS_TYPES[dtype])


#: A source column's type family -> the dtype name of a key of that type.
_KEY_TYPES = {"integer": "int64", "float": "float64", "bool": "bool", "text": "string"}


def _kind(column: pd.Series) -> str:
    """The dtype name a request field of this column takes (for the served schema)."""
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_integer_dtype(column):
        return "int64"
    if pd.api.types.is_float_dtype(column):
        return "float64"
    return "string"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def refs_text(refs: list[FeatureRef]) -> list[str]:
    return [str(r) for r in refs]
