"""Run a recorded pipeline again and tell whether it gave the same model.

``reproduce`` reads the run's pipeline record, re-reads the very data
snapshot versions it read, re-makes its holdout split from the recorded seed,
runs the entry point with the recorded params in the *current* environment
and registers the result as a new candidate version (no alias moves). With
``check`` it compares the two:

- what differs in the inputs: each source file whose hash changed, each
  pinned package whose version changed, each snapshot that no longer reads
  back to its fingerprint;
- what differs in the outputs: predictions on the run's holdout, which must
  be identical for a deterministic estimator; otherwise every training
  metric must be within ``tolerance`` (absolute).

A check passes only when nothing differs in the inputs and the outputs
match; when it fails, the differences listed say why.

>>> result = reproduce(client, run_id, check=True)               # doctest: +SKIP
>>> result.ok, result.reasons                                     # doctest: +SKIP
(False, ['source file train.py changed (3f2a91c0d1e4 -> 77b0c2a9e3f1)'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.data.layout import index_as_columns
from shipyard.data.refs import parse_data_ref
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.loop.pipelines import finite_metrics, run_pipeline
from shipyard.loop.provenance import hash_sources, pipeline_environment, record_pipeline
from shipyard.store.data_records import PipelineRecord
from shipyard.tracking.fingerprint import fingerprint

if TYPE_CHECKING:
    from shipyard.loop.services import LoopServices

#: Metrics of a non-deterministic pipeline must agree within this (absolute).
DEFAULT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Reproduction:
    """A reproduced run: its new candidate and, when checked, how it compares."""

    run_id: str
    new_run_id: str
    candidate: str
    original: str | None
    checked: bool
    predictions_identical: bool | None = None
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE
    code_changes: list[str] = field(default_factory=list)
    package_changes: list[str] = field(default_factory=list)
    data_changes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons


def _require_record(client: LoopServices, run_id: str) -> PipelineRecord:
    client.runs.get_run(run_id)  # an unknown id says so, with how to list runs
    record = client.datasets.get_pipeline(run_id)
    if record is None:
        raise InvalidInputError(
            f"Run {run_id} recorded no pipeline, so it cannot be reproduced: only runs the "
            "loop started, or that recorded their entry point (record_pipeline), can be."
        )
    for key in ("target",):
        if key not in record.record.get("params", {}):
            raise InvalidInputError(f"The pipeline of run {run_id} records no {key!r} param.")
    if "training" not in record.snapshots:
        raise InvalidInputError(
            f"Run {run_id} recorded no training data snapshot; it cannot be re-run on its data."
        )
    return record


def code_changes(record: PipelineRecord) -> list[str]:
    """Each recorded source file that changed, appeared or disappeared since the run."""
    recorded: dict[str, str] = dict(record.record.get("files", {}))
    try:
        now = hash_sources(record.entry_point, record.record.get("code_path")).files
    except Exception as exc:  # the module is gone or unreadable: that is the difference
        return [f"entry point {record.entry_point} cannot be found now: {exc}"]
    changes = []
    for name in sorted(set(recorded) | set(now)):
        if name not in now:
            changes.append(f"source file {name} was removed")
        elif name not in recorded:
            changes.append(f"source file {name} is new")
        elif recorded[name] != now[name]:
            changes.append(
                f"source file {name} changed ({recorded[name][:12]} -> {now[name][:12]})"
            )
    return changes


def package_changes(record: PipelineRecord) -> list[str]:
    """Each pinned package whose version differs now (and the Python version)."""
    then = record.record.get("environment", {})
    now = pipeline_environment()
    changes = []
    if then.get("python") != now["python"]:
        changes.append(f"Python {then.get('python')} recorded, {now['python']} now")
    old, new = then.get("packages", {}), now["packages"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes.append(
                f"package {name} {old.get(name) or '(absent)'} recorded, "
                f"{new.get(name) or '(absent)'} now"
            )
    return changes


def _split(frame: pd.DataFrame, fraction: float, seed: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The loop's holdout split (see ``loop.steps._split``), from the recorded seed."""
    rng = np.random.default_rng(seed)
    n_hold = max(1, round(len(frame) * fraction))
    order = rng.permutation(len(frame))
    holdout = frame.iloc[np.sort(order[:n_hold])].reset_index(drop=True)
    train = frame.iloc[np.sort(order[n_hold:])].reset_index(drop=True)
    return train, holdout


