"""Settings: defaults, environment variables and shipyard.toml, in that order."""

from pathlib import Path

import pytest

from shipyard.config import Settings
from shipyard.errors import ConfigError


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


BAD_API_KEYS = [
    ("not json", "not JSON"),
    ("", "empty"),
    ("   ", "empty"),
    ('[""]', "empty key"),
    ('["k1", " "]', "empty key"),
    ('{"k": 1}', "JSON list"),
    ("[1, 2]", "JSON list"),
]
COMMANDS = [
    ["models", "list"],
    ["serve", "iris", "--port", "0"],
    ["predict", "iris", "-i", "in.csv", "-o", "out.csv"],
    ["package", "iris", "--out", "ctx"],
    ["deploy", "list"],
    ["audit"],
]


def _one_line_error(result: object, *expected: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output and output.startswith("Error: "), output
    assert len(output.strip().splitlines()) == 1, output
    for text in expected:
        assert text in output, output


@pytest.mark.parametrize(("value", "says"), BAD_API_KEYS)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_api_keys_setting_is_a_one_line_error_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, says: str, command: list[str]
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    monkeypatch.chdir(tmp_path)
    env = {"SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_API_KEYS": value}
    result = CliRunner().invoke(app, command, env=env, terminal_width=1000)
    _one_line_error(result, "SHIPYARD_API_KEYS", says)


def test_an_empty_api_key_is_refused_from_python_too() -> None:
    from shipyard.errors import ConfigError

    with pytest.raises(ConfigError, match="empty key"):
        Settings(api_keys=["ok", ""])
    assert Settings(api_keys=["k1", "k2"]).api_keys == ["k1", "k2"]


def test_api_keys_from_the_environment_and_from_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHIPYARD_API_KEYS", '["k1", "k2"]')
    assert Settings().api_keys == ["k1", "k2"]
    monkeypatch.delenv("SHIPYARD_API_KEYS")
    (tmp_path / "shipyard.toml").write_text('api_keys = ["from-toml"]\n')
    assert Settings().api_keys == ["from-toml"]
    (tmp_path / "shipyard.toml").write_text('api_keys = [""]\n')
    from shipyard.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'api_keys' in shipyard\.toml.*empty key"):
        Settings()


def test_a_broken_config_file_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipyard.toml").write_text("home = [\n")
    result = CliRunner().invoke(app, ["models", "list"], env={}, terminal_width=1000)
    _one_line_error(result, "shipyard.toml", "not valid TOML")
    (tmp_path / "shipyard.toml").write_text("home = 5\n")
    result = CliRunner().invoke(app, ["models", "list"], env={}, terminal_width=1000)
    _one_line_error(result, "'home' in shipyard.toml")


def test_a_missing_config_file_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "conf" / "shipyard.toml"
    env = {"SHIPYARD_CONFIG": str(missing)}
    result = CliRunner().invoke(app, ["models", "list"], env=env, terminal_width=1000)
    _one_line_error(result, f"SHIPYARD_CONFIG names {missing}, which does not exist")
    env = {"SHIPYARD_CONFIG": str(tmp_path)}
    result = CliRunner().invoke(app, ["models", "list"], env=env, terminal_width=1000)
    _one_line_error(result, f"SHIPYARD_CONFIG names {tmp_path}, which is a folder")
    with pytest.raises(ConfigError, match="does not exist"):
        monkeypatch.setenv("SHIPYARD_CONFIG", str(missing))
        Settings()


def test_an_unknown_key_in_the_config_file_names_it_and_the_valid_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipyard.toml").write_text('databse = "sqlite:///x.db"\nhome = "h"\n')
    result = CliRunner().invoke(app, ["models", "list"], env={}, terminal_width=1000)
    _one_line_error(
        result,
        "shipyard.toml: unknown setting 'databse'",
        "the settings are admin_token, api_keys, artifacts, db, home, online_store, "
        "s3_endpoint_url, ui_secret, ui_users, user",
    )


def test_the_real_command_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    """The installed ``shipyard`` executable, as a user runs it."""
    import os
    import subprocess
    import sys

    shipyard = Path(sys.executable).with_name("shipyard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(tmp_path / "home"), SHIPYARD_API_KEYS='[""]', COLUMNS="1000")
    done = subprocess.run(
        [str(shipyard), "models", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "SHIPYARD_API_KEYS" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--input-db", "not a url", "--input-table", "t"], "not a database URL"),
        (["--input-db", "sqlite:///rows.db"], "--input-table NAME"),
        (["--input-db", "sqlite:///rows.db", "--input-table", "nope"], "no table 'nope'"),
        (["--input-db", "sqlite:///rows.db", "--input-query", "select * from nope"], "nope"),
        (["--input-table", "t"], "need --input-db"),
    ],
)
def test_predict_from_a_database_misconfigured_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    import sqlite3

    from sklearn.linear_model import LogisticRegression
    from typer.testing import CliRunner

    from shipyard import Shipyard
    from shipyard.cli.main import app
    from shipyard.quickstart import iris_frame

    monkeypatch.chdir(tmp_path)
    sqlite3.connect(tmp_path / "rows.db").close()
    client = Shipyard(Settings(home=tmp_path / "home"))
    X, y = iris_frame()
    client.registry.log_model(LogisticRegression(max_iter=300).fit(X, y), "iris", sample=X)
    client.close()
    env = {"SHIPYARD_HOME": str(tmp_path / "home")}
    command = ["predict", "iris:1", *args, "-o", "out.csv"]
    result = CliRunner().invoke(app, command, env=env, terminal_width=1000)
    _one_line_error(result, says)


def test_ui_users_must_be_a_json_map_of_argon2_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, message in (
        ("not json", "not JSON"),
        ('["ann"]', "user names mapped to password hashes"),
        ('{"ann": "secret"}', "the password of ann is not an argon2 hash"),
    ):
        monkeypatch.setenv("SHIPYARD_UI_USERS", value)
        with pytest.raises(ConfigError, match="SHIPYARD_UI_USERS") as caught:
            Settings()
        assert message in str(caught.value)
    monkeypatch.setenv("SHIPYARD_UI_USERS", '{"ann": "$argon2id$v=19$m=65536,t=3,p=4$x$y"}')
    assert list(Settings().ui_users) == ["ann"]


def test_a_wrapped_error_text_ends_in_one_period(tmp_path: Path) -> None:
    """An exception text that ends in a period is wrapped without a second one."""
    from shipyard.errors import reason

    assert reason(ConnectionError("Connection refused.")) == "Connection refused"
    assert reason(ValueError("bad value ")) == "bad value"
    wrapped = f"Cannot reach it: {reason(OSError('Error 111. Connection refused.'))}. Check it."
    assert ".." not in wrapped
