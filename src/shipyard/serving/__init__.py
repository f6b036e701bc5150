"""Real-time serving: one registered model behind HTTP, hot-swapped from the registry.

>>> from shipyard.serving import create_app, ServeOptions   # doctest: +SKIP
>>> app = create_app(client, "iris", options=ServeOptions(poll_interval=1.0))  # doctest: +SKIP
"""

from shipyard.serving.app import create_app
from shipyard.serving.observer import PredictionEvent, PredictionObserver
from shipyard.serving.options import ServeOptions
from shipyard.serving.runtime import ModelRuntime, ServedModel, SwapOutcome

__all__ = [
    "ModelRuntime",
    "PredictionEvent",
    "PredictionObserver",
    "ServeOptions",
    "ServedModel",
    "SwapOutcome",
    "create_app",
]
