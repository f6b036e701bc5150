"""The ``shipyard`` command starts without the ML and serving stack.

Every command pays what ``shipyard.cli.main`` imports, so the heavy libraries
load inside the command that needs them. Each check runs a fresh interpreter:
modules other tests have imported would hide a regression.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli.main import COMMANDS, app

SHIPYARD = str(Path(sys.executable).parent / "shipyard")

# Libraries no command line needs before it runs a command.
HEAVY = ("pandas", "sklearn", "fastapi", "onnxruntime", "pyarrow", "duckdb")


#: ``shipyard models list --json`` run in-process, failing on a non-zero exit.
MODELS_LIST = (
    "import sys\n"
    "from shipyard.cli.main import app\n"
    "sys.argv = ['shipyard', 'models', 'list', '--json']\n"
    "try:\n"
    "    app(prog_name='shipyard')\n"
    "except SystemExit as exc:\n"
    "    assert exc.code == 0, exc.code"
)


def all_modules(code: str, tmp_path: Path) -> set[str]:
    """Every module a fresh interpreter holds after running CODE."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def loaded_modules(code: str, tmp_path: Path) -> set[str]:
    """The top-level packages a fresh interpreter holds after running CODE."""
    return {name.split(".")[0] for name in all_modules(code, tmp_path)}


def test_importing_the_cli_leaves_the_heavy_libraries_out(tmp_path: Path) -> None:
    loaded = loaded_modules("import shipyard.cli.main", tmp_path)
    assert [name for name in HEAVY if name in loaded] == []
    # the ORM and the settings models load with the first command that opens the store
    assert "sqlalchemy" not in loaded
    assert "pydantic" not in loaded


def test_help_lists_every_command_without_the_heavy_libraries(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from shipyard.cli.main import app\n"
        "sys.argv = ['shipyard', '--help']\n"
        "try:\n"
        "    app(prog_name='shipyard')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code"
    )
    loaded = loaded_modules(code, tmp_path)
    assert [name for name in HEAVY if name in loaded] == []
    assert "sqlalchemy" not in loaded


def test_shipyard_help_runs_and_lists_the_commands(tmp_path: Path) -> None:
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [SHIPYARD, "--help"], env=env, check=True, capture_output=True, text=True
    )
    for name in (*COMMANDS, "models", "deploy", "serve", "drift", "rollback"):
        assert f" {name} " in result.stdout, name
    assert "Registered models, their versions and aliases." in result.stdout


def test_models_list_opens_the_store_without_pandas_or_sklearn(tmp_path: Path) -> None:
    loaded = loaded_modules(MODELS_LIST, tmp_path)
    assert "sqlalchemy" in loaded  # it did open the store
    assert [
        name for name in ("pandas", "sklearn", "fastapi", "onnxruntime") if name in loaded
    ] == []


def test_models_list_loads_only_the_stores_it_reads(tmp_path: Path) -> None:
    """The client imports each store with its first use: listing models reads the
    model and alias tables, not the loop, rollout, validation, feature or run stores
    (together about 0.1 s of CPU at every start)."""
    loaded = all_modules(MODELS_LIST, tmp_path)
    assert "shipyard.store.model_store" in loaded  # it did read the models
    unused = (
        "feature_store",
        "loop_store",
        "monitor_store",
        "rollout_store",
        "run_query",
        "run_search",
        "run_store",
        "validation_store",
    )
    assert [m for m in unused if f"shipyard.store.{m}" in loaded] == []


def test_a_snapshot_of_numeric_parquet_never_imports_pandas(tmp_path: Path) -> None:
    """Plain columns are hashed and written from Arrow: pandas' import (0.2 s) is not
    paid; a text column still takes the pandas path, and both snapshots succeed."""
    import numpy as np
    import pandas as pd

    numbers = pd.DataFrame({"id": np.arange(1000), "x": np.linspace(0, 1, 1000)})
    numbers.to_parquet(tmp_path / "numbers.parquet")
    numbers.assign(city="Oslo").to_parquet(tmp_path / "text.parquet")

    def snapshot(name: str) -> set[str]:
        code = (
            "import sys\n"
            "from shipyard.cli.main import app\n"
            f"sys.argv = ['shipyard', 'data', 'snapshot', {str(tmp_path / name)!r}, '-n', 'n']\n"
            "try:\n"
            "    app(prog_name='shipyard')\n"
            "except SystemExit as exc:\n"
            "    assert exc.code == 0, exc.code"
        )
        return loaded_modules(code, tmp_path)

    assert "pandas" not in snapshot("numbers.parquet")
    assert "pandas" in snapshot("text.parquet")


def root_help(group: Any, capsys: pytest.CaptureFixture[str]) -> str:
    group.main(["--help"], prog_name="shipyard", standalone_mode=False)
    return capsys.readouterr().out


def test_the_command_list_matches_each_commands_own_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shipyard --help`` shows each command's help without importing it: the
    text it shows is the help the command gives once loaded."""
    monkeypatch.setenv("COLUMNS", "200")
    group = typer.main.get_command(app)
    listed = root_help(group, capsys)
    assert "Registered models, their versions and aliases." in listed
    ctx = group.make_context("shipyard", ["--help"], resilient_parsing=True)
    for name in COMMANDS:
        assert group.get_command(ctx, name) is not None, name  # builds the real command
    assert root_help(group, capsys) == listed


def test_a_mistyped_command_is_answered_with_the_closest_name() -> None:
    # Typer's own suggestion sees only the commands built so far; none are at this point.
    result = CliRunner().invoke(app, ["modles"])
    assert result.exit_code == 2
    assert "No such command 'modles'. Did you mean 'models'?" in result.output
