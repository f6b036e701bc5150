"""A version's lineage: data snapshot -> pipeline version -> run -> version -> deployment ->
predictions.

Each link is read from where it is recorded: the version's data fingerprint
(content hash, source, time range, holdout), the tracking run that trained
it, the loop run that made it, the deployments that route traffic to it now,
and the predictions it has answered in the prediction log.

>>> chain = lineage(client, "iris:4")                     # doctest: +SKIP
>>> chain.data["content_hash"][:12], chain.run_id, chain.deployments, chain.predictions
('bc9a11e84508', 'a813...', {'iris': 'primary'}, 1204)       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.loop.services import LoopServices


@dataclass(frozen=True)
class PredictionWindow:
    """The predictions one version answered on one UTC day."""

    day: date
    rows: int
    first: datetime
    last: datetime


@dataclass(frozen=True)
class Lineage:
    """Every recorded link of one version's lineage (None or empty where there is none)."""

    version: str
    data: dict[str, Any] | None
    run_id: str | None
    run_datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    loop_run: int | None = None
    aliases: tuple[str, ...] = ()
    deployments: dict[str, str] = field(default_factory=dict)
    predictions: int = 0
    first_prediction: datetime | None = None
    last_prediction: datetime | None = None
    #: The dataset version the run read (``iris:3``) and the pipeline version it ran.
    snapshot: str | None = None
    pipeline: dict[str, Any] | None = None
    #: The predictions per UTC day, oldest first.
    windows: tuple[PredictionWindow, ...] = ()

    def describe(self) -> list[str]:
        """One line per link, for the CLI and the demo."""
        data = self.data or {}
        if self.data:
            span = data.get("time_range")
            text = (
                f"{data.get('source', '?')} ({data.get('n_rows', '?')} rows, "
                f"sha256 {str(data.get('content_hash', '?'))[:12]}"
            )
            text += f", {span['start']} to {span['end']})" if span else ")"
        else:
            text = "not recorded"
        run = self.run_id or "none"
        if self.loop_run is not None:
            run += f" (loop run {self.loop_run})"
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        served = ", ".join(f"{n} ({role})" for n, role in self.deployments.items())
        answered = str(self.predictions)
        if self.first_prediction is not None and self.last_prediction is not None:
            answered += (
                f" from {self.first_prediction:%Y-%m-%d %H:%M} "
                f"to {self.last_prediction:%Y-%m-%d %H:%M} UTC"
            )
        pipeline = "not recorded"
        if self.pipeline is not None:
            pipeline = (
                f"{self.pipeline['entry_point']} (code sha256 "
                f"{str(self.pipeline['code_hash'])[:12]}, seed {self.pipeline.get('seed')})"
            )
        return [
            f"data:        {text}",
            f"snapshot:    {self.snapshot or 'none (data not snapshotted)'}",
            f"pipeline:    {pipeline}",
            f"run:         {run}",
            f"version:     {self.version}{aliases}",
            f"deployments: {served or 'none'}",
            f"predictions: {answered}",
        ]


def _roles(d: Any, version: int) -> str | None:
    if d.primary == version:
        return "primary"
    for variant in d.variants():
        if variant.version == version:
            return f"{variant.name} {variant.weight:g}%"
    if version in d.shadows:
        return "shadow"
    return None


def lineage(client: LoopServices, ref: str, *, until: datetime | None = None) -> Lineage:
    """Follow ``ref``'s lineage from its training data to the predictions it answered."""
    version = client.registry.resolve(ref)
    datasets: dict[str, dict[str, Any]] = {}
    if version.run_id is not None:
        datasets = dict(client.runs.get_run(version.run_id).datasets)
    loop_run = (version.data_fingerprint or {}).get("loop_run")
    if loop_run is None and version.tags.get("loop.run", "").isdigit():
        loop_run = int(version.tags["loop.run"])
    if isinstance(loop_run, int):
        client.loops.get_run(loop_run)  # a dangling id is an error, not a link
    deployments: dict[str, str] = {}
    try:
        for d in client.deployments.list_deployments():
            role = _roles(d, version.version) if d.model == version.model else None
            if role is not None:
                deployments[d.name] = role
    except ImportError:  # pragma: no cover - rollout ships with shipyard
        pass
    try:
        # Counted per day by DuckDB: a version that answered millions of rows is not read.
        days = client.prediction_log.daily_counts(
            version.model, since=version.created_at, until=until, version=version.version
        )
    except ShipyardError:
        days = []
    windows = tuple(PredictionWindow(day, n, lo, hi) for day, n, lo, hi in days)
    snapshot = (version.data_fingerprint or {}).get("snapshot")
    pipeline: dict[str, Any] | None = None
    if version.run_id is not None:
        record = client.datasets.get_pipeline(version.run_id)
        if record is not None:
            pipeline = {
                "entry_point": record.entry_point,
                "code_hash": record.code_hash,
                "seed": record.record.get("seed"),
                "snapshots": record.snapshots,
            }
    return Lineage(
        snapshot=str(snapshot) if snapshot else None,
        pipeline=pipeline,
        version=version.ref,
        data=version.data_fingerprint,
        run_id=version.run_id,
        run_datasets=datasets,
        loop_run=loop_run if isinstance(loop_run, int) else None,
        aliases=version.aliases,
        deployments=deployments,
        predictions=sum(w.rows for w in windows),
        first_prediction=windows[0].first if windows else None,
        last_prediction=windows[-1].last if windows else None,
        windows=windows,
    )


__all__ = ["Lineage", "PredictionWindow", "lineage"]
