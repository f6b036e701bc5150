"""Optional dependencies: what each ``shipyard[extra]`` installs and who needs it.

A plain scikit-learn model needs none of them, so neither does its serving
image. Code that needs one checks here first and, when it is missing, raises
:class:`~shipyard.errors.MissingExtraError` saying which extra to install,
instead of a bare ``ModuleNotFoundError`` from deep inside a library.

>>> FLAVOR_EXTRAS["xgboost"]
'xgboost'
>>> require_extra("s3", "an s3:// artifact store")      # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache

from shipyard.errors import MissingExtraError

#: extra -> the modules it provides (import names).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "onnx": ("onnx", "onnxruntime", "skl2onnx", "onnxmltools"),
    "s3": ("s3fs",),
    "delta": ("deltalake",),
}
#: model flavor -> the extra its models need to be saved, loaded and served.
FLAVOR_EXTRAS: dict[str, str] = {"xgboost": "xgboost", "lightgbm": "lightgbm", "onnx": "onnx"}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [m for m in EXTRA_MODULES[extra] if not _installed(m)]


def _installed(module: str) -> bool:
    # Looked up without importing it: onnxruntime alone takes a second to import.
    if module in sys.modules:  # None there means "import fails" (blocked or failed before)
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def require_extra(extra: str, needed_for: str) -> None:
    """Raise MissingExtraError unless every module of ``extra`` is installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(
            f"{needed_for[:1].upper()}{needed_for[1:]} needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install Shipyard's "
            f"{extra} extra: pip install 'shipyard[{extra}]'."
        )


def require_flavor(flavor: str) -> None:
    """Raise MissingExtraError if the libraries ``flavor``'s models need are missing."""
    extra = FLAVOR_EXTRAS.get(flavor)
    if extra is not None:
        require_extra(extra, f"the {flavor} flavor")


@cache
def boto_errors() -> tuple[type[Exception], ...]:
    """What S3 raises besides OSError (s3fs turns most S3 answers into OSError, but
    connection and credential problems arrive as botocore exceptions); empty
    without ``shipyard[s3]``, where no S3 read or store exists to raise them.
    Imported on first call: botocore is slow to import."""
    try:
        import botocore.exceptions
    except ImportError:
        return ()
    return (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


__all__ = [
    "EXTRA_MODULES",
    "FLAVOR_EXTRAS",
    "boto_errors",
    "missing_modules",
    "require_extra",
    "require_flavor",
]
