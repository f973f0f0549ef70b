"""Peer: a BentoML 1.4 service running the digit model's ONNX export with ONNX Runtime.

    DIGIT_MODEL=models/digit/1/model.onnx bentoml serve bench.peers.bentoml_service:Digit --port 3000

One worker process (BentoML's default), the same route and multipart field as DeepServe's /predict/digit, and the
naive 28x28 grey resize.
"""

import os

import bentoml
import numpy as np
from PIL.Image import Image


@bentoml.service(workers=1)
class Digit:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["DIGIT_MODEL"], providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    @bentoml.api(route="/predict/digit")
    def predict(self, file: Image) -> dict:
        x = np.asarray(file.convert("L").resize((28, 28)), dtype=np.float32).reshape(1, 28, 28, 1) / 255.0
        p = self.session.run(None, {self.input_name: x})[0][0]
        return {"digit": int(p.argmax()), "confidence": float(p.max())}
