"""The container recipe: what the generated build context says, and that its pins really install.

No Docker engine runs here, so the Dockerfile is checked instruction by
instruction, the health probe is run against a real HTTP server, and the slow
test installs requirements.txt into a fresh virtualenv and serves a prediction
from the copied model there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shipyard.deploy.docker import MODEL_DIR, SERVE_PORT, write_container_context
from shipyard.errors import (
    ConflictError,
    InvalidInputError,
    InvalidReferenceError,
    ManifestError,
)

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".venv" / "bin" / "uv"
ENVIRONMENT = {
    "python": "3.11.7",
    "packages": {"scikit-learn": "1.9.1", "numpy": "2.4.6", "Scipy": "1.17.1"},
}


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    assert not pending, "Dockerfile ends in a line continuation"
    return result


def _args(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def _index(instructions: list[tuple[str, str]], keyword: str, contains: str = "") -> int:
    for i, (kw, args) in enumerate(instructions):
        if kw == keyword and contains in args:
            return i
    raise AssertionError(f"no {keyword} {contains!r} in {instructions}")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    pkg = tmp_path / "iris-3"
    (pkg / "artifacts").mkdir(parents=True)
    (pkg / "MLmodel.json").write_text('{"flavor": "sklearn"}')
    (pkg / "artifacts" / "model.skops").write_bytes(bytes(range(256)) * 4)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"stale")
    return pkg


def _write(package: Path, out: Path, **overrides: object) -> list[Path]:
    kwargs: dict[str, object] = {
        "model_ref": "iris:3",
        "shipyard_requirement": "shipyard==0.1.0",
        **overrides,
    }
    environment = kwargs.pop("environment", ENVIRONMENT)
    return write_container_context(package, environment, out, **kwargs)  # type: ignore[arg-type]


def test_context_holds_the_recipe_and_a_copy_of_the_package(package: Path, tmp_path: Path) -> None:
    out = tmp_path / "build" / "iris-3"
    written = _write(package, out)

    assert written == [
        out / "Dockerfile",
        out / "requirements.txt",
        out / ".dockerignore",
        out / "model",
    ]
    assert all(path.exists() for path in written)
    copied = sorted(p.relative_to(out / "model") for p in (out / "model").rglob("*"))
    assert copied == [Path("MLmodel.json"), Path("artifacts"), Path("artifacts/model.skops")]
    for name in ("MLmodel.json", "artifacts/model.skops"):
        assert (out / "model" / name).read_bytes() == (package / name).read_bytes()
    assert "**/__pycache__" in (out / ".dockerignore").read_text().splitlines()
    # Nothing but the context itself lands beside it (the staging folder is gone).
    assert [p.name for p in out.parent.iterdir()] == ["iris-3"]


def test_copied_model_is_readable_by_the_service_user(package: Path, tmp_path: Path) -> None:
    (package / "artifacts" / "model.skops").chmod(0o600)
    (package / "artifacts").chmod(0o700)
    _write(package, tmp_path / "ctx")

    copied = tmp_path / "ctx" / "model" / "artifacts"
    assert copied.stat().st_mode & 0o555 == 0o555
    assert (copied / "model.skops").stat().st_mode & 0o444 == 0o444


@pytest.mark.parametrize(
    ("python", "image"),
    [("3.11.7", "python:3.11-slim"), ("3.12.1", "python:3.12-slim"), ("3.10", "python:3.10-slim")],
)
def test_base_image_follows_the_model_python_series(
    package: Path, tmp_path: Path, python: str, image: str
) -> None:
    environment = {**ENVIRONMENT, "python": python}
    _write(package, tmp_path / "ctx", environment=environment)
    instructions = _instructions((tmp_path / "ctx" / "Dockerfile").read_text())

    assert instructions[0] == ("FROM", image)
    assert _args(instructions, "FROM") == [image]


def test_image_serves_as_a_non_root_user(package: Path, tmp_path: Path) -> None:
    _write(package, tmp_path / "ctx")
    instructions = _instructions((tmp_path / "ctx" / "Dockerfile").read_text())

    users = _args(instructions, "USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0, users
    assert gid.isdigit() and int(gid) != 0, users
    user_at = _index(instructions, "USER")
    assert user_at < _index(instructions, "ENTRYPOINT")
    # Installing needs root; everything after USER runs as the service user.
    assert all(kw != "RUN" for kw, _ in instructions[user_at:])
    # The numeric user is the one the image creates.
    create = instructions[_index(instructions, "RUN", "useradd")][1]
    assert f"--uid {uid}" in create
    assert f"--gid {gid}" in create


def test_dependencies_install_before_the_model_is_copied(package: Path, tmp_path: Path) -> None:
    _write(package, tmp_path / "ctx")
    instructions = _instructions((tmp_path / "ctx" / "Dockerfile").read_text())

    copy_reqs = _index(instructions, "COPY", "requirements.txt")
    install = _index(instructions, "RUN", "pip install --no-cache-dir -r")
    copy_model = _index(instructions, "COPY", "model/")
    assert copy_reqs < install < copy_model
    assert instructions[copy_model][1] == f"model/ {MODEL_DIR}/"


def test_serving_port_health_check_and_entrypoint(package: Path, tmp_path: Path) -> None:
    _write(package, tmp_path / "ctx")
    instructions = _instructions((tmp_path / "ctx" / "Dockerfile").read_text())

    assert _args(instructions, "EXPOSE") == ["8000"]
    assert SERVE_PORT == 8000
    (health,) = _args(instructions, "HEALTHCHECK")
    assert "CMD " in health
    assert "http://127.0.0.1:8000/health" in health
    (entrypoint,) = _args(instructions, "ENTRYPOINT")
    assert json.loads(entrypoint) == [
        "shipyard",
        "serve",
        "/opt/model",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    envs = " ".join(_args(instructions, "ENV"))
    assert "SHIPYARD_HOME=/var/lib/shipyard" in envs
    assert 'io.shipyard.model-ref="iris:3"' in " ".join(_args(instructions, "LABEL"))


class _HealthServer(ThreadingHTTPServer):
    status = 200  # what /health answers; tests flip it


class _Health(BaseHTTPRequestHandler):
    server: _HealthServer

    def do_GET(self) -> None:
        self.send_response(self.server.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[_HealthServer]:
    server = _HealthServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_health_probe_passes_only_on_a_healthy_answer(
    package: Path, tmp_path: Path, health_server: _HealthServer
) -> None:
    _write(package, tmp_path / "ctx")
    instructions = _instructions((tmp_path / "ctx" / "Dockerfile").read_text())
    (health,) = _args(instructions, "HEALTHCHECK")
    command = json.loads(health.split("CMD ", 1)[1])
    assert command[0] == "python"
    # The same probe, pointed at this test's server instead of the container's port.
    port = health_server.server_address[1]
    probe = [sys.executable, *[arg.replace(":8000/", f":{port}/") for arg in command[1:]]]

    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    health_server.status = 503
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0
    health_server.shutdown()
    health_server.server_close()
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0


def test_requirements_are_exact_sorted_pins_then_shipyard(package: Path, tmp_path: Path) -> None:
    environment = {
        "python": "3.11.7",
        "packages": {"scikit-learn": "1.9.1", "Scipy": "1.17.1", "numpy": "2.4.6"},
    }
    _write(package, tmp_path / "ctx", environment=environment)
    lines = (tmp_path / "ctx" / "requirements.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]

    assert pins == ["numpy==2.4.6", "scikit-learn==1.9.1", "scipy==1.17.1", "shipyard==0.1.0"]
    for pin in pins:
        name, sep, version = pin.partition("==")
        assert sep == "==" and name and version and " " not in pin, pin


def test_shipyard_requirement_replaces_a_saved_shipyard_pin(package: Path, tmp_path: Path) -> None:
    environment = {"python": "3.11.7", "packages": {"shipyard": "0.0.9", "numpy": "2.4.6"}}
    _write(
        package,
        tmp_path / "ctx",
        environment=environment,
        shipyard_requirement="shipyard @ https://example.org/shipyard-0.2.0-py3-none-any.whl",
    )
    lines = (tmp_path / "ctx" / "requirements.txt").read_text().splitlines()
    pins = [line for line in lines if not line.startswith("#")]

    assert pins == [
        "numpy==2.4.6",
        "shipyard @ https://example.org/shipyard-0.2.0-py3-none-any.whl",
    ]


@pytest.mark.parametrize(
    ("environment", "match"),
    [
        ({"python": "three", "packages": {}}, "'python'"),
        ({"packages": {}}, "'python'"),
        ({"python": "3.11.7", "packages": ["numpy==2.4.6"]}, "'packages'"),
        ({"python": "3.11.7", "packages": {"numpy": ">=2"}}, "exact"),
        ({"python": "3.11.7", "packages": {"numpy": "2.4.6\n--index-url http://evil"}}, "exact"),
        ({"python": "3.11.7", "packages": {"numpy": None}}, "exact"),
        ({"python": "3.11.7", "packages": {"-e .": "1"}}, "distribution name"),
        ({"python": "3.11.7", "packages": {"scikit_learn": "1", "scikit-learn": "1"}}, "twice"),
        ("not a mapping", "model environment"),
    ],
)
def test_malformed_environment_is_a_manifest_error(
    package: Path, tmp_path: Path, environment: object, match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        _write(package, tmp_path / "ctx", environment=environment)
    assert not (tmp_path / "ctx").exists()


@pytest.mark.parametrize(
    "requirement",
    ["shipyard>=0.1", "numpy==2.4.6", "shipyard", "shipyard==0.1.0\n--index-url http://x", ""],
)
def test_shipyard_requirement_must_be_exact(
    package: Path, tmp_path: Path, requirement: str
) -> None:
    with pytest.raises(InvalidInputError, match="shipyard_requirement"):
        _write(package, tmp_path / "ctx", shipyard_requirement=requirement)


def test_model_ref_must_parse(package: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceError):
        _write(package, tmp_path / "ctx", model_ref='iris" && rm -rf /')


def test_missing_package_folder_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        _write(tmp_path / "nope", tmp_path / "ctx")


def test_non_empty_out_dir_is_left_alone(package: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    (out / "Dockerfile").write_text("FROM scratch\n")

    with pytest.raises(ConflictError, match="not an empty folder"):
        _write(package, out)
    assert (out / "Dockerfile").read_text() == "FROM scratch\n"
    assert [p.name for p in out.iterdir()] == ["Dockerfile"]


def test_an_empty_out_dir_is_filled(package: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    _write(package, out)
    assert (out / "Dockerfile").is_file()


def test_out_dir_inside_the_package_is_refused(package: Path) -> None:
    with pytest.raises(InvalidInputError, match="inside the model package"):
        _write(package, package / "build")
    assert not (package / "build").exists()


def test_a_failed_copy_leaves_no_context_behind(package: Path, tmp_path: Path) -> None:
    (package / "weights.bin").symlink_to(tmp_path / "gone.bin")  # dangling
    out = tmp_path / "build" / "ctx"

    with pytest.raises(ManifestError, match=r"weights\.bin"):
        _write(package, out)
    assert list(out.parent.iterdir()) == []


_PREDICT = """
import importlib.metadata, json, sys
import numpy as np
import skops.io as sio

