"""The reference app: the plain FastAPI model server one writes first.

FastAPI + a joblib-loaded scikit-learn model, one ``predict`` and one
``predict_proba`` per request, run by uvicorn with one worker. The model file
comes from ``MODEL_PATH`` (default ``model.pkl``) so the benchmark can point
it at each model.

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
    prediction = model.predict(X)[0]
    probabilities = model.predict_proba(X)[0].tolist()
    return {"prediction": int(prediction), "probabilities": probabilities}


@app.get("/health")
def health():
    return {"status": "healthy"}
