"""``shipyard deploy ...``, ``shipyard promote`` and ``shipyard rollback``: deployments.

Registered in the root app as ``app.add_typer(deploy.app, name="deploy")`` plus
``promote_command`` and ``rollback_command`` as top-level commands.

``shipyard deploy NAME --model iris:4 --canary 10`` is short for
``shipyard deploy set NAME ...``: when the first word after ``deploy`` is not
one of its subcommands, ``set`` is assumed (see :class:`DeployGroup`). So a
deployment cannot be named like a subcommand (``status``, ``kill``...); use
``deploy set status ...`` if you must.

Examples::

    shipyard deploy web --model iris:3                      # create, or switch all traffic
    shipyard deploy web --model iris:4 --canary 10          # a canary at 10 %
    shipyard deploy web --model iris:4 --steps 5,25,50,100 --step-requests 500 \\
        --max-error-rate 0.02 --max-p99-ms 150              # progressive rollout
    shipyard deploy web --split 3=50,4=50 --sticky-header X-User-ID
    shipyard deploy web --shadow iris:5
    shipyard deploy status web
    shipyard promote web          |  shipyard rollback web  |  shipyard deploy kill web
    shipyard deploy ab-report web |  shipyard deploy shadow-report web
    shipyard deploy watch web     # run the rollout controller outside the servers
"""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Group
from rich.markup import escape

from shipyard.cli._common import (
    HelpGroup,
    JsonOption,
    command_group,
    console,
    err_console,
    get_client,
    print_json,
    table,
    when,
)
from shipyard.errors import InvalidInputError
from shipyard.rollout.records import Deployment
from shipyard.rollout.service import Deployments


class DeployGroup(HelpGroup):
    """``deploy NAME ...`` means ``deploy set NAME ...`` unless NAME is a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["set", *args]
        return super().parse_args(ctx, args)


app = command_group(
    "Deployments: primary, canary, A/B split, shadows; progressive rollout and reports. "
    "`shipyard deploy NAME --model REF [--canary W]` creates or changes one.",
    cls=DeployGroup,
)


def _service(ctx: typer.Context) -> tuple[Any, Deployments]:
    client = get_client(ctx)
    return client, client.deployments


def _split(text: str) -> dict[int, float]:
    weights: dict[int, float] = {}
    for part in text.split(","):
        version, sep, weight = part.strip().partition("=")
        try:
            if not sep:
                raise ValueError
            weights[int(version)] = float(weight)
        except ValueError:
            raise InvalidInputError(
                f"--split {text!r}: expected VERSION=WEIGHT pairs such as 3=50,4=50 "
                f"(bad part {part!r})."
            ) from None
    return weights


def _steps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(","))
    except ValueError:
        raise InvalidInputError(
            f"--steps {text!r}: expected canary weights such as 5,25,50,100."
        ) from None


@app.command("set")
def set_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name (the endpoint)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Version to deploy (iris:4; iris@staging)."
    ),
    canary: float | None = typer.Option(
        None, "--canary", help="Send this % of requests to --model (the rest to the primary)."
    ),
    steps: str | None = typer.Option(
        None, "--steps", help="Progressive rollout: canary weights, e.g. 5,25,50,100."
    ),
    step_seconds: float | None = typer.Option(
        None, "--step-seconds", help="A step is done after this long (with --steps)."
    ),
    step_requests: int | None = typer.Option(
        None, "--step-requests", help="...or after this many canary requests (with --steps)."
    ),
    min_requests: int = typer.Option(20, help="Canary requests before guards are judged."),
    max_error_rate: float | None = typer.Option(
        0.05, help="Guard: roll back above this 5xx share (0-1)."
    ),
    max_p99_ms: float | None = typer.Option(None, help="Guard: roll back above this p99 (ms)."),
    max_accuracy_drop: float | None = typer.Option(
        None, help="Guard: roll back if labelled accuracy trails the primary's by more (0-1)."
    ),
    split: str | None = typer.Option(
        None, "--split", help="A/B weights by version adding up to 100: 3=50,4=50."
    ),
    sticky_header: str | None = typer.Option(
        None, help="With --split: request header whose value keeps a user on one arm."
    ),
    shadow: list[str] = typer.Option(
        [], "--shadow", help="Mirror traffic to this version (repeat); answers only logged."
    ),
    no_shadows: bool = typer.Option(False, "--no-shadows", help="Stop all shadows."),
    force: bool = typer.Option(False, help="Override failed gates / missing approvals."),
    reason: str | None = typer.Option(None, help="Why (kept in the audit log; needed to force)."),
    as_json: bool = JsonOption,
) -> None:
    """Create deployment NAME or change its traffic (one change, one transaction)."""
    from shipyard.rollout.changes import DeployRequest, apply_deploy

    client, service = _service(ctx)
    request = DeployRequest(
        model=model,
        canary=canary,
        steps=None if steps is None else _steps(steps),
        step_seconds=step_seconds,
        step_requests=step_requests,
        min_requests=min_requests,
        max_error_rate=max_error_rate,
        max_p99_seconds=None if max_p99_ms is None else max_p99_ms / 1000,
        max_accuracy_drop=max_accuracy_drop,
        split=None if split is None else _split(split),
        sticky_header=sticky_header,
        shadows=tuple(shadow),
        no_shadows=no_shadows,
        force=force,
        reason=reason,
    )
    _render(apply_deploy(service, client.registry.resolve, name, request), as_json, service)


@app.command("status")
def status_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    as_json: bool = JsonOption,
) -> None:
    """Variants and weights, shadows, rollout step, workers, live numbers, monitoring
    figures per variant (drift, labels, realized and estimated accuracy), recent changes."""
    client, service = _service(ctx)
    d = service.get(name)
    _render(d, as_json, service, details=True, monitored=_monitored(client, d))


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every deployment with its primary and mode."""
    _, service = _service(ctx)
    found = service.list_deployments()
    if as_json:
        print_json([_summary(d) for d in found])
        return
    rows = [[d.name, f"{d.model}:{d.primary}", d.mode, d.revision] for d in found]
    console.print(table(None, ["deployment", "primary", "mode", "revision"], rows))


