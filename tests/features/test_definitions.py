"""Definitions files: Feast's names, full-match name rules, clear errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import InvalidInputError
from shipyard.features.definitions import (
    Definitions,
    Entity,
    Feature,
    FeatureView,
    Source,
    format_ttl,
    load_definitions,
    parse_definitions,
    parse_ttl,
)

GOOD = {
    "entities": [{"name": "driver", "join_keys": ["driver_id"]}],
    "sources": [{"name": "stats", "path": "data/stats.parquet", "created_timestamp_column": "c"}],
    "feature_views": [
        {
            "name": "driver_stats",
            "entities": ["driver"],
            "source": "stats",
            "ttl": "2d",
            "features": [{"name": "conv_rate", "dtype": "float32"}],
        }
    ],
}


def _with(**changes: object) -> dict:
    import copy

    data = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        section, index, key = dotted.split("__")
        data[section][int(index)][key] = value
    return data


def test_yaml_file_resolves_source_paths_against_its_folder(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "f.yaml").write_text(yaml.safe_dump(GOOD))
    defs = load_definitions(tmp_path / "f.yaml")
    assert defs.sources[0].path == str(tmp_path / "data" / "stats.parquet")
    assert defs.feature_views[0].ttl == 2 * 86400
    assert defs.join_keys(defs.feature_views[0]) == ["driver_id"]


def test_python_objects_are_the_same_definitions() -> None:
    defs = Definitions(
        entities=[Entity(name="driver", join_keys=["driver_id"])],
        sources=[Source(name="stats", path="data/stats.parquet", created_timestamp_column="c")],
        feature_views=[
            FeatureView(
                name="driver_stats",
                entities=["driver"],
                source="stats",
                ttl="2d",
                features=[Feature(name="conv_rate", dtype="float32")],
            )
        ],
    )
    assert defs == parse_definitions(GOOD, where="x")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entities__0__name": "driver\n"}, "Entity name 'driver\\\\n' is not allowed"),
        ({"feature_views__0__name": "stats view"}, "Feature view name"),
        ({"entities__0__join_keys": ["driver id"]}, "Join key 'driver id' is not allowed"),
        ({"feature_views__0__ttl": "two days"}, "ttl 'two days' is not a duration"),
        ({"feature_views__0__source": "nope"}, "unknown source 'nope'"),
        ({"feature_views__0__entities": ["rider"]}, "unknown entities"),
        ({"feature_views__0__features": [{"name": "x", "dtype": "float"}]}, "dtype"),
        ({"sources__0__path": ""}, "sources.0.path"),
    ],
)
def test_bad_definitions_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_definitions(_with(**change), where="f.yaml")


def test_a_name_with_a_trailing_newline_is_refused_by_full_match() -> None:
    # re.match with $ would accept "driver_stats\n"; the project's rules use fullmatch.
    with pytest.raises(InvalidInputError, match="Feature view name"):
        parse_definitions(_with(feature_views__0__name="driver_stats\n"), where="f.yaml")


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_definitions(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("entities: [\n")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        load_definitions(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(InvalidInputError, match="expected a mapping"):
        load_definitions(tmp_path / "list.yaml")


def test_ttl_forms() -> None:
    assert parse_ttl("2d") == 172800
    assert parse_ttl("1h30m") == 5400
    assert parse_ttl(0) == 0
    assert format_ttl(5400) == "1h30m"
    assert format_ttl(0) == "none"
    with pytest.raises(ValueError):
        parse_ttl(-1)
