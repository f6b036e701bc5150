"""Retraining triggers: schedule, data drift, performance degradation, new data.

Each trigger kind is one function that looks at the world at ``now`` and
returns a :class:`Verdict`: either a :class:`Firing` (with the *key* that
names this occurrence, so two controllers that see the same occurrence
compute the same key and only one can claim it) or the reason it did not fire.

- ``schedule``: the latest cron time not yet claimed, if missed by at most
  ``max_delay``; key = that time.
- ``drift``: each evaluation records a check; it fires when the last
  ``sustained`` checks since the last drift run all found dataset drift;
  key = the cool-down window, and the claim refuses a second run within the
  cool-down, so one incident starts one retrain.
- ``performance``: realized (or CBPE-estimated) ``metric`` worse than
  ``threshold`` for ``sustained`` buckets and still worse in the latest one
  (:func:`~shipyard.monitoring.concept.detect_degradation`); key as for drift.
- ``new_data``: the source grew by ``min_new_rows`` rows or ``min_growth``
  since the data the champion (or the last new-data run) saw, or nothing was
  trained on it yet (no champion fingerprint, no earlier run); key = the row count.

>>> window_key(datetime(2026, 1, 1, 13, 5, tzinfo=UTC), timedelta(hours=24))
'2026-01-01T00:00:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import croniter

from shipyard.drift.detector import DriftDetector
from shipyard.errors import InvalidInputError
from shipyard.loop.config import (
    DriftTrigger,
    LoopConfig,
    NewDataTrigger,
    PerformanceTrigger,
    ScheduleTrigger,
    Trigger,
)
from shipyard.loop.pipelines import count_rows, read_source
from shipyard.monitoring.concept import detect_degradation
from shipyard.monitoring.performance import performance
from shipyard.store import records
from shipyard.store.loop_store import LoopStore

if TYPE_CHECKING:
    from shipyard.loop.services import LoopServices

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Firing:
    """A trigger that fired: what to claim, why, and the cool-down the claim enforces."""

    kind: str
    key: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    cooldown: timedelta | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of evaluating one trigger: a firing, or why not."""

    kind: str
    firing: Firing | None
    reason: str

    @property
    def fired(self) -> bool:
        return self.firing is not None


@dataclass(frozen=True)
class TriggerContext:
    """What a trigger may look at: the client, the model's config, the loop store, the time."""

    client: LoopServices
    config: LoopConfig
    store: LoopStore
    now: datetime
    champion: records.ModelVersion | None


def window_key(now: datetime, cooldown: timedelta) -> str:
    """The start of the cool-down window holding ``now`` (``now`` itself without a cool-down)."""
    if cooldown <= timedelta(0):
        return now.isoformat()
    index = (now - _EPOCH) // cooldown
    return (_EPOCH + index * cooldown).isoformat()


def evaluate_trigger(trigger: Trigger, ctx: TriggerContext) -> Verdict:
    """Evaluate one configured trigger at ``ctx.now``."""
    if isinstance(trigger, ScheduleTrigger):
        return check_schedule(trigger, ctx)
    if isinstance(trigger, DriftTrigger):
        return check_drift(trigger, ctx)
    if isinstance(trigger, PerformanceTrigger):
        return check_performance(trigger, ctx)
    if isinstance(trigger, NewDataTrigger):
        return check_new_data(trigger, ctx)
    raise InvalidInputError(f"Unknown trigger {trigger!r}.")  # pragma: no cover


def check_schedule(trigger: ScheduleTrigger, ctx: TriggerContext) -> Verdict:
    # croniter's get_prev is strictly before its start: start just after now so that
    # a tick exactly on a scheduled time sees that time.
    due = croniter(trigger.cron, ctx.now + timedelta(microseconds=1)).get_prev(datetime)
    due = due.astimezone(UTC)
    key = due.isoformat()
    if ctx.now - due > trigger.max_delay:
        return Verdict(
            "schedule",
            None,
            f"last scheduled time {key} ({trigger.cron}) was missed by more than "
            f"max_delay {trigger.max_delay}; waiting for the next one",
        )
    if ctx.store.is_claimed(ctx.config.model, "schedule", key):
        return Verdict("schedule", None, f"scheduled time {key} already handled")
    return Verdict(
        "schedule",
        Firing(
            "schedule",
            key,
            f"scheduled retrain ({trigger.cron}) due at {key}",
            {"cron": trigger.cron, "due": key},
            trigger.cooldown or None,
        ),
        "due",
    )


def _checks_since_last_run(ctx: TriggerContext, kind: str, sustained: int) -> list[Any]:
    last = ctx.store.last_run(ctx.config.model, kind)
    return ctx.store.recent_checks(
        ctx.config.model, kind, limit=sustained, after=None if last is None else last.created_at
    )


