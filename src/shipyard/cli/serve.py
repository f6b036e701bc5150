"""``shipyard serve REF``: serve a registered model over HTTP until SIGTERM.

Registered in the root app as ``app.command("serve")(serve_command)``. Each
:class:`~shipyard.serving.options.ServeOptions` field is a flag of the same name,
with the field's default; :func:`options_from_flags` builds the options from the
parsed flags by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from shipyard.cli._common import err_console, get_client
from shipyard.registry.package import package_folder
from shipyard.serving.options import ServeOptions
from shipyard.serving.prefork import listen_socket
from shipyard.serving.server import DEFAULT_GRACEFUL_TIMEOUT, run_server
from shipyard.validation.contract_checks import InputCheckMode

if TYPE_CHECKING:
    from shipyard._client import Shipyard

#: Every option flag's default is the option's own default.
DEFAULTS = ServeOptions()


def _register_package_folder(client: Shipyard, folder: Path, *, trusted_pickle: bool) -> str:
    """Serve a model package folder (as a container built by `shipyard package` does).

    The folder is registered in this server's own registry (checksums verified and
    the model loaded on the way in; the same bytes again reuse their version) and
    served by version; the registry it came from is not needed at run time.
    """
    from shipyard.deploy.references import register_packaged

    version, reused = register_packaged(
        client.registry,
        client.validation,
        client.references,
        folder,
        trusted_pickle=trusted_pickle,
        actor=client.settings.actor,
    )
    done = "is already registered as" if reused else "registered as"
    err_console.print(f"Package {folder} {done} {version.ref}.", highlight=False, markup=False)
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
        DEFAULTS.deployment,
        "--deployment",
        help="Serve a deployment instead of REF: primary/canary/A-B variants, shadows and "
        "its rollout policy, as `shipyard deploy` set them.",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port to listen on."),
    workers: int = typer.Option(
        DEFAULTS.workers,
        min=1,
        help="Worker processes. Each loads the model and follows the alias itself; "
        "/metrics sums over all of them.",
    ),
    poll_interval: float = typer.Option(
        DEFAULTS.poll_interval, min=0.05, help="Seconds between checks for a moved alias."
    ),
    max_body_bytes: int = typer.Option(
        DEFAULTS.max_body_bytes, min=1, help="Larger request bodies answer 413."
    ),
    request_timeout: float = typer.Option(
        DEFAULTS.request_timeout,
        "--timeout",
        "--request-timeout",
        min=0.001,
        help="Seconds before a request answers 504.",
    ),
    graceful_timeout: float = typer.Option(
        DEFAULT_GRACEFUL_TIMEOUT,
        min=0.0,
        help="On SIGTERM, seconds to let in-flight requests finish before cancelling them.",
    ),
    trusted_pickle: bool = typer.Option(
        DEFAULTS.trusted_pickle,
        help="Allow pickled models (only if you trust whoever registered them).",
    ),
    onnx: bool = typer.Option(
        DEFAULTS.onnx,
        "--onnx/--no-onnx",
        help="Answer with the version's verified ONNX graph when it has one (compiled at "
        "registration; `shipyard models show` says which runtime serves). --no-onnx always "
        "answers with the original model.",
    ),
    variant: str = typer.Option(
        DEFAULTS.variant,
        help="Variant name written into every logged prediction (with --deployment, each "
        "variant's own name is used instead).",
    ),
    access_log: bool = typer.Option(False, help="Log one line per request (costs throughput)."),
    batching: bool = typer.Option(
        DEFAULTS.batching,
        help="Gather concurrent requests into one model call (adaptive micro-batching).",
    ),
    max_batch_size: int = typer.Option(
        DEFAULTS.max_batch_size, min=1, help="Rows per batched model call, at most."
    ),
    max_wait_ms: float = typer.Option(
        DEFAULTS.max_wait_ms, min=0.0, help="Under load, how long a batch may wait for more."
    ),
    max_queue: int = typer.Option(
        DEFAULTS.max_queue,
        min=1,
        help="Rows that may wait for the model; beyond that requests answer 503.",
    ),
    cache: str | None = typer.Option(
        DEFAULTS.cache, help="Prediction cache: 'memory' (per worker) or a redis:// URL (shared)."
    ),
    cache_size: int = typer.Option(
        DEFAULTS.cache_size, min=1, help="Entries kept by the memory cache."
    ),
    cache_ttl: float = typer.Option(
        DEFAULTS.cache_ttl, min=0.001, help="Seconds a cached answer is kept."
    ),
    cache_max_bytes: int | None = typer.Option(
        DEFAULTS.cache_max_bytes,
        min=1,
        help="Bytes of answers the memory cache holds per worker (default: 5% of the "
        "machine's memory, at most 256 MiB). Requests over 1000 rows are never cached.",
    ),
    monitor_interval: float = typer.Option(
        DEFAULTS.monitor_interval,
        min=0.01,
        help="Seconds between monitor runs: per-feature drift, label coverage and accuracy "
        "gauges on /metrics, from the prediction log.",
    ),
    monitor_window: float = typer.Option(
        DEFAULTS.monitor_window, min=1.0, help="Seconds of prediction log each monitor run reads."
    ),
    contract_check: InputCheckMode = typer.Option(
        DEFAULTS.contract_check,
        case_sensitive=False,
        help="Check inputs against the version's data contract: off, reject (422) or count "
        "(answer, and count violations in /metrics).",
    ),
    prediction_log: bool = typer.Option(
        DEFAULTS.prediction_log,
        help="Log every prediction for monitoring and drift; accept POST /feedback.",
    ),
    reject_unknown_fields: bool = typer.Option(
        DEFAULTS.reject_unknown_fields,
        help="Answer 422 to /predict records with fields the model does not take (by "
        "default they are ignored and listed in the answer's ignored_fields).",
    ),
    header_timeout: float = typer.Option(
        DEFAULTS.header_timeout,
        min=0.001,
        help="Seconds a client has to send a request's headers; then the connection closes.",
    ),
    keep_alive_timeout: float = typer.Option(
        DEFAULTS.keep_alive_timeout,
        min=0.001,
        help="Seconds an idle keep-alive connection stays open between requests.",
    ),
    max_connections: int = typer.Option(
        DEFAULTS.max_connections,
        min=1,
        help="Open connections (and requests in flight) per worker beyond which new "
        "requests answer 503.",
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
        # Fail now, with the store's message, rather than from inside a worker.
        served = client.deployments.get(deployment)
        ref, now = deployment, f"deployment {deployment}, primary {served.model}:{served.primary}"
    else:
        folder = package or package_folder(str(ref))
        if folder is not None:
            ref = _register_package_folder(client, folder, trusted_pickle=trusted_pickle)
        assert ref is not None
        # Fail now, with the registry's message, rather than from inside a worker.
        now = client.registry.resolve(ref).ref
    options = options_from_flags(ctx.params)
    # Bound before the announcement: a taken port is one error line, not a server that
    # says it serves and then dies.
    sock = listen_socket(host, port)
    where = f"http://{host}:{port}"
    err_console.print(
        f"Serving [bold]{escape(ref)}[/] (now {now}) on {where} with {workers} worker(s); "
        f"docs at {where}/docs. SIGTERM or Ctrl+C drains and stops.",
        highlight=False,
    )
    run_server(
        client.settings,
        ref,
        host=host,
        port=port,
        options=options,
        log_level=log_level,
        access_log=access_log,
        graceful_timeout=graceful_timeout,
        sock=sock,
    )


def options_from_flags(params: dict[str, Any]) -> ServeOptions:
    """The :class:`ServeOptions` the parsed flags ask for: each field from its flag.

    Every option field has a flag of the same name; a field without one is a bug
    that this lookup (and the test that runs every flag) makes loud.
    """
    missing = [name for name in ServeOptions.flag_names() if name not in params]
    if missing:
        raise RuntimeError(f"`shipyard serve` has no flag for the serve option(s) {missing}.")
    return ServeOptions(**{name: params[name] for name in ServeOptions.flag_names()})
