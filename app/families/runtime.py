"""The model interface every runtime implements, LitServe-style: load, warm up, predict a batch, describe."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from app.config import Settings
from app.manifest import ManifestEntry

if TYPE_CHECKING:
    from PIL import Image


class Runtime(ABC):
    """A loaded artifact. `predict` is synchronous, framework-specific, and returns one output per input."""

    kind: ClassVar[str]  # the manifest's `runtime` field that selects this class

    def __init__(self, entry: ManifestEntry, artifact_dir: Path, settings: Settings) -> None:
        self.entry = entry
        self.artifact_dir = artifact_dir
        self.settings = settings

    @abstractmethod
    def load(self) -> None:
        """Read the artifact; raise on a missing or corrupt file."""

    @abstractmethod
    def warmup(self) -> None:
        """Run one prediction so the first request does not pay for lazy initialisation."""

    @abstractmethod
    def predict(self, batch: list[Any]) -> list[Any]:
        """One output per input, in order."""

    @abstractmethod
    def input_description(self) -> dict[str, Any]:
        """What the endpoint accepts, for GET /models/{name}."""

    def file(self, role: str) -> Path:
        """Path of one of the artifact's files, by the role the manifest gives it."""
        if role not in self.entry.files:
            raise FileNotFoundError(f"manifest entry {self.entry.name} v{self.entry.version} lists no '{role}' file")
        return self.artifact_dir / self.entry.files[role]


class ImageClassifier(Runtime):
    """A runtime POST /predict/image can serve: an ONNX model from one image input to class probabilities, with
    its class names in the artifact's labels.json. `prepare` turns one decoded image into the model's input (run
    in a worker thread, inside the request's admission slot); `predict` answers label, confidence and top_k."""

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

    @abstractmethod
    def check_input(self, shape: list[Any]) -> None:
        """Raise ValueError for an ONNX input shape [batch, ...] this runtime cannot feed."""

    @abstractmethod
    def prepare(self, image: Image.Image) -> Any:
        """A decoded image (any size and mode) -> one input for `predict`."""

    def predict(self, batch: list[Any]) -> list[dict[str, Any]]:
        import numpy as np

        probabilities = self.session.run(None, {self.input_name: np.stack(batch).astype(np.float32)})[0]
        k = min(self.TOP_K, len(self.labels))
        results = []
        for p in probabilities:
            order = np.argsort(-p, kind="stable")[:k]
            top = [{"label": self.labels[i], "score": float(p[i])} for i in order]
            results.append({"label": top[0]["label"], "confidence": top[0]["score"], "top_k": top})
        return results


class ShrinkingSession:
    """An ONNX Runtime session whose every `run` gives its CPU arena back when it ends.

    The arena plans and reuses buffers within a call (the lowest peak), but by default keeps what the largest
    call needed for the life of the process: one burst of long texts pinned the LSTM's 32 x 600-token
    activations (+66 MB per concurrent call, held after the burst). With `memory.enable_memory_arena_shrinkage`
    the same call peaks at the same +66 MB and keeps 4 MB; turning the arena off instead kept 19 MB but peaked
    at +103 MB (unplanned buffers). For models whose input shapes vary per request (texts, series)."""

    def __init__(self, session) -> None:
        import onnxruntime as ort

        self.session = session
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names, input_feed, run_options=None):
        return self.session.run(output_names, input_feed, run_options or self.run_options)

    def __getattr__(self, name: str):
        return getattr(self.session, name)


def onnx_session(path: Path, threads: int, shrink_arena: bool = False):
    """An ONNX Runtime CPU session (or CUDA when the GPU build of onnxruntime is installed); with `shrink_arena`,
    a ShrinkingSession (for variable input shapes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    return ShrinkingSession(session) if shrink_arena else session
