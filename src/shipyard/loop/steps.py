"""The steps of one loop run, in order: each reads and extends the run's :class:`RunState`.

    validate_data -> retrain -> register -> gates -> approval -> canary -> promote

A step writes what went in and what came out into its :class:`StepLog` (the
controller stores it with timings); it fails by raising :class:`StepFailed`
with the run status that failure means (``rejected`` keeps the champion
because the challenger was not good enough, ``rolled_back`` because its
canary was not, ``failed`` for anything broken). ``approval`` and ``canary``
may leave the run *waiting*; a later tick resumes it there.

>>> StepFailed("gates failed", run_status=RunStatus.REJECTED).run_status == "rejected"
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.clock import Clock
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.loop.canary import CanaryRequest, CanaryRunner
from shipyard.loop.config import LoopConfig
from shipyard.loop.pipelines import (
    DataSnapshot,
    TrainResult,
    finite_metrics,
    read_source,
    run_pipeline,
    snapshot,
)
from shipyard.loop.provenance import record_pipeline
from shipyard.store import records
from shipyard.store.loop_records import LoopRun, RunStatus
from shipyard.store.loop_store import LoopStore
from shipyard.tracking.fingerprint import fingerprint
from shipyard.validation.approvals import current_status
from shipyard.validation.contract_checks import check_contract
from shipyard.validation.service import get_contract, validate_model

if TYPE_CHECKING:
    from shipyard.loop.services import LoopServices


class StepFailed(ShipyardError):
    """A step could not do its job; the run ends with ``run_status`` and this message."""

    def __init__(self, message: str, *, run_status: RunStatus = RunStatus.FAILED) -> None:
        super().__init__(message)
        self.run_status = run_status


@dataclass
class StepLog:
    """What one step records: inputs, outputs, and whether it finished, was skipped or waits."""

    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    status: str = "succeeded"
    #: For a waiting step: the run status to wait in, and what it waits for.
    run_status: RunStatus | None = None
    message: str | None = None

    def skip(self, why: str) -> None:
        self.status = "skipped"
        self.outputs["skipped"] = why

    def wait(self, run_status: RunStatus, message: str) -> None:
        self.status, self.run_status, self.message = "waiting", run_status, message


@dataclass
class RunState:
    """Everything the steps of one run share; built by the controller."""

    client: LoopServices
    config: LoopConfig
    store: LoopStore
    run: LoopRun
    rng: np.random.Generator
    #: The seed ``rng`` was made from, when the controller derived it (kept in the lineage).
    split_seed: list[int] | None
    canary: CanaryRunner
    clock: Clock
    champion: records.ModelVersion | None
    resuming: bool = False
    snapshot: DataSnapshot | None = None
    train: pd.DataFrame | None = None
    holdout: pd.DataFrame | None = None
    holdout_lineage: dict[str, Any] | None = None
    training: TrainResult | None = None
    tracking_run_id: str | None = None
    candidate: records.ModelVersion | None = None

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without the target and time columns."""
        drop = {self.config.pipeline.target, self.config.pipeline.data.time_column} - {None}
        return frame.drop(columns=[c for c in frame.columns if c in drop])

    def require_candidate(self) -> records.ModelVersion:
        if self.candidate is None:
            if self.run.candidate_version is None:
                raise StepFailed("The run has no registered challenger to carry on with.")
            self.candidate = self.client.models.get_version(
                self.run.model, self.run.candidate_version
            )
        return self.candidate

    def canary_request(self, candidate: records.ModelVersion) -> CanaryRequest:
        assert self.champion is not None
        cfg = self.config.canary
        return CanaryRequest(
            model=self.config.model,
            candidate=candidate.version,
            champion=self.champion.version,
            deployment=cfg.deployment or self.config.model,
            policy=dict(cfg.policy),
            reason=f"loop run {self.run.id}: {self.run.reason}",
            alias=self.config.alias,
        )


# -- the steps -------------------------------------------------------------------------------


