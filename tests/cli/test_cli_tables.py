"""Tables on an 80-column terminal: values and column names are never cut short.

Rich squeezes a table that is too wide into ``accuracy=…`` and ``vari…``;
Shipyard's tables wrap between words or fold each row into ``column  value``
lines instead (``cli/_common.table``). Every command below runs through the real
root app with ``COLUMNS=80``, and ``models show`` shows the description and params.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli._common import table
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame

METRICS = {"accuracy": 0.9667, "f1_macro": 0.9666, "log_loss": 0.0912, "roc_auc_ovr": 0.9973}
PARAMS = {"C": 1.0, "max_iter": 500, "solver": "lbfgs", "class_weight": "balanced"}
DESCRIPTION = "Logistic regression on the four iris measurements, all 150 rows [v2]"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tables") / "home"
    client = Shipyard(Settings(home=home, user="cli-tester"))
    X, y = iris_frame()
    for c in (0.5, 1.0):
        with client.tracker.start_run("iris-experiments-with-a-long-name") as run:
            run.log_params(PARAMS)
            run.log_metrics(METRICS)
            model = LogisticRegression(C=c, max_iter=500).fit(X, y)
            client.registry.log_model(
                model,
                "iris",
                sample=X,
                metrics=METRICS,
                params=PARAMS,
                description=DESCRIPTION,
                run_id=run.id,
            )
    client.registry.set_alias("iris", "production", 1)
    client.registry.set_alias("iris", "staging", 2)
    client.close()
    return home


def run80(home: Path, *args: str) -> str:
    env = {
        "COLUMNS": "80",
        "SHIPYARD_HOME": str(home),
        "SHIPYARD_USER": "cli-tester",
        "SHIPYARD_DB": None,
    }
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
    assert "…" not in result.output, result.output
    return result.output


def words(text: str) -> set[str]:
    return set(re.findall(r"[^\s│┃║|,]+", text))


def test_versions_and_runs_keep_every_metric_and_column_name(home: Path) -> None:
    out = run80(home, "models", "versions", "iris")
    found = words(out)
    for name, value in METRICS.items():
        assert f"{name}={value:.4g}" in found, out
    for column in ("version", "status", "aliases", "flavor", "metrics", "run", "created"):
        assert column in found, out
    out = run80(home, "runs", "list")
    found = words(out)
    assert "iris-experiments-with-a-long-name" in found
    for column in ("run", "experiment", "name", "status", "metrics", "started"):
        assert column in found, out


def test_deployment_tables_keep_their_column_names(home: Path) -> None:
    run80(home, "deploy", "web-tables", "--model", "iris:1")
    out = run80(home, "deploy", "list")
    assert {"deployment", "primary", "mode", "revision"} <= words(out)
    out = run80(home, "deploy", "ab-report", "web-tables")
    for column in ("variant", "version", "requests", "labelled", "accuracy", "latency"):
        assert column in words(out), out


def test_models_show_has_the_description_and_params(home: Path) -> None:
    out = run80(home, "models", "show", "iris:2")
    assert DESCRIPTION in " ".join(out.split()), out  # "[v2]" is text, not markup
    assert "Params" in out
    found = words(out)
    for name, value in PARAMS.items():
        assert name in found and str(value) in found, out
    for name in METRICS:
        assert name in found


def test_a_table_that_fits_is_unchanged_and_a_narrow_one_folds_rows(home: Path) -> None:
    from rich.console import Console

    columns = ["variant", "version", "weight", "live (step)"]
    rows = [["canary", "iris:2", "10%", "31 req, 0 5xx, p99 <= 6 ms " * 3]]
    for width in (120, 80, 40, 24):
        console = Console(width=width, record=True)
        console.print(table("Deployment", columns, rows))
        text = console.export_text()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
        assert set(columns[:3]) <= words(text), text
        assert {"canary", "iris:2", "10%"} <= words(text)
        # A folded row shows each column name beside its value.
        if width == 24:
            assert re.search(r"variant\s+canary", text), text


def test_drift_results_wrap_or_fold_instead_of_cutting_names(home: Path, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    long_names = [
        "customer_lifetime_value_in_euros_last_quarter",
        "number_of_support_tickets_opened_recently",
        "preferred_communication_channel_category",
    ]
    reference = pd.DataFrame(
        {
            long_names[0]: rng.normal(size=500),
            long_names[1]: rng.normal(size=500),
            long_names[2]: rng.choice(["email", "phone", "sms"], 500),
        }
    )
    current = reference.assign(**{long_names[0]: reference[long_names[0]] + 1})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    out = run80(home, "drift", "--reference", str(tmp_path / "reference.csv"),
                "--current", str(tmp_path / "current.csv"))  # fmt: skip
    found = words(out)
    assert set(long_names) <= found, out
    assert {"Column", "Type", "Test", "Score", "Threshold", "Drift", "DRIFT", "ks"} <= found, out
    # Too wide for a table even with wrapping: each row folds into `column  value` lines.
    assert re.search(rf"Column\s+{long_names[0]}\s+Type\s+numerical", out), out


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    if not hasattr(command, "list_commands"):
        return
    # Through the group's own lookup: the root imports a command only when asked for it.
    ctx = command.make_context("shipyard", ["--help"], resilient_parsing=True)
    for name in command.list_commands(ctx):
        yield from _commands(command.get_command(ctx, name), [*path, name])


def test_every_help_shows_every_option_name_in_full(home: Path) -> None:
    from typer.main import get_command

    seen = 0
    for path, command in _commands(get_command(app), []):
        out = run80(home, *path, "--help")
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            for name in (*param.opts, *param.secondary_opts):
                assert re.search(re.escape(name) + r"(?![\w-])", out), (path, name, out)
                seen += 1
    assert seen > 150  # every command was looked at, not just the root
