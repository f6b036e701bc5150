"""``shipyard loop ...``: the closed loop from the command line.

- ``loop tick --config loop.yaml``: one pass (for cron, Airflow, a Kubernetes
  CronJob). Exit code 1 when a trigger could not be evaluated or a run
  failed; a challenger rejected by its gates or rolled back by its canary is
  the loop doing its job, and exits 0.
- ``loop run --config loop.yaml [--interval 60]``: a long-running controller
  ticking every interval; SIGINT or SIGTERM stops it after the current tick.
- ``loop trigger MODEL --config loop.yaml``: start a run now, whatever the triggers say.
- ``loop history REF``: each run of a model (or of the run that made ``name:version``)
  with every step's status, duration, inputs and outputs.
- ``loop lineage REF``: data snapshot -> pipeline -> run -> version -> deployment ->
  predictions.
- ``loop export --airflow DAG.py --config loop.yaml``: an Airflow DAG ticking each model.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.markup import escape

from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    err_console,
    get_client,
    print_json,
    when,
)
from shipyard.errors import InvalidInputError, InvalidReferenceError
from shipyard.loop.config import load_config
from shipyard.loop.controller import LoopController, ModelTick
from shipyard.loop.lineage import lineage
from shipyard.store.loop_records import ClaimRefused, LoopRun

app = command_group("The closed loop: retraining triggers, retrain, gate, canary, promote.")

ConfigOption = typer.Option(
    ...,
    "--config",
    "-c",
    envvar="SHIPYARD_LOOP_CONFIG",
    help="Loop config: a YAML file, or a folder of them.",
)
_CELL = 160


def _controller(ctx: typer.Context, config: Path) -> LoopController:
    return LoopController(get_client(ctx), load_config(config), source=config)


def _tick_json(tick: ModelTick) -> dict[str, Any]:
    return {
        "model": tick.model,
        "resumed": tick.resumed,
        "verdicts": [{"kind": v.kind, "fired": v.fired, "reason": v.reason} for v in tick.verdicts],
        "run": None if tick.run is None else _run_json(tick.run),
        "errors": list(tick.errors),
        "refused": [
            {
                "kind": kind,
                "why": r.why,
                "run": None if r.run is None else r.run.id,
                "until": r.until,
                "message": r.describe(tick.retrain_command),
            }
            for kind, r in tick.refused
        ],
    }


def _run_json(run: LoopRun) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in run.__dict__.items() if k != "steps"}
    data["steps"] = [s.__dict__ for s in run.steps]
    return data


def _print_ticks(ticks: list[ModelTick]) -> None:
    for tick in ticks:
        summary = escape(tick.summary().split(": ", 1)[1])
        console.print(f"[bold]{tick.model}[/]: {summary}", highlight=False)
        for verdict in tick.verdicts:
            mark = "[green]fired[/]" if verdict.fired else "[dim]-[/]"
            console.print(f"  {verdict.kind:<12} {mark} {escape(verdict.reason)}", highlight=False)
        for error in tick.errors:
            err_console.print(f"  [red]error:[/] {escape(str(error))}", highlight=False)


def _failed(ticks: list[ModelTick]) -> bool:
    return any(t.errors or (t.run is not None and t.run.status == "failed") for t in ticks)


@app.command("tick")
def tick_command(
    ctx: typer.Context,
    config: Path = ConfigOption,
    model: str | None = typer.Option(
        None, "--model", "-m", help="Only this model of the config (one task per model)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Evaluate every model's triggers once and run the loop where one fires."""
    configs = load_config(config)
    if model is not None:
        configs = [c for c in configs if c.model == model]
        if not configs:
            known = ", ".join(c.model for c in load_config(config))
            raise InvalidInputError(f"{config} has no model {model!r}; it configures {known}.")
    ticks = LoopController(get_client(ctx), configs, source=config).tick()
    if as_json:
        print_json([_tick_json(t) for t in ticks])
    else:
        _print_ticks(ticks)
    if _failed(ticks):
        raise typer.Exit(code=1)


@app.command("run")
def run_command(
    ctx: typer.Context,
    config: Path = ConfigOption,
    interval: float = typer.Option(60.0, "--interval", min=0.01, help="Seconds between ticks."),
    max_ticks: int | None = typer.Option(
        None, "--max-ticks", min=1, help="Stop after this many ticks (default: run until stopped)."
    ),
) -> None:
    """Run the controller until SIGINT/SIGTERM (or --max-ticks), ticking every --interval s."""
    controller = _controller(ctx, config)
    stop = threading.Event()
    done = 0

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        console.print(f"{signal.Signals(signum).name}: stopping after the current tick.")
        stop.set()

    def _on_tick(ticks: list[ModelTick]) -> None:
        nonlocal done
        done += 1
        _print_ticks(ticks)
        if max_ticks is not None and done >= max_ticks:
            stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        console.print(
            f"Loop controller {controller.owner}: {len(controller.configs)} model(s), "
            f"a tick every {interval:g} s. Stop with Ctrl-C or SIGTERM."
        )
        controller.serve(stop, interval=interval, on_tick=_on_tick)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print(f"Stopped after {done} tick(s).")


