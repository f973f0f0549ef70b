"""From protocol tensors to each family's own request, through the same runtime and admission as the task
endpoints (`Inference.outputs`: cost -> decode -> predict in one admission slot), and from its typed outputs back
to tensors. One adapter per kind of runtime; a family whose runtime subclasses one of these kinds (a new
sentiment or image family) is served over the protocol without a line here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from app.core.serving import Serving
from app.errors import InvalidInput, echo
from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.detector import alarm_limits
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.anomaly.schemas import AnomalyRequest
from app.families.digit.runtime import DigitOutput, DigitRuntime
from app.families.images import ClassOutput, ImageClassifier
from app.families.ood import refusing
from app.families.runtime import Runtime
from app.families.sentiment import SentimentRequest, SentimentResult, SentimentRuntime, validate_texts
from app.families.tasks import ANOMALY
from app.oip.schemas import TensorMetadata
from app.oip.tensors import Tensor, summary

MB = 2**20
TENSOR_BYTES_FACTOR = 4  # a preprocessed tensor is held as sent, as float32, stacked, and by the model's first layer


def meta(name: str, datatype: str, shape: list[int], **parameters: Any) -> TensorMetadata:
    return TensorMetadata(name=name, datatype=datatype, shape=shape, parameters=parameters or None)  # type: ignore[arg-type]


def one_of(inputs: dict[str, Tensor], accepted: dict[str, tuple[str, ...]]) -> Tensor:
    """The one input the request sends, of a name and datatype in `accepted` (422 otherwise)."""
    names = " or ".join(f"'{name}' ({'/'.join(types)})" for name, types in accepted.items())
    if len(inputs) != 1:
        raise InvalidInput(f"Send exactly one input: {names}.", {"inputs": [echo(n) for n in inputs]})
    [tensor] = inputs.values()
    if tensor.datatype not in accepted.get(tensor.name, ()):
        raise InvalidInput(
            f"Input '{echo(tensor.name)}' of {tensor.datatype} is not accepted; send {names}.",
            {"input": echo(tensor.name), "datatype": tensor.datatype},
        )
    return tensor


def batch_of_bytes(tensor: Tensor) -> list[bytes]:
    if len(tensor.shape) != 1 or not tensor.data:
        raise InvalidInput(f"Input '{tensor.name}' must have shape [n] with n >= 1, not {list(tensor.shape)}.")
    return list(tensor.data)


class Adapter(ABC):
    """The tensors one kind of runtime takes and answers."""

    @abstractmethod
    def inputs(self, runtime: Any) -> list[TensorMetadata]:
        """What a client sends by default: tools that read the metadata (perf_analyzer) send data for each."""

    def other_inputs(self, runtime: Any) -> list[TensorMetadata]:
        """Inputs also accepted in place of `inputs` (listed apart, so such a tool does not send them too)."""
        return []

    @abstractmethod
    def outputs(self, runtime: Any) -> list[TensorMetadata]: ...

    @abstractmethod
    async def infer(self, runtime: Any, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool) -> list[Tensor]:
        """The output tensors, first dimension the request's batch; with `reject_ood` (the request's parameter), a
        422 out_of_distribution naming each flagged input (e.g. "image[2]") instead, for a classifier."""


class ImageAdapter(Adapter):
    """Images as sent (BYTES `image`: encoded files, decoded and preprocessed exactly as the task endpoint does)
    or already preprocessed (FP32 `pixels`, the model's own input), one per row."""

    def pixel_shape(self, runtime: DigitRuntime | ImageClassifier) -> list[int]:
        return [int(d) for d in runtime.session.get_inputs()[0].shape[1:]]

    def inputs(self, runtime: DigitRuntime | ImageClassifier) -> list[TensorMetadata]:
        return [meta("image", "BYTES", [-1], content_type="base64", description="encoded image files (PNG, JPEG, ...)")]

    def other_inputs(self, runtime: DigitRuntime | ImageClassifier) -> list[TensorMetadata]:
        return [meta("pixels", "FP32", [-1, *self.pixel_shape(runtime)], description="preprocessed images")]

    async def predict(
        self, runtime: DigitRuntime | ImageClassifier, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool
    ):
        tensor = one_of(inputs, {"image": ("BYTES",), "pixels": ("FP32",)})
        if tensor.name == "image":
            uploads = [await serving.read_image(data) for data in batch_of_bytes(tensor)]
            outs = await serving.outputs_each(runtime, uploads)  # admitted by cost
            return refused("image", outs, reject_ood)
        shape = self.pixel_shape(runtime)
        if list(tensor.shape[1:]) != shape or tensor.shape[0] < 1:
            wanted = ", ".join(map(str, ["n", *shape]))
            raise InvalidInput(f"Input 'pixels' must have shape [{wanted}], not {list(tensor.shape)}.")
        if not np.isfinite(tensor.data).all():
            raise InvalidInput("Input 'pixels' holds NaN or infinite values.")
        outs = await serving.predict(runtime, list(tensor.data), MB + tensor.data.nbytes * TENSOR_BYTES_FACTOR)
        return refused("pixels", outs, reject_ood)


def refused(name: str, outs: list[Any], reject_ood: bool) -> list[Any]:
    """`outs`, or with `reject_ood` a 422 out_of_distribution naming each flagged input by its row of `name`."""
    return refusing(outs, reject_ood, [f"{name}[{i}]" for i in range(len(outs))])


def ood_outputs(runtime: DigitRuntime | ImageClassifier | SentimentRuntime) -> list[TensorMetadata]:
    """The in-distribution outputs of a runtime whose artifact has thresholds (app/families/ood.py)."""
    if getattr(runtime, "gate", None) is None:
        return []
    return [
        meta("in_distribution", "BOOL", [-1], description="false: the input is not like the training data"),
        meta("ood_score", "FP32", [-1], description="above 1.0 is flagged"),
    ]


def ood_tensors(runtime: DigitRuntime | ImageClassifier | SentimentRuntime, outs: list[Any]) -> list[Tensor]:
    if getattr(runtime, "gate", None) is None:
        return []
    return [
        Tensor.of("in_distribution", np.array([bool(o.in_distribution) for o in outs]), "BOOL"),
        Tensor.of(
            "ood_score",
            np.array([np.nan if o.ood_score is None else o.ood_score for o in outs], dtype=np.float32),
            "FP32",
        ),
    ]


class DigitAdapter(ImageAdapter):
    def outputs(self, runtime: DigitRuntime) -> list[TensorMetadata]:
        return [
            meta("digit", "INT64", [-1]),
            meta("confidence", "FP32", [-1]),
            meta("probabilities", "FP32", [-1, 10]),
            *ood_outputs(runtime),
        ]

    async def infer(
        self, runtime: DigitRuntime, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool
    ) -> list[Tensor]:
        outs: list[DigitOutput] = await self.predict(runtime, inputs, serving, reject_ood)
        return [
            Tensor.of("digit", np.array([o.digit for o in outs]), "INT64"),
            Tensor.of("confidence", np.array([o.confidence for o in outs]), "FP32"),
            Tensor.of("probabilities", np.array([o.probabilities for o in outs]), "FP32"),
            *ood_tensors(runtime, outs),
        ]


class ClassifierAdapter(ImageAdapter):
    def outputs(self, runtime: ImageClassifier) -> list[TensorMetadata]:
        classes = len(runtime.labels)
        return [
            meta("label", "INT64", [-1], labels=runtime.labels, description="index into labels"),
            meta("confidence", "FP32", [-1]),
            meta("probabilities", "FP32", [-1, classes], labels=runtime.labels),
            *ood_outputs(runtime),
        ]

    async def infer(
        self, runtime: ImageClassifier, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool
    ) -> list[Tensor]:
        outs: list[ClassOutput] = await self.predict(runtime, inputs, serving, reject_ood)
        return [
            Tensor.of("label", np.array([runtime.labels.index(o.label) for o in outs]), "INT64"),
            Tensor.of("confidence", np.array([o.confidence for o in outs]), "FP32"),
            Tensor.of("probabilities", np.array([o.probabilities for o in outs]), "FP32"),
            *ood_tensors(runtime, outs),
        ]


class SentimentAdapter(Adapter):
    """Texts (BYTES `text`, UTF-8) checked as POST /predict/sentiment checks them; label 1 is POSITIVE."""

    LABELS: ClassVar[list[str]] = ["NEGATIVE", "POSITIVE"]

    def inputs(self, runtime: SentimentRuntime) -> list[TensorMetadata]:
        return [meta("text", "BYTES", [-1], description="UTF-8 texts")]

    def outputs(self, runtime: SentimentRuntime) -> list[TensorMetadata]:
        return [
            meta("label", "INT64", [-1], labels=self.LABELS),
            meta("probabilities", "FP32", [-1, 2], labels=self.LABELS),
            meta("truncated", "BOOL", [-1], description="only part of the text was read"),
            *ood_outputs(runtime),
        ]

    async def infer(
        self, runtime: SentimentRuntime, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool
    ) -> list[Tensor]:
        tensor = one_of(inputs, {"text": ("BYTES",)})
        try:
            texts = [item.decode("utf-8") for item in batch_of_bytes(tensor)]
        except UnicodeDecodeError as exc:
            raise InvalidInput("Input 'text' holds bytes that are not UTF-8.") from exc
        texts = validate_texts(SentimentRequest(texts=texts), serving.settings)
        outs: list[SentimentResult] = refused("text", await serving.outputs(runtime, texts), reject_ood)
        return [
            Tensor.of("label", np.array([int(o.label == "POSITIVE") for o in outs]), "INT64"),
            Tensor.of("probabilities", np.array([[1 - o.score, o.score] for o in outs]), "FP32"),
            Tensor.of("truncated", np.array([o.truncated for o in outs]), "BOOL"),
            *ood_tensors(runtime, outs),
        ]


def series_request(inputs: dict[str, Tensor], runtime: Runtime) -> AnomalyRequest:
    """The one `values` tensor (FP32 or FP64, shape [n] or [1, n]) as the request POST /predict/anomaly takes to be
    answered by `runtime`'s model (its `method`: app/families/tasks.py ANOMALY)."""
    tensor = one_of(inputs, {"values": ("FP32", "FP64")})
    if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[0] != 1):
        raise InvalidInput(f"Input 'values' must have shape [n] or [1, n] (one series), not {list(tensor.shape)}.")
    try:
        values = tensor.data.reshape(-1).astype(np.float64).tolist()
        return AnomalyRequest(values=values, **ANOMALY.choose(runtime.entry.name))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InvalidInput(f"Input 'values' is not a series the model can score: {summary(exc)}") from exc