@app.command("kill")
def kill_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    reason: str | None = typer.Option(None, help="Why (kept in the audit log)."),
    as_json: bool = JsonOption,
) -> None:
    """Kill switch: pin the last known-good version; canary, split and shadows off."""
    _, service = _service(ctx)
    _render(service.kill(name, reason=reason), as_json, service)


@app.command("resume")
def resume_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    reason: str | None = typer.Option(None, help="Why (kept in the audit log)."),
    as_json: bool = JsonOption,
) -> None:
    """Lift the kill switch (traffic stays as pinned until the next change)."""
    _, service = _service(ctx)
    _render(service.resume(name, reason=reason), as_json, service)


@app.command("abort")
def abort_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    reason: str = typer.Option("aborted by hand", help="Why (kept in the audit log)."),
    as_json: bool = JsonOption,
) -> None:
    """Send the canary's traffic back to the primary (the primary does not change)."""
    _, service = _service(ctx)
    _render(service.abort_canary(name, reason=reason), as_json, service)


@app.command("watch")
def watch_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    interval: float = typer.Option(5.0, min=0.1, help="Seconds between evaluations."),
    once: bool = typer.Option(False, help="Evaluate once and exit."),
) -> None:
    """Run the rollout controller for NAME (the servers run it too; one acts per change)."""
    from prometheus_client import CollectorRegistry

    from shipyard.rollout.controller import RolloutController, log_accuracy
    from shipyard.rollout.metrics import RolloutMetrics

    client, service = _service(ctx)
    controller = RolloutController(
        service,
        accuracy=log_accuracy(client.prediction_log, client.calibrations.latest),
        metrics=RolloutMetrics(CollectorRegistry()),
    )
    while True:
        verdict = controller.evaluate(name)
        err_console.print(
            f"{when(_now())} {name}: {verdict.action}: {verdict.reason}", markup=False
        )
        if once:
            return
        time.sleep(interval)


