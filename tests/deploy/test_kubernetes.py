"""Kubernetes manifests for a packaged model: the fields a cluster would check, and every
object validated against the Kubernetes OpenAPI schemas (kubernetes-validate)."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shipyard.deploy.kubernetes import (
    IN_FLIGHT_METRIC,
    RUN_AS_USER,
    k8s_name,
    kubernetes_manifests,
    write_kubernetes_manifests,
)
from shipyard.errors import InvalidInputError

#: Kubernetes releases whose schemas every manifest must satisfy: the newest the
#: kubernetes-validate package ships, and the oldest still maintained upstream.
K8S_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())


def k8s_validate(document: dict[str, Any]) -> None:
    """Strict validation (unknown fields are errors) against each release's schema.

    ServiceMonitor is a CRD of the Prometheus operator, not in Kubernetes' own
    schemas: its fields are checked by the tests that build it."""
    if document["apiVersion"].startswith("monitoring.coreos.com/"):
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(document, version, strict=True)


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {d["kind"]: d for d in documents}
    assert len(kinds) == len(documents), "one object of each kind"
    return kinds


def test_deployment_and_service(tmp_path: Path) -> None:
    path = write_kubernetes_manifests("iris:3", tmp_path, image="registry.local/iris:3")
    kinds = by_kind(list(yaml.safe_load_all(path.read_text())))
    deployment, service = kinds["Deployment"], kinds["Service"]
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
    path = write_kubernetes_manifests(ref, out, image=image)
    return list(yaml.safe_load_all(path.read_text()))


def test_the_next_version_updates_the_same_objects(tmp_path: Path) -> None:
    """Applying version 4 after version 3 must roll one Deployment behind one Service:
    same names, same (immutable) selector; only the pods' image and version change."""
    v3, v4 = (_documents(tmp_path, f"iris:{n}", image=f"r/iris:{n}") for n in (3, 4))
    for old, new in zip(v3, v4, strict=True):
        assert (old["kind"], old["metadata"]["name"]) == (new["kind"], new["metadata"]["name"])
    old, new = by_kind(v3), by_kind(v4)
    assert old["Deployment"]["spec"]["selector"] == new["Deployment"]["spec"]["selector"]
    assert old["Service"]["spec"]["selector"] == new["Service"]["spec"]["selector"]
    assert new["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == "r/iris:4"
    assert old["ConfigMap"] == new["ConfigMap"]  # settings do not change with the version


def test_a_given_name_names_both_objects(tmp_path: Path) -> None:
    path = write_kubernetes_manifests("iris:3", tmp_path, image="i", name="Web_Front")
    names = {d["kind"]: d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text())}
    assert names.pop("ConfigMap") == "web-front-settings"
    assert set(names.values()) == {"web-front"}
    with pytest.raises(InvalidInputError, match="no usable Kubernetes name"):
        k8s_name("__")


def test_the_yaml_is_plain_for_people_and_tools(tmp_path: Path) -> None:
    """No anchors or aliases (``&id001`` / ``*id001``) where the labels repeat."""
    text = write_kubernetes_manifests("iris:3", tmp_path, image="i").read_text()
    assert "&id" not in text and "*id" not in text
    assert text.count("app.kubernetes.io/name: iris") == 11  # written out each time


def test_every_object_is_valid_for_current_kubernetes(tmp_path: Path) -> None:
    documents = kubernetes_manifests(
        "iris:3",
        image="registry.local/iris:3",
        replicas=3,
        max_replicas=8,
        in_flight_target=4,
        settings={"SHIPYARD_ARTIFACTS": "s3://models/team"},
    )
    assert [d["kind"] for d in documents] == [
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ]
    for document in documents:
        k8s_validate(document)
    write_kubernetes_manifests("iris:3", tmp_path, image="i")
    [secret] = yaml.safe_load_all((tmp_path / "kubernetes-secret.yaml").read_text())
    k8s_validate(secret)
    assert secret["metadata"]["name"] == "iris-secrets"
    assert len(secret["stringData"]["SHIPYARD_ADMIN_TOKEN"]) >= 32


def test_a_manifest_a_cluster_would_refuse_fails_validation() -> None:
    """The validation is real: a misspelt field and a wrong type are both caught."""
    deployment = kubernetes_manifests("iris:3", image="i")[1]
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(deployment)
    deployment = kubernetes_manifests("iris:3", image="i")[1]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(deployment)


def test_pods_run_read_only_with_limits_settings_and_secrets() -> None:
    kinds = by_kind(kubernetes_manifests("iris:3", image="i", settings={"SHIPYARD_USER": "ops"}))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    # The only writable places are emptyDirs: the data folder and /tmp.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"home": "/var/lib/shipyard", "tmp": "/tmp"}
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == set(mounts)
    assert container["envFrom"] == [
        {"configMapRef": {"name": "iris-settings"}},
        {"secretRef": {"name": "iris-secrets", "optional": True}},
    ]
    assert kinds["ConfigMap"]["data"] == {"SHIPYARD_USER": "ops"}


def test_autoscaler_budget_and_service_monitor_point_at_the_deployment() -> None:
    kinds = by_kind(kubernetes_manifests("iris:3", image="i", name="web", in_flight_target=8))
    selector = kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    cpu, in_flight = hpa["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert in_flight["pods"]["metric"]["name"] == IN_FLIGHT_METRIC
    assert in_flight["pods"]["target"] == {"type": "AverageValue", "averageValue": "8"}
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    monitor = kinds["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    # It finds the Service by its labels, and scrapes the Service's port by name.
    assert monitor["spec"]["selector"]["matchLabels"] == kinds["Service"]["metadata"]["labels"]
    ports = [p["name"] for p in kinds["Service"]["spec"]["ports"]]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"] and "http" in ports
    # Without the option, CPU alone.
    plain = by_kind(kubernetes_manifests("iris:3", image="i"))["HorizontalPodAutoscaler"]
    assert [m["type"] for m in plain["spec"]["metrics"]] == ["Resource"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": 5, "max_replicas": 3}, "replicas must be at least 1 and at most"),
        ({"cpu_target": 0}, "cpu_target must be a percentage"),
        ({"in_flight_target": 0}, "in_flight_target must be > 0"),
        ({"settings": {"SHIPYARD_DB": "postgresql://x"}}, "go in the Secret"),
        ({"settings": {"HOME": "/x"}}, "expected a SHIPYARD_"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        kubernetes_manifests("iris:3", image="i", **options)
