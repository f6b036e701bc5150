"""Every name a user gives is checked whole: control characters never pass.

A trailing newline once passed (``re.match`` with ``$``): ``log_model(m, "iris\\n")``
registered a second, unreachable ``iris`` and ``set_alias("iris", "production\\n", 3)``
skipped the production gates. Each kind of name is tried here with control
characters at the end, the start and inside, through the Python API and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import shipyard
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import ConfigError, InvalidInputError
from shipyard.loop.config import load_config
from shipyard.names import check_alias_name, check_name
from shipyard.quickstart import iris_frame

CONTROL = ["\n", "\r", "\t", "\x00"]


def _spoiled(name: str) -> list[str]:
    """``name`` with each control character at its end, its start and in its middle."""
    middle = len(name) // 2
    return [
        spoiled
        for char in CONTROL
        for spoiled in (name + char, char + name, name[:middle] + char + name[middle:])
    ]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Shipyard]:
    c = shipyard.configure(Settings(home=tmp_path / "home", user="tester"))
    X, y = iris_frame()
    c.registry.log_model(LogisticRegression(max_iter=300).fit(X, y), "iris", sample=X)
    yield c
    shipyard.configure(Settings(home=tmp_path / "unused"))
    c.close()


@pytest.mark.parametrize("name", _spoiled("iris"))
def test_name_checks_refuse_control_characters(name: str) -> None:
    with pytest.raises(InvalidInputError, match="not allowed"):
        check_name(name, kind="Model name")
    with pytest.raises(InvalidInputError, match="not allowed"):
        check_alias_name(name)
    with pytest.raises(InvalidInputError, match="not a model reference"):
        shipyard.parse_ref(name)


@pytest.mark.parametrize("char", CONTROL)
def test_python_api_refuses_every_kind_of_name_with_a_control_character(
    client: Shipyard, char: str
) -> None:
    X, y = iris_frame()
    model = LogisticRegression(max_iter=300).fit(X, y)
    with pytest.raises(InvalidInputError, match="Model name"):
        shipyard.log_model(model, "iris" + char, sample=X)
    with pytest.raises(InvalidInputError, match="Alias"):
        shipyard.set_alias("iris", "production" + char, 1)
    with pytest.raises(InvalidInputError, match="Alias"):
        client.aliases.set_alias("iris", "production" + char, 1, actor="tester")
    with pytest.raises(InvalidInputError, match="Experiment name"):
        shipyard.start_run("iris" + char)
    with shipyard.start_run("iris") as run, pytest.raises(InvalidInputError, match="Dataset"):
        run.log_dataset(X, context="training" + char)
    with pytest.raises(InvalidInputError, match="Deployment name"):
        shipyard.deployments().create("web" + char, "iris", 1)
    with pytest.raises(InvalidInputError, match="not a model reference"):
        shipyard.load_model("iris" + char)
    # Nothing was registered under a look-alike name, no alias moved, no deployment made.
    assert [m.name for m in client.models.list_models()] == ["iris"]
    assert client.models.get_model("iris").aliases == {}
    assert client.deployments.list_deployments() == []
    assert {r.experiment for r in client.runs.list_runs()} == {"iris"}


@pytest.mark.parametrize("char", CONTROL)
def test_cli_refuses_names_with_a_control_character(
    client: Shipyard, char: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(client.settings.home))
    runner = CliRunner()
    commands = [
        ["models", "alias", "iris", "production" + char, "1"],
        ["deploy", "web" + char, "--model", "iris:1"],
        ["models", "show", "iris" + char + ":1"],
        ["validate", "policy", "--model", "iris" + char, "--required-approvals", "1"],
    ]
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert "Error:" in result.output and "Traceback" not in result.output, result.output
    assert client.models.get_model("iris").aliases == {}
    assert client.deployments.list_deployments() == []


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("model", "iris\n", "Model name"),
        ("alias", "production\n", "Alias"),
        ("canary", {"deployment": "web\t"}, "Deployment name"),
        ("pipeline", {"entry_point": "shipyard.loop.examples:train_iris\n"}, "entry point"),
    ],
)
def test_loop_config_refuses_names_with_control_characters(
    tmp_path: Path, field: str, value: object, kind: str
) -> None:
    raw: dict[str, object] = {
        "model": "iris",
        "pipeline": {
            "entry_point": "shipyard.loop.examples:train_iris",
            "data": {"path": "iris.csv"},
            "target": "species",
        },
        "triggers": [{"kind": "schedule", "cron": "0 3 * * *"}],
    }
    if isinstance(value, dict):
        raw[field] = {**raw.get(field, {}), **value}  # type: ignore[dict-item]
    else:
        raw[field] = value
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=kind):
        load_config(path)
