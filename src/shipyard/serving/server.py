"""Run the serving app under uvicorn: one process, or several workers.

One worker (the default): the app is built here and run by a uvicorn server
in this process.

Several workers (``workers > 1``): uvicorn's multi-process supervisor starts
N fresh Python processes that each import :func:`app_from_environment`, an
app factory. The parent hands them what to serve through environment
variables it sets before starting them (workers inherit them):

- ``SHIPYARD_SERVE_REF``: the model reference;
- ``SHIPYARD_SERVE_SETTINGS``: the parent's :class:`Settings` as JSON (so a
  worker uses the same stores and secrets even when they were not given
  through the environment);
- ``SHIPYARD_SERVE_OPTIONS``: the :class:`ServeOptions` as JSON;
- ``PROMETHEUS_MULTIPROC_DIR``: a fresh folder where every worker writes its
  metrics, so ``/metrics`` from any worker reports the sum over all of them
  (it must be set before a worker imports ``prometheus_client``, hence the
  environment rather than the options).

Beside it, each warm worker leaves a ready marker, so ``/ready`` answers 200
only once every worker has loaded and warmed up its model.

Each worker loads the model itself and polls the registry itself, so every
worker notices an alias move within ``poll_interval``.

Shutdown: SIGTERM (or Ctrl+C) stops accepting connections, lets in-flight
requests finish (up to ``graceful_timeout`` seconds), flushes observers, and
exits with status 0. With several workers the supervisor forwards SIGTERM to
each worker, which drains the same way.

Example:
    >>> run_server(Settings(), "iris", port=8000)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import disable_created_metrics
from uvicorn.supervisors.multiprocess import Multiprocess

from shipyard.config import Settings
from shipyard.errors import ConfigError
from shipyard.serving.app import app_for_settings
from shipyard.serving.connections import HTTP_PROTOCOL, ServerConfig
from shipyard.serving.draining import DrainingServer
from shipyard.serving.options import ServeOptions
from shipyard.serving.prefork import listen_socket, run_prefork

ENV_REF = "SHIPYARD_SERVE_REF"
ENV_SETTINGS = "SHIPYARD_SERVE_SETTINGS"
ENV_OPTIONS = "SHIPYARD_SERVE_OPTIONS"
ENV_PROMETHEUS_DIR = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_GRACEFUL_TIMEOUT = 30.0
#: Seconds a worker may take to answer its supervisor's ping before it counts as hung.
WORKER_HEALTHCHECK_SECONDS = 60


def settings_to_json(settings: Settings) -> str:
    """``settings`` as JSON a worker can rebuild, secrets included (they stay in-process)."""
    data: dict[str, Any] = settings.model_dump(mode="json", exclude_none=True)
    if settings.admin_token is not None:
        data["admin_token"] = settings.admin_token.get_secret_value()
    return orjson.dumps(data).decode()


def app_from_environment() -> FastAPI:
    """The app factory each worker calls (``uvicorn ... --factory``); see the module doc."""
    try:
        ref = os.environ[ENV_REF]
    except KeyError:
        raise ConfigError(
            f"{ENV_REF} is not set: this factory is for workers started by "
            "`shipyard serve --workers N`, which sets it."
        ) from None
    settings_json = os.environ.get(ENV_SETTINGS)
    settings = Settings(**orjson.loads(settings_json)) if settings_json else Settings()
    options_json = os.environ.get(ENV_OPTIONS)
    options = ServeOptions.from_json(options_json) if options_json else ServeOptions()
    disable_created_metrics()
    return app_for_settings(settings, ref, options=options)


def uvicorn_kwargs(
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    graceful_timeout: float,
    options: ServeOptions,
) -> dict[str, Any]:
    """Keyword arguments of :class:`~shipyard.serving.connections.ServerConfig`."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
        "lifespan": "on",
        "timeout_graceful_shutdown": graceful_timeout,
        "header_timeout": options.header_timeout,
        "timeout_keep_alive": options.keep_alive_timeout,
        # uvicorn answers 503 once connections (this one included) reach the limit, so
        # allowing max_connections of them takes a limit one higher.
        "limit_concurrency": options.max_connections + 1,
        # uvloop when installed; httptools (uvicorn[standard]) with the header deadline.
        "loop": "auto",
        # A spawned worker imports the libraries and loads the model (onnxruntime's
        # session, a full garbage collection) in calls that hold the GIL for seconds on a
        # busy machine; at uvicorn's 5 s its supervisor took that for a hang and killed
        # it, again and again.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
        "http": HTTP_PROTOCOL,
    }


def run_server(
    settings: Settings,
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    options: ServeOptions | None = None,
    log_level: str = "info",
    access_log: bool = False,
    graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``ref`` until SIGTERM/SIGINT, then drain and return.

    ``workers`` defaults to ``options.workers``. ``sock`` is the listening socket
    (:func:`listen_socket`); by default it is bound here, before the model loads, so a
    taken port is a :class:`ConfigError` before anything else happens.
    """
    options = options or ServeOptions()
    workers = options.workers if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    kwargs = uvicorn_kwargs(
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        graceful_timeout=graceful_timeout,
        options=options,
    )
    if sock is None:
        sock = listen_socket(host, port)
    if workers == 1:
        disable_created_metrics()
        app = app_for_settings(settings, ref, options=options)
        DrainingServer(ServerConfig(app, **kwargs)).run(sockets=[sock])
        return
    worker_dir = Path(tempfile.mkdtemp(prefix="shipyard-workers-"))
    options = dataclasses.replace(options, workers=workers, worker_dir=worker_dir)
    assert options.metrics_dir is not None
    options.metrics_dir.mkdir()
    env = {
        ENV_REF: ref,
        ENV_SETTINGS: settings_to_json(settings),
        ENV_OPTIONS: options.to_json(),
        ENV_PROMETHEUS_DIR: str(options.metrics_dir),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # inherited by the workers uvicorn spawns
    try:
        if hasattr(os, "fork") and getattr(options, "deployment", None) is None:
            # Load once, then fork: the workers share the model's memory (copy-on-write).
            disable_created_metrics()
            run_prefork(
                settings, ref, workers=workers, options=options, uvicorn_options=kwargs, sock=sock
            )
        else:
            # What uvicorn.run does for several workers, with this module's ServerConfig
            # (it is pickled into each spawned worker, header deadline included).
            config = ServerConfig(
                f"{__name__}:app_from_environment", factory=True, workers=workers, **kwargs
            )
            Multiprocess(config, sockets=[sock]).run()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(worker_dir, ignore_errors=True)
