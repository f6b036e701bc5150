"""Settings: defaults, environment variables and shipyard.toml, in that order."""

from pathlib import Path

import pytest

from shipyard.config import Settings


def test_defaults_live_under_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("SHIPYARD_HOME", "SHIPYARD_DB", "SHIPYARD_ARTIFACTS", "SHIPYARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'shipyard-data' / 'shipyard.db'}"
    assert settings.artifact_url == str(tmp_path / "shipyard-data" / "artifacts")


def test_toml_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipyard.toml").write_text(
        'home = "from-toml"\ndb = "sqlite:///toml.db"\nuser = "toml-user"\n'
    )
    monkeypatch.delenv("SHIPYARD_HOME", raising=False)
    monkeypatch.setenv("SHIPYARD_DB", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.home == Path("from-toml")
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.actor == "toml-user"
    assert Settings(user="arg").actor == "arg"


def test_config_file_can_be_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('artifacts = "s3://bucket/prefix"\n')
    monkeypatch.setenv("SHIPYARD_CONFIG", str(config))
    monkeypatch.delenv("SHIPYARD_ARTIFACTS", raising=False)
    assert Settings().artifact_url == "s3://bucket/prefix"


def test_admin_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ADMIN_TOKEN", "s3cret")
    settings = Settings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
