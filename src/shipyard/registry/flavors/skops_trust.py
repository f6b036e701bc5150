"""Which types a skops file may name: decided from scikit-learn itself, never from the file.

skops rebuilds an object graph without running a pickle, but it still imports
every type the file names. A hand-kept list of "safe" types falls behind every
release (GaussianProcess kernels, SelectKBest's score functions, the SciPy
``BSpline`` inside ``SplineTransformer``...), so the rule is derived from what
scikit-learn ships:

- any **class defined inside scikit-learn** (every estimator of
  ``sklearn.utils.all_estimators()``, its private helpers such as trees, kernels,
  neighbour indexes, distance metrics, optimizers). skops rebuilds them from
  their state without calling their constructor; their methods are scikit-learn's
  own code, which a scikit-learn model runs anyway;
- a **function scikit-learn defines in one of its computing subpackages**
  (``sklearn.feature_selection.f_classif``, ``sklearn.metrics.pairwise...``,
  and private ones such as the Lloyd step a ``BisectingKMeans`` holds):
  score functions, metrics and algorithms that estimators hold as parameters
  or attributes. The subpackages that touch files, the network or global
  state (``datasets``, ``utils``, ``externals``, the top level) are left out;
- ``numpy.dtype`` (``SimpleImputer`` and ``KBinsDiscretizer`` keep the dtype
  they were fitted on; skops rebuilds it from an array header, without
  pickle), and the **NumPy functions scikit-learn's own estimators take as
  parameter defaults** (``FeatureAgglomeration(pooling_func=np.mean)``), read
  off their signatures;
- the **SciPy data structures** that fitted scikit-learn estimators hold
  (classes exported by ``scipy.interpolate``, ``scipy.sparse``,
  ``scipy.spatial``), and the functions of the NumPy array namespace that SciPy
  and scikit-learn vendor (``array_api_compat.numpy``): thin wrappers of NumPy.

Anything else (a function of yours, ``builtins.eval``, ``os.system``) is not
trusted. A name is resolved only when its top-level package is scikit-learn or
SciPy (or is one of the NumPy names above), so checking a hostile file imports
nothing else.

Example:
    >>> is_trusted_type("sklearn.gaussian_process.kernels.RBF")
    True
    >>> is_trusted_type("sklearn.feature_selection._univariate_selection.f_classif")
    True
    >>> is_trusted_type("os.system")
    False
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from types import ModuleType
from typing import Any

#: scikit-learn subpackages whose exported functions are not plain computations.
_NOT_COMPUTING = frozenset({"datasets", "utils", "externals", "experimental", "tests"})
#: SciPy subpackages whose exported classes are data structures fitted estimators hold.
_SCIPY_DATA = ("scipy.interpolate", "scipy.sparse", "scipy.spatial")
#: Vendored copies of the NumPy array namespace (``xp.asarray`` in a fitted BSpline).
_ARRAY_NAMESPACES = (
    "scipy._lib.array_api_compat.numpy",
    "sklearn.externals.array_api_compat.numpy",
)


def is_trusted_type(name: str) -> bool:
    """Whether a skops file may name ``name`` (``module.path.Object``) without the trust flag."""
    root = name.partition(".")[0]
    if root == "numpy":
        return name == "numpy.dtype" or name in _numpy_parameter_defaults()
    if root not in ("sklearn", "scipy") or "<" in name:
        return False
    obj = _resolve(name)
    if obj is None:
        return False
    if root == "sklearn" and inspect.isclass(obj):
        return obj.__module__.partition(".")[0] == "sklearn"
    if name.startswith(_ARRAY_NAMESPACES):
        return callable(obj) and not inspect.isclass(obj)
    if root == "sklearn":
        return id(obj) in _exported_sklearn_functions() or _computing_function(obj)
    return inspect.isclass(obj) and id(obj) in _exported_scipy_classes()


def _computing_function(obj: Any) -> bool:
    """A function defined (not merely imported) in a scikit-learn computing subpackage."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    module = getattr(obj, "__module__", None) or ""
    parts = module.split(".")
    return (
        len(parts) >= 2
        and parts[0] == "sklearn"
        and not parts[1].startswith("_")
        and parts[1] not in _NOT_COMPUTING
    )


@cache
def _numpy_parameter_defaults() -> frozenset[str]:
    """``numpy.<name>`` of every NumPy function a scikit-learn estimator has as a default."""
    from sklearn.utils import all_estimators

    found: set[str] = set()
    for _, cls in all_estimators():
        try:
            parameters = inspect.signature(cls.__init__).parameters.values()
        except (TypeError, ValueError):
            continue
        for parameter in parameters:
            default = parameter.default
            module = getattr(default, "__module__", None) or ""
            if callable(default) and not inspect.isclass(default) and module == "numpy":
                found.add(f"numpy.{default.__name__}")
    return frozenset(found)


def _resolve(name: str) -> Any:
    """The object ``name`` denotes: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            try:
                obj = getattr(obj, attr)
            except (AttributeError, ImportError):
                return None
        return obj
    return None


def _exports(module: ModuleType) -> list[Any]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    found = []
    for name in names:
        try:
            found.append(getattr(module, name))
        except (AttributeError, ImportError):  # experimental names that need an opt-in import
            continue
    return found


@cache
def _exported_sklearn_functions() -> frozenset[int]:
    """Ids of the functions scikit-learn's computing subpackages export (imported once)."""
    import sklearn

    found: set[int] = set()
    for info in pkgutil.iter_modules(sklearn.__path__):
        if info.name.startswith("_") or info.name in _NOT_COMPUTING:
            continue
        try:
            module = importlib.import_module(f"sklearn.{info.name}")
        except ImportError:  # an experimental or optional part that does not import here
            continue
        found.update(id(obj) for obj in _exports(module) if inspect.isfunction(obj))
        if info.name == "metrics":  # pairwise kernels and distances live one level down
            found.update(
                id(obj)
                for obj in _exports(importlib.import_module("sklearn.metrics.pairwise"))
                if inspect.isfunction(obj)
            )
    return frozenset(found)


@cache
def _exported_scipy_classes() -> frozenset[int]:
    found: set[int] = set()
    for module_name in _SCIPY_DATA:
        module = importlib.import_module(module_name)
        found.update(id(obj) for obj in _exports(module) if inspect.isclass(obj))
    return frozenset(found)


__all__ = ["is_trusted_type"]