@app.command("trigger")
def trigger_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The model to retrain now."),
    config: Path = ConfigOption,
    reason: str = typer.Option("manual retrain", "--reason", help="Kept in the history."),
    as_json: bool = JsonOption,
) -> None:
    """Start a loop run for MODEL now, whatever its triggers say."""
    controller = _controller(ctx, config)
    run = controller.trigger(model, reason=reason)
    if isinstance(run, ClaimRefused):
        retrain = controller.retrain_command(model)
        err_console.print(
            f"{model}: {run.describe(retrain)}; see `shipyard loop history {model}`.",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(code=1)
    if as_json:
        print_json(_run_json(run))
    else:
        _print_run(run, full=False)
    if run.status == "failed":
        raise typer.Exit(code=1)


@app.command("history")
def history_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="A model (iris), or the version a run made (iris:4)."),
    limit: int = typer.Option(10, "--limit", "-n", min=1, help="Newest runs to show."),
    full: bool = typer.Option(False, "--full", help="Do not shorten inputs and outputs."),
    as_json: bool = JsonOption,
) -> None:
    """Show each loop run with its steps: status, duration, inputs and outputs."""
    name, _, version_text = ref.partition(":")
    if not name or (version_text and not version_text.isdigit()):
        raise InvalidReferenceError(f"{ref!r} is not MODEL or MODEL:VERSION (e.g. iris:4).")
    store = get_client(ctx).loops
    runs = store.list_runs(name, limit=limit if not version_text else 10_000)
    if version_text:
        runs = [r for r in runs if r.candidate_version == int(version_text)]
    if as_json:
        print_json([_run_json(r) for r in runs])
        return
    if not runs:
        console.print(f"No loop runs for {ref} yet.")
        return
    for run in runs:
        _print_run(run, full=full)


@app.command("lineage")
def lineage_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="A version (iris:4) or alias (iris@production)."),
    as_json: bool = JsonOption,
) -> None:
    """Show REF's lineage: data snapshot -> pipeline -> run -> version -> deployment ->
    predictions."""
    chain = lineage(get_client(ctx), ref)
    if as_json:
        print_json(chain)
        return
    for line in chain.describe():
        console.print(line, highlight=False, markup=False)


def _short(text: str, full: bool) -> str:
    return text if full or len(text) <= _CELL else text[: _CELL - 1] + "…"


def _inline(item: Any) -> str:
    """One value on one line: ``a=1, b=x`` for a mapping, ``x, y`` for a list."""
    if item is None or item == {} or item == []:
        return "-"
    if isinstance(item, dict):
        return ", ".join(
            f"{k}=({_inline(v)})" if isinstance(v, dict) else f"{k}={_inline(v)}"
            for k, v in item.items()
        )
    if isinstance(item, list) and all(not isinstance(v, dict | list) for v in item):
        return ", ".join(str(v) for v in item)
    if isinstance(item, list):
        return json.dumps(item, default=str, separators=(", ", ": "))
    return str(item)


def _details(value: dict[str, Any], full: bool) -> list[str]:
    """``key: value`` lines; a nested mapping gets one line per key (``params.C: 1.0``)."""
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.extend(f"{key}.{k}: {_short(_inline(v), full)}" for k, v in item.items())
        else:
            lines.append(f"{key}: {_short(_inline(item), full)}")
    return lines


def _print_run(run: LoopRun, *, full: bool) -> None:
    color = {"promoted": "green", "failed": "red", "rejected": "yellow", "rolled_back": "yellow"}
    status = f"[{color.get(run.status, 'cyan')}]{run.status}[/]"
    console.print(
        f"[bold]run {run.id}[/] {run.model} {status} - {run.trigger_kind} "
        f"({escape(run.trigger_key)}) at {when(run.created_at)} by {escape(run.claimed_by)}",
        highlight=False,
    )
    console.print(f"  trigger: {run.reason}", highlight=False, markup=False)
    if run.message:
        console.print(f"  result:  {run.message}", highlight=False, markup=False)
    for step in run.steps:
        console.print(
            f"  {step.name:<14} {step.status:<9} {step.duration_s:8.3f} s",
            highlight=False,
            markup=False,
        )
        for label, values in (("in", step.inputs), ("out", step.outputs)):
            lines = _details(values, full)
            if not lines:
                continue
            console.print(f"    {label}:", highlight=False)
            for line in lines:
                console.print(f"      {line}", highlight=False, markup=False)
        if step.error:
            console.print(f"    error: {step.error}", highlight=False, markup=False)


@app.command("export")
def export_command(
    config: Path = ConfigOption,
    airflow: Path = typer.Option(..., "--airflow", help="Write an Airflow DAG to this .py file."),
    schedule: str = typer.Option("*/5 * * * *", "--schedule", help="How often the DAG ticks."),
    dag_id: str = typer.Option("shipyard_loop", "--dag-id", help="The DAG's id in Airflow."),
) -> None:
    """Write an Airflow DAG that runs `shipyard loop tick --model M` for each model of CONFIG."""
    from shipyard.loop.airflow import airflow_dag

    models = [c.model for c in load_config(config)]
    text = airflow_dag(models, config=str(config.resolve()), schedule=schedule, dag_id=dag_id)
    airflow.parent.mkdir(parents=True, exist_ok=True)
    airflow.write_text(text)
    console.print(
        f"wrote {airflow}: DAG {dag_id}, one task per model: {', '.join(models)}", markup=False
    )
