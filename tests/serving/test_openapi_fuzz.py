"""Property-based fuzz of the app's own OpenAPI schema (schemathesis): never a 5xx.

Every operation the schema lists is called with generated valid (positive) and
invalid (negative) input -- wrong types, missing fields, odd shapes, strings
where numbers go -- against a real server on 127.0.0.1, whose schema carries
the served model's signature. Bounded: 25 examples per operation and mode
(50 per operation with a body), seconds in all.

(schemathesis' lazy ``from_fixture`` loader reads a private pytest attribute
that pytest 9 removed, so the operations are parametrized here directly.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from serving_helpers import LiveServer

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.serving import create_app

EXAMPLES_PER_MODE = 25
# Operations without a body only vary their path parameters: fewer examples say as much.
EXAMPLES_WITHOUT_BODY = 10


def _operations() -> list[tuple[str, str, GenerationMode, int]]:
    """Every (method, path) the app documents, with each mode that can generate input.

    Building the app does no I/O. Only a body can be made invalid (path
    parameters here are free strings), so only operations with one get the
    negative mode.
    """
    home = Path(tempfile.gettempdir()) / "shipyard-fuzz-collect"
    spec = create_app(Shipyard(Settings(home=home)), "iris").openapi()
    out = []
    for path, item in sorted(spec["paths"].items()):
        for method, operation in sorted(item.items()):
            has_body = bool(operation.get("requestBody"))
            examples = EXAMPLES_PER_MODE if has_body else EXAMPLES_WITHOUT_BODY
            out.append((method.upper(), path, GenerationMode.POSITIVE, examples))
            if has_body:
                out.append((method.upper(), path, GenerationMode.NEGATIVE, examples))
    return out


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(shared_live: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(shared_live.url + "/openapi.json")


def test_the_fuzz_covers_the_prediction_routes() -> None:
    paths = {path for _, path, _, _ in OPERATIONS}
    assert {"/predict", "/invocations", "/v2/models/{name}/infer", "/ready"} <= paths


@pytest.mark.parametrize(
    ("method", "path", "mode", "examples"),
    OPERATIONS,
    ids=[f"{m} {p} {g.value}" for m, p, g, _ in OPERATIONS],
)
def test_no_input_makes_the_server_fail(
    api_schema: schemathesis.BaseSchema,
    method: str,
    path: str,
    mode: GenerationMode,
    examples: int,
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error], timeout=30)

    run()
