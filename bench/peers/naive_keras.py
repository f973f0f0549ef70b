"""Peer: the naive server people write first, FastAPI + Keras `model.predict` per request.

    DIGIT_MODEL=models/digit/1/model.keras uvicorn bench.peers.naive_keras:app   (in its own venv, see setup.py)

Same route and field as DeepServe (POST /predict/digit, multipart field `file`); the image is resized to 28x28
grey the naive way (no MNIST-style centring), as the tutorials do.
"""

import io
import os
from typing import Annotated

import keras
import numpy as np
from fastapi import FastAPI, File, UploadFile
from PIL import Image

model = keras.models.load_model(os.environ["DIGIT_MODEL"])
app = FastAPI()


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/predict/digit")
def predict_digit(file: Annotated[UploadFile, File()]) -> dict:
    image = Image.open(io.BytesIO(file.file.read())).convert("L").resize((28, 28))
    x = np.asarray(image, dtype=np.float32).reshape(1, 28, 28, 1) / 255.0
    p = model.predict(x, verbose=0)[0]
    return {"digit": int(p.argmax()), "confidence": float(p.max())}
