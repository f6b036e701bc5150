"""The closed loop: each run with its steps, durations, inputs, outputs and why it
stopped; each trigger's latest check and cool-down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from shipyard.clock import utc_now
from shipyard.ui.web import UiState, render, state

router = APIRouter()

TRIGGER_KINDS = ("schedule", "drift", "performance", "new_data", "manual")


@dataclass(frozen=True)
class TriggerState:
    """What a model's trigger of one kind last saw, and when it may fire again."""

    model: str
    kind: str
    last_check: Any | None  # TriggerCheck
    cooldown_seconds: float | None
    cooling_until: datetime | None


def _trigger_states(ui: UiState, models: list[str]) -> list[TriggerState]:
    loops = ui.client.loops
    configured: dict[tuple[str, str], float] = {}
    if ui.loop_config is not None:
        from shipyard.loop.config import load_config

        for config in load_config(ui.loop_config):
            for trigger in config.triggers:
                configured[(config.model, trigger.kind)] = trigger.cooldown.total_seconds()
            if config.model not in models:
                models.append(config.model)
    now = utc_now()
    out = []
    for model in sorted(models):
        for kind in TRIGGER_KINDS:
            checks = loops.recent_checks(model, kind, limit=1)
            cooldown = configured.get((model, kind))
            if not checks and cooldown is None:
                continue
            until = None
            last = loops.last_run(model, kind, include_failed=False)
            if cooldown and last is not None:
                ends = last.created_at.timestamp() + cooldown
                until = (
                    datetime.fromtimestamp(ends, tz=now.tzinfo) if ends > now.timestamp() else None
                )
            out.append(TriggerState(model, kind, checks[0] if checks else None, cooldown, until))
    return out


@router.get("/loop")
def loop_page(
    request: Request, model: str = "", limit: int = Query(default=20, ge=1, le=200)
) -> Response:
    ui = state(request)
    runs = ui.client.loops.list_runs(model or None, limit=limit)
    models = sorted({r.model for r in runs} | ({model} if model else set()))
    return render(
        request,
        "loop.html",
        runs=runs,
        model=model,
        triggers=_trigger_states(ui, models),
        can_trigger=ui.loop_config is not None,
    )
