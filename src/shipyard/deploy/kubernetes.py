"""Kubernetes manifests for a packaged model: a Deployment and its Service.

Written beside the Dockerfile by ``shipyard package``: probes on ``/health``
(liveness) and ``/ready`` (readiness: model loaded and warmed up), the
non-root user the image runs as, Prometheus scrape annotations for
``/metrics``, and a grace period long enough for SIGTERM to drain.

Both objects are named after the model (or the name given), not the version:
applying the manifests of ``iris:4`` after those of ``iris:3`` rolls the same
Deployment to the new image behind the same Service. The selector holds only
that name (a Deployment's selector cannot change); the version is a label of
the pods.

>>> docs = kubernetes_manifests("iris:3", image="registry.local/iris:3")
>>> [(d["kind"], d["metadata"]["name"]) for d in docs]
[('Deployment', 'iris'), ('Service', 'iris')]
"""

from __future__ import annotations

import re
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


def kubernetes_manifests(
    ref: str, *, image: str, name: str | None = None, replicas: int = 2
) -> list[dict[str, Any]]:
    """The Deployment and Service serving ``ref`` (a version) from ``image``.

    ``name`` names both objects; by default the model's name.
    """
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
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "readinessProbe": ready,
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
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
                # SIGTERM drains in-flight requests; give it time before SIGKILL.
                "spec": {"terminationGracePeriodSeconds": 45, "containers": [container]},
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
    return [deployment, service]


def _version_label(ref: ModelRef) -> str:
    return f"v{ref.version}" if ref.version is not None else k8s_name(str(ref.alias))


class _PlainDumper(yaml.SafeDumper):
    """Writes every mapping in full: no ``&id001`` anchors where objects repeat."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_kubernetes_manifests(
    ref: str, out_dir: Path, *, image: str, name: str | None = None
) -> Path:
    """Write ``kubernetes.yaml`` (both documents) into ``out_dir``."""
    path = Path(out_dir) / "kubernetes.yaml"
    documents = kubernetes_manifests(ref, image=image, name=name)
    path.write_text(
        yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False), encoding="utf-8"
    )
    return path
