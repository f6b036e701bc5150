"""The model package: a folder that describes itself and proves it is intact.

Layout::

    <package>/
      shipyard.json      the manifest (signature, environment, checksums, lineage)
      requirements.txt   exact pins of what the model needs
      model/             the flavor's files (model.skops, model.ubj, model.onnx, ...)

:func:`write_package` builds it in a hidden sibling folder and renames it into
place, so a package is either complete or absent. :func:`read_package` checks
every file against its SHA-256 *before* loading anything.

Example:
    >>> manifest = write_package(clf, Path("pkg"), name="iris", version=1,
    ...                          sample=X_train)                        # doctest: +SKIP
    >>> manifest, predictor = read_package(Path("pkg"))                 # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ManifestError,
    UnsafeArtifactError,
)
from shipyard.extras import require_flavor
from shipyard.registry.environment import capture_environment, requirements_lines
from shipyard.registry.flavors import flavor_for_model, get_flavor
from shipyard.registry.flavors.base import Predictor
from shipyard.registry.manifest import MANIFEST_NAME, FileEntry, Manifest
from shipyard.registry.model import LoadedModel
from shipyard.registry.refs import parse_ref
from shipyard.registry.signature import (
    Signature,
    infer_output,
    infer_signature,
    same_categories,
)
from shipyard.registry.version_reference import REFERENCE_DIR
from shipyard.store.artifacts import sha256_file

MODEL_DIR = "model"
REQUIREMENTS_NAME = "requirements.txt"
#: Rows (evenly spaced) of the sample the saved model is run on at registration.
PROBE_ROWS = 2_000
#: Rows predicted at once when every row's label is needed (see _probe_predictions).
PROBE_CHUNK = 50_000


def write_package(
    model: Any,
    dest: Path,
    *,
    name: str,
    version: int | None,
    sample: pd.DataFrame | None,
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    data_fingerprint: dict[str, Any] | None = None,
    run_id: str | None = None,
    trusted_pickle: bool = False,
    description: str | None = None,
    flavor: str | None = None,
    signature: Signature | None = None,
    features: dict[str, Any] | None = None,
) -> Manifest:
    """Save ``model`` as a package at ``dest`` (which must not exist or be empty).

    The flavor is ``flavor`` or the one :func:`flavor_for_model` picks. The saved
    model is loaded back and run on ``sample`` (up to ``PROBE_ROWS`` evenly spaced
    rows) so that the signature's output (task, classes) comes from the real
    predictions, and a model that cannot be loaded is refused now rather than at
    deploy time. The inputs are inferred from every row of ``sample``, then widened
    to what the fitted model shows it handles (a scikit-learn imputer or encoder:
    :mod:`~shipyard.registry.flavors.sklearn_inputs`). Columns the model was not
    fitted on (a target column, ids) are left out of the signature when the model
    records its feature names. ``signature`` overrides inference (e.g. one imported
    from MLflow); ``sample`` may then be None.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConflictError(f"{dest} already exists and is not empty; choose a new folder.")
    if sample is None and signature is None:
        raise InvalidInputError(
            "Pass sample= (the training inputs, all of them or a large sample) so Shipyard "
            "can infer the signature."
        )
    chosen = get_flavor(flavor) if flavor else flavor_for_model(model)
    require_flavor(chosen.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        model_dir = staging / MODEL_DIR
        model_dir.mkdir()
        options = chosen.save(model, model_dir, trusted_pickle=trusted_pickle)
        predictor = chosen.load(model_dir, options, trusted_pickle=trusted_pickle)
        sig = _signature(predictor, sample, signature, name=name, flavor=chosen.name)
        env = capture_environment(list(chosen.packages))
        (staging / REQUIREMENTS_NAME).write_text(
            "\n".join(requirements_lines(env)) + "\n", encoding="utf-8"
        )
        files = {rel.as_posix(): _entry(staging / rel) for rel in package_files(staging)}
        manifest = Manifest(
            name=name,
            version=version,
            flavor=chosen.name,
            flavor_options=options,
            signature=sig.to_dict(),
            environment=env,
            metrics=dict(metrics or {}),
            params=dict(params or {}),
            data_fingerprint=data_fingerprint,
            run_id=run_id,
            features=features,
            files=files,
            trusted_pickle=trusted_pickle,
            description=description,
        )
        manifest.dump(staging / MANIFEST_NAME)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _signature(
    predictor: Predictor,
    sample: pd.DataFrame | None,
    given: Signature | None,
    *,
    name: str,
    flavor: str,
) -> Signature:
    if sample is not None and not isinstance(sample, pd.DataFrame):
        raise InvalidInputError(
            f"sample must be a pandas DataFrame with named columns, got {type(sample).__name__}."
        )
    if sample is not None and given is None:
        features = getattr(predictor, "feature_names", None)
        if features is not None:
            sample = sample[_fitted_columns(list(features), list(sample.columns))]
        levels_of = getattr(predictor, "category_levels", None)
        if levels_of is not None:
            sample = with_training_categories(sample, levels_of(sample))
    if sample is None:
        assert given is not None  # write_package requires one of the two
        return given
    inputs = given if given is not None else _widened(infer_signature(sample), predictor)
    # Predict through the same path a LoadedModel will use, on the real saved model.
    probe = LoadedModel(
        Manifest(name=name, flavor=flavor, signature=inputs.to_dict(), environment={}),
        predictor,
    )
    predictions = _probe_predictions(probe, sample)
    if given is not None:
        return given
    return Signature(inputs.inputs, infer_output(predictions, probe.predictor.classes))


def _widened(signature: Signature, predictor: Predictor) -> Signature:
    """``signature`` widened to what the fitted model shows it handles (a small sample
    misses categories and missing values the model was trained on)."""
    facts_of = getattr(predictor, "input_facts", None)
    return signature if facts_of is None else signature.widened(facts_of(signature.names))


def _probe_predictions(probe: LoadedModel, sample: pd.DataFrame) -> np.ndarray:
    """The model's predictions that decide the signature's output, on few rows if they do.

    Classes (``classes_``), probabilities and regression values are told by
    ``PROBE_ROWS`` evenly spaced rows; only labels of a model that lists no classes
    (a clusterer) need every row, predicted a chunk at a time so that memory stays
    bounded on a large training sample.
    """
    rows = len(sample)
    if rows <= PROBE_ROWS:
        return np.asarray(probe.predict(sample))
    spread = np.linspace(0, rows - 1, PROBE_ROWS).astype(np.int64)
    first = np.asarray(probe.predict(sample.iloc[spread]))
    if probe.predictor.classes is not None or first.ndim != 1 or first.dtype.kind in "fc":
        return first
    chunks = [
        np.asarray(probe.predict(sample.iloc[start : start + PROBE_CHUNK]))
        for start in range(0, rows, PROBE_CHUNK)
    ]
    return np.concatenate(chunks)


def _fitted_columns(features: list[str], columns: list[Any]) -> list[Any]:
    """The sample's columns the model was fitted on, in the model's order.

    LightGBM records ``mean radius`` as ``mean_radius`` (it replaces whitespace), and
    reads a frame by position: a column matching that way, and only one, is taken.
    """
    relaxed: dict[str, list[Any]] = {}
    for column in columns:
        relaxed.setdefault(re.sub(r"\s", "_", str(column)), []).append(column)
    chosen: list[Any] = []
    missing: list[str] = []
    for feature in features:
        if feature in columns:
            chosen.append(feature)
        elif len(relaxed.get(feature, [])) == 1:
            chosen.append(relaxed[feature][0])
        else:
            missing.append(feature)
    if missing:
        raise InvalidInputError(
            f"The model was fitted on columns {missing} that the sample lacks; pass a "
            "sample with the columns the model was trained on."
        )
    return chosen


def with_training_categories(sample: pd.DataFrame, levels: dict[str, list[Any]]) -> pd.DataFrame:
    """``sample`` with each column in ``levels`` as the model's training ``category`` dtype.

    The model is the authority on its categories: a sample that was cut from the
    training frame already has them, but one rebuilt elsewhere may list them in
    another order, lack some, or hold plain strings. Values are matched by value;
    one the model never saw is refused, since the dtype has no code for it.
    """
    out = sample
    for name, known in levels.items():
        if name not in sample.columns:
            continue
        column = sample[name]
        if not known:  # the model did not save them: the sample's own dtype must do
            if isinstance(column.dtype, pd.CategoricalDtype):
                continue
            raise InvalidInputError(
                f"Column {name!r} is categorical in the model, but the sample holds it as "
                f"{column.dtype}. Pass it as a pandas category column with the training "
                f"categories (sample[{name!r}] = sample[{name!r}].astype('category'))."
            )
        unknown = column.notna() & ~column.isin(known)
        if unknown.any():
            raise InvalidInputError(
                f"Sample column {name!r} holds {column[unknown].iloc[0]!r}, which is not one of "
                f"the categories the model was trained with: {known}. Pass rows of the "
                "training data as the sample."
            )
        dtype = pd.CategoricalDtype(known)
        if not same_categories(column.dtype, dtype):  # by value, into the training order
            out = out.assign(**{name: column.astype(object).astype(dtype)})
    return out


def _entry(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), size=path.stat().st_size)


