"""The loop controller: evaluate triggers, claim one, run the steps, record everything.

One :meth:`LoopController.tick` is one pass over every configured model:

1. a run of the model waiting for approvals or for its canary is resumed;
2. otherwise the model's triggers are evaluated in config order, and the
   first one that fires *and can be claimed* (see
   :meth:`~shipyard.store.loop_store.LoopStore.claim`) starts a run;
3. the run executes the steps of :mod:`shipyard.loop.steps` in order, each
   recorded with inputs, outputs and duration; a failed step ends the run
   and its message says why.

``shipyard loop tick`` calls :meth:`tick` once (cron, Airflow, a Kubernetes
CronJob); ``shipyard loop run`` calls :meth:`serve`, which ticks until told
to stop. The clock and the random generator (the holdout split) are injected.

>>> controller = LoopController(client, load_config("loop.yaml"))   # doctest: +SKIP
>>> [r.summary() for r in controller.tick()]                        # doctest: +SKIP
['iris: drift fired -> run 7 promoted (iris:4 now serves)']
"""

from __future__ import annotations

import os
import shlex
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.loop.canary import CanaryRunner, RolloutCanaryRunner
from shipyard.loop.config import LoopConfig
from shipyard.loop.steps import RESUME_AT, STEPS, RunState, StepFailed, StepLog
from shipyard.loop.triggers import Firing, TriggerContext, Verdict, evaluate_trigger
from shipyard.store import records
from shipyard.store.loop_records import ClaimRefused, LoopRun, RunStatus

if TYPE_CHECKING:
    from shipyard.loop.services import LoopServices


