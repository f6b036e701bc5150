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
from shipyard.optimization.lineage import FROM, HOW

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
    #: The version this one was optimized from (``bc-gb:1``) and how; None otherwise.
    optimized_from: str | None = None
    optimization: str | None = None
    #: The run this version's run reproduced (tag ``reproduces``), if it is a reproduction.
    reproduces: str | None = None

    def describe(self) -> list[str]:
        """One line per link, for the CLI and the demo."""
        data = self.data or {}
        if self.data:
            span = data.get("time_range")
            source = data.get("source") or self.snapshot or "an unnamed DataFrame"
            text = (
                f"{source} ({data.get('n_rows', '?')} rows, "
                f"sha256 {str(data.get('content_hash', '?'))[:12]}"
            )
            text += f", {span['start']} to {span['end']})" if span else ")"
        else:
            text = "not recorded"
        run = self.run_id or "none"
        if self.loop_run is not None:
            run += f" (loop run {self.loop_run})"
        if self.reproduces is not None:
            run += f" (reproduces run {self.reproduces})"
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
        optimized = []
        if self.optimized_from is not None:
            optimized = [f"optimized:   from {self.optimized_from} by {self.optimization or '?'}"]
        return [
            f"data:        {text}",
            f"snapshot:    {self.snapshot or 'none (data not snapshotted)'}",
            f"pipeline:    {pipeline}",
            f"run:         {run}",
            *optimized,
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
    source = version.tags.get(FROM)
    upstream = None
    if source and source != version.ref:
        # An optimized version was made from another, not trained: what it does not record
        # itself (data, snapshot, pipeline) is its source's; a source that is gone leaves
        # them unrecorded.
        try:
            upstream = lineage(client, source, until=until)
        except ShipyardError:
            upstream = None
    datasets: dict[str, dict[str, Any]] = {}
    reproduces = None
    if version.run_id is not None:
        run = client.runs.get_run(version.run_id)
        datasets = dict(run.datasets)
        reproduces = run.tags.get("reproduces") or version.tags.get("reproduces")
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
    pipeline: dict[str, Any] | None = None
    if version.run_id is not None:
        record = client.datasets.get_pipeline(version.run_id)
        if record is None and reproduces:  # reproduced before reproductions recorded theirs
            record = client.datasets.get_pipeline(reproduces)
        if record is not None:
            pipeline = {
                "entry_point": record.entry_point,
                "code_hash": record.code_hash,
                "seed": record.record.get("seed"),
                "snapshots": record.snapshots,
            }
    snapshot = _snapshot(client, version.data_fingerprint, pipeline, datasets, version.run_id)
    # A version registered with run_id= but no fingerprint: the data its run logged.
    data = version.data_fingerprint or datasets.get("training")
    if upstream is not None:
        snapshot = snapshot or upstream.snapshot
        pipeline = pipeline or upstream.pipeline
        data = data or upstream.data
    return Lineage(
        snapshot=snapshot,
        pipeline=pipeline,
        version=version.ref,
        data=data,
        run_id=version.run_id,
        optimized_from=source or None,
        optimization=version.tags.get(HOW) if source else None,
        reproduces=reproduces,
        run_datasets=datasets,
        loop_run=loop_run if isinstance(loop_run, int) else None,
        aliases=version.aliases,
        deployments=deployments,
        predictions=sum(w.rows for w in windows),
        first_prediction=windows[0].first if windows else None,
        last_prediction=windows[-1].last if windows else None,
        windows=windows,
    )


def _snapshot(
    client: LoopServices,
    fingerprint: dict[str, Any] | None,
    pipeline: dict[str, Any] | None,
    datasets: dict[str, dict[str, Any]],
    run_id: str | None,
) -> str | None:
    """The training data snapshot, from wherever it was recorded: the version's lineage
    (the loop), the run's pipeline record, the run's logged dataset
    (``log_dataset(snapshot=True)``), or the dataset versions the run is recorded reading."""
    found = (fingerprint or {}).get("snapshot")
    if not found and pipeline is not None:
        found = pipeline["snapshots"].get("training")
    if not found:
        found = (datasets.get("training") or {}).get("snapshot")
    if not found:
        found = next((d["snapshot"] for d in datasets.values() if d.get("snapshot")), None)
    if not found and run_id is not None:
        uses = client.datasets.uses_of_run(run_id)
        uses.sort(key=lambda u: u.context != "training")
        found = f"{uses[0].dataset}:{uses[0].version}" if uses else None
    return str(found) if found else None


__all__ = ["Lineage", "PredictionWindow", "lineage"]
