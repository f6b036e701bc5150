"""Feature definitions: entities, sources, feature views and on-demand views.

The names and shapes are Feast's (``join_keys``, ``timestamp_field``,
``created_timestamp_column``, ``ttl``, ``features`` with a ``dtype``), so a
Feast user reads a Shipyard file at once. They come from a YAML file
(:func:`load_definitions`) or are built in Python:

>>> driver = Entity(name="driver", join_keys=["driver_id"])
>>> source = Source(name="stats", path="stats.parquet")
>>> view = FeatureView(name="driver_stats", entities=["driver"], source="stats",
...                    ttl="2d", features=[Feature(name="conv_rate", dtype="float32")])
>>> view.ttl
172800
>>> defs = Definitions(entities=[driver], sources=[source], feature_views=[view])
>>> defs.join_keys(view)
['driver_id']

Every name is checked with the project's full-match rules
(:mod:`shipyard.names`); feature and column names follow the SQL-friendly
identifier rule below, since they become columns.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard.errors import InvalidInputError, reason
from shipyard.names import check_name

#: Feature, key and column names: they become columns of training sets and request fields.
COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

DType = Literal["float32", "float64", "int32", "int64", "string", "bool", "timestamp"]
DTYPES: tuple[str, ...] = DType.__args__  # type: ignore[attr-defined]

_TTL = re.compile(r"(\d+)\s*(s|m|h|d|w)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def check_column(value: object, *, kind: str) -> str:
    if not isinstance(value, str) or COLUMN.fullmatch(value) is None:
        raise ValueError(
            f"{kind} {value!r} is not allowed: use letters, digits and '_', starting with a "
            "letter or '_' (at most 128 characters)"
        )
    return value


def _name(value: object, kind: str) -> str:
    try:
        return check_name(value, kind=kind)
    except InvalidInputError as exc:
        raise ValueError(str(exc).rstrip(".")) from None


def parse_ttl(value: object) -> int:
    """Seconds from ``2d``, ``12h``, ``30m``, ``45s``, ``1w``, seconds, or 0/None (no TTL).

    >>> parse_ttl("1d 12h"), parse_ttl(90), parse_ttl(None)
    (129600, 90, 0)
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError("ttl must be a duration such as 2d, 12h or 30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("ttl must not be negative")
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("0", ""):
            return 0
        parts = _TTL.findall(text)
        if parts and _TTL.sub("", text).strip() == "":
            return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts)
    raise ValueError(f"ttl {value!r} is not a duration: write e.g. 2d, 12h, 30m, 45s or 1w")


def format_ttl(seconds: int) -> str:
    """``172800`` -> ``2d``; 0 -> ``none``."""
    if seconds == 0:
        return "none"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        text = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class Entity(_Spec):
    """What features are about (a driver, a customer), known by its join key column(s)."""

    name: str
    join_keys: list[str] = Field(min_length=1)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, "Entity name")

    @field_validator("join_keys")
    @classmethod
    def _check_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            check_column(key, kind="Join key")
        if len(set(value)) != len(value):
            raise ValueError(f"join_keys {value} repeat a column")
        return value


class Source(_Spec):
    """Where feature rows come from: a Parquet/CSV file or folder, an s3:// object, or SQL.

    SQL is written as Shipyard's table locations are: ``URL#TABLE`` or
    ``URL#SELECT ...``. ``timestamp_field`` is each row's event time;
    ``created_timestamp_column`` (optional) breaks ties between rows of one key
    with the same event time: the latest created wins.
    """

    name: str
    path: str = Field(min_length=1)
    timestamp_field: str = "event_timestamp"
    created_timestamp_column: str | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, "Source name")

    @field_validator("timestamp_field", "created_timestamp_column")
    @classmethod
    def _check_columns(cls, value: str | None) -> str | None:
        return None if value is None else check_column(value, kind="Timestamp column")


class Feature(_Spec):
    """One feature: a column of the source and its type (Feast's ``Field``)."""

    name: str
    dtype: DType

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_column(value, kind="Feature name")


class FeatureView(_Spec):
    """Features of some entities from one source, each value valid for ``ttl`` after its event.

    ``ttl`` is stored in seconds (0: values never expire). ``ttl: 2d`` means a row
    at 10:00 on Monday serves entity times up to and including 10:00 on Wednesday.
    """

    name: str
    entities: list[str] = Field(min_length=1)
    source: str
    ttl: int = 0
    features: list[Feature] = Field(min_length=1)
    online: bool = True
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, "Feature view name")

    @field_validator("ttl", mode="before")
    @classmethod
    def _parse_ttl(cls, value: object) -> int:
        return parse_ttl(value)

    @field_validator("features")
    @classmethod
    def _unique(cls, value: list[Feature]) -> list[Feature]:
        names = [f.name for f in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"features {repeated} are listed more than once")
        return value

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        known = ", ".join(f.name for f in self.features)
        raise InvalidInputError(
            f"Feature view {self.name!r} has no feature {name!r}; its features are {known}."
        )


