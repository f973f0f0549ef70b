"""The model interface every runtime implements, LitServe-style: load, warm up, predict a batch, describe."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from app.config import Settings
from app.manifest import ManifestEntry


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


def onnx_session(path: Path, threads: int):
    """An ONNX Runtime CPU session (or CUDA when the GPU build of onnxruntime is installed)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)
