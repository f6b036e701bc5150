"""Loop configs: YAML and Python forms, path anchoring, and errors that name the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.errors import ConfigError
from shipyard.loop.config import LoopConfig, load_config, parse_configs

EXAMPLE = Path(__file__).parents[2] / "examples" / "loop_config.yaml"

BASE = """
model: iris
pipeline:
  entry_point: shipyard.loop.examples:train_iris
  data: {path: data/iris.csv, time_column: ts}
  target: species
triggers:
  - {kind: schedule, cron: "0 3 * * *"}
"""


def _write(tmp_path: Path, text: str, name: str = "loop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_example_config_loads_with_every_trigger_kind() -> None:
    [config] = load_config(EXAMPLE)
    assert config.model == "iris"
    assert [t.kind for t in config.triggers] == ["schedule", "drift", "performance", "new_data"]
    assert config.pipeline.data.path == str(EXAMPLE.parent / "data" / "iris.csv")
    drift = config.triggers[1]
    assert drift.cooldown == timedelta(hours=24) and drift.sustained == 3  # type: ignore[union-attr]
    spec = config.gates.to_spec()
    assert spec.thresholds["accuracy"].threshold == 0.9
    assert config.canary.policy["steps"] == [10, 50, 100]


def test_a_dumped_config_loads_back() -> None:
    [config] = load_config(EXAMPLE)
    assert parse_configs(config.model_dump(mode="json")) == [config]


def test_relative_paths_are_anchored_at_the_config_file(tmp_path: Path) -> None:
    text = BASE + "  - {kind: new_data, min_new_rows: 10, source: {path: more/}}\n"
    [config] = load_config(_write(tmp_path, text))
    assert config.pipeline.data.path == str(tmp_path / "data" / "iris.csv")
    assert config.triggers[1].source.path == str(tmp_path / "more")  # type: ignore[union-attr]
    assert config.pipeline.data.time_column == "ts"


def test_many_models_in_one_file_and_a_folder_of_files(tmp_path: Path) -> None:
    body = BASE.strip().replace("\n", "\n    ")
    two = f"models:\n  - {body}\n  - {body.replace('model: iris', 'model: wine')}\n"
    configs = load_config(_write(tmp_path, two))
    assert [c.model for c in configs] == ["iris", "wine"]
    folder = tmp_path / "many"
    folder.mkdir()
    _write(folder, BASE, "a.yaml")
    _write(folder, BASE.replace("model: iris", "model: wine"), "b.yml")
    assert [c.model for c in load_config(folder)] == ["iris", "wine"]
    _write(folder, BASE, "c.yaml")
    with pytest.raises(ConfigError, match=r"\['iris'\] configured in more than one file"):
        load_config(folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('cron: "0 3 * * *"', 'cron: "every day"'), r"triggers\[0\]\.cron: 'every day' is not"),
        (("train_iris", "train iris"), r"pipeline\.entry_point: 'shipyard.loop.examples:train "),
        (("{path: data/iris.csv, time_column: ts}", "{path: a.csv, table: t, url: 'sqlite://'}"),
         r"pipeline\.data: .*exactly one of `path`"),
        (("target: species", "target: species\n  colour: red"), r"pipeline\.colour: Extra inputs"),
        (("model: iris", "model: 'bad name!'"), r"model: "),
        (("- {kind: schedule, cron: \"0 3 * * *\"}", "- {kind: drift, cooldown: soon}"),
         r"triggers\[0\]\.cooldown: Cannot read 'soon' as a duration"),
        (("- {kind: schedule, cron: \"0 3 * * *\"}", "- {kind: new_data}"),
         r"triggers\[0\]: .*`min_new_rows` or `min_growth`"),
        (("- {kind: schedule, cron: \"0 3 * * *\"}", "- {kind: weather}"), r"triggers\[0\]: "),
        (("- {kind: schedule, cron: \"0 3 * * *\"}", "[]"), r"triggers: .*at least 1"),
    ],
)  # fmt: skip
def test_errors_name_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = BASE.replace(*change)
    if change[1] == "[]":
        text = text.replace("triggers:\n  []", "triggers: []")
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_gate_forms_are_checked_on_load() -> None:
    raw = {
        "model": "iris",
        "pipeline": {"entry_point": "m:f", "data": {"path": "x.csv"}, "target": "y"},
        "triggers": [{"kind": "schedule", "cron": "@daily"}],
        "gates": {"thresholds": ["accuracy<=0.9"]},
    }
    with pytest.raises(ConfigError, match=r"gates: .*higher accuracy is better"):
        parse_configs(raw)
    raw["gates"] = {"thresholds": ["accuracy>=0.9"]}
    [config] = parse_configs(raw)
    assert isinstance(config, LoopConfig)


def test_bad_documents(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(_write(tmp_path, "- just a list"))
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        parse_configs({"models": [], "extra": 1})
    with pytest.raises(ConfigError, match="Cannot read loop config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"No \*\.yaml loop configs in folder"):
        load_config(tmp_path / "empty")
