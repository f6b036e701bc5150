"""Pre-fork workers: a preloaded model is adopted by a worker without loading it again.

The real multi-process path (fork, shared socket, SIGTERM drain, shared metrics)
runs in ``test_server.py::test_several_workers_share_one_metrics_view``.
"""

from __future__ import annotations

import asyncio

from serving_helpers import IrisRegistry

from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.options import ServeOptions
from shipyard.serving.prefork import preload
from shipyard.serving.runtime import ModelRuntime


def test_an_adopted_model_is_served_without_reloading(iris: IrisRegistry) -> None:
    served = preload(iris.settings, "iris", ServeOptions())
    runtime = ModelRuntime(iris.client.registry, "iris", metrics=ServingMetrics())
    runtime.adopt(served)
    assert runtime.require() is served
    assert runtime.require_all_ready() is served
    outcome = asyncio.run(runtime.refresh())
    assert not outcome.changed and runtime.current is served
