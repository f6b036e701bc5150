"""``--contract-check``: serving inputs against the version's data contract."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import SETOSA, IrisRegistry, serve

from shipyard.errors import ConfigError
from shipyard.serving.options import ServeOptions
from shipyard.validation.contracts import DataContract
from shipyard.validation.service import get_contract, import_contract

# Far outside the training range (petal_length there is 1.0 .. 6.9): unusual, a warning.
ODD = {**SETOSA, "petal_length": 60.0}
# Petals were never negative in training: impossible, an error.
IMPOSSIBLE = {**SETOSA, "petal_length": -1.0}


def counted(text: str) -> list[tuple[str, str, float]]:
    return [
        (s.labels["column"], s.labels["expectation"], s.value)
        for family in text_string_to_metric_families(text)
        if family.name == "shipyard_contract_violations"
        for s in family.samples
        if s.name.endswith("_total")
    ]


def test_reject_mode_answers_422_naming_the_column(iris: IrisRegistry) -> None:
    server = serve(iris.client, contract_check="reject")
    try:
        with server.client() as http:
            assert http.post("/predict", json=SETOSA).status_code == 200
            bad = http.post("/predict", json=IMPOSSIBLE)
            assert bad.status_code == 422, bad.text
            assert "petal_length" in bad.text and "at least 0" in bad.text
            # An unusual value is answered, as `validate data` passes it with a warning...
            assert http.post("/predict", json=ODD).status_code == 200
            text = http.get("/metrics").text
    finally:
        server.stop()
    # ...and counted, as in count mode.
    assert ("petal_length", "range", 1.0) in counted(text)


def test_reject_mode_rejects_unusual_values_under_a_strict_contract(
    iris: IrisRegistry, tmp_path
) -> None:
    client = iris.client
    version = client.registry.resolve("iris:1")
    strict = {**get_contract(client.validation, version).to_dict(), "strict": True}
    path = tmp_path / "strict.json"
    path.write_text(json.dumps(strict))
    import_contract(client.validation, version, path, actor="tester", reason="strict")
    assert DataContract.from_dict(strict).strict
    server = serve(client, contract_check="reject")
    try:
        with server.client() as http:
            bad = http.post("/predict", json=ODD)
            assert bad.status_code == 422, bad.text
            assert "usually between" in bad.text
    finally:
        server.stop()


def test_count_mode_answers_and_counts(iris: IrisRegistry) -> None:
    server = serve(iris.client, contract_check="count")
    try:
        with server.client() as http:
            assert http.post("/predict", json=ODD).status_code == 200
            assert http.post("/predict", json=SETOSA).status_code == 200
            text = http.get("/metrics").text
    finally:
        server.stop()
    assert counted(text) == [("petal_length", "range", 1.0)]
    # ...and the prediction log marks the offending row.
    logged = iris.client.prediction_log.read("iris", since="1h").sort_values("timestamp")
    assert logged["contract_violation"].tolist() == [True, False]


def test_off_by_default_and_modes_are_checked(iris: IrisRegistry) -> None:
    server = serve(iris.client)
    try:
        with server.client() as http:
            assert http.post("/predict", json=ODD).status_code == 200
    finally:
        server.stop()
    with pytest.raises(ConfigError, match="reject or count"):
        ServeOptions(contract_check="strict")
