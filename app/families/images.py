"""What the image families share: an uploaded image as a request, its decoding on the worker pool, and the
`ImageClassifier` that POST /predict/image serves (label, confidence, top_k from an ONNX model)."""

from __future__ import annotations

import io
import json
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from PIL import Image
from pydantic import BaseModel

from app.families.image_decode import decode_and_prepare
from app.families.ood import Gate, OodFields, Verdict, temper, temperature
from app.families.placement import Placement
from app.families.runtime import Runtime, onnx_session
from app.schemas import ModelRef

GRAY_MODES = {"1", "L"}


@dataclass(frozen=True)
class ImageUpload:
    """An uploaded image, not decoded yet: its bytes and what its header says (0 pixels when the header is
    unreadable or over `max_pixels`: decoding then refuses it before it allocates anything), and the Pillow image
    whose header that is (`opened`, within the limit only), which decoding loads instead of parsing it again."""

    data: bytes
    max_pixels: int
    pixels: int = 0
    mode: str = ""
    opened: Image.Image | None = field(default=None, compare=False, repr=False)

    @classmethod
    def read(cls, data: bytes, max_pixels: int) -> ImageUpload:
        try:  # Pillow's warnings are silenced once for all (app/families/image_decode.py)
            image = Image.open(io.BytesIO(data))
            (width, height), mode = image.size, image.mode
        except Exception:  # Not an image, or a decompression bomb: decoding says which, at no memory cost.
            return cls(data, max_pixels)
        pixels = width * height
        if pixels > max_pixels:
            image.close()
            return cls(data, max_pixels, 0, mode)
        return cls(data, max_pixels, pixels, mode, image)


Out = TypeVar("Out")


# A runtime that calls small images cheap (`small`) has them worked on the event loop: for the digit CNN (a 28x28
# digit: ~0.15 ms of decode, preprocessing and model) waking a pool thread cost more than the work at c=1 (server
# CPU per digit 0.58 -> 0.47 ms, wrk, one worker, medians of 5), and it made no difference at c=8 and c=32. The body
# bound keeps files that are small in pixels but large in bytes (long metadata chunks) off the loop.
INLINE_PIXELS = 128 * 128
INLINE_BODY_BYTES = 64 * 1024


class ImageRuntime(Runtime[ImageUpload, np.ndarray, Out]):
    """A runtime whose request is one uploaded image: decoded, checked and `prepare`d on the worker pool."""

    decode_blocks = True

    @staticmethod
    def small(request: ImageUpload) -> bool:
        """An image that decodes in well under a millisecond (a model whose call is as cheap may `inline` it)."""
        return 0 < request.pixels <= INLINE_PIXELS and len(request.data) <= INLINE_BODY_BYTES

    @abstractmethod
    def prepare(self, image: Image.Image) -> np.ndarray:
        """A decoded image (any size, in one of image_decode.MODES) -> one input for `predict`."""

    def decode(self, request: ImageUpload) -> list[np.ndarray]:
        return [decode_and_prepare(request.data, request.max_pixels, self.prepare, request.opened)]

    def prepare_placed(self, image: Image.Image) -> tuple[np.ndarray, Placement]:
        """`prepare(image)` and where the input came from in the image (explanations draw on the image)."""
        raise NotImplementedError(f"{type(self).__name__} cannot place its input on the image")

    @abstractmethod
    def class_names(self) -> list[str]:
        """The names of the model's outputs, in order (what an explanation's `target` names)."""


class LabelScore(BaseModel):
    label: str
    score: float


class ClassScores(BaseModel):
    label: str
    confidence: float
    top_k: list[LabelScore]


class ClassOutput(ClassScores, OodFields):
    """One prediction: what the response shows, and every class's probability (the Open Inference Protocol's
    `probabilities` tensor)."""

    probabilities: list[float]


class ImagePrediction(ClassScores, OodFields):
    model: ModelRef


