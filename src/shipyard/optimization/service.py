"""``shipyard optimize REF --quantize/--prune/--distill``: a new, gated version.

Each method makes a candidate from the source version, registers it as the next
version of the same model (with the source's signature, its training sample and
lineage tags), then gates it against the source like any challenger
(:mod:`shipyard.validation.fidelity`): on a labelled holdout the metric may drop
by at most ``--max-drop``; on the holdout (or the training sample) the labels must
agree with the source's on ``--min-agreement`` of the rows. Size and single-row
latency are measured before and after, each model through the runtime a server
would use (its verified ONNX graph when it has one). The gate run is stored with
the new version: one that fails is kept for inspection and refused ``production``
by the promotion policy.

Example:
    >>> result = optimize_model(client.registry, client.validation, "iris:3",
    ...                         Quantize("int8"), holdout=df, target="species")  # doctest: +SKIP
    >>> result.version.ref, result.report.passed                                # doctest: +SKIP
    ('iris:4', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shipyard.errors import InvalidInputError
from shipyard.optimization import lineage
from shipyard.optimization.distill import distill, parse_student
from shipyard.optimization.prune import pruning_plan, smallest_passing
from shipyard.optimization.quantize import quantize_graph
from shipyard.registry.graphs import version_graph
from shipyard.registry.model import LoadedModel
from shipyard.registry.optimize import TAG_DIGEST, compiled_model
from shipyard.registry.service import Registry
from shipyard.store import records
from shipyard.store.validation_store import ValidationStore
from shipyard.validation.fidelity import FidelitySpec, evaluate_fidelity
from shipyard.validation.gate_results import GateReport
from shipyard.validation.gates import measure_latency_ms, task_of
from shipyard.validation.service import package_size

LATENCY_SAMPLES = 50


@dataclass(frozen=True)
class Quantize:
    mode: str  # int8 | fp16

    @property
    def how(self) -> str:
        return f"{self.mode} quantization"


@dataclass(frozen=True)
class Prune:
    how: str = "pruning"


@dataclass(frozen=True)
class Distill:
    student: str  # module:Class?params

    @property
    def how(self) -> str:
        return f"distillation into {self.student}"


Method = Quantize | Prune | Distill


@dataclass(frozen=True)
class Footprint:
    """Size and single-row latency of one version as it would be served."""

    package_bytes: int
    graph_bytes: int | None
    latency_ms: float
    runtime: str

    @property
    def served_bytes(self) -> int:
        """What the server loads: the ONNX graph when it serves one, else the package."""
        return self.graph_bytes if self.graph_bytes is not None else self.package_bytes


@dataclass(frozen=True)
class OptimizedVersion:
    """The new version, how it was made and how it compares with its source."""

    source: str
    version: records.ModelVersion
    how: str
    detail: str
    report: GateReport
    before: Footprint
    after: Footprint
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.report.passed


def optimize_model(
    registry: Registry,
    validation: ValidationStore,
    ref: str,
    method: Method,
    *,
    holdout: pd.DataFrame | None = None,
    target: str | None = None,
    spec: FidelitySpec | None = None,
    trusted_pickle: bool = False,
    seed: int = 0,
) -> OptimizedVersion:
    """Make, register and gate an optimized version of ``ref`` (see the module doc)."""
    spec = spec or FidelitySpec()
    if (holdout is None) != (target is None):
        raise InvalidInputError("--holdout FILE and --target COLUMN go together.")
    record = registry.resolve(ref)
    source = registry.load(record.ref, trusted_pickle=trusted_pickle)
    served_source = compiled_model(registry, record, source)
    sample = registry.reference_sample(record)
    if sample is None:
        raise InvalidInputError(
            f"{record.ref} has no stored training sample (it was registered without sample=); "
            "optimizing needs it to register and check the new version."
        )
    if holdout is not None and target is not None and target not in holdout.columns:
        raise InvalidInputError(
            f"The holdout data has no target column {target!r}; its columns are "
            f"{', '.join(map(str, holdout.columns[:20]))}."
        )
    # The stored reference leaves out columns the model never reads (``unused``); the
    # model takes them absent.
    kept = [name for name in source.signature.names if name in sample.columns]
    data = holdout if holdout is not None else sample[kept]
    log_kwargs: dict[str, Any] = {}
    if isinstance(method, Quantize):
        graph = source_graph(registry, record, trusted_pickle=trusted_pickle)
        candidate, quantized = quantize_graph(graph, method.mode)
        detail = quantized.describe()
        log_kwargs["flavor"] = "onnx"
    elif isinstance(method, Prune):
        plan = pruning_plan(source.predictor, source.flavor)

        def passes(level: int) -> bool:
            model = LoadedModel(source.manifest, plan.predictor(level))
            return evaluate_fidelity(model, served_source, data, target, spec).passed

        level = smallest_passing(plan, passes)
        candidate, detail = plan.model(level), plan.describe(level)
    else:
        student = parse_student(method.student)
        candidate = distill(
            served_source,
            student,
            sample,
            estimator=getattr(source.predictor, "model", None),
            seed=seed,
        )
        # A regressor has no probabilities: its student learns the teacher's predictions.
        taught = "predictions" if task_of(served_source) == "regression" else "probabilities"
        detail = f"student {method.student} trained on the teacher's {taught} over " + (
            f"{len(sample)} training rows and jittered copies"
        )
    tags = {lineage.FROM: record.ref, lineage.HOW: method.how, lineage.DETAIL: detail[:1000]}
    version = registry.log_model(
        candidate,
        record.model,
        sample=sample,
        signature=source.signature,
        description=f"Optimized from {record.ref} by {method.how}",
        tags=tags,
        trusted_pickle=trusted_pickle,
        # The same run and feature-store features: a model served by entity id stays so.
        run_id=record.run_id,
        features=source.manifest.features,
        **log_kwargs,
    )
    loaded = compiled_model(registry, version, registry.load(version.ref))
    report = evaluate_fidelity(loaded, served_source, data, target, spec)
    X = data if target is None else data.drop(columns=[target])
    before = footprint(registry, record, served_source, X)
    after = footprint(registry, version, loaded, X)
    facts = {
        "source": record.ref,
        "how": method.how,
        "detail": detail,
        "before": before.__dict__,
        "after": after.__dict__,
    }
    validation.save_gate_result(
        version.model,
        version.version,
        passed=report.passed,
        report={**report.to_dict(), "optimization": facts},
        against=record.ref,
        actor=registry.actor,
    )
    summary = {
        lineage.COST: _cost(report),
        lineage.SIZE: f"{_bytes(before.served_bytes)} -> {_bytes(after.served_bytes)} "
        f"({_ratio(before.served_bytes, after.served_bytes)}; what serves: "
        f"{'ONNX graph' if after.graph_bytes is not None else 'package'})",
        lineage.LATENCY: f"{before.latency_ms:.3f} ms ({before.runtime}) -> "
        f"{after.latency_ms:.3f} ms ({after.runtime})",
        lineage.GATES: "passed" if report.passed else f"failed: {report.summary()}",
    }
    registry.models.set_version_tags(version.model, version.version, summary)
    tags.update(summary)
    version = registry.resolve(version.ref)
    return OptimizedVersion(record.ref, version, method.how, detail, report, before, after, tags)


def source_graph(
    registry: Registry, record: records.ModelVersion, *, trusted_pickle: bool = False
) -> bytes:
    """The source's ONNX graph: its own model file, its verified graph, or compiled now."""
    return version_graph(registry, record, trusted_pickle=trusted_pickle)


