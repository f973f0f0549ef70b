"""The digit CNN served from its ONNX export with ONNX Runtime (never Keras' model.predict per request)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.families.runtime import Runtime, onnx_session


class DigitRuntime(Runtime):
    kind = "digit-onnx"

    def load(self) -> None:
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads)
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        if list(shape[1:]) != [28, 28, 1]:
            raise ValueError(f"expected an ONNX input of shape [batch, 28, 28, 1], found {shape}")

    def warmup(self) -> None:
        self.predict([np.zeros((28, 28, 1), dtype=np.float32)])

    def predict(self, batch: list[np.ndarray]) -> list[dict[str, Any]]:
        probabilities = self.session.run(None, {self.input_name: np.stack(batch).astype(np.float32)})[0]
        return [
            {"digit": int(p.argmax()), "confidence": float(p.max()), "probabilities": [float(v) for v in p]}
            for p in probabilities
        ]

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["multipart/form-data (field 'file')", "image/*"],
            "image": "any size and mode Pillow reads; normalised to 28x28 like MNIST",
            "output": "digit 0-9, confidence, probabilities[10]",
        }