def default_owner() -> str:
    """Who claims triggers: ``host:pid``, enough to tell two controllers apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ModelTick:
    """What one tick did for one model."""

    model: str
    verdicts: tuple[Verdict, ...] = ()
    run: LoopRun | None = None
    resumed: bool = False
    errors: tuple[str, ...] = field(default_factory=tuple)
    #: Triggers that fired but could not be claimed, each with why.
    refused: tuple[tuple[str, ClaimRefused], ...] = ()
    #: The command that retrains the model now (named in hints).
    retrain_command: str | None = None

    def summary(self) -> str:
        if self.run is None and self.errors and not self.verdicts:
            return f"{self.model}: error: {self.errors[0]}"
        if self.run is None:
            if self.refused:
                why = "; ".join(
                    f"{kind} fired, but {r.describe(self.retrain_command)}"
                    for kind, r in self.refused
                )
                return f"{self.model}: {why}"
            return f"{self.model}: no trigger fired"
        how = "resumed" if self.resumed else f"{self.run.trigger_kind} fired ->"
        text = f"{self.model}: {how} run {self.run.id} {self.run.status}"
        return text + (f": {self.run.message}" if self.run.message else "")


class LoopController:
    """Runs the closed loop for a set of models.

    Args:
        client: the Shipyard client (stores, registry, prediction log).
        configs: one :class:`LoopConfig` per model.
        clock: the time of runs and steps, and the timer of step durations
            (inject a :class:`~shipyard.clock.ManualClock` in tests).
        rng: the random generator of holdout splits. By default each run gets its
            own, seeded from ``(seed, run id)`` and recorded in the lineage, so every
            retrain holds out a fresh split that can still be reproduced.
        canary: the canary runner (default: :class:`RolloutCanaryRunner`).
        owner: recorded as the claimer of each run.
        source: the config file or folder, as the user named it; hints that say how
            to retrain now name it (``shipyard loop trigger iris -c loop.yaml``).
    """

    def __init__(
        self,
        client: LoopServices,
        configs: Sequence[LoopConfig],
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: np.random.Generator | None = None,
        seed: int = 0,
        canary: CanaryRunner | None = None,
        owner: str | None = None,
        source: str | Path | None = None,
    ) -> None:
        names = [c.model for c in configs]
        if len(set(names)) != len(names):
            raise ConfigError(f"Each model may have one loop config; got {names}.")
        self.client = client
        self.configs = {c.model: c for c in configs}
        self.clock = clock
        self.rng = rng
        self.seed = seed
        self.canary = canary if canary is not None else RolloutCanaryRunner(client, clock=clock)
        self.owner = owner or default_owner()
        self.store = client.loops
        self.source = None if source is None else str(source)

    def retrain_command(self, model: str) -> str:
        """The full command that retrains ``model`` now."""
        config = shlex.quote(self.source) if self.source else "LOOP_CONFIG"
        return f"shipyard loop trigger {model} -c {config}"

    # -- public ---------------------------------------------------------------------

    def tick(self) -> list[ModelTick]:
        """One pass over every model; one model's trouble (even the database being down)
        is reported in its :class:`ModelTick`, and the others still get their turn."""
        ticks = []
        for name in self.configs:
            try:
                ticks.append(self.tick_model(name))
            except ShipyardError as exc:
                ticks.append(ModelTick(name, errors=(str(exc),)))
        return ticks

    def tick_model(self, model: str) -> ModelTick:
        config = self._config(model)
        champion = self._champion(config)
        waiting = self.store.list_runs(model, status=tuple(RESUME_AT), limit=1)
        if waiting:
            run = self._execute(config, waiting[0], champion=None, resume=True)
            return ModelTick(
                model, run=run, resumed=True, retrain_command=self.retrain_command(model)
            )
        ctx = TriggerContext(self.client, config, self.store, self.clock.now(), champion)
        verdicts: list[Verdict] = []
        errors: list[str] = []
        refused: list[tuple[str, ClaimRefused]] = []
        for trigger in config.triggers:
            try:
                verdict = evaluate_trigger(trigger, ctx)
            except ShipyardError as exc:
                errors.append(f"{trigger.kind} trigger: {exc}")
                verdicts.append(Verdict(trigger.kind, None, f"error: {exc}"))
                continue
            verdicts.append(verdict)
            if verdict.firing is None:
                continue
            claimed = self._claim(config, verdict.firing, champion)
            if isinstance(claimed, ClaimRefused):
                refused.append((verdict.kind, claimed))
                continue
            run = self._execute(config, claimed, champion=champion)
            return ModelTick(
                model,
                tuple(verdicts),
                run,
                errors=tuple(errors),
                retrain_command=self.retrain_command(model),
            )
        return ModelTick(
            model,
            tuple(verdicts),
            errors=tuple(errors),
            refused=tuple(refused),
            retrain_command=self.retrain_command(model),
        )

    def trigger(self, model: str, reason: str = "manual retrain") -> LoopRun | ClaimRefused:
        """Start a run of ``model`` now, whatever its triggers and cool-downs say.

        Refused (:class:`ClaimRefused`) only while a run of the model is active.
        """
        config = self._config(model)
        champion = self._champion(config)
        now = self.clock.now()
        firing = Firing("manual", now.isoformat(), reason, {"actor": self.client.settings.actor})
        run = self._claim(config, firing, champion)
        return (
            run if isinstance(run, ClaimRefused) else self._execute(config, run, champion=champion)
        )

    def serve(
        self,
        stop: threading.Event,
        *,
        interval: float = 60.0,
        on_tick: Callable[[list[ModelTick]], None] | None = None,
    ) -> int:
        """Tick every ``interval`` seconds until ``stop`` is set; returns the ticks made."""
        ticks = 0
        while not stop.is_set():
            results = self.tick()
            ticks += 1
            if on_tick is not None:
                on_tick(results)
            stop.wait(interval)
        return ticks

    def history(self, model: str, *, limit: int = 20) -> list[LoopRun]:
        """The model's runs, newest first, each with its steps."""
        return self.store.list_runs(model, limit=limit)

    # -- internals -------------------------------------------------------------------

    def _config(self, model: str) -> LoopConfig:
        try:
            return self.configs[model]
        except KeyError:
            raise ConfigError(
                f"No loop config for model {model!r}; configured: {sorted(self.configs)}."
            ) from None

    def _champion(self, config: LoopConfig) -> records.ModelVersion | None:
        try:
            return self.client.registry.resolve(f"{config.model}@{config.alias}")
        except NotFoundError:
            return None

    def _claim(
        self, config: LoopConfig, firing: Firing, champion: records.ModelVersion | None
    ) -> LoopRun | ClaimRefused:
        return self.store.claim(
            config.model,
            firing.kind,
            firing.key,
            reason=firing.reason,
            actor=self.owner,
            now=self.clock.now(),
            details=firing.details,
            cooldown=firing.cooldown,
            champion_version=None if champion is None else champion.version,
            stale_after=config.stale_after,
        )

    def _execute(
        self,
        config: LoopConfig,
        run: LoopRun,
        *,
        champion: records.ModelVersion | None,
        resume: bool = False,
    ) -> LoopRun:
        if resume:
            # The champion of a resumed run is the one it was gated against.
            champion = (
                None
                if run.champion_version is None
                else self.client.models.get_version(run.model, run.champion_version)
            )
        state = RunState(
            client=self.client,
            config=config,
            store=self.store,
            run=run,
            rng=self.rng if self.rng is not None else np.random.default_rng([self.seed, run.id]),
            split_seed=None if self.rng is not None else [self.seed, run.id],
            canary=self.canary,
            clock=self.clock,
            champion=champion,
            resuming=resume,
        )
        names = [name for name, _ in STEPS]
        start = names.index(RESUME_AT[run.status]) if resume else 0
        for name, step in STEPS[start:]:
            log = StepLog()
            started, t0 = self.clock.now(), self.clock.monotonic()
            error: str | None = None
            final: RunStatus | None = None
            try:
                step(state, log)
            except StepFailed as exc:
                error, final = str(exc), exc.run_status
            except Exception as exc:
                error, final = f"{type(exc).__name__}: {exc}", RunStatus.FAILED
            waited_again = resume and log.status == "waiting" and name == names[start]
            if not waited_again:
                # A resumed run still waiting records nothing new: one waiting step per wait.
                self.store.record_step(
                    run.id,
                    name,
                    status="failed" if error else log.status,
                    started_at=started,
                    finished_at=self.clock.now(),
                    duration_s=self.clock.monotonic() - t0,
                    inputs=log.inputs,
                    outputs=log.outputs,
                    error=error,
                )
            if error is not None:
                message = f"step {name} failed: {error}"
                if final == RunStatus.FAILED:
                    message += (
                        ". A failed run starts no cool-down: the trigger retries when it "
                        f"next fires, or `{self.retrain_command(run.model)}` retries now"
                    )
                return self.store.update_run(
                    run.id, now=self.clock.now(), status=final, message=message
                )
            if log.status == "waiting":
                assert log.run_status is not None
                return self.store.update_run(
                    run.id, now=self.clock.now(), status=log.run_status, message=log.message
                )
            resume = False
            state.resuming = False
        candidate = state.require_candidate()
        return self.store.update_run(
            run.id,
            now=self.clock.now(),
            status=RunStatus.PROMOTED,
            message=f"{candidate.ref} promoted to {config.alias}",
        )


__all__ = ["LoopController", "ModelTick", "default_owner"]
