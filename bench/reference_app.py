"""The reference app of issue 14: what FastAPI itself costs for `/v1/predict`, nothing more.

A bare FastAPI app with the service's own request and response models (imported from
`service.api.schemas`, so the two cannot drift), declared the way the service declares
them (body parameter, return annotation), doing no image work: it validates the request,
answers a fixed valid prediction per image and serializes it through the response
model. No middleware, no dependencies, no access log. It runs under uvicorn (uvloop +
httptools, as the service) with as many worker processes as the service starts with
default settings (`service.server.workers.worker_count`, one per core), so that
"digits ÷ reference" is the price of the service's own layers and work.

    .venv/bin/python -m bench.reference_app PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from service.api.schemas import (
    DigitProbability,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from service.server.workers import worker_count
from service.settings import Settings

app = FastAPI()

# A plausible, fixed answer: digit 7, the rest of the mass spread over the other digits
# and not-a-digit, as from a model with the not-a-digit output.
_PROBABILITIES = [0.01] * 10
_PROBABILITIES[7] = 0.90
_NOT_A_DIGIT = 0.01
_RANKED = [
    DigitProbability(digit=digit, probability=_PROBABILITIES[digit])
    for digit in sorted(range(10), key=lambda d: -_PROBABILITIES[d])
]
_MODEL = ModelInfo(name="reference", version="0")


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/v1/predict")
async def predict(body: PredictRequest) -> PredictResponse:
    return PredictResponse(
        model=_MODEL,
        predictions=[
            Prediction(
                id=image.id,
                digit=7,
                confidence=0.90,
                is_digit=True,
                not_a_digit=_NOT_A_DIGIT,
                top_k=_RANKED[: body.top_k],
                probabilities=_PROBABILITIES,
            )
            for image in body.images
        ],
    )


def main(port: int) -> None:
    settings = Settings()  # the defaults the service starts with (DIGITS_* as set)
    uvicorn.run(
        "bench.reference_app:app",
        host="127.0.0.1",
        port=port,
        workers=worker_count(settings.workers),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
