"""What every flavor and every loaded model look like, and helpers they share.

A *flavor* knows one framework: how to save a model of it into a folder with a
safe format, and how to load it back as a :class:`Predictor`. Flavors are
plain objects in a dict (see :mod:`shipyard.registry.flavors`); there are no
plugins named by dotted strings.

Example:
    >>> from shipyard.registry.flavors import get_flavor
    >>> get_flavor("sklearn").name
    'sklearn'
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from shipyard.errors import ManifestError, UnsafeArtifactError

PICKLE_PROTOCOL = 5


@runtime_checkable
class Predictor(Protocol):
    """A loaded model: ``predict(X)`` returns a 1-D (or 2-D) array for a DataFrame ``X``.

    It may also have ``predict_proba(X)`` (one column per class, in ``classes``
    order); ``classes`` is None for regressors. ``feature_names`` lists the input
    columns the model was fitted on, in order, when the framework records them.
    ``accepts_array`` says that a float matrix in signature order is as good as a
    DataFrame (it lets the serving path skip building a DataFrame).
    A model trained on pandas ``category`` columns may also have
    ``category_levels(frame)``: the training categories of those columns, by name
    (the registry builds the signature's category dtypes from them).
    ``input_facts(columns)``: what the fitted model shows it handles at those input
    columns beyond the sample (missing values it fills, categories it encodes), by
    name; the registry widens the signature with it (:meth:`Signature.widened`).
    """

    classes: np.ndarray | None
    feature_names: tuple[str, ...] | None
    accepts_array: bool

    def predict(self, X: Any) -> np.ndarray: ...


class Flavor(Protocol):
    """Saves models of one framework and loads them back.

    ``packages`` are the distributions (or import names) the loaded model needs;
    they are pinned in the package environment. ``save`` writes files into
    ``dest`` (created by the caller) and returns JSON-safe ``flavor_options``
    that ``load`` gets back.
    """

    name: str
    packages: tuple[str, ...]

    def handles(self, model: Any) -> bool: ...

    def save(self, model: Any, dest: Path, *, trusted_pickle: bool) -> dict[str, Any]: ...

    def load(self, src: Path, options: dict[str, Any], *, trusted_pickle: bool) -> Predictor: ...


def option_file(src: Path, options: dict[str, Any], key: str = "file") -> Path:
    """The file named by ``options[key]``, refused unless it is a plain name inside ``src``.

    Options come from the manifest, which is read before anything is trusted.
    """
    name = options.get(key)
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ManifestError(
            f"flavor_options[{key!r}] must be a file name inside {src}, got {name!r}."
        )
    path = src / name
    if not path.is_file():
        raise ManifestError(f"The model file {path} named in flavor_options is missing.")
    return path


def module_root(obj: Any) -> str:
    """Top-level package of ``obj``'s class, without importing anything."""
    return type(obj).__module__.partition(".")[0]


def json_classes(classes: Any) -> list[Any] | None:
    """Class labels as a JSON-safe list (numpy scalars become Python values)."""
    if classes is None:
        return None
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(classes).tolist()]


def pickle_dump(obj: Any, path: Path, *, trusted_pickle: bool, what: str) -> None:
    """Pickle ``obj``, but only when the caller said pickles of this model are trusted."""
    if not trusted_pickle:
        raise UnsafeArtifactError(
            f"Saving {what} needs pickle, and a pickle runs arbitrary code when loaded. "
            "Pass trusted_pickle=True if whoever loads this package trusts you, or use a "
            "safe format (a scikit-learn model saved with skops, XGBoost/LightGBM native "
            "files, ONNX, or a pyfunc 'module:function' import path)."
        )
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=PICKLE_PROTOCOL)


def pickle_load(path: Path, *, trusted_pickle: bool, what: str) -> Any:
    """Unpickle ``path`` only when the caller trusts it; refusing says how to proceed."""
    if not trusted_pickle:
        raise UnsafeArtifactError(
            f"{what} is a pickle ({path.name}); loading it would run whatever code it "
            "holds. If you trust the package's author, load it with trusted_pickle=True "
            "(the package must also have been written with trusted_pickle=True)."
        )
    with path.open("rb") as fh:
        return pickle.load(fh)  # guarded by trusted_pickle above


