"""Per-model loop configuration: pipeline, triggers, gates, approval, canary.

Written in YAML (one model, or ``models:`` with a list) or built in Python
from the same pydantic models. It is validated once, on load; an error names
the file and the field (``iris.yaml: models[0].triggers[1].cron: ...``).
Relative paths are read relative to the config file, code included: the
entry point's module is imported from ``pipeline.code_path``, by default the
config file's own folder, so a ``train.py`` beside ``loop.yaml`` needs no
``PYTHONPATH``.

Example (YAML)::

    model: iris
    pipeline:
      entry_point: shipyard.loop.examples:train_iris
      params: {estimator: logistic_regression, C: 1.0}
      data: {path: data/iris.csv}
      target: species
    triggers:
      - {kind: schedule, cron: "0 3 * * *"}
      - {kind: drift, sustained: 3, cooldown: 24h}
      - {kind: performance, metric: accuracy, threshold: 0.85}
      - {kind: new_data, min_new_rows: 500}
    gates: {thresholds: ["accuracy>=0.9"], min_changes: ["accuracy:+0"]}
    canary: {policy: {steps: [10, 50, 100], step_requests: 200}}

>>> cfg = LoopConfig.model_validate({"model": "iris", "pipeline": {
...     "entry_point": "shipyard.loop.examples:train_iris",
...     "data": {"path": "iris.csv"}, "target": "species"},
...     "triggers": [{"kind": "schedule", "cron": "0 3 * * *"}]})
>>> cfg.triggers[0].kind, cfg.gates.to_spec().is_empty
('schedule', True)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from shipyard.errors import ConfigError, ShipyardError
from shipyard.monitoring.durations import parse_duration
from shipyard.names import check_name
from shipyard.registry.refs import check_alias
from shipyard.validation.contract_checks import EXPECTATIONS
from shipyard.validation.gates import DEFAULT_MIN_SLICE_ROWS, GateSpec, build_spec

_ENTRY_POINT = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _duration(value: Any) -> timedelta:
    """``1h``-style durations, and ISO 8601 (``PT1H``) so a dumped config loads back."""
    try:
        return parse_duration(value)
    except ShipyardError as exc:
        try:
            return _TIMEDELTA.validate_python(value)
        except ValidationError:
            raise ValueError(str(exc)) from exc


def _checked(check: Callable[..., str], value: str, **kwargs: Any) -> str:
    """Run a Shipyard name check inside a pydantic validator (which wants ValueError)."""
    try:
        return check(value, **kwargs)
    except ShipyardError as exc:
        raise ValueError(str(exc)) from exc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """Where training data lives: a file, a folder of files, or a database table.

    ``time_column`` names the event-time column; a retrain then pins the time
    range it covered, beside the content fingerprint.
    """

    path: str | None = None
    table: str | None = None
    url: str | None = Field(
        default=None, description="SQLAlchemy URL of the database holding `table`."
    )
    time_column: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DataSource:
        if (self.path is None) == (self.table is None):
            raise ValueError(
                "give exactly one of `path` (a file or folder) or `table` (with `url`)"
            )
        if self.table is not None and not self.url:
            raise ValueError("a `table` source needs `url`, the SQLAlchemy URL of its database")
        return self

    def describe(self) -> str:
        return self.path if self.path is not None else f"{self.url}#{self.table}"

    def relative_to(self, base: Path) -> DataSource:
        """This source with a relative ``path`` anchored at ``base``."""
        if self.path is None or Path(self.path).is_absolute() or "://" in self.path:
            return self
        return self.model_copy(update={"path": str(base / self.path)})


class PipelineConfig(_Strict):
    """The training pipeline: a ``module:function`` entry point, its params and its data."""

    entry_point: str
    code_path: str | None = Field(
        default=None,
        description="Folder the entry point is imported from (before installed packages); "
        "default: the config file's folder.",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    data: DataSource
    target: str
    holdout: DataSource | None = Field(
        default=None, description="A fixed holdout set; by default a fresh split of the new data."
    )
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    sample_rows: int = Field(
        default=200,
        ge=1,
        description="Rows of inputs stored with the version, drawn at random from the training "
        "data: the signature, data contract and drift reference are inferred from them.",
    )

    @field_validator("entry_point")
    @classmethod
    def _entry_point(cls, value: str) -> str:
        if not _ENTRY_POINT.fullmatch(value):
            raise ValueError(f"{value!r} is not an entry point; expected 'package.module:function'")
        return value


class _TriggerBase(_Strict):
    cooldown: Annotated[timedelta, Field(description="No second run of this kind within it.")] = (
        timedelta(hours=24)
    )

    @field_validator("cooldown", mode="before")
    @classmethod
    def _parse_cooldown(cls, value: Any) -> timedelta:
        return _duration(value)


class ScheduleTrigger(_TriggerBase):
    """Retrain on a cron schedule (five fields, UTC)."""

    kind: Literal["schedule"]
    cron: str
    max_delay: timedelta = Field(
        default=timedelta(hours=1), description="A scheduled time missed by longer is skipped."
    )
    cooldown: timedelta = timedelta(0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression; expected five fields such as '0 3 * * *'"
            )
        return value

    @field_validator("max_delay", mode="before")
    @classmethod
    def _parse_delay(cls, value: Any) -> timedelta:
        return _duration(value)


class DriftTrigger(_TriggerBase):
    """Retrain when data drift is detected in ``sustained`` checks in a row."""

    kind: Literal["drift"]
    reference: DataSource | None = Field(
        default=None, description="Reference data; by default the pipeline's training data."
    )
    current: DataSource | None = Field(
        default=None, description="Current data; by default the prediction log's last `window`."
    )
    window: timedelta = timedelta(hours=24)
    sustained: int = Field(default=3, ge=1)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    stattest: str | None = None
    threshold: float | None = Field(default=None, ge=0)
    min_rows: int = Field(
        default=30, ge=2, description="Fewer current rows and the check is skipped."
    )

    @field_validator("window", mode="before")
    @classmethod
    def _parse_window(cls, value: Any) -> timedelta:
        return _duration(value)


class PerformanceTrigger(_TriggerBase):
    """Retrain when realized (or, before labels, estimated) performance is below a threshold."""

    kind: Literal["performance"]
    metric: Literal["accuracy", "f1_macro", "roc_auc", "mae", "rmse"] = "accuracy"
    threshold: float
    window: timedelta = timedelta(hours=1)
    lookback: timedelta = timedelta(hours=24)
    sustained: int = Field(default=3, ge=1, description="Consecutive bad buckets needed.")
    min_labels: int = Field(default=1, ge=1)

    @field_validator("window", "lookback", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> timedelta:
        return _duration(value)


class NewDataTrigger(_TriggerBase):
    """Retrain when the data source grew past a threshold since the champion's training data."""

    kind: Literal["new_data"]
    source: DataSource | None = Field(default=None, description="By default the pipeline's data.")
    min_new_rows: int | None = Field(default=None, ge=1)
    min_growth: float | None = Field(
        default=None, gt=0, description="Growth as a fraction, 0.2 = 20%."
    )
    cooldown: timedelta = timedelta(0)

    @model_validator(mode="after")
    def _some_threshold(self) -> NewDataTrigger:
        if self.min_new_rows is None and self.min_growth is None:
            raise ValueError("give `min_new_rows` or `min_growth` (or both)")
        return self