@app.command("ab-report")
def ab_report_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    since: str | None = typer.Option(
        None, help="Window start (24h, ISO time); default: since the current split began."
    ),
    alpha: float = typer.Option(0.05, min=0.0001, max=0.5, help="Significance level."),
    as_json: bool = JsonOption,
) -> None:
    """Per-variant metrics with 95 % intervals, tests against the primary, and a verdict."""
    from shipyard.rollout.reports import load_ab_report, report_to_dict

    client, service = _service(ctx)
    report = load_ab_report(service, client.prediction_log, name, since=since, alpha=alpha)
    if as_json:
        print_json(report_to_dict(report))
        return
    rows = [
        [
            a.variant,
            a.version,
            a.requests,
            _rate(a.error_rate, a.error_rate_ci),
            _ms(a.latency_mean, a.latency_ci),
            f"{a.labelled}",
            _rate(a.accuracy, a.accuracy_ci),
            _p(a.p_accuracy),
            _p(a.p_error_rate),
            _p(a.p_latency),
        ]
        for a in report.arms
    ]
    columns = [
        "variant", "version", "requests", "error rate", "latency mean",
        "labelled", "accuracy", "p acc", "p err", "p latency",
    ]  # fmt: skip
    console.print(table(f"A/B report: {name} ({report.since})", columns, rows))
    console.print(f"Verdict: {report.verdict}", highlight=False, markup=False)


@app.command("shadow-report")
def shadow_report_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    since: str | None = typer.Option(None, help="Window start (24h, ISO time)."),
    as_json: bool = JsonOption,
) -> None:
    """Agreement of each shadow with the answers returned, and how they differ."""
    from shipyard.rollout.reports import load_shadow_reports, report_to_dict

    client, service = _service(ctx)
    reports = load_shadow_reports(service, client.prediction_log, name, since=since)
    if as_json:
        print_json([report_to_dict(r) for r in reports])
        return
    if not reports:
        console.print(f"Deployment {name!r} has no shadows and none were logged.", markup=False)
        return
    for r in reports:
        console.print(
            f"[bold]shadow {r.model}:{r.version}[/] ({r.since}): {r.compared} rows compared, "
            f"agreement {_rate(r.agreement, r.agreement_ci)}; mean latency "
            f"{r.shadow_latency_mean * 1000:.2f} ms vs {r.primary_latency_mean * 1000:.2f} ms",
            highlight=False,
        )
        if r.disagreements:
            console.print(
                table(
                    "most common disagreements",
                    ["answered", "shadow said", "rows"],
                    [list(d) for d in r.disagreements],
                )
            )
        if r.proba_difference:
            console.print(
                "largest class-probability gap per row: "
                + ", ".join(f"{k} {v:.3g}" for k, v in r.proba_difference.items()),
                highlight=False,
                markup=False,
            )
        if r.difference:
            console.print(
                "shadow - answered: " + ", ".join(f"{k} {v:.4g}" for k, v in r.difference.items()),
                highlight=False,
                markup=False,
            )


def promote_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    version: int | None = typer.Option(
        None, "--version", help="Promote this A/B arm (default: the canary)."
    ),
    force: bool = typer.Option(False, help="Override failed gates / missing approvals."),
    reason: str | None = typer.Option(None, help="Why (kept in the audit log; needed to force)."),
    as_json: bool = JsonOption,
) -> None:
    """Make a deployment's canary (or an A/B arm) its primary, on every worker."""
    _, service = _service(ctx)
    _render(service.promote(name, version=version, force=force, reason=reason), as_json, service)


