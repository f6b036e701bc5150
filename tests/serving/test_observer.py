"""The prediction observer seam: every answered prediction, from every protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, LiveServer

from shipyard.serving import PredictionEvent, ServeOptions, create_app


class Recorder:
    def __init__(self) -> None:
        self.events: list[PredictionEvent] = []
        self.closed = False

    def observe(self, event: PredictionEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


class Broken:
    def observe(self, event: PredictionEvent) -> None:
        raise RuntimeError("observer bug")

    def close(self) -> None:
        raise RuntimeError("close bug")


def test_observers_see_every_prediction_and_are_closed(iris: IrisRegistry) -> None:
    recorder = Recorder()
    app = create_app(
        iris.client,
        "iris",
        options=ServeOptions(poll_interval=0.1, variant="blue"),
        observers=[Broken(), recorder],
    )
    server = LiveServer(app).start()
    try:
        with server.client() as http:
            one = http.post("/predict", json=SETOSA, headers={"X-Request-ID": "req-1"})
            assert one.status_code == 200, "a failing observer must not fail the request"
            assert http.post("/invocations", json={"instances": [SETOSA, VIRGINICA]}).is_success
            columns = {
                "inputs": [
                    {"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
                    for k, v in VIRGINICA.items()
                ]
            }
            assert http.post("/v2/models/iris/infer", json=columns).is_success
            assert http.post("/predict", json={"sepal_length": 2}).status_code == 422
    finally:
        server.stop()
    assert [e.protocol for e in recorder.events] == ["predict", "mlflow", "v2"]
    first = recorder.events[0]
    assert first.request_id.startswith("req-1.")  # unique per request, the client's id first
    assert (first.model, first.version, first.variant) == ("iris", iris.logistic, "blue")
    assert isinstance(first.inputs, pd.DataFrame)
    assert first.inputs.to_dict(orient="records") == [SETOSA]
    assert first.predictions.tolist() == ["setosa"]
    assert first.classes == ("setosa", "versicolor", "virginica")
    assert first.probabilities is not None
    assert np.allclose(first.probabilities.sum(axis=1), 1.0)
    assert 0 < first.latency_seconds < 10
    assert recorder.events[1].predictions.tolist() == ["setosa", "virginica"]
    assert recorder.closed


class MatrixRecorder(Recorder):
    takes_arrays = True  # as the prediction log: the validated matrix and its names


def test_observers_taking_arrays_get_the_matrix_others_a_frame(iris: IrisRegistry) -> None:
    alone, together, framed = MatrixRecorder(), MatrixRecorder(), Recorder()
    for observers in ([alone], [together, framed]):
        app = create_app(iris.client, "iris", options=ServeOptions(), observers=observers)
        server = LiveServer(app).start()
        try:
            with server.client() as http:
                assert http.post("/predict", json=[SETOSA, VIRGINICA]).is_success
        finally:
            server.stop()
    (event,) = alone.events
    assert isinstance(event.inputs, np.ndarray) and event.input_columns is not None
    assert event.inputs.dtype == np.float64
    named = pd.DataFrame(event.inputs, columns=event.input_columns)
    assert named.to_dict(orient="records") == [SETOSA, VIRGINICA]
    # One observer needing a frame: every observer gets the same frame.
    (mixed,), (frame,) = together.events, framed.events
    assert mixed.inputs is frame.inputs and isinstance(frame.inputs, pd.DataFrame)
    assert frame.input_columns is None
    assert frame.inputs.to_dict(orient="records") == [SETOSA, VIRGINICA]
