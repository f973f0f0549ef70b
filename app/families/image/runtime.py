"""The transfer-learning image classifier (MobileNetV2 features + a small head), served from its ONNX export.

Its input is prepared by `prepare_image` (preprocess.py, shared with training). The ONNX model takes float32
[batch, size, size, 3] RGB in 0..255; MobileNetV2's scaling to [-1, 1] is a layer inside the model.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from PIL import Image

from app.families.image.preprocess import prepare_image
from app.families.runtime import Runtime, onnx_session

TOP_K = 5


class ImageRuntime(Runtime):
    kind = "image-onnx"

    def load(self) -> None:
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        shape = list(model_input.shape)
        if len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int) or shape[1] != shape[2]:
            raise ValueError(f"expected an ONNX input of shape [batch, size, size, 3], found {shape}")
        self.image_size = int(shape[1])
        self.labels = [str(label) for label in json.loads(self.file("labels").read_text())["labels"]]
        outputs = self.session.get_outputs()[0].shape[-1]
        if isinstance(outputs, int) and outputs != len(self.labels):
            raise ValueError(f"labels.json has {len(self.labels)} labels, the model has {outputs} outputs")

    def prepare(self, image: Image.Image) -> np.ndarray:
        return prepare_image(image, self.image_size)

    def warmup(self) -> None:
        self.predict([np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)])

    def predict(self, batch: list[np.ndarray]) -> list[dict[str, Any]]:
        probabilities = self.session.run(None, {self.input_name: np.stack(batch).astype(np.float32)})[0]
        k = min(TOP_K, len(self.labels))
        results = []
        for p in probabilities:
            order = np.argsort(-p, kind="stable")[:k]
            top = [{"label": self.labels[i], "score": float(p[i])} for i in order]
            results.append({"label": top[0]["label"], "confidence": top[0]["score"], "top_k": top})
        return results

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["multipart/form-data (field 'file')", "image/*"],
            "image": f"any size and mode Pillow reads; converted to RGB (transparency on white) and resized to "
            f"{self.image_size}x{self.image_size}",
            "output": f"label, confidence, top_k (up to {TOP_K}) over {len(self.labels)} classes",
            "labels": self.labels,
        }
