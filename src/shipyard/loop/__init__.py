"""The closed loop: retraining triggers, retrain, validate, canary, promote.

    LoopConfig / load_config   per-model config (YAML or Python), validated on load
    triggers                   schedule, drift, performance, new data
    pipelines                  `module:function` training entry points and data sources
    steps                      validate_data -> retrain -> register -> gates -> approval
                               -> canary -> promote
    LoopController             tick() once, or serve() until stopped

>>> from shipyard.loop import LoopController, load_config              # doctest: +SKIP
>>> LoopController(client, load_config("loop.yaml")).tick()           # doctest: +SKIP
"""

from shipyard.loop.canary import CanaryOutcome, CanaryRequest, CanaryRunner, RolloutCanaryRunner
from shipyard.loop.config import LoopConfig, load_config, parse_configs
from shipyard.loop.controller import LoopController, ModelTick
from shipyard.loop.pipelines import TrainResult
from shipyard.loop.triggers import Firing, Verdict

__all__ = [
    "CanaryOutcome",
    "CanaryRequest",
    "CanaryRunner",
    "Firing",
    "LoopConfig",
    "LoopController",
    "ModelTick",
    "RolloutCanaryRunner",
    "TrainResult",
    "Verdict",
    "load_config",
    "parse_configs",
]
