"""Repository for the closed loop: claimed triggers (runs), their steps, trigger checks.

It composes a :class:`~shipyard.store.metadata.MetadataStore` (same engine, same
transaction helpers) like :mod:`~shipyard.store.validation_store`. The one
subtle method is :meth:`LoopStore.claim`: in a single write transaction,
serialised per model (a PostgreSQL advisory lock; on SQLite the write lock
``BEGIN IMMEDIATE`` takes), it checks that no run of the model is active, that
the trigger kind is out of its cool-down and that the trigger was not handled
already, then inserts the run. The unique constraint on (model, kind, key)
backs it up: whatever happens, two controllers never both own one trigger.
When the claim is refused, :class:`ClaimRefused` says which of these held.

A *failed* run (something broke: bad data, a pipeline error) neither starts
the cool-down nor uses up its trigger: the next time the trigger fires, the
occurrence is claimed again, under the key ``<key>#retry<n>``.

>>> store = LoopStore(MetadataStore("sqlite:///:memory:"))          # doctest: +SKIP
>>> run = store.claim("iris", "schedule", "2026-01-01T03:00", reason="cron",
...                   actor="host:1", now=now)                      # doctest: +SKIP
>>> store.claim(...).why   # a second claim of the same trigger      # doctest: +SKIP
'handled'
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from shipyard.errors import InvalidInputError, NotFoundError, StoreError
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema_loop import LoopCheckRow, LoopRunRow, LoopStepRow

#: Run statuses. Active runs block new claims for their model.
RUN_STATUSES = (
    "running",
    "awaiting_approval",
    "canary",
    "promoted",
    "rejected",
    "rolled_back",
    "failed",
)
ACTIVE_STATUSES = ("running", "awaiting_approval", "canary")
STEP_STATUSES = ("succeeded", "failed", "skipped", "waiting")
#: Marks a second (third...) claim of one trigger occurrence after failed runs.
RETRY_MARK = "#retry"


class LoopRunNotFoundError(NotFoundError):
    """No loop run with that id."""


@dataclass(frozen=True)
class LoopStep:
    """One recorded step of a loop run."""

    id: int
    run_id: int
    name: str
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime
    duration_s: float


@dataclass(frozen=True)
class LoopRun:
    """One pass of the loop for one model, started by one claimed trigger."""

    id: int
    model: str
    trigger_kind: str
    trigger_key: str
    reason: str
    details: dict[str, Any]
    status: str
    message: str | None
    champion_version: int | None
    candidate_version: int | None
    claimed_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    steps: tuple[LoopStep, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class ClaimRefused:
    """Why a trigger could not be claimed, and the run in the way.

    ``why`` is ``active`` (a run of the model is still going), ``handled``
    (this occurrence already has a run that did not fail), ``cooling_down``
    (a run of this trigger kind started within the cool-down; ``until`` is
    when it ends) or ``race`` (another controller claimed it at the same moment).
    """

    why: str
    run: LoopRun | None = None
    until: datetime | None = None

    def describe(self, retrain_command: str | None = None) -> str:
        """Why, in a sentence; ``retrain_command`` is the full command that retrains now."""
        run = self.run
        if self.why == "active" and run is not None:
            return (
                f"run {run.id} is still {run.status} (since {run.created_at:%Y-%m-%d %H:%M} "
                "UTC); later ticks resume it"
            )
        if self.why == "handled" and run is not None:
            return f"this occurrence was handled already by run {run.id} ({run.status})"
        if self.why == "cooling_down" and run is not None and self.until is not None:
            return (
                f"cooling down: run {run.id} ({run.trigger_kind}, {run.status}) started "
                f"{run.created_at:%Y-%m-%d %H:%M} UTC; no new {run.trigger_kind} run before "
                f"{self.until:%Y-%m-%d %H:%M} UTC (failed runs do not count). "
                f"`{retrain_command or f'shipyard loop trigger {run.model} -c LOOP_CONFIG'}` "
                "retrains now"
            )
        return "another controller claimed it at the same moment"


@dataclass(frozen=True)
class TriggerCheck:
    """One evaluation of a trigger kept for "sustained over N checks" rules."""

    id: int
    model: str
    kind: str
    at: datetime
    positive: bool
    details: dict[str, Any]


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: NaN/inf become None, unknown objects their ``str``.

    PostgreSQL's JSON type refuses NaN, and step outputs carry metrics that may be NaN.

    >>> json_safe({"a": float("nan"), "b": (1, 2)})
    {'a': None, 'b': [1, 2]}
    """

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return clean(json.loads(json.dumps(value, default=_default)))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def _occurrence(key: str) -> Any:
    """Runs of one trigger occurrence: its key, and the keys of its retries."""
    return or_(
        LoopRunRow.trigger_key == key,
        LoopRunRow.trigger_key.startswith(key + RETRY_MARK, autoescape=True),
    )