def validate_data(state: RunState, log: StepLog) -> None:
    """Read and pin the new training data; check it against the champion's data contract."""
    cfg = state.config
    champion = state.champion
    log.inputs.update(
        source=cfg.pipeline.data.describe(),
        contract_of=None if champion is None else champion.ref,
        ignore=list(cfg.contract.ignore),
    )
    state.snapshot = snapshot(cfg.pipeline.data)
    lineage = state.snapshot.lineage
    log.outputs.update(
        rows=state.snapshot.n_rows,
        content_hash=lineage["content_hash"],
        time_range=lineage.get("time_range"),
    )
    if not cfg.contract.enabled:
        log.outputs["contract"] = "check disabled in the loop config"
        return
    if champion is None:
        log.outputs["contract"] = "no champion yet: nothing to check against"
        return
    try:
        contract = get_contract(state.client.validation, champion)
    except NotFoundError:
        log.outputs["contract"] = f"{champion.ref} has no data contract"
        return
    result = check_contract(
        contract, state.features(state.snapshot.frame), strict=cfg.contract.strict
    )
    failing = [v for v in result.failing if v.expectation not in cfg.contract.ignore]
    warnings = [
        v for v in result.warnings if v not in failing and v.expectation not in cfg.contract.ignore
    ]
    log.outputs.update(
        contract=result.summary(),
        violations=[v.to_dict() for v in failing],
        warnings=[v.to_dict() for v in warnings],
        ignored=len(result.violations) - len(failing) - len(warnings),
    )
    if failing:
        listed = "; ".join(v.message for v in failing[:5])
        more = f" (and {len(failing) - 5} more)" if len(failing) > 5 else ""
        raise StepFailed(
            f"the new training data breaks the data contract of {champion.ref}: {listed}{more}. "
            f"Fix the data, or relax the contract (`shipyard validate contract {champion.ref} "
            "--import FILE`) or `contract.ignore` in the loop config."
        )


def _split(state: RunState) -> None:
    assert state.snapshot is not None
    pipeline = state.config.pipeline
    frame = state.snapshot.frame
    if pipeline.holdout is not None:
        state.train = frame
        state.holdout = read_source(pipeline.holdout)
        how: dict[str, Any] = {"source": pipeline.holdout.describe()}
    else:
        n_hold = max(1, round(len(frame) * pipeline.holdout_fraction))
        if len(frame) - n_hold < 2:
            raise StepFailed(
                f"{len(frame)} rows are too few to hold out {pipeline.holdout_fraction:.0%} "
                "and still train."
            )
        order = state.rng.permutation(len(frame))
        state.holdout = frame.iloc[np.sort(order[:n_hold])].reset_index(drop=True)
        state.train = frame.iloc[np.sort(order[n_hold:])].reset_index(drop=True)
        how = {"fraction": pipeline.holdout_fraction, "seed": state.split_seed}
    state.holdout_lineage = {**fingerprint(state.holdout).to_dict(), **how}


def retrain(state: RunState, log: StepLog) -> None:
    """Split off a fresh holdout, run the training pipeline, track the run."""
    cfg = state.config
    pipeline = cfg.pipeline
    params = {"target": pipeline.target, **pipeline.params}
    _split(state)
    assert state.train is not None and state.snapshot is not None and state.holdout is not None
    log.inputs.update(
        entry_point=pipeline.entry_point,
        params=params,
        train_rows=len(state.train),
        holdout_rows=len(state.holdout),
        data=state.snapshot.lineage,
    )
    tracker = state.client.tracker
    with tracker.start_run(f"loop-{cfg.model}", name=f"loop-run-{state.run.id}") as run:
        state.tracking_run_id = run.id
        run.set_tag("loop.run", str(state.run.id))
        run.set_tag("loop.trigger", f"{state.run.trigger_kind}:{state.run.trigger_key}")
        run.log_params({**params, "entry_point": pipeline.entry_point})
        snapshots = _snapshot_inputs(state, run.id)
        state.client.runs.log_dataset(run.id, "training", state.snapshot.lineage)
        state.client.runs.log_dataset(run.id, "holdout", state.holdout_lineage or {})
        record_pipeline(
            state.client.datasets,
            run.id,
            entry_point=pipeline.entry_point,
            params=params,
            code_path=pipeline.code_path,
            seed=state.split_seed,
            snapshots=snapshots,
            config=cfg.model_dump(mode="json"),
            extra={"model": cfg.model, "loop_run": state.run.id},
        )
        log.inputs["snapshots"] = snapshots
        result = run_pipeline(
            pipeline.entry_point, state.train, params, code_path=pipeline.code_path
        )
        metrics = finite_metrics(result.metrics)
        if metrics:
            run.log_metrics(metrics)
    state.training = TrainResult(result.model, metrics)
    log.outputs.update(tracking_run=state.tracking_run_id, metrics=metrics)