def check_drift(trigger: DriftTrigger, ctx: TriggerContext) -> Verdict:
    model = ctx.config.model
    target = ctx.config.pipeline.target
    ref_source = trigger.reference or ctx.config.pipeline.data
    reference = read_source(ref_source)
    drop = {target, ref_source.time_column, ctx.config.pipeline.data.time_column} - {None}
    reference = reference.drop(columns=[c for c in reference.columns if c in drop])
    if trigger.current is not None:
        current = read_source(trigger.current)
        where = trigger.current.describe()
    else:
        since = ctx.now - trigger.window
        current = ctx.client.prediction_log.read_inputs(model, since=since, until=ctx.now)
        where = f"prediction log {since:%Y-%m-%d %H:%M} to {ctx.now:%Y-%m-%d %H:%M} UTC"
    if len(current) < trigger.min_rows:
        return Verdict(
            "drift",
            None,
            f"only {len(current)} current rows in the {where} (min_rows {trigger.min_rows}); "
            "check skipped",
        )
    columns = [c for c in reference.columns if c in current.columns]
    if not columns:
        raise InvalidInputError(
            f"Drift check of {model}: the current data ({where}) shares no column with the "
            f"reference ({ref_source.describe()}: {list(reference.columns)[:10]})."
        )
    detector = DriftDetector(
        stattest=trigger.stattest,
        threshold=trigger.threshold,
        drift_share=trigger.drift_share,
        n_jobs=1,
    )
    result = detector.fit(reference[columns]).score(current[columns])
    ctx.store.record_check(
        model,
        "drift",
        at=ctx.now,
        positive=result.dataset_drift,
        details={
            "share": result.share,
            "drifted_columns": list(result.drifted_columns),
            "current": where,
            "rows": len(current),
        },
    )
    checks = _checks_since_last_run(ctx, "drift", trigger.sustained)
    positives = sum(c.positive for c in checks)
    summary = (
        f"dataset drift in {positives} of the last {len(checks)} checks "
        f"(latest: {result.n_drifted} of {result.n_columns} columns, share {result.share:.2f})"
    )
    if len(checks) < trigger.sustained or positives < trigger.sustained:
        return Verdict("drift", None, f"{summary}; {trigger.sustained} in a row needed")
    return Verdict(
        "drift",
        Firing(
            "drift",
            window_key(ctx.now, trigger.cooldown),
            f"data drift sustained over {trigger.sustained} checks: "
            f"{', '.join(result.drifted_columns)} drifted",
            {"share": result.share, "drifted_columns": list(result.drifted_columns)},
            trigger.cooldown,
        ),
        summary,
    )


def check_performance(trigger: PerformanceTrigger, ctx: TriggerContext) -> Verdict:
    champion = ctx.champion
    if champion is None:
        return Verdict("performance", None, "no champion serving: nothing to judge")
    report = performance(
        ctx.client.prediction_log,
        ctx.config.model,
        champion.version,
        window=trigger.window,
        since=ctx.now - trigger.lookback,
        until=ctx.now,
        baseline=champion.metrics,
    )
    verdict = detect_degradation(
        report,
        trigger.metric,
        baseline=trigger.threshold,
        margin=0.0,
        sustained=trigger.sustained,
        min_labels=trigger.min_labels,
    )
    positive = verdict.flagged and verdict.ongoing
    ctx.store.record_check(
        ctx.config.model,
        "performance",
        at=ctx.now,
        positive=positive,
        details={
            "metric": trigger.metric,
            "threshold": trigger.threshold,
            "values": [
                {"start": b.start.isoformat(), "value": b.value, "source": b.source}
                for b in verdict.evaluated[-trigger.sustained :]
            ],
            "reason": verdict.reason,
        },
    )
    if not positive:
        return Verdict("performance", None, verdict.reason)
    return Verdict(
        "performance",
        Firing(
            "performance",
            window_key(ctx.now, trigger.cooldown),
            f"{champion.ref}: {verdict.reason}",
            {"metric": trigger.metric, "threshold": trigger.threshold},
            trigger.cooldown,
        ),
        verdict.reason,
    )


def check_new_data(trigger: NewDataTrigger, ctx: TriggerContext) -> Verdict:
    source = trigger.source or ctx.config.pipeline.data
    rows = count_rows(source)
    seen = []
    if ctx.champion is not None and ctx.champion.data_fingerprint:
        n = ctx.champion.data_fingerprint.get("n_rows")
        if isinstance(n, int):
            seen.append(n)
    # A failed run did not train on its rows: the growth it saw is still to be trained on.
    last = ctx.store.last_run(ctx.config.model, "new_data", include_failed=False)
    if last is not None and isinstance(last.details.get("rows"), int):
        seen.append(last.details["rows"])
    baseline = max(seen, default=0)
    grown = rows - baseline
    if not seen and rows > 0:
        # Nothing was ever trained on this source (a fresh registry, no champion):
        # all of it is new data, whatever the thresholds say.
        why = f"{source.describe()} has {rows} rows and no model was trained on it yet"
        return Verdict(
            "new_data",
            Firing(
                "new_data",
                f"rows:{rows}",
                f"new data: {why}",
                {"rows": rows, "baseline_rows": 0},
                trigger.cooldown or None,
            ),
            why,
        )
    why = f"{source.describe()} has {rows} rows, {grown:+d} since the {baseline} last trained on"
    enough_rows = trigger.min_new_rows is not None and grown >= trigger.min_new_rows
    enough_growth = (
        trigger.min_growth is not None and baseline > 0 and grown / baseline >= trigger.min_growth
    )
    if not (enough_rows or enough_growth):
        wanted = []
        if trigger.min_new_rows is not None:
            wanted.append(f"{trigger.min_new_rows} new rows")
        if trigger.min_growth is not None:
            wanted.append(f"{trigger.min_growth:.0%} growth")
        return Verdict("new_data", None, f"{why}; needs {' or '.join(wanted)}")
    return Verdict(
        "new_data",
        Firing(
            "new_data",
            f"rows:{rows}",
            f"new data: {why}",
            {"rows": rows, "baseline_rows": baseline},
            trigger.cooldown or None,
        ),
        why,
    )


__all__ = [
    "Firing",
    "TriggerContext",
    "Verdict",
    "check_drift",
    "check_new_data",
    "check_performance",
    "check_schedule",
    "evaluate_trigger",
    "window_key",
]
