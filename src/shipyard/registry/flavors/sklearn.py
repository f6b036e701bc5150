"""scikit-learn estimators and pipelines, saved with skops and checked against a trust rule.

skops stores the object graph as data, not as a pickle; loading it imports
only the types it is told to trust. What is trusted is decided by the platform
from scikit-learn itself (:mod:`~shipyard.registry.flavors.skops_trust`: its
classes, its exported score functions and metrics, the SciPy structures its
estimators hold), never read from the artifact. A file naming any other type
(a custom function in a ``FunctionTransformer``, a home-made estimator) is
refused with :class:`UnsafeArtifactError` unless
both the package and the caller trust its author (``trusted_pickle``).

Example:
    >>> is_trusted_type("sklearn.tree._tree.Tree")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError, ManifestError, UnsafeArtifactError
from shipyard.registry.flavors.base import (
    EstimatorPredictor,
    module_root,
    option_file,
    pickle_dump,
    pickle_load,
)
from shipyard.registry.flavors.sklearn_inputs import input_facts
from shipyard.registry.flavors.skops_trust import is_trusted_type
from shipyard.registry.signature import InputFacts

SKOPS_FILE = "model.skops"
PICKLE_FILE = "model.pkl"


def load_skops(path: Path, *, allow_untrusted: bool = False) -> Any:
    """Load a skops file, refusing types :func:`is_trusted_type` does not accept.

    ``allow_untrusted`` is for callers who trust the file's author as they would
    a pickle; it is never inferred from the file.
    """
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a corrupt or foreign file: skops raises many kinds
        raise ManifestError(f"{path} is not a readable skops file: {exc}") from exc
    unknown = sorted(t for t in set(found) if not is_trusted_type(t))
    if unknown and not allow_untrusted:
        raise UnsafeArtifactError(
            f"{path} holds types outside Shipyard's trust list: {unknown}. Loading them "
            "would import and run their code. To proceed, either rebuild the model from "
            "scikit-learn components only (e.g. replace a custom function in a "
            "FunctionTransformer by a built-in transformer), or, if you trust the package's "
            "author, write the package with trusted_pickle=True and load it with "
            "trusted_pickle=True."
        )
    try:
        return sio.load(path, trusted=list(found))
    except (AttributeError, ImportError) as exc:
        raise ManifestError(
            f"{path} refers to code that cannot be imported here ({exc}). Install the module "
            "that defines it, or rebuild the model without it."
        ) from exc


class SklearnPredictor(EstimatorPredictor):
    """A loaded scikit-learn model, which can also tell what its inputs handle."""

    def input_facts(self, columns: Sequence[str]) -> dict[str, InputFacts]:
        """What the fitted model shows it handles at ``columns`` (see
        :mod:`~shipyard.registry.flavors.sklearn_inputs`): the registry widens a
        signature inferred from a small sample with it."""
        return input_facts(self.model, columns)


class SklearnFlavor:
    """Any scikit-learn estimator or pipeline (``ColumnTransformer``, encoders, ...)."""

    name = "sklearn"
    packages: tuple[str, ...] = ("scikit-learn", "skops")

    def handles(self, model: Any) -> bool:
        if module_root(model) == "sklearn":
            return True
        try:
            from sklearn.base import BaseEstimator
        except ImportError:  # pragma: no cover - scikit-learn is a dependency
            return False
        return isinstance(model, BaseEstimator)

    def save(self, model: Any, dest: Path, *, trusted_pickle: bool) -> dict[str, Any]:
        import sklearn
        import skops.io as sio

        path = dest / SKOPS_FILE
        try:
            sio.dump(model, path)
        except Exception as exc:  # skops cannot represent some objects (open files, ...)
            path.unlink(missing_ok=True)
            if not trusted_pickle:
                raise UnsafeArtifactError(
                    f"skops cannot save this {type(model).__name__} ({exc}), and the only "
                    "other format is pickle, which runs code when loaded. Pass "
                    "trusted_pickle=True to save it as a pickle."
                ) from exc
            pickle_dump(model, dest / PICKLE_FILE, trusted_pickle=True, what="this model")
            return {"format": "pickle", "file": PICKLE_FILE, "sklearn": sklearn.__version__}
        local = [t for t in sio.get_untrusted_types(file=path) if "<" in t]
        if local:
            path.unlink()
            raise InvalidInputError(
                f"The model refers to {local}, a lambda or a function defined inside another "
                "function, which no file format can name. Define it at module level."
            )
        return {"format": "skops", "file": SKOPS_FILE, "sklearn": sklearn.__version__}

    def load(self, src: Path, options: dict[str, Any], *, trusted_pickle: bool) -> Any:
        fmt = options.get("format")
        path = option_file(src, options)
        if fmt == "skops":
            model = load_skops(path, allow_untrusted=trusted_pickle)
        elif fmt == "pickle":
            model = pickle_load(path, trusted_pickle=trusted_pickle, what="This scikit-learn model")
        else:
            raise ManifestError(f"Unknown sklearn format {fmt!r}; expected 'skops' or 'pickle'.")
        return SklearnPredictor(model)


__all__ = ["SklearnFlavor", "SklearnPredictor", "is_trusted_type", "load_skops"]
