"""Shipyard: take a trained model to production and keep it healthy there.

>>> import shipyard                                                  # doctest: +SKIP
>>> with shipyard.start_run("iris") as run:                          # doctest: +SKIP
...     run.log_dataset(train_df)
...     shipyard.log_model(clf, "iris", sample=X_train, alias="production")
>>> shipyard.load_model("iris").predict({"sepal_length": 5.1, ...})  # doctest: +SKIP

The names below are imported on first use (PEP 562), so ``import shipyard``
and the CLI start fast and a submodule such as ``shipyard.store.artifacts``
does not drag in pandas, scikit-learn and the whole registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._version import __version__ as __version__
from shipyard.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "DatasetFingerprint": "shipyard.tracking.fingerprint",
    "LoadedModel": "shipyard.registry.model",
    "ModelRef": "shipyard.registry.refs",
    "Settings": "shipyard.config",
    "Shipyard": "shipyard._client",
    "ShipyardError": "shipyard.errors",
    "autolog": "shipyard.api",
    "client": "shipyard.api",
    "configure": "shipyard.api",
    "deployments": "shipyard.api",
    "fingerprint": "shipyard.tracking.fingerprint",
    "load_model": "shipyard.api",
    "log_model": "shipyard.api",
    "parse_ref": "shipyard.registry.refs",
    "search_runs": "shipyard.api",
    "set_alias": "shipyard.api",
    "start_run": "shipyard.api",
}

__all__ = [
    "DatasetFingerprint",
    "LoadedModel",
    "ModelRef",
    "Settings",
    "Shipyard",
    "ShipyardError",
    "autolog",
    "client",
    "configure",
    "deployments",
    "fingerprint",
    "load_model",
    "log_model",
    "parse_ref",
    "search_runs",
    "set_alias",
    "start_run",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from shipyard._client import Shipyard
    from shipyard.api import (
        autolog,
        client,
        configure,
        deployments,
        load_model,
        log_model,
        search_runs,
        set_alias,
        start_run,
    )
    from shipyard.config import Settings
    from shipyard.errors import ShipyardError
    from shipyard.registry.model import LoadedModel
    from shipyard.registry.refs import ModelRef, parse_ref
    from shipyard.tracking.fingerprint import DatasetFingerprint, fingerprint