Trigger = Annotated[
    ScheduleTrigger | DriftTrigger | PerformanceTrigger | NewDataTrigger,
    Field(discriminator="kind"),
]


class ContractConfig(_Strict):
    """Check new training data against the champion's data contract before retraining.

    Errors (wrong types, missing values, impossible values, unknown categories)
    stop the run; warnings (values outside the expected range, a heavy tail
    share: what drifted data looks like, and what the loop retrains for) are
    recorded and the run goes on, unless ``strict``.
    """

    enabled: bool = True
    strict: bool = Field(default=False, description="Stop on warnings (range, tails) too.")
    ignore: tuple[str, ...] = Field(
        default=("tails",), description=f"Expectation kinds not to fail on: any of {EXPECTATIONS}."
    )

    @field_validator("ignore")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EXPECTATIONS))
        if unknown:
            raise ValueError(f"unknown expectation kinds {unknown}; known: {list(EXPECTATIONS)}")
        return value


class GatesConfig(_Strict):
    """Model gates, in the forms of ``shipyard validate model`` (see :func:`build_spec`).

    They run on the fresh holdout against the champion. With no checks at all,
    the challenger's primary metric (accuracy, or RMSE) must be no worse than
    the champion's; the very first version, with no champion, is then not gated.
    """

    thresholds: tuple[str, ...] = ()
    min_changes: tuple[str, ...] = ()
    slice_column: str | None = None
    max_slice_gaps: tuple[str, ...] = ()
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    latency_budget_ms: float | None = None
    size_budget_mb: float | None = None

    @model_validator(mode="after")
    def _buildable(self) -> GatesConfig:
        try:
            self.to_spec()
        except ShipyardError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def to_spec(self) -> GateSpec:
        return build_spec(
            thresholds=self.thresholds,
            min_changes=self.min_changes,
            slice_column=self.slice_column,
            max_slice_gaps=self.max_slice_gaps,
            min_slice_rows=self.min_slice_rows,
            latency_budget_ms=self.latency_budget_ms,
            size_budget_mb=self.size_budget_mb,
        )


