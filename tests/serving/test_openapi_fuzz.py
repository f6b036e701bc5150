"""Property-based fuzz of the app's own OpenAPI schema (schemathesis): never a 5xx.

Below it, hostile numbers (beyond 64 bits, beyond the largest float, past each
V2 datatype's range) on every prediction route: never a 5xx, and a value
outside its declared datatype is never scored.

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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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

    Building the app opens the store (it reads the artifact root recorded there),
    so it gets a home of its own, never one a run of another checkout migrated.
    Only a body can be made invalid (path parameters here are free strings), so
    only operations with one get the negative mode.
    """
    with tempfile.TemporaryDirectory(prefix="shipyard-fuzz-collect-") as tmp:
        client = Shipyard(Settings(home=Path(tmp) / "home"))
        spec = create_app(client, "iris").openapi()
        client.close()
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


# -- hostile numbers on every prediction route ---------------------------------------------
#
# The schema says "number"; these are numbers no schema-driven generator tends to pick:
# beyond 64 bits, beyond the largest float, at and past each V2 datatype's edge.

_EDGES = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400, -(10**400)]
_EDGES += [65504, 65505, 70000, 3.5e38, 1e308, -1e308, 5e-324, 128, 256, -129, -1]
HOSTILE = st.one_of(
    st.sampled_from(_EDGES), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
V2_RANGES = {
    "FP16": (-65504, 65504),
    "FP32": (-3.4028234663852886e38, 3.4028234663852886e38),
    "FP64": (-1.7976931348623157e308, 1.7976931348623157e308),
    "INT8": (-128, 127),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 255),
    "UINT64": (0, 2**64 - 1),
}
FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _json_number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _check(response: httpx.Response, *, named: bool = True) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and named and response.status_code != 415:
        body = response.json()
        assert body.get("field") or any(f in body.get("message", "") for f in FIELDS), body


@pytest.fixture(scope="module")
def fuzz_http(shared_live: LiveServer) -> Iterator[httpx.Client]:
    with shared_live.client() as client:
        yield client


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(value=HOSTILE, column=st.sampled_from(FIELDS))
def test_hostile_numbers_on_predict_and_invocations(
    fuzz_http: httpx.Client, value: int | float, column: str
) -> None:
    record = ", ".join(f'"{f}": {_json_number(value) if f == column else "1.5"}' for f in FIELDS)
    json_headers = {"Content-Type": "application/json"}
    _check(fuzz_http.post("/predict", content=f"{{{record}}}", headers=json_headers))
    _check(
        fuzz_http.post(
            "/invocations", content=f'{{"dataframe_records": [{{{record}}}]}}', headers=json_headers
        )
    )
    row = ",".join(_json_number(value) if f == column else "1.5" for f in FIELDS)
    csv = ",".join(FIELDS) + "\n" + row + "\n"
    _check(fuzz_http.post("/invocations", content=csv, headers={"Content-Type": "text/csv"}))


@settings(max_examples=80, deadline=None, database=None, derandomize=True)
@given(value=HOSTILE, datatype=st.sampled_from(sorted(V2_RANGES)))
def test_hostile_numbers_on_v2_are_refused_outside_their_datatype(
    fuzz_http: httpx.Client, value: int | float, datatype: str
) -> None:
    data = ", ".join([_json_number(value), "1", "1", "1"])
    body = (
        f'{{"inputs": [{{"name": "x", "shape": [1, 4], "datatype": "{datatype}", '
        f'"data": [{data}]}}]}}'
    )
    response = fuzz_http.post("/v2/models/iris/infer", content=body)
    _check(response)
    lo, hi = V2_RANGES[datatype]
    integral = not datatype.startswith("FP")
    fits = lo <= value <= hi and (isinstance(value, int) or not integral)
    if not fits:  # never scored: a 400 naming the tensor
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "x"
