"""Kubernetes manifests for a packaged model: the fields a cluster would check."""

from pathlib import Path

import yaml

from shipyard.deploy.kubernetes import RUN_AS_USER, write_kubernetes_manifests


def test_deployment_and_service(tmp_path: Path) -> None:
    path = write_kubernetes_manifests("iris:3", tmp_path, image="registry.local/iris:3")
    deployment, service = yaml.safe_load_all(path.read_text())
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    name = deployment["metadata"]["name"]
    assert name == "iris-v3" == service["metadata"]["name"]
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    [container] = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.local/iris:3"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsUser"] == RUN_AS_USER
    assert service["spec"]["ports"][0]["targetPort"] == "http"
