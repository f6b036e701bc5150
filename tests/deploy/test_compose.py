"""deploy/compose.yaml: valid under the Compose Specification's JSON schema, and wired
as the shared stack needs (no Docker engine here: nothing is started)."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
REPLICAS = ("replica-1", "replica-2", "replica-3")


def validate(document: dict[str, Any]) -> None:
    jsonschema.Draft201909Validator(SCHEMA).validate(document)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # anchors and << merges resolved


def test_compose_file_is_valid_under_the_compose_schema(compose: dict[str, Any]) -> None:
    validate(compose)


def test_the_schema_check_is_real(compose: dict[str, Any]) -> None:
    """A misspelt key and a bad depends_on condition are both refused."""
    broken = copy.deepcopy(compose)
    broken["services"]["nginx"]["depend_on"] = broken["services"]["nginx"].pop("depends_on")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["nginx"]["depends_on"]["replica-1"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_three_replicas_share_one_database_bucket_and_cache(compose: dict[str, Any]) -> None:
    services = compose["services"]
    replicas = [services[name] for name in REPLICAS]
    assert all(r == replicas[0] for r in replicas)  # one definition, three containers
    replica = replicas[0]
    env = replica["environment"]
    assert (
        env["SHIPYARD_DB"].startswith("postgresql+psycopg://")
        and "@postgres:5432/" in env["SHIPYARD_DB"]
    )
    assert env["SHIPYARD_ARTIFACTS"] == "s3://shipyard/artifacts"
    assert env["SHIPYARD_S3_ENDPOINT_URL"] == "http://s3:5000"
    command = replica["command"]
    assert command[:3] == ["serve", "--deployment", "web"]
    assert command[command.index("--cache") + 1] == "redis://redis:6379/0"
    assert replica["read_only"] is True
    assert "/ready" in " ".join(replica["healthcheck"]["test"])
    assert replica["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_every_process_shares_one_online_store_apart_from_the_cache(
    compose: dict[str, Any],
) -> None:
    """Feature-backed models on the stack read one Redis online store (not each replica's
    own SQLite file), in another db than the prediction cache; the setup job and every
    replica have the same setting, and the host can reach it to materialize features."""
    services = compose["services"]
    store = urlsplit(services["replica-1"]["environment"]["SHIPYARD_ONLINE_STORE"])
    command = services["replica-1"]["command"]
    cache = urlsplit(command[command.index("--cache") + 1])
    assert (store.scheme, store.hostname, store.port) == ("redis", "redis", 6379)
    assert (cache.scheme, cache.hostname, cache.port) == ("redis", "redis", 6379)
    assert store.path == "/1" and cache.path == "/0"  # one server, two databases
    for name in (*REPLICAS, "setup"):
        assert services[name]["environment"]["SHIPYARD_ONLINE_STORE"] == store.geturl(), name
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]  # the host's loopback only


def test_nginx_balances_exactly_the_replicas(compose: dict[str, Any]) -> None:
    services = compose["services"]
    setup = shlex.split(services["setup"]["command"][0])
    upstreams = [setup[i + 1] for i, word in enumerate(setup) if word == "--replica"]
    assert upstreams == [f"{name}:8000" for name in REPLICAS]
    nginx = services["nginx"]
    assert {name for name in REPLICAS} <= set(nginx["depends_on"])
    assert all(nginx["depends_on"][n]["condition"] == "service_healthy" for n in REPLICAS)
    assert nginx["command"][-4:] == ["-c", "/stack/nginx.conf", "-e", "stderr"]
    assert "--config.file=/stack/prometheus.yml" in services["prometheus"]["command"]


def test_the_header_commands_name_services_the_file_has(compose: dict[str, Any]) -> None:
    """The usage lines at the top are what a person copies: each `up` and `run` must name
    a service of the file (`run` with the image's `shipyard` command as entrypoint)."""
    commands = [
        shlex.split(line.lstrip("# "))
        for line in COMPOSE.read_text().splitlines()
        if line.startswith("#   docker compose")
    ]
    assert commands, "no usage lines in the header"
    named = []
    for words in commands:
        action = words.index("-f") + 2  # docker compose -f FILE ACTION ...
        rest = words[action + 1 :]
        if words[action] == "up":
            named += [w for w in rest if not w.startswith("-")]
        elif words[action] == "run":
            flags_end = next(
                i
                for i, w in enumerate(rest)
                if not w.startswith("-") and (i == 0 or rest[i - 1] != "--entrypoint")
            )
            named.append(rest[flags_end])
            assert rest[rest.index("--entrypoint") + 1] == "shipyard", words
    assert named and set(named) <= set(compose["services"]), named
