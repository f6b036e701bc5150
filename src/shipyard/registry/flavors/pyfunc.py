"""Plain Python models: an import path (safe) or a pickled object (trusted only).

Two forms:

- ``"package.module:function"``: the package stores this text; loading imports
  that function (or object with ``predict``) from code already installed where
  the model is served. No bytes from the package are executed.
- any object with ``predict`` or any callable: pickled, which only happens with
  ``trusted_pickle=True`` at save and at load. (``pickle``, not cloudpickle: the
  object's class or function must be importable where it is loaded.)

Example:
    >>> PyfuncFlavor().handles("numpy:asarray")
    True
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError, ManifestError, reason
from shipyard.registry.flavors.base import option_file, pickle_dump, pickle_load

ENTRYPOINT_FILE = "entrypoint.txt"
PICKLE_FILE = "model.pkl"
_TARGET = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def resolve_target(target: str) -> Any:
    """Import ``"module:attr.path"`` and return the attribute."""
    if not _TARGET.fullmatch(target):
        raise InvalidInputError(
            f"{target!r} is not an import path; expected 'package.module:function'."
        )
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"Cannot import {module_name!r} for the pyfunc model {target!r}: {reason(exc)}. "
            "Install the code that defines it where the model is loaded."
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise InvalidInputError(f"{module_name!r} has no attribute {attr_path!r}.") from exc
    if not (callable(obj) or hasattr(obj, "predict")):
        raise InvalidInputError(f"{target!r} is neither callable nor has a predict method.")
    return obj


class PyfuncPredictor:
    """Wraps a callable ``f(X)`` or an object with ``predict(X)`` (and maybe more)."""

    accepts_array = False  # user code expects the DataFrame it was written for
    feature_names: tuple[str, ...] | None = None

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        classes = getattr(obj, "classes_", None)
        self.classes = None if classes is None else np.asarray(classes)
        if hasattr(obj, "predict_proba"):
            self.predict_proba = obj.predict_proba

    def predict(self, X: Any) -> np.ndarray:
        fn = self.obj.predict if hasattr(self.obj, "predict") else self.obj
        return np.asarray(fn(X))


class PyfuncFlavor:
    """The fallback: any callable, object with ``predict``, or ``module:function`` string."""

    name = "pyfunc"
    packages: tuple[str, ...] = ()

    def handles(self, model: Any) -> bool:
        if isinstance(model, str):
            return bool(_TARGET.fullmatch(model))
        return callable(model) or hasattr(model, "predict")

    def save(self, model: Any, dest: Path, *, trusted_pickle: bool) -> dict[str, Any]:
        if isinstance(model, str):
            resolve_target(model)  # fail now, not when the model is deployed
            (dest / ENTRYPOINT_FILE).write_text(model + "\n", encoding="utf-8")
            return {"format": "import", "file": ENTRYPOINT_FILE}
        if not self.handles(model):
            raise InvalidInputError(
                f"A pyfunc model must be callable or have predict(); got {type(model).__name__}."
            )
        what = f"a Python object ({type(model).__name__})"
        if not trusted_pickle:
            what += (
                " as a pyfunc model; alternatively save the import path of its code, "
                "e.g. 'my_package.models:predict', which needs no pickle"
            )
        pickle_dump(model, dest / PICKLE_FILE, trusted_pickle=trusted_pickle, what=what)
        return {"format": "pickle", "file": PICKLE_FILE}

    def load(self, src: Path, options: dict[str, Any], *, trusted_pickle: bool) -> Any:
        fmt = options.get("format")
        path = option_file(src, options)
        if fmt == "import":
            return PyfuncPredictor(resolve_target(path.read_text(encoding="utf-8").strip()))
        if fmt == "pickle":
            return PyfuncPredictor(
                pickle_load(path, trusted_pickle=trusted_pickle, what="This pyfunc model")
            )
        raise ManifestError(f"Unknown pyfunc format {fmt!r}; expected 'import' or 'pickle'.")


__all__ = ["PyfuncFlavor", "PyfuncPredictor", "resolve_target"]
