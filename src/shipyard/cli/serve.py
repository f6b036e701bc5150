"""``shipyard serve REF``: serve a registered model over HTTP until SIGTERM.

Registered in the root app as ``app.command("serve")(serve_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipyard.cli._common import err_console, get_client
from shipyard.registry.package import package_folder
from shipyard.serving.monitor_job import DEFAULT_MONITOR_INTERVAL, DEFAULT_MONITOR_WINDOW
from shipyard.serving.options import ServeOptions
from shipyard.serving.runtime import DEFAULT_POLL_INTERVAL
from shipyard.serving.security import DEFAULT_MAX_BODY_BYTES
from shipyard.serving.server import DEFAULT_GRACEFUL_TIMEOUT, run_server

if TYPE_CHECKING:
    from shipyard._client import Shipyard


def _register_package_folder(client: Shipyard, folder: Path, *, trusted_pickle: bool) -> str:
    """Serve a model package folder (as a container built by `shipyard package` does).

    The folder is registered in this server's own registry (checksums verified and
    the model loaded on the way in; the same bytes again reuse their version) and
    served by version; the registry it came from is not needed at run time.
    """
    version, reused = client.registry.register_package_folder(folder, trusted_pickle=trusted_pickle)
    done = "is already registered as" if reused else "registered as"
    err_console.print(f"Package {folder} {done} {version.ref}.", highlight=False)
    return version.ref


def serve_command(
    ctx: typer.Context,
    ref: str | None = typer.Argument(
        None,
        help="Model to serve: NAME (its production alias), NAME@ALIAS, NAME:VERSION, or a "
        "model package folder (shipyard.json at its root).",
    ),
    package: Path | None = typer.Option(
        None,
        "--package",
        help="Serve the model package in this folder (shipyard.json at its root), "
        "registered once in this server's registry.",
    ),
    deployment: str | None = typer.Option(
        None,
        "--deployment",
        help="Serve a deployment instead of REF: primary/canary/A-B variants, shadows and "
        "its rollout policy, as `shipyard deploy` set them.",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port to listen on."),
    workers: int = typer.Option(
        1,
        min=1,
        help="Worker processes. Each loads the model and follows the alias itself; "
        "/metrics sums over all of them.",
    ),
    poll_interval: float = typer.Option(
        DEFAULT_POLL_INTERVAL, min=0.05, help="Seconds between checks for a moved alias."
    ),
    max_body_bytes: int = typer.Option(
        DEFAULT_MAX_BODY_BYTES, min=1, help="Larger request bodies answer 413."
    ),
    timeout: float = typer.Option(30.0, min=0.001, help="Seconds before a request answers 504."),
    graceful_timeout: float = typer.Option(
        DEFAULT_GRACEFUL_TIMEOUT,
        min=0.0,
        help="On SIGTERM, seconds to let in-flight requests finish before cancelling them.",
    ),
    trusted_pickle: bool = typer.Option(
        False, help="Allow pickled models (only if you trust whoever registered them)."
    ),
    access_log: bool = typer.Option(False, help="Log one line per request (costs throughput)."),
    batching: bool = typer.Option(
        True, help="Gather concurrent requests into one model call (adaptive micro-batching)."
    ),
    max_batch_size: int = typer.Option(64, min=1, help="Rows per batched model call, at most."),
    max_wait_ms: float = typer.Option(
        2.0, min=0.0, help="Under load, how long a batch may wait for more requests."
    ),
    max_queue: int = typer.Option(
        1024, min=1, help="Rows that may wait for the model; beyond that requests answer 503."
    ),
    cache: str | None = typer.Option(
        None, help="Prediction cache: 'memory' (per worker) or a redis:// URL (shared)."
    ),
    cache_size: int = typer.Option(10_000, min=1, help="Entries kept by the memory cache."),
    cache_ttl: float = typer.Option(300.0, min=0.001, help="Seconds a cached answer is kept."),
    monitor_interval: float = typer.Option(
        DEFAULT_MONITOR_INTERVAL,
        min=0.01,
        help="Seconds between monitor runs: per-feature drift, label coverage and accuracy "
        "gauges on /metrics, from the prediction log.",
    ),
    monitor_window: float = typer.Option(
        DEFAULT_MONITOR_WINDOW, min=1.0, help="Seconds of prediction log each monitor run reads."
    ),
    contract_check: str = typer.Option(
        "off",
        help="Check inputs against the version's data contract: off, reject (422) or count.",
    ),
    prediction_log: bool = typer.Option(
        True, help="Log every prediction for monitoring and drift; accept POST /feedback."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve a registered model: /predict, /invocations (MLflow), /v2 (KServe), /metrics.

    The model is hot-swapped when its alias moves in the registry. SIGTERM drains
    in-flight requests, then exits with status 0.
    """
    client = get_client(ctx)
    if [ref, deployment, package].count(None) != 2:
        raise typer.BadParameter(
            "Give exactly one of a model REF, --deployment NAME or --package DIR."
        )
    if deployment is not None:
        from shipyard.rollout.service import Deployments

        # Fail now, with the store's message, rather than from inside a worker.
        served = Deployments(client.metadata, actor=client.settings.actor).get(deployment)
        ref, now = deployment, f"deployment {deployment}, primary {served.model}:{served.primary}"
    else:
        folder = package or package_folder(str(ref))
        if folder is not None:
            ref = _register_package_folder(client, folder, trusted_pickle=trusted_pickle)
        assert ref is not None
        # Fail now, with the registry's message, rather than from inside a worker.
        now = client.registry.resolve(ref).ref
    options = ServeOptions(
        poll_interval=poll_interval,
        max_body_bytes=max_body_bytes,
        request_timeout=timeout,
        trusted_pickle=trusted_pickle,
        deployment=deployment,
        batching=batching,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        cache=cache,
        cache_size=cache_size,
        cache_ttl=cache_ttl,
        monitor_interval=monitor_interval,
        monitor_window=monitor_window,
    )
    where = f"http://{host}:{port}"
    err_console.print(
        f"Serving [bold]{ref}[/] (now {now}) on {where} with {workers} worker(s); "
        f"docs at {where}/docs. SIGTERM or Ctrl+C drains and stops.",
        highlight=False,
    )
    run_server(
        client.settings,
        ref,
        host=host,
        port=port,
        workers=workers,
        options=options,
        log_level=log_level,
        access_log=access_log,
        graceful_timeout=graceful_timeout,
    )
