"""Kubernetes manifests for a packaged model: a Deployment, its Service and what a
cluster running it in production needs beside them.

Written beside the Dockerfile by ``shipyard package``: probes on ``/health``
(liveness) and ``/ready`` (readiness: model loaded and warmed up), the
non-root user the image runs as on a read-only root filesystem (its data
folder and /tmp are emptyDir volumes), resource requests and limits,
Prometheus scrape annotations and a ServiceMonitor for ``/metrics``, a
HorizontalPodAutoscaler (CPU; requests in flight through the Prometheus
adapter as an option), a PodDisruptionBudget, settings from a ConfigMap and
secrets from a Secret, and a grace period long enough for SIGTERM to drain.

Every object is named after the model (or the name given), not the version:
applying the manifests of ``iris:4`` after those of ``iris:3`` rolls the same
Deployment to the new image behind the same Service. The selector holds only
that name (a Deployment's selector cannot change); the version is a label of
the pods.

>>> docs = kubernetes_manifests("iris:3", image="registry.local/iris:3")
>>> [(d["kind"], d["metadata"]["name"]) for d in docs][:3]
[('ConfigMap', 'iris-settings'), ('Deployment', 'iris'), ('Service', 'iris')]
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shipyard.deploy.docker import RUN_AS_USER, SERVE_PORT
from shipyard.errors import InvalidInputError
from shipyard.registry.refs import ModelRef, parse_ref


def k8s_name(name: str) -> str:
    """``Iris_Model.v2`` -> ``iris-model-v2``: a DNS-1123 label (what Kubernetes names allow)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    if not label:
        raise InvalidInputError(
            f"{name!r} gives no usable Kubernetes name; pass one of letters, digits and '-'."
        )
    return label


#: Where the server may write (an emptyDir each): the root filesystem is read-only.
WRITABLE_DIRS = {"home": "/var/lib/shipyard", "tmp": "/tmp"}
#: The gauge of requests being answered, per pod (the Prometheus adapter's input).
IN_FLIGHT_METRIC = "shipyard_http_requests_in_flight"
#: Settings that belong in the Secret, never in the ConfigMap.
SECRET_SETTINGS = ("SHIPYARD_DB", "SHIPYARD_ADMIN_TOKEN", "SHIPYARD_API_KEYS")


def kubernetes_manifests(
    ref: str,
    *,
    image: str,
    name: str | None = None,
    replicas: int = 2,
    max_replicas: int = 10,
    cpu_target: int = 70,
    in_flight_target: float | None = None,
    settings: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The objects serving ``ref`` (a version) from ``image``.

    A ConfigMap (``settings``: non-secret ``SHIPYARD_*`` values), the Deployment,
    its Service, a HorizontalPodAutoscaler between ``replicas`` and
    ``max_replicas`` on CPU (``cpu_target`` % of the request) and, when
    ``in_flight_target`` is set, on the requests in flight per pod as the
    Prometheus adapter serves them, a PodDisruptionBudget and a ServiceMonitor.
    Secrets come from the Secret ``<name>-secrets`` (see :func:`kubernetes_secret`),
    which the pods read if it exists. ``name`` names them all; by default the model's.
    """
    if not 1 <= replicas <= max_replicas:
        raise InvalidInputError(
            f"replicas must be at least 1 and at most max_replicas ({max_replicas}), "
            f"got {replicas}."
        )
    if not 1 <= cpu_target <= 100:
        raise InvalidInputError(f"cpu_target must be a percentage 1-100, got {cpu_target}.")
    if in_flight_target is not None and not in_flight_target > 0:
        raise InvalidInputError(f"in_flight_target must be > 0, got {in_flight_target}.")
    data = dict(settings or {})
    for key in data:
        if key in SECRET_SETTINGS or not re.fullmatch(r"SHIPYARD_[A-Z0-9_]+", key):
            raise InvalidInputError(
                f"setting {key!r}: expected a SHIPYARD_* name that is not a secret "
                f"({', '.join(SECRET_SETTINGS)} go in the Secret)."
            )
    parsed = parse_ref(ref)
    name = k8s_name(name or parsed.name)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shipyard"}
    labels = {**selector, "app.kubernetes.io/version": _version_label(parsed)}
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
    ready = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5}
    container = {
        "name": "model",
        "image": image,
        "ports": [{"name": "http", "containerPort": SERVE_PORT}],
        "envFrom": [
            {"configMapRef": {"name": f"{name}-settings"}},
            # Optional: without it the pod runs on the image's embedded defaults.
            {"secretRef": {"name": f"{name}-secrets", "optional": True}},
        ],
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "readinessProbe": ready,
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": v, "mountPath": path} for v, path in WRITABLE_DIRS.items()],
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-settings", "labels": selector},
        "data": {"SHIPYARD_USER": name, **data},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "io.shipyard/model-ref": str(parsed),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(SERVE_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    # SIGTERM drains in-flight requests; give it time before SIGKILL.
                    "terminationGracePeriodSeconds": 45,
                    "containers": [container],
                    "volumes": [{"name": v, "emptyDir": {}} for v in WRITABLE_DIRS],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": selector},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    metrics: list[dict[str, Any]] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": cpu_target},
            },
        }
    ]
    if in_flight_target is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": IN_FLIGHT_METRIC},
                    "target": {"type": "AverageValue", "averageValue": f"{in_flight_target:g}"},
                },
            }
        )
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": selector},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics,
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": selector},
        # A drain takes at most one pod at a time: the others keep answering.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "labels": selector},
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }
    return [config_map, deployment, service, autoscaler, budget, monitor]


def kubernetes_secret(name: str, *, admin_token: str | None = None) -> dict[str, Any]:
    """The Secret ``<name>-secrets`` the pods read their secret settings from.

    It holds a fresh admin token; add ``SHIPYARD_DB`` (a shared PostgreSQL) and
    ``SHIPYARD_API_KEYS`` before applying it. Written to its own file so that
    applying the next version's manifests never overwrites it.
    """
    token = admin_token or secrets.token_urlsafe(32)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{k8s_name(name)}-secrets"},
        "type": "Opaque",
        "stringData": {"SHIPYARD_ADMIN_TOKEN": token},
    }


def _version_label(ref: ModelRef) -> str:
    return f"v{ref.version}" if ref.version is not None else k8s_name(str(ref.alias))


class _PlainDumper(yaml.SafeDumper):
    """Writes every mapping in full: no ``&id001`` anchors where objects repeat."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_kubernetes_manifests(
    ref: str, out_dir: Path, *, image: str, name: str | None = None, **options: Any
) -> Path:
    """Write ``kubernetes.yaml`` (every object of :func:`kubernetes_manifests`, with
    ``options``) into ``out_dir``, and ``kubernetes-secret.yaml`` beside it."""
    path = Path(out_dir) / "kubernetes.yaml"
    documents = kubernetes_manifests(ref, image=image, name=name, **options)
    path.write_text(dump_documents(documents), encoding="utf-8")
    secret = kubernetes_secret(documents[1]["metadata"]["name"])
    (Path(out_dir) / "kubernetes-secret.yaml").write_text(
        "# Apply once, after adding SHIPYARD_DB (postgresql+psycopg://...) and, for S3,\n"
        "# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. kubernetes.yaml never overwrites it.\n"
        + dump_documents([secret]),
        encoding="utf-8",
    )
    return path


def dump_documents(documents: list[dict[str, Any]]) -> str:
    """YAML documents, written out in full (no anchors), keys in their given order."""
    return yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False)
