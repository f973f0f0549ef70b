"""Peer: MLServer 1.7 with a custom runtime running the digit model's ONNX export with ONNX Runtime.

    DIGIT_MODEL=models/digit/1/model.onnx MLSERVER_HTTP_PORT=8080 mlserver start bench/peers/mlserver_models

Model `digit` (bench/peers/mlserver_models/digit/model-settings.json) over MLServer's Open Inference Protocol
JSON: input `image` BYTES [n], the encoded files in base64 (`"content_type": "base64"`), outputs `digit` INT64 [n]
and `confidence` FP32 [n]; decoded with the naive 28x28 grey resize, as the other peers do. MLServer's defaults
otherwise: one inference worker process beside the web process, no adaptive batching.
"""

import io
import os

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import Base64Codec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from PIL import Image


def pixels(image: bytes) -> np.ndarray:
    grey = Image.open(io.BytesIO(image)).convert("L").resize((28, 28))
    return np.asarray(grey, dtype=np.float32).reshape(28, 28, 1) / 255.0


class Digit(MLModel):
    async def load(self) -> bool:
        self.session = ort.InferenceSession(os.environ["DIGIT_MODEL"], providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        files = Base64Codec.decode_input(payload.inputs[0])
        p = self.session.run(None, {self.input_name: np.stack([pixels(f) for f in files])})[0]
        rows = [len(files)]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="digit", shape=rows, datatype="INT64", data=p.argmax(axis=1).tolist()),
                ResponseOutput(name="confidence", shape=rows, datatype="FP32", data=p.max(axis=1).tolist()),
            ],
        )
