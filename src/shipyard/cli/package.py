"""``shipyard package REF --out DIR``: a container build context for a version."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard import __version__
from shipyard.cli._common import JsonOption, console, get_client, print_json
from shipyard.deploy.docker import write_container_context


def package_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model reference: iris, iris@staging or iris:3."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the build context to."),
    as_json: bool = JsonOption,
) -> None:
    """Write a Dockerfile, pinned requirements and the model package to a folder."""
    registry = get_client(ctx).registry
    version = registry.resolve(ref)
    package_dir = registry.package_dir(version)
    manifest = registry.manifest(version)
    written = write_container_context(
        package_dir,
        manifest.environment,
        out,
        model_ref=version.ref,
        shipyard_requirement=f"shipyard=={__version__}",
    )
    if as_json:
        print_json({"ref": version.ref, "out": out, "files": written})
        return
    console.print(f"Wrote a build context for {version.ref} to {out}:")
    for path in written:
        console.print(f"  {path}")
    console.print(f"Next: docker build -t {version.model}:{version.version} {out}")