def package_files(src: Path) -> list[Path]:
    """Every file of the package, as sorted paths relative to ``src`` (manifest included).

    Symbolic links are refused: a package must hold its own bytes.
    """
    src = Path(src)
    out: list[Path] = []
    for root, dirs, names in os.walk(src):
        here = Path(root)
        for entry in [*dirs, *names]:
            if (here / entry).is_symlink():
                raise IntegrityError(
                    f"{here / entry} is a symbolic link; a package must hold its own files."
                )
        out.extend((here / n).relative_to(src) for n in names)
    return sorted(out, key=lambda p: p.as_posix())


def verify_package(src: Path, manifest: Manifest) -> None:
    """Check that ``src`` holds exactly the manifest's files with the right checksums."""
    src = Path(src)
    # reference/ (contract and drift profile, see version_reference) has checksums of its own.
    actual = {p.as_posix() for p in package_files(src) if p.parts[0] != REFERENCE_DIR} - {
        MANIFEST_NAME
    }
    listed = set(manifest.files)
    missing = sorted(listed - actual)
    if missing:
        raise IntegrityError(
            f"Package {src} is missing {missing}, listed in its manifest; the copy is "
            "incomplete. Fetch or register the package again."
        )
    extra = sorted(actual - listed)
    if extra:
        raise IntegrityError(
            f"Package {src} holds {extra}, which its manifest does not list; files were "
            "added after it was written. Remove them or fetch a clean copy."
        )
    for rel in sorted(listed):
        entry, path = manifest.files[rel], src / rel
        size = path.stat().st_size
        digest = sha256_file(path) if size == entry.size else None
        if digest != entry.sha256:
            got = f"sha256 {digest[:12]}…" if digest else f"{size} bytes"
            raise IntegrityError(
                f"{path} does not match the manifest (expected sha256 {entry.sha256[:12]}…, "
                f"{entry.size} bytes; got {got}): it was changed or corrupted after the "
                "package was written. Nothing was loaded. Fetch or register it again."
            )


