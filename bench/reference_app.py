"""The reference app: the plain FastAPI model server one writes first.

FastAPI + a joblib-loaded scikit-learn model, one ``predict`` and one
``predict_proba`` per request, run by uvicorn with one worker. The model file
comes from ``MODEL_PATH`` (default ``model.pkl``) so the benchmark can point
it at each model. ``MODEL_INPUT=mixed`` takes a string ``colour`` beside the
iris measurements (for a pipeline that one-hot encodes it), as an object row.

    MODEL_PATH=model.pkl uvicorn reference_app:app --host 127.0.0.1 --port 8000
"""

import os

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="ML Model API")

# Load model at startup
model = joblib.load(os.environ.get("MODEL_PATH", "model.pkl"))


class Features(BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


class MixedFeatures(Features):
    colour: str


def answer(X):
    prediction = model.predict(X)[0]
    probabilities = model.predict_proba(X)[0].tolist()
    return {"prediction": int(prediction), "probabilities": probabilities}


if os.environ.get("MODEL_INPUT") == "mixed":

    @app.post("/predict")
    def predict_mixed(features: MixedFeatures):
        row = [
            features.sepal_length,
            features.sepal_width,
            features.petal_length,
            features.petal_width,
            features.colour,
        ]
        return answer(np.array([row], dtype=object))

else:

    @app.post("/predict")
    def predict(features: Features):
        X = np.array(
            [
                [
                    features.sepal_length,
                    features.sepal_width,
                    features.petal_length,
                    features.petal_width,
                ]
            ]
        )
        return answer(X)


@app.get("/health")
def health():
    return {"status": "healthy"}
