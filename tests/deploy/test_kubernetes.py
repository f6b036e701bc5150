"""Kubernetes manifests for a packaged model: the fields a cluster would check."""

from pathlib import Path

import pytest
import yaml

from shipyard.deploy.kubernetes import RUN_AS_USER, k8s_name, write_kubernetes_manifests
from shipyard.errors import InvalidInputError


def test_deployment_and_service(tmp_path: Path) -> None:
    path = write_kubernetes_manifests("iris:3", tmp_path, image="registry.local/iris:3")
    deployment, service = yaml.safe_load_all(path.read_text())
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    name = deployment["metadata"]["name"]
    assert name == "iris" == service["metadata"]["name"]
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "v3"
    assert spec["template"]["metadata"]["annotations"]["io.shipyard/model-ref"] == "iris:3"
    [container] = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.local/iris:3"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsUser"] == RUN_AS_USER
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def _documents(tmp_path: Path, ref: str, image: str) -> list[dict]:
    out = tmp_path / ref.replace(":", "-")
    out.mkdir()
    return list(yaml.safe_load_all(write_kubernetes_manifests(ref, out, image=image).read_text()))


def test_the_next_version_updates_the_same_objects(tmp_path: Path) -> None:
    """Applying version 4 after version 3 must roll one Deployment behind one Service:
    same names, same (immutable) selector; only the pods' image and version change."""
    v3, v4 = (_documents(tmp_path, f"iris:{n}", image=f"r/iris:{n}") for n in (3, 4))
    for old, new in zip(v3, v4, strict=True):
        assert (old["kind"], old["metadata"]["name"]) == (new["kind"], new["metadata"]["name"])
    assert v3[0]["spec"]["selector"] == v4[0]["spec"]["selector"]
    assert v3[1]["spec"]["selector"] == v4[1]["spec"]["selector"]
    assert v4[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "r/iris:4"


def test_a_given_name_names_both_objects(tmp_path: Path) -> None:
    path = write_kubernetes_manifests("iris:3", tmp_path, image="i", name="Web_Front")
    deployment, service = yaml.safe_load_all(path.read_text())
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == "web-front"
    with pytest.raises(InvalidInputError, match="no usable Kubernetes name"):
        k8s_name("__")


def test_the_yaml_is_plain_for_people_and_tools(tmp_path: Path) -> None:
    """No anchors or aliases (``&id001`` / ``*id001``) where the labels repeat."""
    text = write_kubernetes_manifests("iris:3", tmp_path, image="i").read_text()
    assert "&id" not in text and "*id" not in text
    assert text.count("app.kubernetes.io/name: iris") == 5  # written out each time
