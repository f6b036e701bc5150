"""``helm template`` and ``helm lint`` through Helm's own Go code, in a child process.

There is no ``helm`` binary here (Debian does not package it, and no PyPI package
ships it), but the ``helm-python-sdk`` package ships Helm's Go SDK as a shared
library (``libhelm_c``): its ``Chart.render`` is the template engine ``helm template``
runs, offline, and ``lint`` is ``helm lint``. The library starts a Go runtime in the
process that loads it, so it runs in a child process: pytest's own process (and the
workers it forks) never carries one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

_CHILD = """
import json, sys
from helm_python.chart import Chart, lint
request = json.load(sys.stdin)
if request["action"] == "lint":
    print(json.dumps(lint(request["chart"], request["values"], strict=True)))
else:
    chart = Chart.load(request["chart"])
    print(json.dumps(chart.render(
        request["values"], name=request["release"], namespace="default", is_install=True
    )))
"""


def _run(request: dict[str, Any]) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"Helm ({request['action']}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def helm_template(
    chart: Path, *, release: str = "shipyard", values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every document ``helm template RELEASE CHART`` renders (``values`` over values.yaml),
    templates in file-name order as Helm prints them."""
    manifests: dict[str, str] = _run(
        {"action": "render", "chart": str(chart), "release": release, "values": values or {}}
    )
    documents = []
    for name in sorted(manifests):
        documents += [d for d in yaml.safe_load_all(manifests[name]) if d]
    return documents


def helm_lint(chart: Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """``helm lint --strict``'s report: ``messages`` (severity 1 info, 2 warning, 3 error)
    and ``errors``."""
    report: dict[str, Any] = _run({"action": "lint", "chart": str(chart), "values": values or {}})
    return report
