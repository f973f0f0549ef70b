"""What the digit model's out-of-distribution checks cost per request (one 28x28 digit), in microseconds.

    python -m bench.digit_ood_cost [--models models] [--before before-model.json]

The model call with and without the features output (model.onnx's second output, training/calibrate.py), and
DigitRuntime.judge: the artifact's checks (ink statistics with the enlargement ones, confidence, features) against
`--before`'s (e.g. `git show <commit>:models/digit/1/model.json > before.json`: ink and confidence only).
Medians of 5 runs of 2,000 calls.
"""

from __future__ import annotations

import argparse
import json
import timeit
from io import BytesIO
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from app.config import Settings
from app.families.digit.preprocess import preprocess_digit
from app.families.digit.runtime import DigitRuntime
from app.families.ood import Gate, ink_statistics
from app.manifest import read_manifest
from tests.support.digit_images import render


def micros(fn, number: int = 2000) -> float:
    fn()
    return float(np.median(timeit.repeat(fn, number=number, repeat=5))) / number * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--before", type=Path, help="an earlier digit model.json: its checks are timed too")
    args = p.parse_args()
    entry = read_manifest(args.models).served()["digit"]
    runtime = DigitRuntime(entry, args.models / entry.path, Settings())
    runtime.load()
    x = preprocess_digit(Image.open(BytesIO(render(3, "mnist_28"))))[None].astype(np.float32)
    model = onnx.load(str(runtime.file("onnx")))
    del model.graph.output[1:]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    alone = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = runtime.input_name
    outputs = runtime.session.run(None, {name: x})
    probabilities, features = outputs[0], outputs[1] if len(outputs) > 1 else None
    rows = {
        "model call, probabilities only": micros(lambda: alone.run(None, {name: x})),
        "model call, probabilities and features": micros(lambda: runtime.session.run(None, {name: x})),
        "ink statistics (5)": micros(lambda: ink_statistics(x)),
        "ink statistics (7, enlarged=True)": micros(lambda: ink_statistics(x, enlarged=True)),
        "judge: the artifact's checks": micros(lambda: runtime.judge(x, probabilities, features)),
    }
    if args.before:
        before = Gate.from_metrics(json.loads(args.before.read_text())["metrics"])
        assert before is not None
        rows["judge: --before's checks"] = micros(
            lambda: before.verdicts({"ink": ink_statistics(x), "confidence": 1.0 - probabilities.max(axis=1)})
        )
    for label, value in rows.items():
        print(f"{label:45} {value:8.1f} us")


if __name__ == "__main__":
    main()