SERIES_OUTPUTS = [meta("scores", "FP64", [1, -1]), meta("is_anomaly", "BOOL", [1, -1]), meta("threshold", "FP64", [1])]


def series_tensors(scores: np.ndarray, flags: np.ndarray, threshold: float) -> list[Tensor]:
    return [
        Tensor.of("scores", scores[np.newaxis], "FP64"),
        Tensor.of("is_anomaly", flags[np.newaxis], "BOOL"),
        Tensor.of("threshold", np.array([threshold]), "FP64"),
    ]


class AnomalyAdapter(Adapter):
    """One series (FP32 or FP64 `values`, shape [n] or [1, n]) scored as POST /predict/anomaly scores it."""

    def inputs(self, runtime: AnomalyRuntime) -> list[TensorMetadata]:
        return [meta("values", "FP32", [1, -1], window=runtime.window, description="one series, oldest first")]

    def outputs(self, runtime: AnomalyRuntime) -> list[TensorMetadata]:
        return SERIES_OUTPUTS

    async def infer(
        self, runtime: AnomalyRuntime, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool
    ) -> list[Tensor]:
        request = series_request(inputs, runtime)
        [out] = await serving.outputs(runtime, request)
        return series_tensors(out.scores, out.flags, out.threshold)


class SeriesAdapter(Adapter):
    """One series scored as POST /predict/anomaly's default method scores it (causal, sensitivity 0.5; the
    warm-up points score 0)."""

    def inputs(self, runtime: NearestContextRuntime) -> list[TensorMetadata]:
        warmup = runtime.config.warmup
        return [meta("values", "FP32", [1, -1], warmup=warmup, description="one series, oldest first, any scale")]

    def outputs(self, runtime: NearestContextRuntime) -> list[TensorMetadata]:
        return SERIES_OUTPUTS

    async def infer(
        self, runtime: NearestContextRuntime, inputs: dict[str, Tensor], serving: Serving, reject_ood: bool
    ) -> list[Tensor]:
        request = series_request(inputs, runtime)
        [out] = await serving.outputs(runtime, request)
        threshold, _ = alarm_limits(runtime.config, request.sensitivity)
        return series_tensors(np.nan_to_num(out.scored.score, nan=0.0), out.scored.alarm, threshold)


ADAPTERS: list[tuple[type[Runtime], Adapter]] = [
    (DigitRuntime, DigitAdapter()),
    (ImageClassifier, ClassifierAdapter()),
    (SentimentRuntime, SentimentAdapter()),
    (AnomalyRuntime, AnomalyAdapter()),
    (NearestContextRuntime, SeriesAdapter()),
]


def adapter_for(runtime: Runtime) -> Adapter:
    for cls, adapter in ADAPTERS:
        if isinstance(runtime, cls):
            return adapter
    raise TypeError(f"no Open Inference Protocol adapter for {type(runtime).__name__}")
