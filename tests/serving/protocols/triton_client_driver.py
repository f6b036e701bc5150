"""Drives a Shipyard server with Triton's own HTTP client (``tritonclient[http]``).

Runs inside the tritonclient peer venv (``bench/.peers/tritonclient``), never in
Shipyard's: ``python triton_client_driver.py URL < cases.json``. Each case says
which model to call and how to build its tensors (datatype, binary or JSON,
requested outputs); the script prints one JSON object per case with what the
client read back, or the error the client raised.

Case format::

    {"model": "iris",
     "inputs": [{"name": "input-0", "datatype": "FP32", "values": [[...]], "binary": true}],
     "outputs": null | [{"name": "predict_proba", "binary": false, "class_count": 2}]}
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

NUMPY = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


def _array(spec: dict) -> np.ndarray:
    if spec["datatype"] == "BYTES":
        return np.array([v.encode() for v in spec["values"]], dtype=np.object_)
    return np.array(spec["values"], dtype=NUMPY[spec["datatype"]])


def _plain(value: object) -> object:
    array = np.asarray(value)
    if array.dtype == np.object_:
        return [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]
    return array.tolist()


def run_case(client: triton.InferenceServerClient, case: dict) -> dict:
    inputs = []
    for spec in case["inputs"]:
        array = _array(spec)
        tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=spec["binary"])
        inputs.append(tensor)
    outputs = None
    if case.get("outputs") is not None:
        outputs = [
            triton.InferRequestedOutput(
                o["name"], binary_data=o["binary"], class_count=o.get("class_count", 0)
            )
            for o in case["outputs"]
        ]
    try:
        result = client.infer(case["model"], inputs, outputs=outputs)
    except InferenceServerException as exc:
        return {"error": exc.message(), "status": exc.status()}
    response = result.get_response()
    names = [o["name"] for o in response["outputs"]]
    return {"response": response, "arrays": {n: _plain(result.as_numpy(n)) for n in names}}


def main() -> None:
    url = sys.argv[1]
    cases = json.load(sys.stdin)
    client = triton.InferenceServerClient(url=url)
    model = cases[0]["model"] if cases else ""
    report = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "server_metadata": client.get_server_metadata(),
        "model_metadata": client.get_model_metadata(model),
        "cases": [run_case(client, case) for case in cases],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
