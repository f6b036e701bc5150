"""``shipyard export REF --target edge --out DIR``: a bundle that runs on the device.

$ shipyard export iris:3 --target edge --out iris-edge
iris:3 exported to iris-edge: model.onnx, manifest.json, predict.py, index.html, vendor/
"""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json

TARGETS = ("edge",)


def export_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Version to export: NAME, NAME@ALIAS or NAME:VERSION."),
    target: str = typer.Option(
        "edge", "--target", help="What to export for: edge (the device; no server)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder to write the bundle to (new or empty)."),
    trusted_pickle: bool = typer.Option(
        False, help="Allow loading a pickled original (only if you trust its author)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Export a version to run without Shipyard: ONNX graph, manifest, Python and browser runners.

    The Python runner (predict.py) needs only onnxruntime and numpy; the browser
    runner (index.html) carries onnxruntime-web in the bundle and scores in the page.
    A model that cannot be compiled to ONNX is refused with the converter's reason.
    """
    if target not in TARGETS:
        raise typer.BadParameter(f"--target takes {', '.join(TARGETS)}, not {target!r}")
    from shipyard.deploy.edge import export_edge

    bundle = export_edge(get_client(ctx).registry, ref, out, trusted_pickle=trusted_pickle)
    if as_json:
        print_json({"ref": bundle.ref, "folder": str(bundle.folder), "files": bundle.files})
        return
    console.print(
        f"{bundle.ref} exported to {bundle.folder}: model.onnx, manifest.json, predict.py "
        "(needs only onnxruntime and numpy), index.html and vendor/ (serve the folder, e.g. "
        "`python -m http.server`, and open it: rows are scored in the page).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
