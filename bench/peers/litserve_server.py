"""Peer: a LitServe 0.2 server running the digit model's ONNX export with ONNX Runtime.

    DIGIT_MODEL=models/digit/1/model.onnx python -m bench.peers.litserve_server --port 8000

One worker (LitServe's default), the same route and multipart field as DeepServe's /predict/digit, and the naive
28x28 grey resize.
"""

import argparse
import io
import os

import litserve as ls
import numpy as np
from fastapi import Request
from PIL import Image


class DigitAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["DIGIT_MODEL"], providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def decode_request(self, request: Request) -> np.ndarray:  # LitServe passes a multipart body's form
        image = Image.open(io.BytesIO(request["file"].file.read())).convert("L").resize((28, 28))
        return np.asarray(image, dtype=np.float32).reshape(1, 28, 28, 1) / 255.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0][0]

    def encode_response(self, p: np.ndarray) -> dict:
        return {"digit": int(p.argmax()), "confidence": float(p.max())}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = ls.LitServer(DigitAPI(api_path="/predict/digit"), accelerator="cpu")
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)