def rollback_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    reason: str | None = typer.Option(None, help="Why (kept in the audit log)."),
    as_json: bool = JsonOption,
) -> None:
    """Back to the previous primary in one change; every worker follows within seconds."""
    _, service = _service(ctx)
    _render(service.rollback(name, reason=reason), as_json, service)


# -- rendering ------------------------------------------------------------------------------


def _now() -> Any:
    from shipyard.clock import utc_now

    return utc_now()


def _rate(value: float, ci: tuple[float, float]) -> str:
    if value != value:  # NaN: no data
        return "-"
    return f"{value:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]"


def _ms(value: float, ci: tuple[float, float]) -> str:
    if value != value:
        return "-"
    if ci[0] != ci[0]:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.2f} ms [{ci[0] * 1000:.2f}, {ci[1] * 1000:.2f}]"


def _p(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3g}"


def _summary(d: Deployment) -> dict[str, Any]:
    return {
        "name": d.name,
        "model": d.model,
        "revision": d.revision,
        "mode": d.mode,
        "primary": d.primary,
        "variants": [
            {"name": v.name, "version": v.version, "weight": v.weight} for v in d.variants()
        ],
        "shadows": list(d.shadows),
        "sticky_header": d.sticky_header,
        "policy": None if d.policy is None else d.policy.to_dict(),
        "step": d.step,
        "step_started_at": d.step_started_at,
        "epoch": d.epoch,
        "paused": d.paused,
        "killed": d.killed,
        "previous_primaries": list(d.history),
        "last_known_good": d.last_known_good,
        "follows": d.follows,
        "updated_at": d.updated_at,
        "updated_by": d.updated_by,
    }


def _monitored(client: Any, d: Deployment) -> dict[str, dict[str, Any]]:
    """The newest monitor figures of each variant serving now (the servers' monitor job)."""
    serving = {(v.name, v.version) for v in d.variants()}
    serving |= {(f"shadow:{v}", v) for v in d.shadows}
    out: dict[str, dict[str, Any]] = {}
    for snapshot in client.monitors.snapshots(f"{d.name}/"):  # newest first
        variant = snapshot.key[len(d.name) + 1 :].rsplit(":", 3)[0]
        if (variant, snapshot.version) in serving and variant not in out:
            f = snapshot.figures
            out[variant] = {
                "version": snapshot.version,
                "computed_at": snapshot.computed_at,
                "window_seconds": snapshot.window_seconds,
                "window_predictions": f.get("window_predictions"),
                "drifted_share": f.get("drifted_share"),
                "dataset_drift": f.get("dataset_drift"),
                "label_coverage": f.get("label_coverage"),
                "realized_accuracy": f.get("realized_accuracy"),
                "estimated_accuracy": f.get("estimated_accuracy"),
                "estimate_calibrated": f.get("estimate_calibrated"),
            }
    return out


