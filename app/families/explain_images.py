"""Heatmap explanations of the image families (digit, fashion, the transfer model) from the served artifact, no
Keras at serving time. explain_head.npz holds layers run forward and backward in numpy (app/families/saliency.py)
and names the method: gradient x input when it holds the whole network (the digit and fashion CNNs; the
probabilities come from model.onnx), else Grad-CAM at a layer whose activations explain.onnx returns beside the
probabilities (the transfer model: MobileNetV2 is not a chain the numpy head runs).

An explainer wraps the loaded runtime of its model (same artifact, same version, same preprocessing) and is a
Runtime itself, so it goes through Inference.serve like a prediction, under the explanations' own limiter.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from app.errors import ExplanationUnavailable, InvalidInput, echo
from app.families import FAMILIES
from app.families.image.preprocess import to_rgb
from app.families.image_decode import decode_and_prepare
from app.families.images import ImageRuntime, ImageUpload, LabelScore
from app.families.ood import OodFields, temper, temperature
from app.families.placement import Placement, overlay_png
from app.families.runtime import Runtime, onnx_session
from app.families.saliency import GRADIENT_X_INPUT, Head
from app.schemas import ModelRef

HEATMAP_SIDE = 64  # the float heatmap over the caller's image: at most this many cells on its long side
OVERLAY_SIDE = 256  # the PNG overlay: at most this many pixels on its long side
INPUT_SIDE = 64  # the model's input (and the heatmap over it) is returned when it is at most this large
EXPLAIN_FIXED = 16 * 2**20  # the explain model's call, the backward pass and the overlay (small next to decoding)
EXPORT = "python -m training.common.explain_export {path}"


@dataclass(frozen=True)
class ExplainRequest:
    upload: ImageUpload
    target: str | None  # a class name (a digit for the digit model); None: the predicted class


@dataclass(frozen=True)
class Prepared:
    input: np.ndarray
    placement: Placement
    thumbnail: Image.Image  # the caller's image at the overlay's size
    target: int | None


@dataclass(frozen=True)
class ExplainedImage:
    probabilities: np.ndarray
    target: int
    heat_input: np.ndarray  # over the model's input, in [0, 1]
    heat_image: np.ndarray  # over the caller's image (at most HEATMAP_SIDE), in [0, 1]
    overlay: str  # base64 PNG
    input: np.ndarray  # what the model saw
    verdict: OodFields  # in distribution or not, as /predict answers it


class Explanation(OodFields):
    label: str = Field(description="The predicted class.")
    confidence: float
    top_k: list[LabelScore]
    target: str = Field(description="The class the heatmap explains: `?target=`, else the predicted one.")
    target_score: float = Field(description="The model's probability of the target class.")
    heatmap: list[list[float]] = Field(
        description="The heatmap over the image you sent (rows x columns, scaled to at most 64 on the long side), "
        "0..1 (1: what most raised the target's score); 0 where preprocessing cut the image away."
    )
    heatmap_over: str = Field("image", description="What `heatmap` covers: the image you sent.")
    heatmap_input: list[list[float]] | None = Field(
        None, description="The same map over the model's input (when it is at most 64x64: the digit's 28x28)."
    )
    input: list[list[float]] | None = Field(
        None, description="The model's input after preprocessing, 0..1 (grey models at most 64x64: the 28x28)."
    )
    overlay_png: str = Field(description="Base64 PNG: the image in grey with the heatmap drawn over it.")
    method: str = Field(
        description="How the heatmap is computed: `gradient-x-input` (each input pixel times the gradient of the "
        "target's score with respect to it, positive part) or `grad-cam` (at `layer`)."
    )
    layer: str = Field(description="The layer the heatmap is taken at: `input` for gradient-x-input.")
    model: ModelRef


class DigitExplanation(Explanation):
    digit: int
    probabilities: list[float]


def _rows(values: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in values]


class ImageExplainer(Runtime[ExplainRequest, Prepared, ExplainedImage]):
    kind = "saliency"
    decode_blocks = True
    batchable = False

    def __init__(self, base: ImageRuntime) -> None:
        super().__init__(base.entry, base.artifact_dir, base.settings)
        self.base = base

    def load(self) -> None:
        head = Head.load(self.file("explain_head")) if "explain_head" in self.entry.files else None
        whole = head is not None and head.method == GRADIENT_X_INPUT
        if head is None or not (whole or "explain_onnx" in self.entry.files):
            # Export from the artifact's Keras model when it has one; else a new training run writes it.
            export = EXPORT.format(path=f"models/{self.entry.path}") if "keras" in self.entry.files else None
            install = export or FAMILIES[self.entry.name].install
            raise ExplanationUnavailable(
                f"Model '{self.entry.name}' version {self.entry.version} has no explanation export; "
                f"{'add it with' if export else 'train a version that has it:'} {install}",
                {"model": self.entry.name, "install": install},
            )
        self.head = head
        # Gradient x input needs only the probabilities from ONNX (the served model's own); Grad-CAM also the layer.
        self.session = onnx_session(self.file("onnx" if whole else "explain_onnx"), self.settings.inference_threads)
        self.input_name = self.session.get_inputs()[0].name

    def warmup(self) -> None:
        pass  # loaded on the first explanation, which pays for it

    def cost(self, request: ExplainRequest) -> int:
        return self.base.cost(request.upload) + EXPLAIN_FIXED

    def _prepare(self, target: int | None):
        def prepare(image: Image.Image) -> Prepared:
            model_input, placement = self.base.prepare_placed(image)
            rows, cols = placement.shape(OVERLAY_SIDE)
            thumbnail = to_rgb(image).resize((cols, rows), Image.Resampling.BOX)
            return Prepared(model_input, placement, thumbnail, target)

        return prepare

    def target_index(self, target: str | None) -> int | None:
        names = self.base.class_names()
        if target is None:
            return None
        if target not in names:
            raise InvalidInput(
                f"Unknown target class '{echo(target)}'; use one of {', '.join(names)}.",
                {"target": echo(target), "classes": names},
            )
        return names.index(target)

    def decode(self, request: ExplainRequest) -> list[Prepared]:
        prepare = self._prepare(self.target_index(request.target))
        return [decode_and_prepare(request.upload.data, request.upload.max_pixels, prepare)]

    def heatmaps(self, inputs: np.ndarray, targets: list[int | None]) -> tuple[np.ndarray, list[int], np.ndarray]:
        """(probabilities, the class each map explains, maps over the inputs in [0, 1]) of a batch of model inputs;
        a target None explains the predicted class."""
        outputs = self.session.run(None, {self.input_name: inputs.astype(np.float32)})
        activations, probabilities = (inputs, outputs[0]) if self.head.method == GRADIENT_X_INPUT else outputs
        probabilities = temper(probabilities, temperature(self.entry.metrics))  # the confidences /predict answers
        chosen = [int(p.argmax()) if t is None else t for p, t in zip(probabilities, targets, strict=True)]
        maps = []
        for a, target in zip(activations, chosen, strict=True):
            heat = self.head.on_input(self.head.saliency(a, target), inputs.shape[1], inputs.shape[2])
            peak = float(heat.max())
            maps.append(heat / peak if peak > 0 else heat)
        return probabilities, chosen, np.stack(maps)

    def verdicts(self, batch: list[Prepared]) -> list[OodFields]:
        """Whether each input looks like the training data: the served model's own answer (one more call of it,
        small next to an explanation), or not checked when its artifact has no thresholds."""
        if getattr(self.base, "gate", None) is None:
            return [OodFields()] * len(batch)
        return self.base.predict([p.input for p in batch])

    def predict(self, batch: list[Prepared]) -> list[ExplainedImage]:
        inputs = np.stack([p.input for p in batch])
        probabilities, targets, maps = self.heatmaps(inputs, [p.target for p in batch])
        results = []
        for prepared, p, target, heat, verdict in zip(
            batch, probabilities, targets, maps, self.verdicts(batch), strict=True
        ):
            overlay = prepared.placement.on_image(heat, OVERLAY_SIDE)
            on_image = prepared.placement.on_image(heat, HEATMAP_SIDE)  # resampling can lower a one-pixel peak
            peak = float(on_image.max())
            results.append(
                ExplainedImage(
                    probabilities=p,
                    target=target,
                    heat_input=heat,
                    heat_image=on_image / peak if peak > 0 else on_image,
                    overlay=overlay_png(prepared.thumbnail, overlay),
                    input=prepared.input,
                    verdict=verdict,
                )
            )
        return results

    def encode(self, request: ExplainRequest, outputs: list[ExplainedImage]) -> Explanation:
        [out] = outputs
        names = self.base.class_names()
        order = np.argsort(-out.probabilities, kind="stable")[:5]
        small = max(out.heat_input.shape) <= INPUT_SIDE
        grey = small and out.input.shape[-1] == 1
        fields: dict[str, Any] = {
            "label": names[int(order[0])],
            "confidence": float(out.probabilities[order[0]]),
            "top_k": [LabelScore(label=names[i], score=float(out.probabilities[i])) for i in order],
            "target": names[out.target],
            "target_score": float(out.probabilities[out.target]),
            "heatmap": _rows(out.heat_image),
            "heatmap_input": _rows(out.heat_input) if small else None,
            "input": _rows(out.input[..., 0]) if grey else None,
            "overlay_png": out.overlay,
            "method": self.head.method,
            "layer": self.head.layer,
            "model": self.ref(),
            "in_distribution": out.verdict.in_distribution,
            "ood_score": out.verdict.ood_score,
            "ood_reason": out.verdict.ood_reason,
        }
        return Explanation(**fields)

    def input_description(self) -> dict[str, Any]:
        return self.base.input_description()


class DigitExplainer(ImageExplainer):
    """The digit's explanation also carries the probabilities and the 28x28 the model saw."""

    def encode(self, request: ExplainRequest, outputs: list[ExplainedImage]) -> DigitExplanation:
        base = super().encode(request, outputs)
        [out] = outputs
        return DigitExplanation(
            **dict(base),
            digit=int(out.probabilities.argmax()),
            probabilities=[float(v) for v in out.probabilities],
        )


_explainers: weakref.WeakKeyDictionary[ImageRuntime, ImageExplainer] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def explainer_for(runtime: ImageRuntime, cls: type[ImageExplainer] = ImageExplainer) -> ImageExplainer:
    """The loaded explainer of this runtime (loaded on first use, once; freed with the runtime when it is
    replaced by a reload). Blocking: call it on the worker pool."""
    with _lock:
        explainer = _explainers.get(runtime)
        if explainer is None:
            explainer = cls(runtime)
            explainer.load()
            _explainers[runtime] = explainer
        return explainer