def footprint(
    registry: Registry, record: records.ModelVersion, served: LoadedModel, X: pd.DataFrame
) -> Footprint:
    """Bytes on disk (package; ONNX graph if one serves) and single-row p50 latency."""
    graph: int | None = None
    if record.flavor == "onnx":
        graph = len(source_graph(registry, record))
    elif getattr(served, "runtime", None) == "onnxruntime":
        graph = len(registry.artifacts.get_bytes(record.tags[TAG_DIGEST]))
    latency = measure_latency_ms(served, X, samples=LATENCY_SAMPLES)
    runtime = (
        "onnxruntime" if record.flavor == "onnx" else getattr(served, "runtime", record.flavor)
    )
    return Footprint(package_size(registry, record), graph, latency, str(runtime))


def _cost(report: GateReport) -> str:
    parts = []
    for metric, before in report.champion_metrics.items():
        after = report.candidate_metrics.get(metric)
        if after is not None:
            parts.append(f"{metric} {before:.4f} -> {after:.4f} ({after - before:+.4f})")
    for check in report.checks:
        if check.kind == "agreement" and check.observed is not None:
            parts.append(f"agreement {check.observed:.2%}")
    return "; ".join(parts) or "not measured"


def _ratio(before: int, after: int) -> str:
    if after <= before:
        return f"{before / max(after, 1):.1f}x smaller"
    return f"{after / max(before, 1):.1f}x larger"


def _bytes(n: int) -> str:
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.2f} MB"


__all__ = [
    "Distill",
    "Footprint",
    "Method",
    "OptimizedVersion",
    "Prune",
    "Quantize",
    "optimize_model",
    "source_graph",
]
