"""MLflow's scoring protocol on /invocations, with the payloads MLflow clients send."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
from serving_helpers import SETOSA, VIRGINICA, LiveServer

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.serving.errors import UnsupportedMediaTypeError
from shipyard.serving.protocols.mlflow import parse_content_type, parse_csv, parse_json

FRAME = pd.DataFrame([SETOSA, VIRGINICA])


@pytest.fixture(scope="module")
def http(shared_live: LiveServer) -> Iterator[httpx.Client]:
    with shared_live.client() as client:
        yield client


@pytest.mark.parametrize(
    "payload",
    [
        # What mlflow.models.utils / `mlflow models predict` build from a DataFrame:
        {"dataframe_split": FRAME.to_dict(orient="split")},
        {"dataframe_split": {"columns": list(FRAME.columns), "data": FRAME.values.tolist()}},
        {"dataframe_records": FRAME.to_dict(orient="records")},
        {"instances": FRAME.to_dict(orient="records")},
        {"inputs": FRAME.to_dict(orient="records")},
        {"inputs": FRAME.to_dict(orient="list")},
        {"instances": FRAME.values.tolist()},
        {"dataframe_records": FRAME.to_dict(orient="records"), "params": {}},
    ],
    ids=[
        "split-pandas",
        "split",
        "records",
        "instances",
        "inputs",
        "inputs-columns",
        "rows",
        "params",
    ],
)
def test_json_payloads(http: httpx.Client, payload: dict) -> None:
    response = http.post("/invocations", json=payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": ["setosa", "virginica"]}


def test_csv_payload(http: httpx.Client) -> None:
    response = http.post(
        "/invocations",
        content=FRAME.to_csv(index=False),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json() == {"predictions": ["setosa", "virginica"]}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b'{"dataframe_records": [', "application/json", 400, "Failed to parse input from JSON"),
        (b'{"records": []}', "application/json", 400, "exactly one of the input fields"),
        (b"[1, 2]", "application/json", 400, "exactly one of the input fields"),
        (
            b'{"dataframe_records": [{"sepal_length": "a"}]}',
            "application/json",
            400,
            "sepal_length",
        ),
        (b'{"instances": [[1, 2]]}', "application/json", 400, "4 columns"),
        (b"a,b\n1,2\n", "text/csv", 400, "sepal_length"),
        (b"{}", "application/xml", 415, "only supports the following content types"),
        (b"{}", "application/json; charset=latin-1", 415, "UTF-8"),
        (b"{}", "application/json; format=pandas-split", 415, "Unrecognized content type"),
    ],
)
def test_mlflow_error_codes_and_shape(
    http: httpx.Client, body: bytes, content_type: str, status: int, needle: str
) -> None:
    response = http.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error_code"] == "BAD_REQUEST"
    assert needle in payload["message"]


def test_ping(http: httpx.Client) -> None:
    assert http.get("/ping").status_code == 200


def test_parse_json_shapes() -> None:
    assert parse_json(b'{"inputs": {"x": 1.0}}') == {"x": 1.0}
    assert parse_json(b'{"inputs": {"x": [1, 2], "y": [3, 4]}}') == [
        {"x": 1, "y": 3},
        {"x": 2, "y": 4},
    ]
    with pytest.raises(SchemaError, match="all of one length"):
        parse_json(b'{"inputs": {"x": [1, 2], "y": [3]}}')
    with pytest.raises(SchemaError, match="2 values"):
        parse_json(b'{"dataframe_split": {"columns": ["x", "y"], "data": [[1]]}}')
    with pytest.raises(InvalidInputError, match="exactly one"):
        parse_json(b'{"instances": [], "inputs": []}')
    with pytest.raises(SchemaError, match="params"):
        parse_json(b'{"instances": [], "params": 3}')


def test_parse_content_type_and_csv() -> None:
    assert parse_content_type("application/json") == "application/json"
    assert parse_content_type("Text/CSV; charset=UTF-8") == "text/csv"
    with pytest.raises(UnsupportedMediaTypeError):
        parse_content_type(None)
    assert parse_csv(b"x,y\n1,2\n").to_dict(orient="records") == [{"x": 1, "y": 2}]
    with pytest.raises(InvalidInputError, match="CSV"):
        parse_csv(b"")


BIG = "1" * 401
HEADER = ",".join(SETOSA)


@pytest.mark.parametrize(
    ("csv", "line"),
    [
        # pandas would take the two extra leading fields as an index and score the rest.
        (f"{HEADER}\n1,2,5.1,3.5,1.4,0.2\n", 2),
        (f"{HEADER}\n5.1,3.5,1.4,0.2\n5.1,3.5,1.4,0.2,9\n", 3),
        (f"{HEADER}\n5.1,3.5,1.4,0.2,\n", 2),  # a trailing separator is a fifth field
        (f"{HEADER}\n5.1,3.5,1.4,0.2\n\n5.1,3.5,1.4\n", 4),  # too few; blank lines count
        (f'{HEADER}\n"5.1,3.5",1.4,0.2\n', 2),  # quoting makes one field of two
    ],
    ids=["extra-leading", "extra-later", "trailing-comma", "too-few", "quoted"],
)
def test_csv_rows_with_the_wrong_field_count_name_the_line(
    http: httpx.Client, csv: str, line: int
) -> None:
    response = http.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 400, response.text
    assert f"line {line}" in response.json()["message"]


def test_a_csv_row_without_its_header_says_the_header_is_missing(http: httpx.Client) -> None:
    """One line only is read as the header: the 400 says so, instead of "no rows"."""
    response = http.post(
        "/invocations", content="5.1,3.5,1.4,0.2\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "header line (5.1,3.5,1.4,0.2)" in message and "name the columns" in message


def test_csv_with_quoted_commas_and_blank_lines_is_read(http: httpx.Client) -> None:
    csv = f'{HEADER},note\n5.1,3.5,1.4,0.2,"a, b"\n\n7.7,3.0,6.1,2.3,x\n'
    response = http.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": ["setosa", "virginica"]}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (f"{HEADER}\n{BIG},3.5,1.4,0.2\n".encode(), "text/csv"),
        (f"{HEADER}\n-{BIG},3.5,1.4,0.2\n".encode(), "text/csv"),
        (
            f'{{"dataframe_records": [{{"sepal_length": {BIG}, "sepal_width": 3.5, '
            f'"petal_length": 1.4, "petal_width": 0.2}}]}}'.encode(),
            "application/json",
        ),
        (
            f'{{"dataframe_split": {{"columns": ["sepal_length", "sepal_width", "petal_length", '
            f'"petal_width"], "data": [[5.1, 3.5, 1.4, {BIG}]]}}}}'.encode(),
            "application/json",
        ),
    ],
    ids=["csv", "csv-negative", "records", "split"],
)
def test_huge_numbers_are_a_400_naming_the_column(
    http: httpx.Client, body: bytes, content_type: str
) -> None:
    response = http.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "sepal_length" in message or "petal_width" in message, message


def test_duplicate_keys_are_refused(http: httpx.Client) -> None:
    body = b'{"dataframe_records": [], "dataframe_records": [{"sepal_length": 5.1}]}'
    response = http.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "'dataframe_records'" in response.json()["message"]


def test_missing_content_type_is_415(http: httpx.Client) -> None:
    response = http.post("/invocations", content=b'{"instances": []}', headers={})
    assert response.status_code == 415
