"""The Fashion-MNIST classifier served from its ONNX export; `prepare` makes a photo look like a dataset item."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from app.families.fashion.preprocess import SIZE, prepare_item
from app.families.images import ImageClassifier


class FashionRuntime(ImageClassifier):
    kind = "fashion-onnx"

    def check_input(self, shape: list[Any]) -> None:
        if shape[1:] != [SIZE, SIZE, 1]:
            raise ValueError(f"expected an ONNX input of shape [batch, {SIZE}, {SIZE}, 1], found {shape}")

    def prepare(self, image: Image.Image) -> np.ndarray:
        return prepare_item(image)

    def warmup(self) -> None:
        self.predict([np.zeros((SIZE, SIZE, 1), dtype=np.float32)])

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["multipart/form-data (field 'file')", "image/*"],
            "image": "a photo of one garment, any size and mode Pillow reads; made to look like a Fashion-MNIST "
            "item: inverted when the background is light, cropped to the item, fitted into 28x28 keeping its "
            "aspect ratio, grayscale",
            "query": "model=fashion",
            "output": f"label, confidence, top_k (up to {self.TOP_K}) over {len(self.labels)} classes",
            "labels": self.labels,
        }
