"""Edge bundles: a version that runs on the device, with no Shipyard and no server.

``shipyard export REF --target edge --out DIR`` writes:

- ``model.onnx``: the version's verified ONNX graph (compiled now if it has none;
  a model that cannot be compiled is refused with the converter's reason);
- ``manifest.json``: the signature (columns, types, categories), the classes, how
  rows become the graph's inputs (the preprocessing), the version, and the SHA-256
  of every file;
- ``predict.py``: a runner needing only ``onnxruntime`` and ``numpy`` (CSV or JSON
  lines in, JSON lines out; every row checked against the signature);
- ``index.html`` and ``vendor/``: a browser runner with onnxruntime-web vendored
  into the bundle (no network at all): a record typed in a form or a CSV dropped on
  the page is scored in the page, so the data never leaves the device; every row
  is checked by ``predict.py``'s rules and a bad one is shown as the line
  ``predict.py`` prints for it. Browsers
  load WebAssembly only over HTTP, so serve the folder with any static server
  (``python -m http.server``).

The browser files come from the npm registry at build time (``make edge-web``,
pinned in ``edge_web/package-lock.json``); the wheel ships them.

Example:
    >>> bundle = export_edge(client.registry, "iris:3", Path("iris-edge"))  # doctest: +SKIP
    >>> sorted(bundle.files)                                                # doctest: +SKIP
    ['index.html', 'model.onnx', 'predict.py', 'vendor/ort-wasm-simd-threaded.mjs', ...]
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard._version import __version__
from shipyard.clock import utc_now
from shipyard.errors import ConfigError, ConflictError
from shipyard.registry.graphs import version_graph
from shipyard.registry.model import LoadedModel
from shipyard.registry.optimize import compiled_predictor
from shipyard.registry.service import Registry
from shipyard.tables.missing import MISSING_WORDS

WEB_DIR = Path(__file__).resolve().parent / "edge_web"
VENDOR_DIR = WEB_DIR / "vendor"
#: The onnxruntime-web files the page loads (the WebAssembly build, no WebGPU).
VENDOR_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
_ORT_TYPES = {
    "tensor(float)": "float",
    "tensor(double)": "double",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}


@dataclass(frozen=True)
class EdgeBundle:
    """What was written: the folder and each file's SHA-256."""

    ref: str
    folder: Path
    files: dict[str, str]


def export_edge(
    registry: Registry, ref: str, out: Path, *, trusted_pickle: bool = False
) -> EdgeBundle:
    """Write the edge bundle of ``ref`` into ``out`` (new or empty); see the module doc."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(f"{out} already exists and is not empty; choose a new folder.")
    missing = [name for name in VENDOR_FILES if not (VENDOR_DIR / name).is_file()]
    if missing:
        raise ConfigError(
            f"The browser runner's onnxruntime-web files are not installed ({', '.join(missing)} "
            f"missing from {VENDOR_DIR}); run `make edge-web` in the Shipyard checkout."
        )
    record = registry.resolve(ref)
    model = registry.load(record.ref, trusted_pickle=trusted_pickle)
    graph = version_graph(registry, record, trusted_pickle=trusted_pickle)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(graph)
    shutil.copyfile(WEB_DIR / "predict.py", out / "predict.py")
    shutil.copyfile(WEB_DIR / "index.html", out / "index.html")
    (out / "vendor").mkdir()
    for name in VENDOR_FILES:
        shutil.copyfile(VENDOR_DIR / name, out / "vendor" / name)
    files = {
        path.relative_to(out).as_posix(): _sha256(path)
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }
    manifest = build_manifest(record.ref, model, graph, files, flavor=record.flavor)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return EdgeBundle(record.ref, out, files)


def build_manifest(
    ref: str, model: LoadedModel, graph: bytes, files: dict[str, str], *, flavor: str
) -> dict[str, Any]:
    """``manifest.json``: signature, classes, how rows feed the graph, version, checksums."""
    predictor = compiled_predictor(graph, model.classes)
    session = predictor.session
    # Each input names the column that feeds it: the converter renames a column such as
    # "monthly charges ($)" to "monthly_charges____", and has no input for a dropped one.
    inputs = [
        {
            "name": i.name,
            "column": predictor.columns[i.name],
            "type": _ORT_TYPES.get(i.type, i.type),
        }
        for i in session.get_inputs()
    ]
    layout = "columns" if predictor.per_column else "matrix"
    fed = {item["column"] for item in inputs}
    dropped = [c.name for c in model.signature.inputs if c.name not in fed]
    signature = model.signature.to_dict()
    classes = None if model.classes is None else [_plain(c) for c in model.classes]
    signature.setdefault("output", {})["classes"] = classes
    # A served graph whose own labels are class indices answers the model's labels by
    # the most probable class (CompiledPredictor); the runners do the same.
    argmax = predictor._label_map is not None and flavor != "onnx"
    if layout == "matrix":
        preprocessing = (
            "All columns, in signature order, as one "
            f"{inputs[0]['type']} matrix; a category column as its code (its position in "
            "the column's categories); a missing value as NaN."
        )
    else:
        missing = "an empty string" if not predictor.missing_text else repr(predictor.missing_text)
        preprocessing = (
            'One input per column (the input\'s "column"), shaped [rows, 1]: text as '
            f"strings (a missing value as {missing}), numbers as the input's type; the graph "
            "encodes them."
        )
        if dropped:
            preprocessing += (
                f" The model does not use column(s) {', '.join(dropped)}: they are not inputs "
                "of the graph, and the runners neither need nor check them."
            )
    return {
        "format": "shipyard-edge/1",
        "model": model.name,
        "version": model.version,
        "ref": ref,
        "flavor": flavor,
        "exported_at": utc_now().isoformat(timespec="seconds"),
        "exported_by": f"shipyard {__version__}",
        "signature": signature,
        "graph": {
            "inputs": inputs,
            "layout": layout,
            "missing_text": predictor.missing_text,
            "label_output": predictor.label_output,
            "proba_output": predictor.proba_output,
            "label_from": "argmax" if argmax else "graph",
        },
        "preprocessing": preprocessing,
        # The CSV field values the runners read as missing: the same list as every
        # CSV reader in Shipyard, so a file scores alike here and in serve / predict.
        "csv_missing": list(MISSING_WORDS),
        "files": files,
    }


def _plain(value: Any) -> Any:
    """numpy scalars as JSON's own types (labels are ints or strings)."""
    return value.item() if hasattr(value, "item") else value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["EdgeBundle", "build_manifest", "export_edge"]
