"""The BentoML peer for ``bench/serving.py``: one iris model, adaptive batching on.

Runs in BentoML's own venv (``bench/.peers/bentoml``), started by the benchmark as
``bentoml serve bento_service:IrisService`` with ``MODEL_PATH`` set to the same
joblib file the reference app loads. Each request sends one row; BentoML's
adaptive batcher merges concurrent rows into one ``predict_proba`` call (the
class is its argmax: one pass through the model, as scikit-learn's own
``predict`` does for forests). The answer per row is ``[class, p0, p1, p2]``.
"""

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=1)
class IrisService:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["MODEL_PATH"])

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=64, max_latency_ms=1000)
    def predict(self, features: np.ndarray) -> np.ndarray:
        proba = self.model.predict_proba(features)
        labels = self.model.classes_[np.argmax(proba, axis=1)]
        return np.column_stack([labels, proba])