def package_folder(ref: str) -> Path | None:
    """The package folder ``ref`` names, or None when ``ref`` is a model reference.

    A folder is a package only when it holds a manifest, so a folder that happens
    to be called like a model (``./iris``) never hides the model ``iris``. A folder
    without a manifest that is not a model reference either gets an error that
    says what a package folder holds.
    """
    path = Path(ref)
    if (path / MANIFEST_NAME).is_file():
        return path
    if path.is_dir():
        try:
            parse_ref(ref)
        except InvalidInputError as exc:
            raise ManifestError(
                f"{ref} is a folder without a {MANIFEST_NAME}, so it is not a model package "
                "(in a build context written by `shipyard package`, the package is its "
                "model/ folder), and not a model reference either."
            ) from exc
    return None


def read_package(src: Path, *, trusted_pickle: bool = False) -> tuple[Manifest, Predictor]:
    """Read the manifest, verify every file, then load the model through its flavor.

    A pickled model loads only if the package was written with ``trusted_pickle=True``
    *and* the caller passes ``trusted_pickle=True``.
    """
    src = Path(src)
    manifest = Manifest.load(src / MANIFEST_NAME)
    verify_package(src, manifest)
    try:
        flavor = get_flavor(manifest.flavor)
    except InvalidInputError as exc:
        raise ManifestError(f"{src / MANIFEST_NAME}: {exc}") from exc
    require_flavor(flavor.name)
    if manifest.flavor_options.get("format") == "pickle" and not manifest.trusted_pickle:
        raise UnsafeArtifactError(
            f"Package {src} holds a pickle, but its manifest does not record that it was "
            "written with trusted_pickle=True. Refusing to load it: re-create the package "
            "with trusted_pickle=True if you trust its author."
        )
    allowed = trusted_pickle and manifest.trusted_pickle
    predictor = flavor.load(src / MODEL_DIR, manifest.flavor_options, trusted_pickle=allowed)
    return manifest, predictor


__all__ = [
    "MANIFEST_NAME",
    "MODEL_DIR",
    "REQUIREMENTS_NAME",
    "package_files",
    "package_folder",
    "read_package",
    "verify_package",
    "with_training_categories",
    "write_package",
]