# Working memory of prepare_image-like preprocessing (to RGB, transparency on white, resize to the model's size),
# measured by bench/cost_factors.py with a real-shape MobileNetV2 (alpha 1.0, 224x224, random weights): RGBA
# 4096^2 +320 MB (20.0 B/px), 2048^2 +80 MB; RGB 4096^2 +131 MB (8.2 B/px); L 4096^2 +83 MB (5.2 B/px).
IMAGE_BYTES_PER_PIXEL = 21.0
IMAGE_BYTES_PER_GRAY_PIXEL = 6.0
IMAGE_BYTES_PER_FLOAT_PIXEL = 40.0  # mode F: checked for NaN/inf and rescaled in float64 at full size
IMAGE_FIXED = 8 * 2**20  # its model call: 4 concurrent calls +25 MB, 8 +32 MB


class ImageClassifier(ImageRuntime[ClassOutput]):
    """An ONNX model from one image input to class probabilities, with its class names in the artifact's
    labels.json: what POST /predict/image serves."""

    TOP_K: ClassVar[int] = 5
    labels: list[str]  # class names, in the order of the model's outputs

    def load(self) -> None:
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.check_input(list(model_input.shape))
        self.labels = [str(label) for label in json.loads(self.file("labels").read_text())["labels"]]
        outputs = self.session.get_outputs()[0].shape[-1]
        if isinstance(outputs, int) and outputs != len(self.labels):
            raise ValueError(f"labels.json has {len(self.labels)} labels, the model has {outputs} outputs")
        self.gate = Gate.from_metrics(self.entry.metrics)
        self.temperature = temperature(self.entry.metrics)

    def measures(self, x: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """What the artifact's out-of-distribution checks measure of each input (app/families/ood.py): here the
        calibrated confidence; a family adds what its inputs tell (fashion: ink statistics)."""
        return {"confidence": 1.0 - probabilities.max(axis=1)}

    def judge(self, x: np.ndarray, probabilities: np.ndarray) -> list[Verdict]:
        if self.gate is None:
            return [Verdict()] * len(x)
        return self.gate.verdicts(self.measures(x, probabilities))

    def class_names(self) -> list[str]:
        return self.labels

    @abstractmethod
    def check_input(self, shape: list[Any]) -> None:
        """Raise ValueError for an ONNX input shape [batch, ...] this runtime cannot feed."""

    def cost(self, request: ImageUpload) -> int:
        per_pixel = IMAGE_BYTES_PER_GRAY_PIXEL if request.mode in GRAY_MODES else IMAGE_BYTES_PER_PIXEL
        per_pixel = IMAGE_BYTES_PER_FLOAT_PIXEL if request.mode == "F" else per_pixel
        return int(IMAGE_FIXED + request.pixels * per_pixel)

    def predict(self, batch: list[np.ndarray]) -> list[ClassOutput]:
        x = np.stack(batch).astype(np.float32)
        probabilities = temper(self.session.run(None, {self.input_name: x})[0], self.temperature)
        k = min(self.TOP_K, len(self.labels))
        results = []
        for p, verdict in zip(probabilities, self.judge(x, probabilities), strict=True):
            order = np.argsort(-p, kind="stable")[:k]
            top = [LabelScore(label=self.labels[i], score=float(p[i])) for i in order]
            scores = [float(v) for v in p]
            results.append(
                ClassOutput(
                    label=top[0].label, confidence=top[0].score, top_k=top, probabilities=scores, **verdict.fields()
                )
            )
        return results

    def encode(self, request: ImageUpload, outputs: list[ClassOutput]) -> ImagePrediction:
        [out] = outputs
        fields = {"in_distribution": out.in_distribution, "ood_score": out.ood_score, "ood_reason": out.ood_reason}
        return ImagePrediction(label=out.label, confidence=out.confidence, top_k=out.top_k, model=self.ref(), **fields)
