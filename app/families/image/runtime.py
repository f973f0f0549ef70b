"""The transfer-learning image classifier (MobileNetV2 features + a small head), served from its ONNX export.

Its input is prepared by `prepare_image` (preprocess.py, shared with training). The ONNX model takes float32
[batch, size, size, 3] RGB in 0..255; MobileNetV2's scaling to [-1, 1] is a layer inside the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from app.families.image.preprocess import prepare_image
from app.families.images import ImageClassifier
from app.families.placement import Placement


class TransferRuntime(ImageClassifier):
    kind = "image-onnx"

    def check_input(self, shape: list[Any]) -> None:
        if len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int) or shape[1] != shape[2]:
            raise ValueError(f"expected an ONNX input of shape [batch, size, size, 3], found {shape}")
        self.image_size = int(shape[1])

    def prepare(self, image: Image.Image) -> np.ndarray:
        return prepare_image(image, self.image_size)

    def prepare_placed(self, image: Image.Image) -> tuple[np.ndarray, Placement]:
        size = self.image_size  # the whole image, resized
        placement = Placement(
            image.size, (0.0, 0.0, float(image.size[0]), float(image.size[1])), (0, 0, size, size), (size, size)
        )
        return self.prepare(image), placement

    def warmup(self) -> None:
        self.predict([np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)])

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["multipart/form-data (field 'file')", "image/*"],
            "image": f"any size and mode Pillow reads; converted to RGB (transparency on white) and resized to "
            f"{self.image_size}x{self.image_size}",
            "output": f"label, confidence, top_k (up to {self.TOP_K}) over {len(self.labels)} classes",
            "labels": self.labels,
        }
