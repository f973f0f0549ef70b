"""The model interface every runtime implements, LitServe-style: cost -> decode -> predict (a batch) -> encode.

A route parses HTTP into the family's request type `Req` and hands it to `app/core/serving.py`, which charges
`cost(request)` to the admission budget, runs `decode(request)` into model inputs `In`, `predict`s them (on the
worker pool, micro-batched where configured) into typed outputs `Out`, and `encode`s the response body. Nothing
here knows HTTP: the web layer only parses and serialises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from app.config import Settings
from app.manifest import ManifestEntry
from app.schemas import ModelRef

Req = TypeVar("Req")  # what a request carries, parsed from HTTP (an upload, texts, a series)
In = TypeVar("In")  # one model input
Out = TypeVar("Out")  # one model output


class Runtime(ABC, Generic[Req, In, Out]):
    """A loaded artifact. `predict` is synchronous, framework-specific, and returns one output per input."""

    kind: ClassVar[str]  # the manifest's `runtime` field that selects this class
    decode_blocks: ClassVar[bool] = False  # True: `decode` is CPU work (image decoding) and runs on the worker pool
    batchable: ClassVar[bool] = True  # False: never micro-batched (explainers: one per request, many inputs each)
    # > 0: a request's inputs go to `model()` in calls of at most this many, and the work stops between two calls
    # once its client has hung up (an explanation's texts: app/families/explain_text.py); 0: one `predict` call.
    call_inputs: ClassVar[int] = 0

    def __init__(self, entry: ManifestEntry, artifact_dir: Path, settings: Settings) -> None:
        self.entry = entry
        self.artifact_dir = artifact_dir
        self.settings = settings

    def batched(self) -> bool:
        """Whether settings micro-batch this model (app/core/inference.py): concurrent requests share one call."""
        batching = self.settings.max_batch_size > 1 and self.entry.name in self.settings.batch_models
        return self.batchable and batching

    def inline(self, request: Req) -> bool:
        """Whether a `decode_blocks` runtime's decode + predict for `request` is cheap enough (well under a
        millisecond) to run on the event loop instead of waking a pool thread for it (app/core/inference.py)."""
        return False

    @abstractmethod
    def load(self) -> None:
        """Read the artifact; raise on a missing or corrupt file."""

    @abstractmethod
    def warmup(self) -> None:
        """Run one prediction so the first request does not pay for lazy initialisation."""

    @abstractmethod
    def cost(self, request: Req) -> int:
        """Bytes of working memory the request will need (an upper estimate, measured per family), known before
        any of its work starts: the admission budget charges it (app/core/limiter.py)."""

    @abstractmethod
    def decode(self, request: Req) -> list[In]:
        """The request's model inputs; raise a ServeError (4xx) for input the model cannot take."""

    @abstractmethod
    def predict(self, batch: list[In]) -> list[Out]:
        """One output per input, in order."""

    @abstractmethod
    def encode(self, request: Req, outputs: list[Out]) -> BaseModel:
        """The response body for the request's outputs."""

    @abstractmethod
    def input_description(self) -> dict[str, Any]:
        """What the endpoint accepts, for GET /models/{name}."""

    def model(self) -> Runtime:
        """The runtime whose `predict` takes this one's inputs when it works in `call_inputs` calls: an explainer's
        served model (so its calls are batched and observed as any of that model's)."""
        return self

    def ref(self) -> ModelRef:
        return ModelRef(name=self.entry.name, version=self.entry.version)

    def file(self, role: str) -> Path:
        """Path of one of the artifact's files, by the role the manifest gives it."""
        if role not in self.entry.files:
            raise FileNotFoundError(f"manifest entry {self.entry.name} v{self.entry.version} lists no '{role}' file")
        return self.artifact_dir / self.entry.files[role]


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


def onnx_session(path: Path, threads: int, shrink_arena: bool = False, spinning: bool = False):
    """An ONNX Runtime CPU session (or CUDA when the GPU build of onnxruntime is installed); with `shrink_arena`,
    a ShrinkingSession (for variable input shapes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle intra-op threads sleep instead of spinning for work (unless `spinning`): several requests run sessions at
    # once on the worker pool, and spinning threads burn the cores those requests (and the event loop) need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    return ShrinkingSession(session) if shrink_arena else session
