"""Shipyard: take a trained model to production and keep it healthy there.

>>> import shipyard                                                  # doctest: +SKIP
>>> with shipyard.start_run("iris") as run:                          # doctest: +SKIP
...     run.log_dataset(train_df)
...     shipyard.log_model(clf, "iris", sample=X_train, alias="production")
>>> shipyard.load_model("iris").predict({"sepal_length": 5.1, ...})  # doctest: +SKIP
"""

from shipyard.api import client, configure, load_model, log_model, set_alias, start_run
from shipyard.client import Shipyard
from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.registry.model import LoadedModel
from shipyard.registry.refs import ModelRef, parse_ref
from shipyard.tracking.fingerprint import DatasetFingerprint, fingerprint

__version__ = "0.1.0"

__all__ = [
    "DatasetFingerprint",
    "LoadedModel",
    "ModelRef",
    "Settings",
    "Shipyard",
    "ShipyardError",
    "client",
    "configure",
    "fingerprint",
    "load_model",
    "log_model",
    "parse_ref",
    "set_alias",
    "start_run",
]
