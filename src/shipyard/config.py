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
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from shipyard.errors import ConfigError, reason

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
    # NoDecode: the variable's text reaches _parse_api_keys as is, so a bad value gets
    # a message naming SHIPYARD_API_KEYS instead of pydantic-settings' traceback.
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="If set, prediction routes need one of these keys."
    )
    user: str | None = Field(default=None, description="Who the audit log says acted.")
    online_store: str | None = Field(
        default=None,
        description="Online feature store: redis://HOST:PORT/DB (default: SQLite in home).",
    )
    # NoDecode for the same reason as api_keys: a bad value names SHIPYARD_UI_USERS.
    ui_users: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Web UI logins: a JSON map of user name to argon2 password hash.",
    )
    ui_secret: SecretStr | None = Field(
        default=None,
        description="Key signing the web UI's session cookie (default: a new one per start).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint for S3-compatible storage (MinIO, moto...)."
    )

    def __init__(self, **values: Any) -> None:
        """Read the settings; a value that cannot be used raises ConfigError naming it."""
        _check_config_file(sorted(type(self).model_fields))
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_setting_name(str(error['loc'][0]) if error['loc'] else '')}: "
                f"{error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors()
            )
            raise ConfigError(f"Invalid setting. {problems}") from exc
        except SettingsError as exc:
            raise ConfigError(f"Invalid setting: {reason(exc)}.") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{_config_file()} is not valid TOML: {reason(exc)}.") from exc

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(
                    'it is empty; give a JSON list of keys such as ["key-1", "key-2"], or '
                    "unset it to leave the prediction routes open"
                )
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(
                    'it is not JSON; give a JSON list of keys such as ["key-1", "key-2"]'
                ) from None
        if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
            raise ValueError('expected a JSON list of keys such as ["key-1", "key-2"]')
        if any(not key.strip() for key in value):
            raise ValueError(
                "it holds an empty key, which would let any request in; remove it or "
                "give every key a value"
            )
        return value

    @field_validator("ui_users", mode="before")
    @classmethod
    def _parse_ui_users(cls, value: Any) -> Any:
        example = 'give a JSON map such as {"ann": "$argon2id$..."} (`shipyard ui --hash-password`)'
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ValueError(f"it is not JSON; {example}") from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"expected user names mapped to password hashes; {example}")
        weak = sorted(k for k, v in value.items() if not v.startswith("$argon2"))
        if weak:
            raise ValueError(f"the password of {', '.join(weak)} is not an argon2 hash; {example}")
        return value

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


def _check_config_file(valid: list[str]) -> None:
    """The config file a user named exists, and holds only keys Shipyard knows.

    ``shipyard.toml`` is optional; a file named by ``SHIPYARD_CONFIG`` is not (a
    typo would otherwise be ignored silently), and a misspelt key (``databse``)
    is refused rather than left to fall back to the default.
    """
    path = _config_file()
    if not path.is_file():
        if "SHIPYARD_CONFIG" in os.environ:
            what = "is a folder" if path.is_dir() else "does not exist"
            raise ConfigError(
                f"SHIPYARD_CONFIG names {path}, which {what}; point it at a shipyard.toml "
                "file, or unset it."
            )
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {reason(exc)}.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the config file {path}: {reason(exc)}.") from exc
    unknown = [key for key in data if key not in valid]
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        raise ConfigError(
            f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {keys}; "
            f"the settings are {', '.join(valid)}."
        )


def _setting_name(field: str) -> str:
    """How the user set ``field``: its variable if set, else its key in shipyard.toml."""
    variable = f"SHIPYARD_{field.upper()}"
    if variable in os.environ or not _config_file().is_file():
        return variable
    return f"{variable} (or {field!r} in {_config_file()})"