# scikit-learn classifiers whose label is the most probable class: ``predict``
# is computed from ``predict_proba`` (forests, trees, histogram boosting), or
# both come from the same per-class scores through a function that keeps their
# order (softmax, logistic: linear models, boosting, naive Bayes, MLP). Exact
# class names, so a subclass with its own ``predict`` is not taken for one.
_LABEL_IS_MOST_PROBABLE = frozenset(
    {
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "ExtraTreesClassifier",
        "GaussianNB",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "LogisticRegression",
        "LogisticRegressionCV",
        "MLPClassifier",
        "RandomForestClassifier",
    }
)


def label_is_most_probable(model: Any) -> bool:
    """Whether ``model.predict`` is the most probable class of ``model.predict_proba``.

    Looks through a scikit-learn ``Pipeline`` to its final step.

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.svm import SVC
    >>> label_is_most_probable(LogisticRegression()), label_is_most_probable(SVC())
    (True, False)
    """
    if module_root(model) != "sklearn":
        return False
    if type(model).__name__ == "Pipeline":
        return label_is_most_probable(model.steps[-1][1])
    return type(model).__name__ in _LABEL_IS_MOST_PROBABLE


class OptionalMethod:
    """A method that an instance has only while its ``flag`` attribute is true.

    ``hasattr(predictor, "predict_proba")`` must tell the truth. Setting
    ``self.predict_proba = self._predict_proba`` in ``__init__`` does that too, but a
    bound method kept on its own instance is a reference cycle: the predictor, and
    the model it holds, are then freed only by the cyclic garbage collector, and
    never once a server has frozen them (``gc.freeze``, done when its first model
    loads): that model stayed in memory after every hot swap.

    >>> class Model:
    ...     both = OptionalMethod("_both", flag="fast")
    ...     def __init__(self, fast: bool) -> None:
    ...         self.fast = fast
    ...     def _both(self) -> int:
    ...         return 1
    >>> hasattr(Model(False), "both"), Model(True).both()
    (False, 1)
    """

    def __init__(self, method: str, *, flag: str) -> None:
        self.method = method
        self.flag = flag
        self.name = method

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if not getattr(obj, self.flag, False):
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute {self.name!r}")
        return getattr(obj, self.method)


class EstimatorPredictor:
    """Adapts an object with scikit-learn's ``predict``/``predict_proba``/``classes_``.

    ``predict_proba`` exists on the adapter only when the wrapped model has it, so
    ``hasattr(predictor, "predict_proba")`` answers the question truthfully.
    For a classifier whose label is its most probable class
    (:func:`label_is_most_probable`), ``predict_both`` answers labels and
    probabilities from one ``predict_proba`` call instead of two model calls:
    the same labels, except that an exact tie between two classes' probabilities
    goes to the first class in ``classes_``.
    """

    predict_both = OptionalMethod("_predict_both", flag="_label_is_most_probable")

    def __init__(
        self,
        model: Any,
        *,
        classes: Any = None,
        feature_names: Any = None,
        accepts_array: bool | None = None,
    ) -> None:
        self.model = model
        if classes is None:
            classes = getattr(model, "classes_", None)
        self.classes = None if classes is None else np.asarray(classes)
        if feature_names is None:
            feature_names = getattr(model, "feature_names_in_", None)
        self.feature_names = None if feature_names is None else tuple(map(str, feature_names))
        # A model fitted on a DataFrame checks column names: give it a DataFrame.
        self.accepts_array = (
            accepts_array if accepts_array is not None else self.feature_names is None
        )
        self._label_is_most_probable = False
        if hasattr(model, "predict_proba"):
            self.predict_proba = model.predict_proba  # the model's own: no cycle
            single_output = self.classes is not None and self.classes.ndim == 1
            self._label_is_most_probable = single_output and label_is_most_probable(model)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict(X))

    def _predict_both(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        assert self.classes is not None
        proba = np.asarray(self.model.predict_proba(X))
        return self.classes.take(proba.argmax(axis=1)), proba


__all__ = [
    "EstimatorPredictor",
    "Flavor",
    "OptionalMethod",
    "Predictor",
    "json_classes",
    "label_is_most_probable",
    "module_root",
    "option_file",
    "pickle_dump",
    "pickle_load",
]
