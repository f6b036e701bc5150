"""``shipyard package REF --out DIR``: a container build context for a version."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json
from shipyard.deploy.docker import WHEELS_DIR, write_container_context
from shipyard.deploy.kubernetes import write_kubernetes_manifests
from shipyard.deploy.runtime import build_shipyard_wheel, serving_environment


def package_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model reference: iris, iris@staging or iris:3."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the build context to."),
    shipyard_requirement: str | None = typer.Option(
        None,
        "--shipyard-requirement",
        help="Install Shipyard from this requirement instead of a wheel built from source.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write a Dockerfile, pinned requirements, Kubernetes manifests and the model package."""
    registry = get_client(ctx).registry
    version = registry.resolve(ref)
    package_dir = registry.verified_package_dir(version)
    manifest = registry.manifest(version)
    environment = serving_environment(manifest.environment)
    with tempfile.TemporaryDirectory() as scratch:
        wheels = [] if shipyard_requirement else [build_shipyard_wheel(Path(scratch))]
        requirement = shipyard_requirement or f"shipyard @ file://{WHEELS_DIR}/{wheels[0].name}"
        written = write_container_context(
            package_dir,
            environment,
            out,
            model_ref=version.ref,
            shipyard_requirement=requirement,
            wheels=wheels,
        )
    image = f"{version.model}:{version.version}"
    written.append(write_kubernetes_manifests(version.ref, out, image=image))
    if as_json:
        print_json({"ref": version.ref, "out": out, "files": written})
        return
    console.print(f"Wrote a build context for {version.ref} to {out}:")
    for path in written:
        console.print(f"  {path}")
    console.print(f"Next: docker build -t {image} {out} && kubectl apply -f {out}/kubernetes.yaml")