class OnDemandFeatureView(_Spec):
    """Features computed at request time by ``function`` (``module:function``).

    The function takes one pandas DataFrame holding the request fields and the
    fetched features it names in ``inputs`` (``view:feature`` references), and
    returns a DataFrame with one column per output feature. The same function
    runs when a training set is built and when a request is served.
    """

    name: str
    function: str
    inputs: list[str] = Field(default_factory=list)
    request_fields: list[Feature] = Field(default_factory=list)
    features: list[Feature] = Field(min_length=1)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, "On-demand feature view name")

    @field_validator("function")
    @classmethod
    def _check_function(cls, value: str) -> str:
        module, _, attr = value.partition(":")
        dotted = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
        if not (dotted.fullmatch(module) and attr and dotted.fullmatch(attr)):
            raise ValueError(f"function {value!r} must read module:function, e.g. mypkg.fx:ratio")
        return value


class Definitions(_Spec):
    """A whole definitions file: every reference inside it must resolve."""

    entities: list[Entity] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    feature_views: list[FeatureView] = Field(default_factory=list)
    on_demand_feature_views: list[OnDemandFeatureView] = Field(default_factory=list)

    @model_validator(mode="after")
    def _resolve(self) -> Definitions:
        groups: list[tuple[str, list[str]]] = [
            ("entity", [e.name for e in self.entities]),
            ("source", [s.name for s in self.sources]),
            (
                "feature view",
                [v.name for v in self.feature_views]
                + [o.name for o in self.on_demand_feature_views],
            ),
        ]
        for kind, names in groups:
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} names {repeated} are defined more than once")
        entities = {e.name for e in self.entities}
        sources = {s.name for s in self.sources}
        for view in self.feature_views:
            unknown = [e for e in view.entities if e not in entities]
            if unknown:
                raise ValueError(
                    f"feature view {view.name!r} names unknown entities {unknown}; "
                    f"defined: {sorted(entities)}"
                )
            if view.source not in sources:
                raise ValueError(
                    f"feature view {view.name!r} names unknown source {view.source!r}; "
                    f"defined: {sorted(sources)}"
                )
        views = {v.name: v for v in self.feature_views}
        for odfv in self.on_demand_feature_views:
            for ref in odfv.inputs:
                view_name, _, feature = ref.partition(":")
                target = views.get(view_name)
                if target is None or feature not in {f.name for f in target.features}:
                    raise ValueError(
                        f"on-demand view {odfv.name!r} input {ref!r} names no feature of "
                        "the feature views defined (write view:feature)"
                    )
        return self

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)

    def source(self, name: str) -> Source:
        return next(s for s in self.sources if s.name == name)

    def join_keys(self, view: FeatureView) -> list[str]:
        return [key for name in view.entities for key in self.entity(name).join_keys]


def parse_definitions(data: object, *, where: str, base: Path | None = None) -> Definitions:
    """Definitions from parsed YAML/JSON; relative source paths are resolved against ``base``."""
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{where}: expected a mapping with entities, sources and feature_views, "
            f"got {type(data).__name__}."
        )
    if base is not None:
        for source in data.get("sources") or []:
            if isinstance(source, dict) and isinstance(source.get("path"), str):
                source["path"] = _resolve_path(source["path"], base)
    try:
        return Definitions.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise InvalidInputError(f"{where} is not a valid definitions file: {problems}.") from exc


def load_definitions(path: str | Path) -> Definitions:
    """Read a YAML definitions file; source paths are relative to the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"Definitions file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"Cannot read definitions file {path}: {reason(exc)}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML: {reason(exc)}.") from exc
    return parse_definitions(data, where=str(path), base=path.resolve().parent)


def _resolve_path(value: str, base: Path) -> str:
    if "://" in value or value.startswith("/"):
        return value
    return str((base / value).resolve())


__all__ = [
    "COLUMN",
    "DTYPES",
    "Definitions",
    "Entity",
    "Feature",
    "FeatureView",
    "OnDemandFeatureView",
    "Source",
    "check_column",
    "format_ttl",
    "load_definitions",
    "parse_definitions",
    "parse_ttl",
]