def _monitor_cells(m: dict[str, Any] | None) -> list[str]:
    if m is None:
        return ["-"] * 5

    def ratio(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    drift = "-" if m["drifted_share"] is None else f"{m['drifted_share']:.0%}"
    estimate = ratio(m["estimated_accuracy"])
    if m["estimated_accuracy"] is not None:
        estimate += " (calibrated)" if m["estimate_calibrated"] else " (raw)"
    coverage = "-" if m["label_coverage"] is None else f"{m['label_coverage']:.0%}"
    return [str(m["window_predictions"]), drift, coverage, ratio(m["realized_accuracy"]), estimate]


def _render(
    d: Deployment,
    as_json: bool,
    service: Deployments,
    *,
    details: bool = False,
    monitored: dict[str, dict[str, Any]] | None = None,
) -> None:
    from shipyard.rollout.policy import merge_stats

    summary = _summary(d)
    workers = service.store.workers(d.name) if details else []
    unserved = service.unserved(d.name) if details else None
    alias_gap = service.alias_gap(d)
    stats = merge_stats(service.store.counters(d.name, d.epoch)) if details else {}
    changes = service.changes(d.name, limit=10) if details else []
    if as_json:
        if details:
            summary["workers"] = [
                {"worker": w.worker, "revision": w.revision, "seen_at": w.seen_at} for w in workers
            ]
            summary["unserved"] = unserved
            summary["monitoring"] = monitored or {}
            summary["alias_gap"] = alias_gap
            summary["live"] = {
                k: {
                    "version": s.version,
                    "requests": s.requests,
                    "errors": s.errors,
                    "p99_seconds": s.p99,
                }
                for k, s in stats.items()
            }
            summary["changes"] = [
                {"revision": c.revision, "action": c.action, "actor": c.actor,
                 "reason": c.reason, "at": c.at}
                for c in changes
            ]  # fmt: skip
        print_json(summary)
        return
    head = (
        f"[bold]{d.name}[/] serves {d.model} (revision {d.revision}, {d.mode}"
        f"{', rollout paused' if d.paused and not d.killed else ''})"
    )
    rows = []
    for v in d.variants():
        s = stats.get(v.name)
        live = "-" if s is None else f"{s.requests} req, {s.errors} 5xx, p99 <= {_p99(s.p99)}"
        rows.append([v.name, f"{d.model}:{v.version}", f"{v.weight:g}%", live])
    for version in d.shadows:
        rows.append([f"shadow:{version}", f"{d.model}:{version}", "copy", "-"])
    parts: list[Any] = [head, table(None, ["variant", "version", "weight", "live (step)"], rows)]
    if monitored is not None:
        named = [(v.name, v.version) for v in d.variants()]
        named += [(f"shadow:{v}", v) for v in d.shadows]
        parts.append(
            table(
                "monitoring (monitor window of the servers)",
                [
                    "variant",
                    "version",
                    "rows",
                    "drifted",
                    "labelled",
                    "realized acc",
                    "estimated acc",
                ],
                [
                    [name, f"{d.model}:{version}", *_monitor_cells(monitored.get(name))]
                    for name, version in named
                ],
            )
        )
    if d.policy is not None and d.canary is not None:
        p = d.policy
        guards = []  # only the guards that are set
        if p.max_error_rate is not None:
            guards.append(f"error rate <= {p.max_error_rate:.1%}")
        if p.max_p99_seconds is not None:
            guards.append(f"p99 <= {_p99(p.max_p99_seconds)}")
        if p.max_accuracy_drop is not None:
            guards.append(f"accuracy drop <= {p.max_accuracy_drop:.1%}")
        parts.append(
            f"rollout: step {d.step + 1}/{len(p.steps)} ({', '.join(f'{s:g}' for s in p.steps)} %)"
            f" since {when(d.step_started_at)}; guards: {', '.join(guards) or 'none'}"
        )
    if d.history:
        parts.append(f"previous primaries: {', '.join(map(str, d.history))} (rollback target "
                     f"{d.history[-1]}); last known good: {d.last_known_good}")  # fmt: skip
    if d.follows is not None:
        parts.append(
            f"follows {d.model}@{d.follows}: promotions and rollbacks move it to the primary"
        )
    if alias_gap is not None:
        parts.append(f"[bold yellow]warning:[/] {escape(alias_gap)}.")
    if unserved is not None:
        parts.append(f"[bold yellow]warning:[/] {escape(unserved)}.")
    if workers:
        synced = sum(w.revision == d.revision for w in workers)
        parts.append(
            f"workers: {synced}/{len(workers)} at revision {d.revision} ("
            + ", ".join(
                f"{escape(w.worker)}@{w.revision} seen "
                f"{(_now() - w.seen_at).total_seconds():.0f} s ago"
                for w in workers
            )
            + ")"
        )
    if changes:
        parts.append(
            table(
                "recent changes",
                ["rev", "when", "action", "by", "reason"],
                [[c.revision, when(c.at), c.action, c.actor, c.reason] for c in changes],
            )
        )
    console.print(Group(*parts), highlight=False)


def _p99(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else f"{value * 1000:g} ms"
