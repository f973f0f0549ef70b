"""Peer: Triton Inference Server (tritonserver 2.51, through PyTriton 0.7) running the digit model's ONNX export with
ONNX Runtime in its Python backend, with dynamic batching.

    DIGIT_MODEL=models/digit/1/model.onnx python -m bench.peers.triton_server --port 8000

Model `digit` over Triton's HTTP/REST Open Inference Protocol: input `image` BYTES [n, 1] (the encoded file, raw in
the binary-data extension, as tritonclient and perf_analyzer send it), outputs `digit` INT64 [n, 1] and
`confidence` FP32 [n, 1]; decoded with the naive 28x28 grey resize, as the other peers do. Concurrent requests
are batched by Triton's dynamic batcher (up to 32 rows, waiting at most 100 us for more), one ONNX Runtime call
per batch. The endpoints PyTriton keeps behind a token by default (statistics, which perf_analyzer reads) are
open. The gRPC and metrics ports are the HTTP port + 1 and + 2. Triton's Python backend loads the libpython it
finds first, the system's unless this interpreter's own comes first on LD_LIBRARY_PATH (set here for the
tritonserver process PyTriton starts).
"""

import argparse
import io
import os
import sysconfig

import numpy as np
import onnxruntime as ort
from PIL import Image
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

libraries = [sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")]
os.environ["LD_LIBRARY_PATH"] = ":".join(path for path in libraries if path)
session = ort.InferenceSession(os.environ["DIGIT_MODEL"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name


def pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png)).convert("L").resize((28, 28))
    return np.asarray(image, dtype=np.float32).reshape(28, 28, 1) / 255.0


@batch
def infer(image: np.ndarray) -> dict[str, np.ndarray]:
    p = session.run(None, {input_name: np.stack([pixels(row[0]) for row in image])})[0]
    return {"digit": p.argmax(axis=1).astype(np.int64)[:, None], "confidence": p.max(axis=1)[:, None]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    config = TritonConfig(
        http_address="127.0.0.1", http_port=args.port, grpc_address="127.0.0.1", grpc_port=args.port + 1,
        metrics_address="127.0.0.1", metrics_port=args.port + 2,
    )  # fmt: skip
    with Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=[])) as triton:
        triton.bind(
            model_name="digit",
            infer_func=infer,
            inputs=[Tensor(name="image", dtype=bytes, shape=(1,))],
            outputs=[
                Tensor(name="digit", dtype=np.int64, shape=(1,)),
                Tensor(name="confidence", dtype=np.float32, shape=(1,)),
            ],
            config=ModelConfig(max_batch_size=32, batcher=DynamicBatcher(max_queue_delay_microseconds=100)),
        )
        triton.serve()
