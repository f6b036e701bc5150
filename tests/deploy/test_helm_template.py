"""deploy/helm/shipyard rendered by Helm itself (``helm template``, ``helm lint``).

Helm's own Go code (the ``helm-python-sdk`` package's ``libhelm_c``, see
``helm_engine.py``) renders the chart with default values and with every option;
each object must be valid for current Kubernetes releases, with the same schema
validation as everything ``shipyard package`` writes, and equal to what the
stand-in renderer of the other chart tests gives (so their checks hold for Helm's
output too). ``helm lint --strict`` must report no warning or error.
"""

from __future__ import annotations

from typing import Any

import pytest
from helm_engine import helm_lint, helm_template
from helm_render import render_chart
from test_helm_chart import CHART, EVERY_OPTION
from test_kubernetes import k8s_validate

LEAN = {"server": {"autoscaling": {"enabled": False}, "serviceMonitor": {"enabled": False}}}


def _by_name(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(documents, key=lambda d: (d["kind"], d["metadata"]["name"]))


@pytest.mark.parametrize(
    ("release", "values"),
    [("shipyard", {}), ("prod", EVERY_OPTION), ("shipyard", LEAN)],
    ids=["defaults", "every-option", "lean"],
)
def test_helm_template_renders_valid_objects_equal_to_the_stand_in(
    release: str, values: dict[str, Any]
) -> None:
    documents = helm_template(CHART, release=release, values=values)
    assert documents, "helm template rendered nothing"
    for document in documents:
        k8s_validate(document)
    assert _by_name(documents) == _by_name(render_chart(CHART, release=release, values=values))


def test_helm_template_fails_on_a_value_the_chart_cannot_render() -> None:
    """The engine is really rendering: a value of the wrong shape breaks a template."""
    with pytest.raises(RuntimeError, match="HelmRenderError"):
        helm_template(CHART, values={"server": {"resources": "lots"}, "ui": "yes"})


@pytest.mark.parametrize("values", [{}, EVERY_OPTION], ids=["defaults", "every-option"])
def test_helm_lint_strict_finds_no_warning_or_error(values: dict[str, Any]) -> None:
    report = helm_lint(CHART, values)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
