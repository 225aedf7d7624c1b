"""The seed's way of serving: the Keras .h5 in TensorFlow, `model.predict` per request.

A minimal FastAPI app, as the seed had, answering the same `/v1/predict` JSON as the
service with the same preprocessing (service.imaging.preprocess), so that only the serving
approach differs. Run with the project's .venv (it has TensorFlow):

    .venv/bin/python -m bench.seed_server PORT
"""

from __future__ import annotations

import base64
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from tensorflow import keras

from service.imaging.preprocess import preprocess_image
from service.settings import Settings

card = Settings().model_card_path()
model = keras.models.load_model(card.parent / "mnist_cnn_model.h5", compile=False)
app = FastAPI()


class Image(BaseModel):
    data: str


class Request(BaseModel):
    images: list[Image]
    top_k: int = 1


@app.get("/readyz")
def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/v1/predict")
def predict(request: Request) -> dict[str, list[dict[str, object]]]:
    pixels = np.stack([preprocess_image(base64.b64decode(i.data)) for i in request.images])
    # The digits' probabilities: a model with the not-a-digit output has an 11th.
    probabilities = model.predict(pixels[..., np.newaxis], verbose=0)[:, :10]
    return {
        "predictions": [
            {"digit": int(row.argmax()), "probabilities": row.tolist()} for row in probabilities
        ]
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
