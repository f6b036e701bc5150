"""deploy/kubernetes/loop-cronjob.yaml: a valid batch/v1 CronJob that runs `shipyard loop tick`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from croniter import croniter

from shipyard.cli.main import app
from shipyard.config import Settings

MANIFEST = Path(__file__).parents[2] / "deploy" / "kubernetes" / "loop-cronjob.yaml"

# Fields of the Kubernetes API objects (batch/v1 CronJobSpec, JobSpec, PodSpec, Container).
CRONJOB_SPEC = {
    "schedule", "timeZone", "startingDeadlineSeconds", "concurrencyPolicy", "suspend",
    "jobTemplate", "successfulJobsHistoryLimit", "failedJobsHistoryLimit",
}  # fmt: skip
JOB_SPEC = {
    "parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy", "backoffLimit",
    "selector", "manualSelector", "template", "ttlSecondsAfterFinished", "completionMode",
    "suspend", "podReplacementPolicy", "backoffLimitPerIndex", "maxFailedIndexes",
}  # fmt: skip
CONTAINER = {
    "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
    "volumeMounts", "livenessProbe", "readinessProbe", "startupProbe", "imagePullPolicy",
    "securityContext",
}  # fmt: skip


def _manifest() -> dict[str, Any]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert len(docs) == 1
    return docs[0]


def test_cronjob_has_the_fields_kubernetes_requires() -> None:
    job = _manifest()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
    assert job["metadata"]["name"] == "shipyard-loop"
    spec = job["spec"]
    assert set(spec) <= CRONJOB_SPEC
    assert croniter.is_valid(spec["schedule"])
    assert spec["concurrencyPolicy"] in {"Allow", "Forbid", "Replace"}
    job_spec = spec["jobTemplate"]["spec"]
    assert set(job_spec) <= JOB_SPEC
    pod = job_spec["template"]["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}  # "Always" is invalid for a Job
    [container] = pod["containers"]
    assert set(container) <= CONTAINER and container["name"] and container["image"]
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["volumes"]}


def test_cronjob_runs_a_real_loop_tick_with_real_settings() -> None:
    [container] = _manifest()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["shipyard", "loop", "tick"]
    root = typer.main.get_command(app)
    loop = root.get_command(typer.Context(root), "loop")  # type: ignore[attr-defined]
    tick = loop.commands["tick"]
    options = {opt for p in tick.params for opt in p.opts}
    assert all(arg in options for arg in command[3:] if arg.startswith("-"))
    mount = container["volumeMounts"][0]["mountPath"]
    assert command[command.index("--config") + 1].startswith(mount)
    for env in container["env"]:
        assert env["name"].startswith("SHIPYARD_")
        assert env["name"].removeprefix("SHIPYARD_").lower() in Settings.model_fields


def test_cronjob_is_valid_for_current_kubernetes() -> None:
    """Against the Kubernetes OpenAPI schemas, strictly (as the package's manifests are)."""
    from test_kubernetes import k8s_validate

    for document in yaml.safe_load_all(MANIFEST.read_text()):
        k8s_validate(document)
