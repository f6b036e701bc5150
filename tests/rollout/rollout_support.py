"""Helpers for the rollout tests: a registry of cheap pyfunc models, real servers.

The models live in ``rollout_models.py`` beside this file (pytest puts this
folder on ``sys.path``; server subprocesses get it through ``PYTHONPATH``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import live_server
from live_server import LiveServer as LiveServer  # re-exported for the suite
from live_server import free_port as free_port
from live_server import wait_ready as wait_ready
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.rollout.service import Deployments
from shipyard.serving import ServeOptions, create_app

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
#: The signature sample: x in [-10, 10], so the warm-up record has x = 0.
SAMPLE = pd.DataFrame({"x": [-10.0, 10.0]})
#: Version numbers of model ``m`` as registered by :func:`register`.
GOOD, OTHER, BROKEN, SLOW, GOOD2 = 1, 2, 3, 4, 5


@dataclass
class Registry:
    client: Shipyard
    settings: Settings
    deployments: Deployments


def register(client: Shipyard) -> None:
    for target in ("GOOD", "OTHER", "BROKEN", "SLOW", "GOOD"):
        client.registry.log_model(f"rollout_models:{target}", "m", sample=SAMPLE)


def make_registry(settings: Settings) -> Registry:
    client = Shipyard(settings)
    register(client)
    return Registry(client, settings, client.deployments)


def serve_deployment(client: Shipyard, name: str, **options: object) -> LiveServer:
    """A thread server for deployment ``name``, polling the database every 0.1 s."""
    opts = ServeOptions(**{"poll_interval": 0.1, "deployment": name, **options})  # type: ignore[arg-type]
    return LiveServer(create_app(client, name, options=opts)).start()


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a server subprocess: these settings, this folder's models importable."""
    return live_server.subprocess_env(settings, importable=HERE)