path = sys.argv[1]
# Loaded with skops' default trust only: no extra types are accepted.
model = sio.load(path)
rows = np.array(json.loads(sys.argv[2]))
print(json.dumps({
    "predictions": model.predict(rows).tolist(),
    "sklearn": importlib.metadata.version("scikit-learn"),
    "executable": sys.executable,
}))
"""
#: Libraries only some models need: a plain scikit-learn image must not install them.
OPTIONAL = ("xgboost", "xgboost-cpu", "lightgbm", "onnx", "onnxruntime", "skl2onnx",
            "onnxmltools", "s3fs", "botocore")  # fmt: skip


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        command, capture_output=True, text=True, timeout=600, check=False, **kwargs
    )


def _fresh_env(home: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return {**env, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "tester", **values}


@pytest.mark.slow
def test_pinned_requirements_install_and_serve_the_model(tmp_path: Path) -> None:
    """A plain scikit-learn model packaged by `shipyard package`: its requirements install
    into a fresh virtualenv without any optional extra, and that virtualenv's own
    `shipyard serve` (the image's entrypoint) answers predictions over HTTP; the
    extras other models need are reported by name when missing."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from typer.testing import CliRunner
    from xgboost import XGBClassifier

    from live_server import free_port, wait_ready
    from shipyard import Shipyard
    from shipyard.cli.main import app
    from shipyard.config import Settings

    if not UV.exists():
        pytest.fail(f"{UV} is missing; run `make venv` first.")
    data = load_iris(as_frame=True)
    features, target = data.data, data.target
    model = LogisticRegression(max_iter=500).fit(features, target)
    home = tmp_path / "home"
    client = Shipyard(Settings(home=home, user="tester"))
    version = client.registry.log_model(model, "iris", sample=features)
    booster = XGBClassifier(n_estimators=5, max_depth=2).fit(features, target)
    boosted = client.registry.log_model(booster, "boosted", sample=features)
    boosted_package = tmp_path / "boosted-package"
    shutil.copytree(client.registry.package_dir(boosted), boosted_package)
    client.close()
    context = tmp_path / "context"
    packaged = CliRunner().invoke(
        app,
        # This checkout, as the image would get a released wheel: it proves the
        # model's pins and Shipyard's own requirements resolve together.
        ["package", version.ref, "--out", str(context),
         "--shipyard-requirement", f"shipyard @ {REPO.as_uri()}"],
        env={"SHIPYARD_HOME": str(home)},
    )  # fmt: skip
    assert packaged.exit_code == 0, packaged.output
    pins = (context / "requirements.txt").read_text().lower().splitlines()
    assert not [line for line in pins if line.split("==")[0] in OPTIONAL], pins
    assert f"shipyard @ {REPO.as_uri()}".lower() in pins
    versions = {
        name: importlib.metadata.version(name)
        for name in ("scikit-learn", "numpy", "scipy", "skops")
    }

    venv = tmp_path / "venv"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
        )
        python = venv / "bin" / "python"
        install = _run(
            # uv caches a source folder's build by its pyproject.toml alone: refresh it,
            # or the venv would get the Shipyard of an earlier run of this test.
            [str(UV), "pip", "install", "--python", str(python), "-r", "requirements.txt",
             "--refresh-package", "shipyard"],
            cwd=context,
        )  # fmt: skip
        assert install.returncode == 0, install.stderr
        model_file = next((context / "model" / "model").glob("*.skops"))
        rows = features.to_numpy()[::25]
        done = _run([str(python), "-c", _PREDICT, str(model_file), json.dumps(rows.tolist())])
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        freeze = _run([str(UV), "pip", "freeze", "--python", str(python)]).stdout.lower()

        # The image's entrypoint, from the venv, in a home that never saw the registry.
        port = free_port()
        server = subprocess.Popen(
            [str(venv / "bin" / "shipyard"), "serve", str(context / "model"),
             "--port", str(port), "--log-level", "warning"],
            env=_fresh_env(tmp_path / "image-home"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}", timeout=120)
            record = dict(zip(features.columns, rows[0].tolist(), strict=True))
            answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=record, timeout=30)
        finally:
            server.terminate()
            server.wait(60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] == int(model.predict(rows[:1])[0])

        # What other models and set-ups need is asked for by its extra's name.
        needs = [
            (["serve", str(boosted_package), "--port", "0"], {}, "shipyard[xgboost]"),
            (["optimize", "iris:1"], {}, "shipyard[onnx]"),
            (["serve", str(context / "model"), "--port", "0"],
             {"SHIPYARD_ARTIFACTS": "s3://models/team"}, "shipyard[s3]"),
        ]  # fmt: skip
        for args, env, extra in needs:
            refused = _run(
                [str(venv / "bin" / "shipyard"), *args],
                env=_fresh_env(tmp_path / f"home-{extra}", **env),
            )
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert extra in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # ~750 MB of links; don't keep it around

    assert Path(result["executable"]).parent == venv / "bin"
    assert result["predictions"] == model.predict(rows).tolist()
    assert result["sklearn"] == versions["scikit-learn"]
    for name, pinned in versions.items():
        assert f"{name}=={pinned}" in freeze
    assert "shipyard @ file://" in freeze
    installed = {line.split("==")[0].split(" @ ")[0] for line in freeze.splitlines()}
    assert sorted(installed & set(OPTIONAL)) == []
