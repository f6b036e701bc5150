"""deploy/helm/shipyard: every rendered object valid for current Kubernetes releases.

The chart is rendered here by ``helm_render.py``, a stand-in for ``helm template`` that
knows only the template features the chart uses and fails on any other;
``test_helm_template.py`` renders it with Helm's own engine and checks the two agree.
An install on a cluster was not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import typer
import yaml
from helm_render import RenderError, render, render_chart
from test_kubernetes import k8s_validate

from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.deploy.kubernetes import IN_FLIGHT_METRIC

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "shipyard"
# Every value the chart offers set away from its default (Helm's own render uses it too).
EVERY_OPTION = {
    "deployment": "checkout",
    "image": {"repository": "registry.example.com/ml/shipyard", "tag": "0.2.0"},
    "secret": {"create": False},
    "server": {"cache": "", "autoscaling": {"inFlightTarget": 12}},
    "loop": {"enabled": False},
    "ui": {"enabled": False},
}


def kinds(documents: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["kind"], d["metadata"]["name"]) for d in documents]


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in documents if (d["kind"], d["metadata"]["name"]) == (kind, name)]
    return found


def pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in documents if d["kind"] == "Deployment"]
    specs += [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for d in documents
        if d["kind"] == "CronJob"
    ]
    return specs


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "shipyard"
    assert chart["type"] == "application" and chart["version"]


def test_default_render_is_valid_for_current_kubernetes() -> None:
    documents = render_chart(CHART)
    assert sorted(kinds(documents)) == sorted(
        [
            ("ConfigMap", "shipyard-settings"),
            ("ConfigMap", "shipyard-loop"),
            ("CronJob", "shipyard-loop"),
            ("Secret", "shipyard-secrets"),
            ("Deployment", "shipyard-web"),
            ("Service", "shipyard-web"),
            ("PodDisruptionBudget", "shipyard-web"),
            ("HorizontalPodAutoscaler", "shipyard-web"),
            ("ServiceMonitor", "shipyard-web"),
            ("Deployment", "shipyard-ui"),
            ("Service", "shipyard-ui"),
        ]
    )
    for document in documents:
        k8s_validate(document)


def test_every_option_renders_valid_objects() -> None:
    documents = render_chart(CHART, release="prod", values=EVERY_OPTION)
    for document in documents:
        k8s_validate(document)
    names = kinds(documents)
    # Named per Shipyard deployment, never per version.
    assert ("Deployment", "prod-checkout") in names and ("Service", "prod-checkout") in names
    assert not [n for n in names if n[0] in ("Secret", "CronJob") or n[1] == "prod-ui"]
    server = find(documents, "Deployment", "prod-checkout")
    [container] = server["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/ml/shipyard:0.2.0"
    assert container["args"][:3] == ["serve", "--deployment", "checkout"]
    assert "--cache" not in container["args"]
    hpa = find(documents, "HorizontalPodAutoscaler", "prod-checkout")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "prod-checkout"
    pods = hpa["metrics"][1]["pods"]
    assert pods["metric"]["name"] == "shipyard_http_requests_in_flight"
    assert pods["target"] == {"type": "AverageValue", "averageValue": "12"}
    monitor = find(documents, "ServiceMonitor", "prod-checkout")
    service = find(documents, "Service", "prod-checkout")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    lean = render_chart(
        CHART,
        values={
            "server": {"autoscaling": {"enabled": False}, "serviceMonitor": {"enabled": False}}
        },
    )
    assert not {"HorizontalPodAutoscaler", "ServiceMonitor"} & {d["kind"] for d in lean}


def test_pods_are_read_only_limited_and_read_settings_and_secrets() -> None:
    documents = render_chart(CHART)
    specs = pod_specs(documents)
    assert len(specs) == 3  # server, UI, loop
    for spec in specs:
        [container] = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsNonRoot"] is True
        assert {"requests", "limits"} <= set(container["resources"])
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert refs == ["shipyard-settings", "shipyard-secrets"]
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert writable == {"/var/lib/shipyard", "/tmp"}
    settings = find(documents, "ConfigMap", "shipyard-settings")["data"]
    assert settings["SHIPYARD_ARTIFACTS"].startswith("s3://")
    # One online store for every pod, on the cache's Redis but not its db.
    args = find(documents, "Deployment", "shipyard-web")["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    online = urlsplit(settings["SHIPYARD_ONLINE_STORE"])
    cache = urlsplit(args[args.index("--cache") + 1])
    assert online.scheme == "redis" and online.netloc == cache.netloc
    assert online.path != cache.path
    assert "SHIPYARD_DB" in find(documents, "Secret", "shipyard-secrets")["stringData"]


def test_a_wrong_value_type_is_caught_by_the_schema() -> None:
    documents = render_chart(CHART, values={"server": {"replicas": "three"}})
    server = find(documents, "Deployment", "shipyard-web")
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(server)


# -- the stand-in renderer --------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a: {{ .Values.x }}", "a: 1"),
        ("a: {{ .Values.x | quote }}", 'a: "1"'),
        ("a:\n  {{- toYaml .Values.m | nindent 2 }}\nb: 2", "a:\n  k: v\n  z: 1\nb: 2"),
        ("x\n{{- if .Values.no }}\nyes\n{{- else }}\nno\n{{- end }}\n", "x\nno\n"),
        ('{{ .Values.empty | default "d" }}', "d"),
        ("{{- if .Values.x }}\nk: {{ .Release.Name }}\n{{- end }}", "\nk: r"),
    ],
)
def test_the_stand_in_renders_like_helm(template: str, expected: str) -> None:
    context = {
        "Values": {"x": 1, "no": False, "empty": "", "m": {"z": 1, "k": "v"}},
        "Release": {"Name": "r"},
    }
    assert render(template, context) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Values.missing }}", "no such value"),
        ("{{ .Values.m }}", "without toYaml"),
        ("{{ upper .Values.x }}", "unsupported command"),
        ('{{ include "x" . }}', "not supported"),
        ("{{ if .Values.x }}open", "has no"),
        ("{{ end }}", "without an if"),
    ],
)
def test_the_stand_in_refuses_what_it_cannot_render(template: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render(template, {"Values": {"x": 1, "m": {"k": "v"}}})


def test_the_adapter_rule_serves_the_metric_the_autoscaler_reads() -> None:
    """The HPA's Pods metric exists only if the Prometheus adapter serves it by that name."""
    rules = yaml.safe_load((CHART / "prometheus-adapter-rules.yaml").read_text())["rules"]
    [rule] = rules
    documents = render_chart(CHART, values={"server": {"autoscaling": {"inFlightTarget": 8}}})
    hpa = find(documents, "HorizontalPodAutoscaler", "shipyard-web")
    metric = hpa["spec"]["metrics"][1]["pods"]["metric"]["name"]
    assert rule["name"]["as"] == metric == IN_FLIGHT_METRIC
    assert rule["seriesQuery"].startswith(IN_FLIGHT_METRIC + "{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def _options(*path: str) -> set[str]:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.get_command(typer.Context(command), name)
    return {opt for p in command.params for opt in p.opts}


def test_the_pods_run_real_shipyard_commands_with_real_settings() -> None:
    """The server's and the loop's arguments are options of the real CLI commands, and
    every ConfigMap/Secret key is a Shipyard setting (the image's entrypoint is shipyard)."""
    documents = render_chart(CHART)
    server = find(documents, "Deployment", "shipyard-web")
    args = server["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "serve"
    assert {a for a in args if a.startswith("--")} <= _options("serve")
    cron = find(documents, "CronJob", "shipyard-loop")
    loop_args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert loop_args[:2] == ["loop", "tick"]
    assert {a for a in loop_args if a.startswith("--")} <= _options("loop", "tick")
    keys = set(find(documents, "ConfigMap", "shipyard-settings")["data"])
    keys |= set(find(documents, "Secret", "shipyard-secrets")["stringData"])
    assert {k.removeprefix("SHIPYARD_").lower() for k in keys} <= set(Settings.model_fields)
