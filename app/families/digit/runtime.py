"""The digit CNN served from its ONNX export with ONNX Runtime (never Keras' model.predict per request)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from app.families.digit.preprocess import preprocess_digit, preprocess_digit_placed
from app.families.images import GRAY_MODES, ImageRuntime, ImageUpload
from app.families.ood import Gate, OodFields, Verdict, ink_statistics, temper, temperature
from app.families.placement import Placement
from app.families.runtime import onnx_session
from app.schemas import ModelRef

MB = 2**20
# Working memory, measured by bench/cost_factors.py: decoded pixels (Pillow: 1 byte for 1/L/P, 4 for
# RGB/RGBA/I/F) plus decode_image's EXIF copy (measured when every image was copied; now only a rotated one is,
# so these err high), plus shrink()'s resize (premultiplied RGBa for RGBA); the float
# work after it is on at most 512x512 pixels. Peak growth: RGBA 4096^2 +139 MB (8.3 B/px), 2048^2 +39 MB; RGB
# 4096^2 +129 MB; I;16 +105 MB; F (TIFF) +130 MB; L 4096^2 +33 MB (2.0 B/px); any mode at 512^2 +6..10 MB.
BYTES_PER_PIXEL = 10.0
BYTES_PER_GRAY_PIXEL = 3.0  # modes 1 and L
# Mode F (32-bit float, e.g. TIFF): 8.1 B/px measured, but checking float pixels for NaN/inf and rescaling them
# in float64 at full size (~34 B/px) before anything shrinks them is charged too.
BYTES_PER_FLOAT_PIXEL = 40.0
FLOAT_BYTES_PER_PIXEL = 40.0  # on min(pixels, FLOAT_PIXELS)
FLOAT_PIXELS = 512 * 512


def digit_measures(x: np.ndarray, probabilities: np.ndarray, features: np.ndarray | None) -> dict[str, np.ndarray]:
    """What the digit artifact's checks measure (training/calibrate.py fits them on the same measures)."""
    measured = {"ink": ink_statistics(x, enlarged=True), "confidence": 1.0 - probabilities.max(axis=1)}
    if features is not None:
        measured["features"] = features
    return measured


class DigitOutput(OodFields):
    digit: int
    confidence: float
    probabilities: list[float]


class DigitPrediction(DigitOutput):
    model: ModelRef


class DigitRuntime(ImageRuntime[DigitOutput]):
    kind = "digit-onnx"

    def load(self) -> None:
        # One intra-op thread unless settings say otherwise: the whole model is ~0.05 ms of work, and handing each
        # layer to a second thread costs more than it saves (~0.1 ms of CPU per request, measured).
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads or 1)
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        if list(shape[1:]) != [28, 28, 1]:
            raise ValueError(f"expected an ONNX input of shape [batch, 28, 28, 1], found {shape}")
        self.gate = Gate.from_metrics(self.entry.metrics, self.file("ood") if "ood" in self.entry.files else None)
        self.temperature = temperature(self.entry.metrics)
        # training/calibrate.py exposes the CNN's penultimate features as a second output (the same call computes
        # them): the "features" check scores them
        self.has_features = len(self.session.get_outputs()) > 1
        if self.gate is not None and not self.has_features and any(c.name == "features" for c in self.gate.checks):
            raise ValueError("model.json has a features check but model.onnx has no features output")

    def warmup(self) -> None:
        self.predict([np.zeros((28, 28, 1), dtype=np.float32)])

    def inline(self, request: ImageUpload) -> bool:
        return self.small(request)  # the model itself is ~0.04 ms

    def cost(self, request: ImageUpload) -> int:
        per_pixel = BYTES_PER_GRAY_PIXEL if request.mode in GRAY_MODES else BYTES_PER_PIXEL
        per_pixel = BYTES_PER_FLOAT_PIXEL if request.mode == "F" else per_pixel
        return int(MB + request.pixels * per_pixel + min(request.pixels, FLOAT_PIXELS) * FLOAT_BYTES_PER_PIXEL)

    def prepare(self, image: Image.Image) -> np.ndarray:
        return preprocess_digit(image)

    def prepare_placed(self, image: Image.Image) -> tuple[np.ndarray, Placement]:
        return preprocess_digit_placed(image)

    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]

    def predict(self, batch: list[np.ndarray]) -> list[DigitOutput]:
        x = np.stack(batch).astype(np.float32)
        outputs = self.session.run(None, {self.input_name: x})
        probabilities = temper(outputs[0], self.temperature)
        verdicts = self.judge(x, probabilities, outputs[1] if self.has_features else None)
        return [
            DigitOutput(
                digit=int(p.argmax()), confidence=float(p.max()), probabilities=[float(v) for v in p], **v.fields()
            )
            for p, v in zip(probabilities, verdicts, strict=True)
        ]

    def judge(self, x: np.ndarray, probabilities: np.ndarray, features: np.ndarray | None = None) -> list[Verdict]:
        """Whether each input looks like an MNIST digit: its ink statistics (the prepared 28x28 already holds
        them: a few microseconds, no second pass over the image), the calibrated confidence and, when the model
        gives them, how far its penultimate features are from those of the nearest class's training digits."""
        if self.gate is None:
            return [Verdict()] * len(x)
        return self.gate.verdicts(digit_measures(x, probabilities, features))

    def encode(self, request: ImageUpload, outputs: list[DigitOutput]) -> DigitPrediction:
        [out] = outputs
        return DigitPrediction(**dict(out), model=self.ref())

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["multipart/form-data (field 'file')", "image/*"],
            "image": "any size and mode Pillow reads; normalised to 28x28 like MNIST",
            "output": "digit 0-9, confidence, probabilities[10] (calibrated), in_distribution, ood_score, ood_reason",
        }
