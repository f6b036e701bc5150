"""Settings, resolved once at start-up and passed explicitly.

Sources, highest priority first: keyword arguments, ``SHIPYARD_*`` environment
variables, a ``shipyard.toml`` in the current folder (or the file named by
``SHIPYARD_CONFIG``), then the defaults: everything under ``./shipyard-data``.

>>> settings = Settings(home="/tmp/demo")
>>> settings.database_url
'sqlite:////tmp/demo/shipyard.db'
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_HOME = "shipyard-data"


def _config_file() -> Path:
    return Path(os.environ.get("SHIPYARD_CONFIG", "shipyard.toml"))


class Settings(BaseSettings):
    """Every knob Shipyard reads, in one typed object."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(DEFAULT_HOME), description="Data folder for embedded stores.")
    db: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database (default: SQLite in home).",
    )
    artifacts: str | None = Field(
        default=None,
        description="Artifact store: a folder or an s3:// URL (default: home/artifacts).",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token that admin HTTP routes require."
    )
    api_keys: list[str] = Field(
        default_factory=list, description="If set, prediction routes need one of these keys."
    )
    user: str | None = Field(default=None, description="Who the audit log says acted.")
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint for S3-compatible storage (MinIO, moto...)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def database_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite:///{self.home.resolve() / 'shipyard.db'}"

    @property
    def artifact_url(self) -> str:
        if self.artifacts:
            return self.artifacts
        return str((self.home / "artifacts").resolve())

    @property
    def actor(self) -> str:
        """The name written to the audit log for changes made in this process."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry (some containers)
            return "unknown"
