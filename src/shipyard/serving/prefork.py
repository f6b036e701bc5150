"""Pre-fork workers: load the model once, then fork N uvicorn workers that share it.

uvicorn's own ``--workers`` *spawns* fresh interpreters, so every worker
imports NumPy, scikit-learn, onnxruntime and FastAPI and loads the model
again: memory grows as N full copies. Here the parent does the expensive part
once (imports, registry read, model load, warm-up, ``gc.freeze()`` so the
collector does not dirty the shared pages), binds the listening socket, and
forks. Each child shares those pages copy-on-write, builds its own app (small:
routes and metrics, made after the fork so Prometheus files carry the child's
pid), adopts the preloaded model, and serves on the inherited socket; the
kernel spreads connections across them.

Each worker then follows the alias by itself as before (a hot swap loads the
new version per worker). ``/ready`` answers 200 only when every worker has
adopted its model (the ready markers of :mod:`~shipyard.serving.workers`).

The parent supervises: SIGTERM/SIGINT are forwarded to every worker, which
drains its in-flight requests; a worker that dies on its own is replaced by a
new fork of the parent (which still holds the warm model).

POSIX only (``os.fork``).

Example:
    >>> run_prefork(Settings(), "iris", workers=2,
    ...             options=options, uvicorn_options=kw)      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import time
from typing import Any

import prometheus_client.values

from shipyard.config import Settings
from shipyard.errors import ConfigError
from shipyard.serving.app import app_for_settings, preload_model
from shipyard.serving.connections import ServerConfig
from shipyard.serving.draining import DrainingServer
from shipyard.serving.options import ServeOptions
from shipyard.serving.runtime import ServedModel, freeze_long_lived_objects

logger = logging.getLogger("shipyard.serving")

# A worker that dies this soon after starting is not restarted in a loop forever.
_MIN_UPTIME = 5.0


def listen_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before any model loads.

    A port already taken (another server), an address not of this machine or a port
    needing privileges is a :class:`ConfigError` naming it, before anything is loaded
    or announced: never a server that loads, says it serves, then dies in uvicorn.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(_bind_failure(host, port, exc)) from exc
    sock.set_inheritable(True)
    return sock


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Cannot listen on {where}: the port is already in use (another server?). "
            "Stop it, or choose another --port."
        )
    if exc.errno == errno.EACCES:
        return (
            f"Cannot listen on {where}: this user may not open that port (ports below 1024 "
            "need privileges). Choose another --port."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"Cannot listen on {where}: {host} is not an address of this machine (--host)."
    return f"Cannot listen on {where}: {exc.strerror or exc}."


def preload(settings: Settings, ref: str, options: ServeOptions) -> ServedModel:
    """Load and warm up the version ``ref`` resolves to, in the parent, before forking."""
    return preload_model(settings, ref, trusted_pickle=options.trusted_pickle, onnx=options.onnx)


def _child(
    settings: Settings,
    ref: str,
    options: ServeOptions,
    served: ServedModel,
    sock: socket.socket,
    uvicorn_options: dict[str, Any],
) -> None:
    """A worker: its own app and metrics, the parent's model, the shared socket. Never returns."""
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        app = app_for_settings(settings, ref, options=options)
        app.state.runtime.adopt(served)
        kwargs = {k: v for k, v in uvicorn_options.items() if k not in ("host", "port")}
        DrainingServer(ServerConfig(app, **kwargs)).run(sockets=[sock])
    except BaseException:  # a worker must never return into the parent's code
        logger.exception("Worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


def run_prefork(
    settings: Settings,
    ref: str,
    *,
    workers: int,
    options: ServeOptions,
    uvicorn_options: dict[str, Any],
    sock: socket.socket | None = None,
) -> None:
    """Serve ``ref`` with ``workers`` forked processes until SIGTERM/SIGINT.

    ``sock`` is the listening socket (default: bound here, after the model loaded).

    ``options.worker_dir`` must be set (metrics files, ready markers) and
    ``PROMETHEUS_MULTIPROC_DIR`` point into it, as :func:`run_server` does.
    """
    if not hasattr(os, "fork"):
        raise ConfigError("Pre-fork workers need os.fork (Linux, macOS).")
    if options.metrics_dir is None:
        raise ConfigError("Pre-fork workers need options.worker_dir (run_server sets it).")
    # Metrics made from now on (in the workers) write per-process files; the class is
    # chosen from the environment at import, which happened before we could set it.
    prometheus_client.values.ValueClass = prometheus_client.values.MultiProcessValue()
    served = preload(settings, ref, options)
    if sock is None:
        sock = listen_socket(uvicorn_options["host"], uvicorn_options["port"])
    # Objects alive now stay out of the collector's reach: a collection would write to
    # every object header and un-share the pages the workers inherited.
    freeze_long_lived_objects()
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            _child(settings, ref, options, served, sock, uvicorn_options)
        children[pid] = time.monotonic()

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(workers):
            spawn()
        logger.info("Serving %s with %d pre-forked workers %s", ref, workers, sorted(children))
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            started = children.pop(pid, None)
            if started is None or stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - started < _MIN_UPTIME:
                logger.error("Worker %d exited with %d right after starting; stopping.", pid, code)
                stop(signal.SIGTERM, None)
                continue
            logger.warning("Worker %d exited with %d; starting a new one.", pid, code)
            spawn()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        gc.unfreeze()


__all__ = ["preload", "run_prefork"]
