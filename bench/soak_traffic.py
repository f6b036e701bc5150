"""The soak test's traffic: requests of every kind, drawn by weight (see soak.py).

Predictions on every protocol (some inputs repeated, so the cache answers them),
feedback for answers seen earlier, and bad input with the status a correct server
answers it with.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MODEL = "iris"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CLASSES = ("setosa", "versicolor", "virginica")


@dataclass(frozen=True)
class Request:
    """One request to send; ``expect`` is the status a correct server answers."""

    kind: str
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = "application/json"
    expect: int = 200
    rows: int = 0  # predictions the answer carries (0: not a prediction)


class Mix:
    """Builds requests of every kind, drawn by weight."""

    def __init__(self, pool: np.ndarray, seed: int = 0) -> None:
        self.pool = pool
        self.rng = np.random.default_rng(seed)
        #: answered predictions (request id, rows) that feedback can label
        self.answered: deque[tuple[str, int]] = deque(maxlen=5000)
        self.kinds: dict[str, tuple[float, Callable[[], Request]]] = {
            "predict one (pooled)": (30, self.predict_pooled),
            "predict one": (10, self.predict_fresh),
            "predict list": (8, self.predict_list),
            "predict extra field": (3, self.predict_extra_field),
            "invocations json": (8, self.invocations_json),
            "invocations csv": (4, self.invocations_csv),
            "v2 infer": (8, self.v2_infer),
            "feedback": (15, self.feedback),
            "wrong type": (3, self.bad_type),
            "missing field": (2, self.bad_missing),
            "malformed json": (3, self.bad_json),
            "wrong content type": (2, self.bad_content_type),
            "v2 wrong shape": (1, self.bad_v2_shape),
            "unknown model": (1, self.bad_model),
            "feedback bad row": (2, self.bad_feedback),
        }
        weights = np.array([w for w, _ in self.kinds.values()], dtype=float)
        self.weights = weights / weights.sum()
        self.builders = [build for _, build in self.kinds.values()]

    def next(self) -> Request:
        return self.builders[self.rng.choice(len(self.builders), p=self.weights)]()

    # -- rows

    def _rows(self, n: int, *, fresh: bool = True) -> np.ndarray:
        rows = self.pool[self.rng.integers(len(self.pool), size=n)]
        if fresh:  # a new input each time: a cache miss
            rows = np.round(rows + self.rng.normal(0, 0.1, rows.shape), 4)
        return rows

    @staticmethod
    def _record(row: np.ndarray) -> dict[str, float]:
        return {name: float(v) for name, v in zip(FEATURES, row, strict=True)}

    # -- predictions

    def predict_pooled(self) -> Request:
        body = json.dumps(self._record(self._rows(1, fresh=False)[0])).encode()
        return Request("predict one (pooled)", "POST", "/predict", body, rows=1)

    def predict_fresh(self) -> Request:
        body = json.dumps(self._record(self._rows(1)[0])).encode()
        return Request("predict one", "POST", "/predict", body, rows=1)

    def predict_list(self) -> Request:
        n = int(self.rng.integers(2, 21))
        body = json.dumps([self._record(r) for r in self._rows(n)]).encode()
        return Request("predict list", "POST", "/predict", body, rows=n)

    def predict_extra_field(self) -> Request:
        record = {**self._record(self._rows(1)[0]), "customer_id": 7}
        body = json.dumps(record).encode()
        return Request("predict extra field", "POST", "/predict", body, rows=1)

    def invocations_json(self) -> Request:
        rows = self._rows(int(self.rng.integers(1, 11)))
        body = json.dumps(
            {"dataframe_split": {"columns": list(FEATURES), "data": rows.tolist()}}
        ).encode()
        return Request("invocations json", "POST", "/invocations", body, rows=len(rows))

    def invocations_csv(self) -> Request:
        rows = self._rows(int(self.rng.integers(1, 11)))
        lines = [",".join(FEATURES), *(",".join(f"{v:g}" for v in r) for r in rows)]
        body = ("\n".join(lines) + "\n").encode()
        return Request("invocations csv", "POST", "/invocations", body, "text/csv", rows=len(rows))

    def v2_infer(self) -> Request:
        rows = self._rows(int(self.rng.integers(1, 11)))
        inputs = [
            {"name": name, "shape": [len(rows)], "datatype": "FP64", "data": col.tolist()}
            for name, col in zip(FEATURES, rows.T, strict=True)
        ]
        body = json.dumps({"inputs": inputs}).encode()
        return Request("v2 infer", "POST", f"/v2/models/{MODEL}/infer", body, rows=len(rows))

    # -- feedback

    def _label(self, request_id: str, rows: int) -> dict[str, Any]:
        row = int(self.rng.integers(rows))
        return {"request_id": request_id, "label": str(self.rng.choice(CLASSES)), "row": row}

    def feedback(self) -> Request:
        if not self.answered:
            return self.predict_pooled()
        picks = self.rng.integers(len(self.answered), size=int(self.rng.integers(1, 4)))
        labels = [self._label(*self.answered[i]) for i in picks]
        body = json.dumps(labels[0] if len(labels) == 1 else labels).encode()
        return Request("feedback", "POST", "/feedback", body)

    # -- bad input: the status a correct server answers

    def bad_type(self) -> Request:
        record: dict[str, Any] = self._record(self._rows(1)[0])
        record["petal_width"] = "wide"
        return Request("wrong type", "POST", "/predict", json.dumps(record).encode(), expect=422)

    def bad_missing(self) -> Request:
        record = self._record(self._rows(1)[0])
        del record["sepal_width"]
        return Request("missing field", "POST", "/predict", json.dumps(record).encode(), expect=422)

    def bad_json(self) -> Request:
        body = json.dumps(self._record(self._rows(1)[0])).encode()[:-5]  # cut short
        return Request("malformed json", "POST", "/predict", body, expect=400)

    def bad_content_type(self) -> Request:
        body = json.dumps(self._record(self._rows(1)[0])).encode()
        return Request("wrong content type", "POST", "/predict", body, "text/plain", expect=415)

    def bad_v2_shape(self) -> Request:
        inputs = [
            {"name": name, "shape": [3], "datatype": "FP64", "data": [1.0, 2.0]}
            for name in FEATURES
        ]
        body = json.dumps({"inputs": inputs}).encode()
        return Request("v2 wrong shape", "POST", f"/v2/models/{MODEL}/infer", body, expect=400)

    def bad_model(self) -> Request:
        body = json.dumps({"inputs": []}).encode()
        return Request("unknown model", "POST", "/v2/models/nosuchmodel/infer", body, expect=404)

    def bad_feedback(self) -> Request:
        body = json.dumps({"request_id": "soak-unknown", "label": "setosa", "row": -1}).encode()
        return Request("feedback bad row", "POST", "/feedback", body, expect=422)
