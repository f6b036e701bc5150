"""User text that looks like Rich markup prints as written, through the real commands.

Names are restricted (no brackets), but actors, comments, reasons, column names
and paths are free text: ``[bold]x[/]`` must not turn bold, ``[red]`` must not
vanish, and a lone ``[/]`` must not crash the command with a markup error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame

ACTOR = "[bold]ann[/]"
COMMENT = "[red] checked [/] the [b]slices"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", ACTOR)
    monkeypatch.setenv("COLUMNS", "200")
    X, y = iris_frame()
    client = Shipyard(Settings(home=home, user=ACTOR))
    client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
    client.close()
    return home


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_actors_and_comments_print_literally(home: Path) -> None:
    code, out = run("approve", "iris:1", "--comment", COMMENT)
    assert code == 0, out
    assert f"approved by {ACTOR}" in out
    code, out = run("models", "show", "iris:1")
    assert code == 0, out
    assert f"by {ACTOR}" in out  # created by
    assert f"approve by {ACTOR}: {COMMENT}" in out or f"approved by {ACTOR}: {COMMENT}" in out


def test_deploy_reasons_and_a_lone_closing_tag(home: Path) -> None:
    code, out = run("deploy", "web", "--model", "iris:1", "--reason", "[/]")
    assert code == 0, out
    code, out = run("deploy", "status", "web")
    assert code == 0, out
    assert "[/]" in out and ACTOR in out


def test_drift_column_names_print_literally(home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"[bold]x[/]": rng.normal(size=500), "[red]": rng.normal(size=500)})
    cur = ref.assign(**{"[bold]x[/]": ref["[bold]x[/]"] + 3})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    code, out = run("drift", "--reference", str(tmp_path / "ref.csv"), "--current", "cur.csv")
    assert code == 1 and "cur.csv': there is no such file" in out  # relative to the cwd
    code, out = run(
        "drift", "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")
    )
    assert code == 1, out  # 1: the dataset drifted
    assert "[bold]x[/]" in out and "[red]" in out
