"""``--contract-check``: serving inputs against the version's data contract."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import SETOSA, IrisRegistry, serve

from shipyard.errors import ConfigError
from shipyard.serving.options import ServeOptions

# Far outside the training range (petal_length there is 1.0 .. 6.9).
ODD = {**SETOSA, "petal_length": 60.0}


def test_reject_mode_answers_422_naming_the_column(iris: IrisRegistry) -> None:
    server = serve(iris.client, contract_check="reject")
    try:
        with server.client() as http:
            assert http.post("/predict", json=SETOSA).status_code == 200
            bad = http.post("/predict", json=ODD)
            assert bad.status_code == 422, bad.text
            assert "petal_length" in bad.text
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
    samples = [
        s
        for family in text_string_to_metric_families(text)
        if family.name == "shipyard_contract_violations"
        for s in family.samples
        if s.name.endswith("_total")
    ]
    assert [(s.labels["column"], s.value) for s in samples] == [("petal_length", 1.0)]
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