def _snapshot_inputs(state: RunState, run_id: str) -> dict[str, str]:
    """Store the data this retrain read (and its holdout) as dataset versions of the model's
    name; only chunks not stored before take space."""
    assert state.snapshot is not None and state.holdout is not None
    model, reason = state.config.model, f"loop run {state.run.id}: {state.run.reason}"
    refs: dict[str, str] = {}
    for context, frame, name in (
        ("training", state.snapshot.frame, model),
        ("holdout", state.holdout, f"{model}-holdout"),
    ):
        version = state.client.data.snapshot(frame, name=name, message=reason)
        state.client.datasets.record_use(version.dataset, version.version, run_id, context)
        refs[context] = version.ref
    state.snapshot.lineage["snapshot"] = refs["training"]
    if state.holdout_lineage is not None:
        state.holdout_lineage["snapshot"] = refs["holdout"]
    return refs


def register(state: RunState, log: StepLog) -> None:
    """Register the challenger with its lineage: data snapshot -> run -> version."""
    assert state.training is not None and state.train is not None and state.snapshot is not None
    cfg = state.config
    lineage = {
        **state.snapshot.lineage,
        "holdout": state.holdout_lineage,
        "loop_run": state.run.id,
        "trigger": f"{state.run.trigger_kind}:{state.run.trigger_key}",
    }
    log.inputs.update(tracking_run=state.tracking_run_id, data_fingerprint=lineage)
    # A random sample, not the first rows: the data contract is inferred from it, and the
    # first rows of time-ordered data would make the next retrain's data look unusual.
    features = state.features(state.train)
    if len(features) > cfg.pipeline.sample_rows:
        rows = np.sort(state.rng.choice(len(features), cfg.pipeline.sample_rows, replace=False))
        features = features.iloc[rows]
    sample = features
    version = state.client.registry.log_model(
        state.training.model,
        cfg.model,
        sample=sample,
        metrics=state.training.metrics,
        params={"target": cfg.pipeline.target, **cfg.pipeline.params},
        run_id=state.tracking_run_id,
        data_fingerprint=lineage,
        description=f"Retrained by the loop (run {state.run.id}): {state.run.reason}",
        tags={
            "loop.pipeline": cfg.pipeline.entry_point,
            "loop.run": str(state.run.id),
            "loop.trigger": f"{state.run.trigger_kind}:{state.run.trigger_key}",
        },
    )
    state.candidate = version
    state.run = state.store.update_run(
        state.run.id, now=state.clock.now(), candidate_version=version.version
    )
    log.outputs.update(version=version.ref, manifest_digest=version.manifest_digest)


def gates(state: RunState, log: StepLog) -> None:
    """Gate the challenger against the champion on the fresh holdout."""
    assert state.holdout is not None
    candidate = state.require_candidate()
    champion = state.champion
    gate_config = state.config.gates
    no_champion_note = None
    if champion is None and gate_config.min_changes:
        # A first model has nothing to beat: its champion-relative gates are skipped
        # (and said so), its absolute ones still hold.
        no_champion_note = (
            f"min_changes {', '.join(gate_config.min_changes)} skipped: "
            "no champion to compare with yet"
        )
        gate_config = gate_config.model_copy(update={"min_changes": []})
    spec = gate_config.to_spec()
    log.inputs.update(
        candidate=candidate.ref,
        champion=None if champion is None else champion.ref,
        holdout_rows=len(state.holdout),
        holdout_hash=(state.holdout_lineage or {}).get("content_hash"),
        gates=state.config.gates.model_dump(mode="json"),
    )
    if no_champion_note is not None:
        log.outputs["note"] = no_champion_note
    if spec.is_empty and champion is None:
        log.skip(no_champion_note or "no gates configured and no champion to compare with")
        return
    holdout = state.holdout.drop(
        columns=[c for c in [state.config.pipeline.data.time_column] if c in state.holdout]
    )
    _, report = validate_model(
        state.client.registry,
        state.client.validation,
        candidate.ref,
        data=holdout,
        target=state.config.pipeline.target,
        spec=spec,
        against=None if champion is None else champion.ref,
    )
    log.outputs.update(
        passed=report.passed,
        summary=report.summary(),
        checks=[c.to_dict() for c in report.checks],
    )
    if report.passed:  # the holdout calibrates the candidate's performance estimates
        version = state.client.registry.resolve(candidate.ref)
        log.outputs["cbpe_calibration"] = state.client.calibrations.fit_on_holdout(
            version,
            state.client.registry.load(version.ref),
            holdout,
            state.config.pipeline.target,
        )
    if not report.passed:
        failed = "; ".join(c.requirement for c in report.failures)
        raise StepFailed(
            f"{candidate.ref} failed its gates on the holdout: {failed}. "
            f"The champion {champion.ref if champion else '(none)'} keeps serving.",
            run_status=RunStatus.REJECTED,
        )


