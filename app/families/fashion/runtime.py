"""The Fashion-MNIST classifier served from its ONNX export; `prepare` makes a photo look like a dataset item."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from app.families.fashion.preprocess import SIZE, prepare_item, prepare_item_placed
from app.families.images import ImageClassifier
from app.families.ood import Subspaces, ink_statistics
from app.families.placement import Placement


class FashionRuntime(ImageClassifier):
    kind = "fashion-onnx"

    def check_input(self, shape: list[Any]) -> None:
        if shape[1:] != [SIZE, SIZE, 1]:
            raise ValueError(f"expected an ONNX input of shape [batch, {SIZE}, {SIZE}, 1], found {shape}")

    def prepare(self, image: Image.Image) -> np.ndarray:
        return prepare_item(image)

    def prepare_placed(self, image: Image.Image) -> tuple[np.ndarray, Placement]:
        return prepare_item_placed(image)

    def load(self) -> None:
        super().load()
        self.subspaces = Subspaces.load(self.file("ood")) if "ood" in self.entry.files else None

    def measures(self, x: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """The confidence, the ink statistics (a photo or noise made into 28x28 is textured or a flat blob) and the
        distance from the predicted class's subspace (a digit or a letter is a "Trouser" like no trouser)."""
        measured = {**super().measures(x, probabilities), "ink": ink_statistics(x)}
        if self.subspaces is not None:
            measured["shape"] = self.subspaces.residual(x, probabilities.argmax(axis=1))
        return measured

    def warmup(self) -> None:
        self.predict([np.zeros((SIZE, SIZE, 1), dtype=np.float32)])

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["multipart/form-data (field 'file')", "image/*"],
            "image": "a photo of one garment, any size and mode Pillow reads; made to look like a Fashion-MNIST "
            "item: inverted when the background is light, cropped to the item, fitted into 28x28 keeping its "
            "aspect ratio, grayscale",
            "query": "model=fashion",
            "output": f"label, confidence (calibrated), top_k (up to {self.TOP_K}) over {len(self.labels)} classes, "
            "in_distribution, ood_score, ood_reason",
            "labels": self.labels,
        }
