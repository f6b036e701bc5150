"""Kubernetes manifests for a packaged model: a Deployment and its Service.

Written beside the Dockerfile by ``shipyard package``: probes on ``/health``
(liveness) and ``/ready`` (readiness: model loaded and warmed up), the
non-root user the image runs as, Prometheus scrape annotations for
``/metrics``, and a grace period long enough for SIGTERM to drain.

>>> docs = kubernetes_manifests("iris:3", image="registry.local/iris:3")
>>> [d["kind"] for d in docs]
['Deployment', 'Service']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from shipyard.deploy.docker import RUN_AS_USER, SERVE_PORT
from shipyard.registry.refs import parse_ref


def _k8s_name(ref: str) -> str:
    """``iris:3`` -> ``iris-v3``: a DNS-1123 label."""
    parsed = parse_ref(ref)
    raw = f"{parsed.name}-v{parsed.version}" if parsed.version else parsed.name
    return re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:63]


def kubernetes_manifests(ref: str, *, image: str, replicas: int = 2) -> list[dict[str, Any]]:
    """The Deployment and Service serving ``ref`` from ``image``."""
    name = _k8s_name(ref)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shipyard"}
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
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
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
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    return [deployment, service]


def write_kubernetes_manifests(ref: str, out_dir: Path, *, image: str) -> Path:
    """Write ``kubernetes.yaml`` (both documents) into ``out_dir``."""
    path = Path(out_dir) / "kubernetes.yaml"
    path.write_text(
        yaml.safe_dump_all(kubernetes_manifests(ref, image=image), sort_keys=False),
        encoding="utf-8",
    )
    return path