def approval(state: RunState, log: StepLog) -> None:
    """Wait for the approvals the model requires (``shipyard approve``), if any."""
    candidate = state.require_candidate()
    status = current_status(state.client.validation, candidate.model, candidate.version)
    log.inputs.update(candidate=candidate.ref, required=status.required)
    log.outputs.update(approvers=list(status.approvers), rejected_by=list(status.rejected_by))
    if status.rejected_after_last_approval:
        raise StepFailed(
            f"{candidate.ref} was rejected by {', '.join(status.rejected_by)}.",
            run_status=RunStatus.REJECTED,
        )
    if status.required == 0:
        log.skip("no approvals required")
        return
    if not status.satisfied:
        log.wait(
            RunStatus.AWAITING_APPROVAL,
            f"{candidate.ref} waits for approvals: {status.describe()}. Approve it with "
            f"`shipyard approve {candidate.ref} --comment '...'`.",
        )


def canary(state: RunState, log: StepLog) -> None:
    """Canary the challenger under the rollout policy; wait for its outcome."""
    candidate = state.require_candidate()
    if not state.config.canary.enabled:
        log.skip("canary disabled in the loop config")
        return
    if state.champion is None:
        log.skip("no champion serving: nothing to canary against")
        return
    request = state.canary_request(candidate)
    log.inputs.update(
        candidate=candidate.ref,
        champion=state.champion.ref,
        deployment=request.deployment,
        policy=request.policy,
    )
    if not state.resuming:
        log.outputs["started"] = state.canary.start(request)
    outcome = state.canary.poll(request)
    if outcome is None:
        waiting = f"canary of {candidate.ref} in {request.deployment!r} is running"
        unserved = state.canary.unserved(request)
        log.outputs["unserved"] = unserved
        log.wait(RunStatus.CANARY, waiting if unserved is None else f"{waiting}, but {unserved}")
        return
    log.outputs.update(promoted=outcome.promoted, outcome=outcome.reason, **outcome.details)
    if not outcome.promoted:
        raise StepFailed(
            f"canary rolled back: {outcome.reason}. The champion {state.champion.ref} keeps "
            "serving.",
            run_status=RunStatus.ROLLED_BACK,
        )


def promote(state: RunState, log: StepLog) -> None:
    """Move the serving alias (``production``) to the challenger."""
    candidate = state.require_candidate()
    alias = state.config.alias
    log.inputs.update(candidate=candidate.ref, alias=alias)
    previous = state.client.registry.set_alias(
        candidate.model,
        alias,
        candidate.version,
        reason=f"promoted by loop run {state.run.id} ({state.run.reason})",
    )
    if previous == candidate.version and state.champion is not None:
        # The canary's deployment follows the alias: its promotion moved it already.
        log.outputs["moved_by"] = "the canary deployment's promotion"
        previous = state.champion.version
    log.outputs.update(
        alias=f"{candidate.model}@{alias}", version=candidate.version, previous=previous
    )


#: Every step, in order.
STEPS: tuple[tuple[str, Callable[[RunState, StepLog], None]], ...] = (
    ("validate_data", validate_data),
    ("retrain", retrain),
    ("register", register),
    ("gates", gates),
    ("approval", approval),
    ("canary", canary),
    ("promote", promote),
)
#: Where a waiting run resumes, by its status.
RESUME_AT = {"awaiting_approval": "approval", "canary": "canary"}

__all__ = [
    "RESUME_AT",
    "STEPS",
    "RunState",
    "StepFailed",
    "StepLog",
    "approval",
    "canary",
    "gates",
    "promote",
    "register",
    "retrain",
    "validate_data",
]
