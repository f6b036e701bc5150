"""What every command shares (``cli/_common.py``), through the real root app.

- A file-system error (missing folder, a folder where a file belongs, a file
  where a folder belongs, permission denied, a full disk) is one line
  ``Error: <path>: <reason>`` and exit code 1, never a traceback.
- Exit codes: 0 success, 1 a failure or a failing verdict, 2 a usage error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with iris:1 (production), and iris.csv / shifted.csv beside it."""
    root = tmp_path_factory.mktemp("common")
    client = Shipyard(Settings(home=root / "home", user="cli-tester"))
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    client.registry.log_model(model, "iris", sample=X, metrics={"accuracy": 0.97})
    client.registry.set_alias("iris", "production", 1)
    client.close()
    X.to_csv(root / "iris.csv", index=False)
    X.assign(species=y).to_csv(root / "labelled.csv", index=False)
    (X + 3).to_csv(root / "shifted.csv", index=False)
    return root


def run(home: Path, *args: str | Path) -> Result:
    env = {"SHIPYARD_HOME": str(home / "home"), "SHIPYARD_USER": "cli-tester", "COLUMNS": "200"}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def _one_error_line(result: Result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for text in expected:
        assert text in errors[0], result.output


def test_a_missing_output_folder_names_the_path(home: Path) -> None:
    out = home / "no-such-folder" / "drift.html"
    result = run(home, "drift", "--reference", home / "iris.csv", "--current",
                 home / "shifted.csv", "--report", out)  # fmt: skip
    _one_error_line(result, str(out), "No such file or directory")


def test_a_folder_where_a_file_belongs(home: Path) -> None:
    result = run(home, "drift", "--reference", home / "iris.csv", "--current",
                 home / "iris.csv", "--json", home)  # fmt: skip
    _one_error_line(result, f"Error: {home}: Is a directory")


def test_a_file_where_a_folder_belongs(home: Path) -> None:
    result = run(home, "validate", "contract", "iris:1", "--output", home / "iris.csv" / "c.json")
    _one_error_line(result, str(home / "iris.csv" / "c.json"), "Not a directory")
    result = run(home, "package", "iris", "--out", home / "iris.csv" / "pkg")
    _one_error_line(result, "iris.csv")


def test_permission_denied_names_the_path(home: Path) -> None:
    # /sys refuses new files even to root, so this holds whoever runs the suite.
    result = run(home, "validate", "contract", "iris:1", "--output", "/sys/shipyard-test.json")
    _one_error_line(result, "/sys/shipyard-test.json", "Permission denied")


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full")
def test_a_full_disk_names_the_file_it_could_not_write(home: Path) -> None:
    # The write fails with ENOSPC, whose error carries no file name of its own.
    result = run(home, "validate", "contract", "iris:1", "--output", "/dev/full")
    _one_error_line(result, "/dev/full", "No space left on device")


def test_a_registry_home_under_a_file(home: Path) -> None:
    env_home = home / "iris.csv" / "home"
    result = CliRunner().invoke(
        app, ["models", "list"], env={"SHIPYARD_HOME": str(env_home), "SHIPYARD_DB": None}
    )
    _one_error_line(result, str(env_home), "Not a directory")


# -- exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["models", "list"], 0),
        (["models", "show", "iris:1"], 0),
        (["drift", "--reference", "{root}/iris.csv", "--current", "{root}/iris.csv"], 0),
        (["validate", "contract", "iris:1"], 0),
        (["models", "show", "nosuchmodel"], 1),
        (["drift", "--reference", "{root}/iris.csv", "--current", "{root}/shifted.csv"], 1),
        (["validate", "model", "iris:1", "--data", "{root}/iris.csv", "--target", "x"], 1),
        # Failing verdicts: gates that do not pass, and dataset drift (above).
        (
            [
                *("validate", "model", "iris:1", "--data", "{root}/labelled.csv"),
                *("--target", "species", "--threshold", "accuracy>=0.999"),
            ],
            1,
        ),
        (
            [
                *("validate", "model", "iris:1", "--data", "{root}/labelled.csv"),
                *("--target", "species", "--threshold", "accuracy>=0.5"),
            ],
            0,
        ),
        (["models", "list", "--no-such-flag"], 2),
        (["models", "show"], 2),
        (["drift", "--reference", "{root}/iris.csv", "--drift-share", "x"], 2),
        (["no-such-command"], 2),
        (["audit", "--model", "nosuchmodel"], 1),
    ],
)
def test_exit_codes(home: Path, args: list[str], code: int) -> None:
    result = run(home, *[a.format(root=home) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_audit_of_an_unknown_model_is_an_error_naming_it(home: Path) -> None:
    result = run(home, "audit", "--model", "irsi")
    _one_error_line(result, "No model named 'irsi'", "Registered models: iris")
    assert "Audit log" not in result.output
    assert run(home, "audit", "--model", "iris").exit_code == 0


def test_every_command_group_is_made_by_command_group() -> None:
    """One place sets how a group's help looks (plain, never cut short, shown when called
    bare); a module building its own typer.Typer would drift from it."""
    from pathlib import Path

    import shipyard.cli as cli_package

    folder = Path(cli_package.__file__).parent
    own = sorted(
        p.name
        for p in folder.glob("*.py")
        if p.name != "_common.py" and "typer.Typer(" in p.read_text()
    )
    assert own == []


def test_command_group_gives_plain_help_that_shows_when_called_bare() -> None:
    import typer
    from typer.testing import CliRunner

    from shipyard.cli._common import HelpGroup, command_group

    group = command_group("Things: list them, and more.")

    @group.command("list")
    def list_things() -> None:
        """List every thing there is, with a summary long enough to be cut short by Click."""

    @group.command("show")
    def show_thing() -> None:
        """Show one."""

    assert isinstance(typer.main.get_command(group), HelpGroup)
    result = CliRunner().invoke(group, [])
    assert "Things: list them, and more." in result.output
    assert "List every thing there is, with a summary long enough to be cut short by" in (
        " ".join(result.output.split())
    )