def _lock_key(model: str) -> int:
    # A stable 31-bit key per model for pg_advisory_xact_lock (hash() is salted per process).
    return zlib.crc32(f"shipyard-loop:{model}".encode()) & 0x7FFFFFFF


class LoopStore:
    """Runs, steps and trigger checks of the closed loop, on the metadata database."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- claiming triggers -----------------------------------------------------

    def claim(
        self,
        model: str,
        kind: str,
        key: str,
        *,
        reason: str,
        actor: str,
        now: datetime,
        details: dict[str, Any] | None = None,
        cooldown: timedelta | None = None,
        champion_version: int | None = None,
        stale_after: timedelta | None = None,
    ) -> LoopRun | ClaimRefused:
        """Claim trigger (``model``, ``kind``, ``key``) and open its run, or say why not.

        Refused (:class:`ClaimRefused`) when a run of ``model`` is still active,
        the occurrence was handled by a run that did not fail, or a run of this
        kind that did not fail started less than ``cooldown`` ago. A ``running``
        run not updated for ``stale_after`` is taken for a dead controller's and
        marked failed first.
        """
        if not key or len(key) > 255 - len(RETRY_MARK) - 6:
            raise InvalidInputError(f"A trigger key must be 1-240 characters, got {key!r}.")

        def work(session: Session) -> int | ClaimRefused:
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(model)})
            active = session.scalars(
                select(LoopRunRow).where(
                    LoopRunRow.model == model, LoopRunRow.status.in_(ACTIVE_STATUSES)
                )
            ).all()
            for row in active:
                if (
                    stale_after is not None
                    and row.status == "running"
                    and row.updated_at < now - stale_after
                ):
                    row.status = "failed"
                    row.message = (
                        f"Abandoned: no progress since {row.updated_at.isoformat()} "
                        f"(controller {row.claimed_by} presumably died)."
                    )
                    row.updated_at = row.finished_at = now
                else:
                    return ClaimRefused("active", self._run_record(session, row))
            if cooldown is not None:
                recent = session.scalar(
                    select(LoopRunRow)
                    .where(
                        LoopRunRow.model == model,
                        LoopRunRow.trigger_kind == kind,
                        LoopRunRow.status != "failed",
                        LoopRunRow.created_at > now - cooldown,
                    )
                    .order_by(LoopRunRow.created_at.desc())
                    .limit(1)
                )
                if recent is not None:
                    return ClaimRefused(
                        "cooling_down",
                        self._run_record(session, recent),
                        until=recent.created_at + cooldown,
                    )
            attempts = session.scalars(
                select(LoopRunRow).where(
                    LoopRunRow.model == model,
                    LoopRunRow.trigger_kind == kind,
                    _occurrence(key),
                )
            ).all()
            handled = [r for r in attempts if r.status != "failed"]
            if handled:
                return ClaimRefused("handled", self._run_record(session, handled[0]))
            row = LoopRunRow(
                model=model,
                trigger_kind=kind,
                # Failed attempts keep their key (and their history); a retry gets its own.
                trigger_key=f"{key}{RETRY_MARK}{len(attempts)}" if attempts else key,
                reason=reason,
                details=json_safe(details or {}),
                status="running",
                champion_version=champion_version,
                claimed_by=actor,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return row.id

        try:
            outcome = self.metadata._write(work)
        except StoreError as exc:
            # The constraint caught a race the lock did not (it should not happen).
            if isinstance(exc.__cause__, SAIntegrityError):
                return ClaimRefused("race")
            raise
        return outcome if isinstance(outcome, ClaimRefused) else self.get_run(outcome)

    def is_claimed(self, model: str, kind: str, key: str) -> bool:
        """Whether this occurrence has a run that did not fail (a failed one is retried)."""
        with self.metadata._read() as session:
            found = session.scalar(
                select(LoopRunRow.id).where(
                    LoopRunRow.model == model,
                    LoopRunRow.trigger_kind == kind,
                    LoopRunRow.status != "failed",
                    _occurrence(key),
                )
            )
            return found is not None

    # -- runs and steps ------------------------------------------------------------

    def update_run(
        self,
        run_id: int,
        *,
        now: datetime,
        status: str | None = None,
        message: str | None = None,
        candidate_version: int | None = None,
        champion_version: int | None = None,
    ) -> LoopRun:
        """Change a run's status (a final status also sets ``finished_at``) or versions."""
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInputError(f"Run status {status!r} is not one of {RUN_STATUSES}.")

        def work(session: Session) -> None:
            row = self._run_row(session, run_id)
            if status is not None:
                row.status = status
                if status not in ACTIVE_STATUSES:
                    row.finished_at = now
            if message is not None:
                row.message = message
            if candidate_version is not None:
                row.candidate_version = candidate_version
            if champion_version is not None:
                row.champion_version = champion_version
            row.updated_at = now

        self.metadata._write(work)
        return self.get_run(run_id)

    def record_step(
        self,
        run_id: int,
        name: str,
        *,
        status: str,
        started_at: datetime,
        finished_at: datetime,
        duration_s: float,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> LoopStep:
        """Append a finished step to a run (and mark the run as alive)."""
        if status not in STEP_STATUSES:
            raise InvalidInputError(f"Step status {status!r} is not one of {STEP_STATUSES}.")

        def work(session: Session) -> int:
            run = self._run_row(session, run_id)
            row = LoopStepRow(
                run_id=run_id,
                name=name,
                status=status,
                inputs=json_safe(inputs or {}),
                outputs=json_safe(outputs or {}),
                error=error,
                started_at=started_at,
                finished_at=finished_at,
                duration_s=float(duration_s),
            )
            session.add(row)
            run.updated_at = finished_at
            session.flush()
            return row.id

        step_id = self.metadata._write(work)
        with self.metadata._read() as session:
            return self._step_record(session.get_one(LoopStepRow, step_id))

    def get_run(self, run_id: int) -> LoopRun:
        with self.metadata._read() as session:
            return self._run_record(session, self._run_row(session, run_id))

    def list_runs(
        self,
        model: str | None = None,
        *,
        status: str | tuple[str, ...] | None = None,
        limit: int = 20,
    ) -> list[LoopRun]:
        """Runs, newest first, with their steps."""
        with self.metadata._read() as session:
            query = select(LoopRunRow).order_by(LoopRunRow.id.desc()).limit(limit)
            if model is not None:
                query = query.where(LoopRunRow.model == model)
            if status is not None:
                wanted = (status,) if isinstance(status, str) else status
                query = query.where(LoopRunRow.status.in_(wanted))
            return [self._run_record(session, r) for r in session.scalars(query)]

    def last_run(self, model: str, kind: str, *, include_failed: bool = True) -> LoopRun | None:
        """The newest run of ``model`` started by a trigger of ``kind`` (failed ones too?)."""
        with self.metadata._read() as session:
            query = select(LoopRunRow).where(
                LoopRunRow.model == model, LoopRunRow.trigger_kind == kind
            )
            if not include_failed:
                query = query.where(LoopRunRow.status != "failed")
            row = session.scalar(query.order_by(LoopRunRow.id.desc()).limit(1))
            return None if row is None else self._run_record(session, row)

    # -- trigger checks ----------------------------------------------------------------

    def record_check(
        self, model: str, kind: str, *, at: datetime, positive: bool, details: dict[str, Any]
    ) -> TriggerCheck:
        def work(session: Session) -> int:
            row = LoopCheckRow(
                model=model, kind=kind, at=at, positive=positive, details=json_safe(details)
            )
            session.add(row)
            session.flush()
            return row.id

        check_id = self.metadata._write(work)
        with self.metadata._read() as session:
            return self._check_record(session.get_one(LoopCheckRow, check_id))

    def recent_checks(
        self, model: str, kind: str, *, limit: int, after: datetime | None = None
    ) -> list[TriggerCheck]:
        """The newest ``limit`` checks of ``model``/``kind`` later than ``after``, newest first."""
        with self.metadata._read() as session:
            query = (
                select(LoopCheckRow)
                .where(LoopCheckRow.model == model, LoopCheckRow.kind == kind)
                .order_by(LoopCheckRow.at.desc(), LoopCheckRow.id.desc())
                .limit(limit)
            )
            if after is not None:
                query = query.where(LoopCheckRow.at > after)
            return [self._check_record(r) for r in session.scalars(query)]

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _run_row(session: Session, run_id: int) -> LoopRunRow:
        row = session.get(LoopRunRow, run_id)
        if row is None:
            raise LoopRunNotFoundError(
                f"No loop run with id {run_id}. List runs with `shipyard loop history MODEL`."
            )
        return row

    def _run_record(self, session: Session, row: LoopRunRow) -> LoopRun:
        steps = session.scalars(
            select(LoopStepRow).where(LoopStepRow.run_id == row.id).order_by(LoopStepRow.id)
        )
        return LoopRun(
            id=row.id,
            model=row.model,
            trigger_kind=row.trigger_kind,
            trigger_key=row.trigger_key,
            reason=row.reason,
            details=dict(row.details or {}),
            status=row.status,
            message=row.message,
            champion_version=row.champion_version,
            candidate_version=row.candidate_version,
            claimed_by=row.claimed_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
            steps=tuple(self._step_record(s) for s in steps),
        )

    @staticmethod
    def _step_record(row: LoopStepRow) -> LoopStep:
        return LoopStep(
            id=row.id,
            run_id=row.run_id,
            name=row.name,
            status=row.status,
            inputs=dict(row.inputs or {}),
            outputs=dict(row.outputs or {}),
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_s=row.duration_s,
        )

    @staticmethod
    def _check_record(row: LoopCheckRow) -> TriggerCheck:
        return TriggerCheck(
            id=row.id,
            model=row.model,
            kind=row.kind,
            at=row.at,
            positive=row.positive,
            details=dict(row.details or {}),
        )
