"""``shipyard package REF --out DIR``: a container build context for a version."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json
from shipyard.deploy.docker import WHEELS_DIR, write_container_context
from shipyard.deploy.kubernetes import write_kubernetes_manifests
from shipyard.deploy.runtime import (
    build_shipyard_wheel,
    image_extras,
    serving_environment,
    with_extras,
)


def package_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model reference: iris, iris@staging or iris:3."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the build context to."),
    shipyard_requirement: str | None = typer.Option(
        None,
        "--shipyard-requirement",
        help="Install Shipyard from this requirement instead of a wheel built from source.",
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Image the Kubernetes Deployment runs (default: MODEL:VERSION, e.g. "
        "registry.example.com/team/iris:3 for a registry).",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Name of the Kubernetes Deployment and Service (default: the model's name, so "
        "the next version's manifests update them in place).",
    ),
    extra: list[str] = typer.Option(
        [],
        "--extra",
        help="Also install this Shipyard extra in the image (s3 for an s3:// artifact "
        "store; the model's flavor adds its own). Repeatable.",
    ),
    replicas: int = typer.Option(
        2, "--replicas", min=1, help="Pods at least (the Deployment's and autoscaler's minimum)."
    ),
    max_replicas: int = typer.Option(
        10, "--max-replicas", min=1, help="Pods the HorizontalPodAutoscaler may add, at most."
    ),
    cpu_target: int = typer.Option(
        70, "--cpu-target", min=1, max=100, help="Autoscale to keep CPU at this % of requests."
    ),
    in_flight_target: float | None = typer.Option(
        None,
        "--in-flight-target",
        min=0.001,
        help="Also autoscale on requests in flight per pod (shipyard_http_requests_in_flight "
        "through the Prometheus adapter), keeping the average at this value.",
    ),
    setting: list[str] = typer.Option(
        [],
        "--setting",
        help="A non-secret SHIPYARD_NAME=VALUE for the ConfigMap the pods read (repeatable), "
        "e.g. SHIPYARD_ARTIFACTS=s3://bucket/prefix.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write a Dockerfile, pinned requirements, Kubernetes manifests and the model package."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Checked first, with the flag's name: building the wheel takes a while.
        raise typer.BadParameter(
            f"{out} already exists and is not an empty folder; choose a new folder or "
            "delete it first.",
            param_hint="--out",
        )
    if replicas > max_replicas:
        raise typer.BadParameter(
            f"--replicas {replicas} is more than --max-replicas {max_replicas}.",
            param_hint="--replicas",
        )
    settings = _settings(setting)
    client = get_client(ctx)
    registry = client.registry
    version = registry.resolve(ref)
    package_dir = registry.verified_package_dir(version)
    manifest = registry.manifest(version)
    extras = image_extras(manifest.flavor, extra)
    environment = serving_environment(manifest.environment, extras)
    with tempfile.TemporaryDirectory() as scratch:
        wheels = [] if shipyard_requirement else [build_shipyard_wheel(Path(scratch))]
        requirement = with_extras(
            shipyard_requirement or f"shipyard @ file://{WHEELS_DIR}/{wheels[0].name}", extras
        )
        written = write_container_context(
            package_dir,
            environment,
            out,
            model_ref=version.ref,
            shipyard_requirement=requirement,
            wheels=wheels,
        )
    # The version's data contract and drift reference travel with the package, so a
    # server started on it checks and monitors as one started on the registry would.
    from shipyard.deploy.references import write_package_references

    write_package_references(client.validation, client.references, version, out / "model")
    image = image or f"{version.model}:{version.version}"
    written.append(
        write_kubernetes_manifests(
            version.ref,
            out,
            image=image,
            name=name,
            replicas=replicas,
            max_replicas=max_replicas,
            cpu_target=cpu_target,
            in_flight_target=in_flight_target,
            settings=settings,
        )
    )
    written.append(out / "kubernetes-secret.yaml")
    if as_json:
        print_json({"ref": version.ref, "out": out, "files": written, "extras": extras})
        return
    console.print(f"Wrote a build context for {version.ref} to {out}:", markup=False)
    for path in written:
        console.print(f"  {path}", markup=False)
    console.print(
        f"Next: docker build -t {image} {out} && kubectl apply -f {out}/kubernetes.yaml "
        f"(edit and apply {out}/kubernetes-secret.yaml once first)",
        markup=False,
    )


def _settings(pairs: list[str]) -> dict[str, str]:
    """``--setting NAME=VALUE`` pairs; secrets are refused here, before any work."""
    from shipyard.deploy.kubernetes import SECRET_SETTINGS

    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("SHIPYARD_") or key in SECRET_SETTINGS:
            raise typer.BadParameter(
                f"{pair!r}: expected SHIPYARD_NAME=VALUE of a setting that is not a secret "
                f"({', '.join(SECRET_SETTINGS)} go in kubernetes-secret.yaml).",
                param_hint="--setting",
            )
        settings[key] = value
    return settings