class CanaryConfig(_Strict):
    """Canary the challenger beside the champion under a progressive rollout policy.

    ``policy`` holds :class:`~shipyard.rollout.records.RolloutPolicy` fields
    (``steps``, ``step_seconds``, ``step_requests``, guards); the deployment
    defaults to one named after the model, created on first use.
    """

    enabled: bool = True
    deployment: str | None = Field(
        default=None, description="Deployment name; default: the model name."
    )
    policy: dict[str, Any] = Field(default_factory=dict)

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, value: str | None) -> str | None:
        return None if value is None else _checked(check_name, value, kind="Deployment name")


class LoopConfig(_Strict):
    """Everything the loop needs to know about one model."""

    model: str
    pipeline: PipelineConfig
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    contract: ContractConfig = Field(default_factory=ContractConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    alias: str = Field(default="production", description="The alias a promoted challenger takes.")
    stale_after: timedelta = Field(
        default=timedelta(hours=6),
        description="A run without progress this long is taken for dead.",
    )

    @field_validator("model")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked(check_name, value, kind="Model name")

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        return _checked(check_alias, value)

    @field_validator("stale_after", mode="before")
    @classmethod
    def _parse_stale(cls, value: Any) -> timedelta:
        return _duration(value)

    def anchored(self, base: Path) -> LoopConfig:
        """This config with relative paths (data, code) read relative to ``base``."""
        code = Path(self.pipeline.code_path) if self.pipeline.code_path is not None else base
        pipeline = self.pipeline.model_copy(
            update={
                "data": self.pipeline.data.relative_to(base),
                "holdout": self.pipeline.holdout and self.pipeline.holdout.relative_to(base),
                "code_path": str(code if code.is_absolute() else base / code),
            }
        )
        triggers = []
        for trigger in self.triggers:
            update = {
                name: getattr(trigger, name).relative_to(base)
                for name in ("reference", "current", "source")
                if getattr(trigger, name, None) is not None
            }
            triggers.append(trigger.model_copy(update=update))
        return self.model_copy(update={"pipeline": pipeline, "triggers": tuple(triggers)})


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("schedule", "drift", "performance", "new_data"):
            continue  # pydantic's discriminator tag, not a field the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_configs(data: Any, *, source: str = "loop config") -> list[LoopConfig]:
    """Validate one model's config, or ``{"models": [...]}``; errors name the field."""
    if isinstance(data, dict) and "models" in data:
        items, prefix = data["models"], "models"
        if set(data) - {"models"}:
            extra = sorted(set(data) - {"models"})
            raise ConfigError(f"{source}: unknown top-level keys {extra}; expected only `models`.")
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{source}: `models` must be a non-empty list of model configs.")
    elif isinstance(data, dict):
        items, prefix = [data], None
    else:
        raise ConfigError(
            f"{source}: expected a mapping with `model:`, `pipeline:` and `triggers:` "
            f"(or `models:` with a list of them), got {type(data).__name__}."
        )
    configs = []
    for i, item in enumerate(items):
        try:
            configs.append(LoopConfig.model_validate(item))
        except ValidationError as exc:
            lines = []
            errors = exc.errors()
            for err in errors:
                if err["type"] == "too_short" and any(
                    len(e["loc"]) > len(err["loc"]) and e["loc"][: len(err["loc"])] == err["loc"]
                    for e in errors
                ):
                    continue  # the items themselves failed; that is the news
                where = _location(err["loc"])
                where = f"{prefix}[{i}].{where}" if prefix else where
                lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            raise ConfigError(f"{source}: invalid loop config:\n  " + "\n  ".join(lines)) from exc
    names = [c.model for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: model(s) {dupes} configured more than once.")
    return configs


def load_config(path: Path | str) -> list[LoopConfig]:
    """Read a YAML loop config (one model or ``models:``); data paths are anchored at its folder.

    A folder reads every ``*.yaml``/``*.yml`` file in it.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise ConfigError(f"No *.yaml loop configs in folder {path}.")
        configs = [c for f in files for c in load_config(f)]
        names = [c.model for c in configs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{path}: model(s) {dupes} configured in more than one file.")
        return configs
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read loop config {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    base = path.resolve().parent
    return [c.anchored(base) for c in parse_configs(data, source=str(path))]


__all__ = [
    "CanaryConfig",
    "ContractConfig",
    "DataSource",
    "DriftTrigger",
    "GatesConfig",
    "LoopConfig",
    "NewDataTrigger",
    "PerformanceTrigger",
    "PipelineConfig",
    "ScheduleTrigger",
    "Trigger",
    "load_config",
    "parse_configs",
]