def reproduce(
    client: LoopServices,
    run_id: str,
    *,
    check: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Reproduction:
    """Re-run run ``run_id``'s pipeline on its snapshots; register; compare if ``check``."""
    record = _require_record(client, run_id)
    rec = record.record
    params: dict[str, Any] = dict(rec.get("params", {}))
    target = str(params["target"])
    config = rec.get("config", {})
    pipeline_cfg = config.get("pipeline", {})
    data_changes: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    snapshots = _exact_snapshots(client, run_id, record.snapshots)
    for context, ref in snapshots.items():
        try:
            version = client.data.resolve(ref)
            frames[context] = client.data.read(version)
        except NotFoundError as exc:
            raise InvalidInputError(
                f"Run {run_id} read {ref} as its {context} data, which is gone ({exc}); "
                "it cannot be reproduced."
            ) from exc
        # A named index was stored as leading columns, and fingerprinted so.
        stored, _ = index_as_columns(frames[context])
        if fingerprint(stored).content_hash != version.content_hash:
            data_changes.append(f"snapshot {ref} no longer reads back to its fingerprint")
    training = frames["training"]
    holdout_fraction = float(pipeline_cfg.get("holdout_fraction", 0.25))
    if pipeline_cfg.get("holdout") is not None and "holdout" in frames:
        train, holdout = training, frames["holdout"]
    elif rec.get("seed") is not None:
        train, holdout = _split(training, holdout_fraction, rec["seed"])
        if "holdout" in frames and not holdout.equals(frames["holdout"]):
            data_changes.append(
                f"the holdout split of {snapshots['training']} with seed {rec['seed']} "
                f"is not {snapshots['holdout']}"
            )
    else:
        raise InvalidInputError(
            f"Run {run_id} recorded no split seed (its loop was given its own random "
            "generator), so its train/holdout split cannot be made again."
        )
    named = rec.get("model") or config.get("model")
    original = _original_version(client, run_id, named)
    model_name = original.rpartition(":")[0] if original else str(named or "")
    if not model_name:
        raise InvalidInputError(
            f"Run {run_id} registered no model version, so there is nothing to compare a "
            "reproduction with nor a model to add it to. Register the model from inside the "
            "run (shipyard.log_model(model, NAME) while the run is active), or record the "
            "pipeline with config={'model': NAME}."
        )
    original_source = _source_of(client, original)
    with client.tracker.start_run(
        f"reproduce-{model_name}", name=f"reproduce-{run_id[:12]}"
    ) as run:
        run.set_tag("reproduces", run_id)
        run.log_params({**params, "entry_point": record.entry_point})
        # The reproduction is a run of the same pipeline: record it as one (so lineage
        # and a later reproduce follow it), pinned to the same snapshot versions.
        record_pipeline(
            client.datasets,
            run.id,
            entry_point=record.entry_point,
            params=params,
            code_path=rec.get("code_path"),
            seed=rec.get("seed"),
            snapshots=snapshots,
            config=config,
            extra={"reproduces": run_id},
        )
        for context, frame in frames.items():
            client.runs.log_dataset(
                run.id,
                context,
                {
                    **fingerprint(frame, source=original_source).to_dict(),
                    "snapshot": snapshots[context],
                },
            )
        result = run_pipeline(record.entry_point, train, params, code_path=rec.get("code_path"))
        metrics = finite_metrics(result.metrics)
        if metrics:
            run.log_metrics(metrics)
    features = train.drop(columns=[c for c in (target, _time_column(config)) if c in train])
    candidate = client.registry.log_model(
        result.model,
        model_name,
        sample=features.iloc[: int(pipeline_cfg.get("sample_rows", 200))],
        metrics=metrics,
        params=params,
        run_id=run.id,
        data_fingerprint={
            **fingerprint(training, source=original_source or snapshots["training"]).to_dict(),
            "snapshot": snapshots["training"],
            "reproduces": run_id,
        },
        description=f"Reproduction of run {run_id} ({record.entry_point})",
        tags={"reproduces": run_id, "loop.pipeline": record.entry_point},
    )
    if not check:
        return Reproduction(run_id, run.id, candidate.ref, original, checked=False)
    codes, packages = code_changes(record), package_changes(record)
    hold_x = holdout.drop(columns=[c for c in (target, _time_column(config)) if c in holdout])
    identical: bool | None = None
    if original is not None:
        before = client.registry.load(original).predict(hold_x)
        after = client.registry.load(candidate.ref).predict(hold_x)
        identical = bool(np.array_equal(np.asarray(before), np.asarray(after)))
    recorded = client.runs.get_run(run_id).metrics
    compared: dict[str, list[float | None]] = {
        k: [recorded.get(k), metrics.get(k)] for k in sorted(set(recorded) | set(metrics))
    }
    reasons = [*codes, *packages, *data_changes]
    if identical is False:
        off = [
            f"{k} {a} -> {b}"
            for k, (a, b) in compared.items()
            if a is None or b is None or abs(a - b) > tolerance
        ]
        if off:
            reasons.append(
                f"predictions on the holdout differ and metrics moved beyond {tolerance}: "
                + "; ".join(off)
            )
    if original is None:
        reasons.append(f"run {run_id} registered no model version to compare with")
    return Reproduction(
        run_id=run_id,
        new_run_id=run.id,
        candidate=candidate.ref,
        original=original,
        checked=True,
        predictions_identical=identical,
        metrics=compared,
        tolerance=tolerance,
        code_changes=codes,
        package_changes=packages,
        data_changes=data_changes,
        reasons=reasons,
    )


def _time_column(config: dict[str, Any]) -> str | None:
    data = config.get("pipeline", {}).get("data", {})
    value = data.get("time_column") if isinstance(data, dict) else None
    return str(value) if value else None


def _original_version(client: LoopServices, run_id: str, model: Any) -> str | None:
    """The version run ``run_id`` registered: of ``model`` when the record names one,
    else the newest it registered (whatever the model: ``log_model`` inside the run)."""
    refs = client.models.versions_from_run(run_id)
    if model:
        refs = [r for r in refs if r.rpartition(":")[0] == str(model)] or refs
    return refs[-1] if refs else None


def _source_of(client: LoopServices, ref: str | None) -> str | None:
    """Where the original version's training data came from, as its lineage says."""
    if ref is None:
        return None
    source = (client.registry.resolve(ref).data_fingerprint or {}).get("source")
    return str(source) if source else None


def _exact_snapshots(client: LoopServices, run_id: str, refs: dict[str, str]) -> dict[str, str]:
    """The recorded references, each ``NAME:VERSION``. A record made before bare names
    were pinned may hold ``NAME``: the version the run logged reading, if it logged one."""
    exact: dict[str, str] = {}
    used = client.datasets.uses_of_run(run_id)
    for context, ref in refs.items():
        try:
            name, number = parse_data_ref(ref)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"Run {run_id} recorded {ref!r} as its {context} data: {exc}"
            ) from exc
        if number is None:
            mine = {u.version for u in used if u.dataset == name}
            if len(mine) != 1:
                raise InvalidInputError(
                    f"Run {run_id} recorded its {context} data as {ref!r} with no version, and "
                    "did not log which version it read, so the data it trained on is unknown "
                    "and it cannot be reproduced. Record the pipeline again with "
                    f"snapshots={{{context!r}: '{name}:VERSION'}}."
                )
            number = mine.pop()
        exact[context] = f"{name}:{number}"
    return exact


__all__ = ["DEFAULT_TOLERANCE", "Reproduction", "code_changes", "package_changes", "reproduce"]
