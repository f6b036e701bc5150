"""Knobs of one serving app, separate from :class:`~shipyard.config.Settings`.

Settings say *where* things are and *who* may do what (stores, admin token,
API keys); these options say *how* this server behaves. ``shipyard serve``
builds them from its flags; with several workers they travel to each worker
as JSON (see :mod:`shipyard.serving.server`).

Example:
    >>> ServeOptions(poll_interval=0.5).to_json()[:20]
    '{"poll_interval":0.5'
    >>> ServeOptions.from_json(ServeOptions(request_timeout=5).to_json()).request_timeout
    5.0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from shipyard.errors import ConfigError
from shipyard.monitoring.monitor_job import DEFAULT_MONITOR_INTERVAL, DEFAULT_MONITOR_WINDOW
from shipyard.serving.connections import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
)
from shipyard.serving.runtime import DEFAULT_POLL_INTERVAL
from shipyard.serving.security import DEFAULT_MAX_BODY_BYTES
from shipyard.validation.contract_checks import InputCheckMode

#: Field metadata key of options set by the server itself, never by a flag.
INTERNAL = "internal"


@dataclass(frozen=True)
class ServeOptions:
    """How the server behaves. Every field is a ``shipyard serve`` flag of the same name
    (``--poll-interval`` for ``poll_interval``), except the internal ``worker_dir``.

    ``poll_interval``: seconds between registry checks for a moved alias.
    ``max_body_bytes``: larger request bodies answer 413.
    ``request_timeout``: seconds before a request answers 504 (``--timeout``).
    ``trusted_pickle``: allow loading pickled models (only if you trust their author).
    ``onnx``: serve a version's verified ONNX graph when it has one (compiled at
    registration by default); False always serves the original model.
    ``workers``: how many worker processes serve together (``/ready`` waits for all).
    ``worker_dir``: folder the workers share (metrics files, ready markers); set by
    :func:`~shipyard.serving.server.run_server` when ``workers > 1``.
    ``variant``: the variant name written into prediction events.
    ``deployment``: serve this deployment (variants, shadows, rollout) instead of one
    reference (see :mod:`~shipyard.serving.deployment`).
    ``batching``: gather concurrent requests into one model call (see
    :mod:`~shipyard.serving.batcher`): ``max_batch_size`` rows per call,
    ``max_wait_ms`` for company under load, ``max_queue`` rows queued before 503.
    ``cache``: prediction cache, None (off), ``"memory"`` or a ``redis://`` URL
    (see :mod:`~shipyard.serving.cache`), ``cache_size`` entries, ``cache_ttl`` seconds,
    ``cache_max_bytes`` bytes of answers a memory cache holds (None: 5 % of the
    machine's memory, at most 256 MiB).
    ``reject_unknown_fields``: answer 422 to a ``/predict`` record with fields the model
    does not take (by default they are ignored and listed in the answer).
    ``header_timeout``, ``keep_alive_timeout``, ``max_connections``: connection limits
    (see :mod:`~shipyard.serving.connections`).
    """

    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout: float = 30.0
    trusted_pickle: bool = False
    onnx: bool = True
    workers: int = 1
    worker_dir: Path | None = field(default=None, metadata={INTERNAL: True})
    variant: str = "default"
    deployment: str | None = None
    #: Seconds between runs of the monitor job (drift, label coverage, accuracy gauges)
    #: and seconds of prediction log each run reads (see :mod:`shipyard.monitoring.monitor_job`).
    monitor_interval: float = DEFAULT_MONITOR_INTERVAL
    monitor_window: float = DEFAULT_MONITOR_WINDOW
    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 1024
    cache: str | None = None
    cache_size: int = 10_000
    cache_ttl: float = 300.0
    cache_max_bytes: int | None = None
    #: Log every prediction (inputs, outputs, latency, variant) for monitoring and
    #: drift, and accept labels at ``POST /feedback``.
    prediction_log: bool = True
    #: Check inputs against the served version's data contract: "off", "reject"
    #: (422) or "count" (answer, and count violations in /metrics).
    contract_check: InputCheckMode = InputCheckMode.OFF
    reject_unknown_fields: bool = False
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "contract_check", InputCheckMode(self.contract_check))
        except ValueError:
            raise ConfigError(
                f"contract_check must be off, reject or count; got {self.contract_check!r}."
            ) from None
        # The monitor, batcher and cache check their own settings where they are built.
        for name in ("poll_interval", "request_timeout", "header_timeout", "keep_alive_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {getattr(self, name)}.")
        for name in ("max_body_bytes", "workers", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")

    @classmethod
    def flag_names(cls) -> tuple[str, ...]:
        """The fields ``shipyard serve`` sets from its flags (all but the internal ones)."""
        return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get(INTERNAL))

    def public(self) -> dict[str, Any]:
        """The flag fields as JSON-safe values, credentials in URLs masked (``/admin/status``)."""
        data = {name: getattr(self, name) for name in self.flag_names()}
        data["contract_check"] = str(self.contract_check)
        if self.cache is not None:
            data["cache"] = _mask_password(self.cache)
        return data

    @property
    def metrics_dir(self) -> Path | None:
        """Where workers write Prometheus metrics (``PROMETHEUS_MULTIPROC_DIR``)."""
        return None if self.worker_dir is None else self.worker_dir / "metrics"

    @property
    def ready_dir(self) -> Path | None:
        """Where workers drop their ready markers."""
        return None if self.worker_dir is None else self.worker_dir / "ready"

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        if self.worker_dir is not None:
            data["worker_dir"] = str(self.worker_dir)
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        data: dict[str, Any] = orjson.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown serve options {unknown}; known: {sorted(known)}.")
        if data.get("worker_dir") is not None:
            data["worker_dir"] = Path(data["worker_dir"])
        for spec in dataclasses.fields(cls):
            if spec.type == "float" and spec.name in data:
                data[spec.name] = float(data[spec.name])
        return cls(**data)


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
