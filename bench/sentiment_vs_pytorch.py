"""MiniLM sentiment: DeepServe's int8 ONNX model, micro-batched, against a plain FastAPI + PyTorch server of the
same model (bench/peers/pytorch_sentiment.py), one after the other in the same run (issue target: >= 3x at c=32).

    python -m bench.sentiment_vs_pytorch [--seconds 12] [--levels 1,32] [--texts 30]

Servers: the plain PyTorch one; DeepServe as `deepserve serve` starts it (MiniLM unbatched, the default); and
DeepServe with DEEPSERVE_BATCH_MODELS=minilm (its session then gets cores // workers threads). Every server first
answers each review once; under load (wrk, bench/peers/load.lua) every answer must then be the label that server
gave that review (the PyTorch peer's weights are random when hf/model.safetensors is not there, so its labels are
its own). Rates count right answers only: a 429 (DeepServe's admission limits) is an error, not a request served.
Needs Debian's wrk and the [distilbert] extra (torch, transformers) in this interpreter.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.peers.run import REPO, Server, check_free, deepserve, load_average, measure, start, stop
from bench.service import review


def servers(port: int, models: Path) -> dict[str, Server]:
    version = json.loads((models / "minilm" / "promoted.json").read_text())["version"]
    hf = models / "minilm" / version / "hf"
    plain = [sys.executable, "-m", "uvicorn", "bench.peers.pytorch_sentiment:app", "--port", str(port)]
    batched = deepserve("DeepServe, MiniLM int8 batched", port, models)
    batched.env = {"DEEPSERVE_BATCH_MODELS": "minilm"}
    return {
        "pytorch": Server(
            "plain FastAPI + PyTorch (fp32)", [*plain, "--no-access-log"], "/health", {"MINILM_HF": str(hf)}
        ),
        "deepserve": deepserve("DeepServe, MiniLM int8 (default: unbatched)", port, models),
        "batched": batched,
    }


def answers(port: int, bodies: list[bytes]) -> list[str]:
    labels = []
    for body in bodies:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict/sentiment", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            labels.append(json.loads(r.read())["results"][0]["label"])
    return labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=12)
    p.add_argument("--levels", default="1,32", type=lambda s: [int(c) for c in s.split(",")])
    p.add_argument("--texts", type=int, default=30)
    p.add_argument("--models", type=Path, default=REPO / "models")
    p.add_argument("--port", type=int, default=18434)
    args = p.parse_args()
    rng = random.Random(0)
    bodies = [
        json.dumps({"text": review(rng.randint(20, 80), rng), "model": "minilm"}).encode() for _ in range(args.texts)
    ]
    print(f"load average at start {load_average()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="sentiment-bench-") as tmp:
        for i, body in enumerate(bodies):
            (Path(tmp) / f"{i}.json").write_bytes(body)
        for key, server in servers(args.port, args.models.resolve()).items():
            check_free(args.port)
            process, ready = start(server, args.port, 180, Path(tmp) / f"{key}.log")
            try:
                labels = answers(args.port, bodies)
                manifest = Path(tmp) / f"{key}.txt"
                manifest.write_text(
                    "".join(f"{label}\tapplication/json\t{tmp}/{i}.json\n" for i, label in enumerate(labels))
                )
                url = f"http://127.0.0.1:{args.port}/predict/sentiment"
                results[key] = [measure(process.pid, url, c, args.seconds, manifest, "label") for c in args.levels]
            finally:
                stop(process)
            for row in results[key]:
                correct = 100 * (row["correct"] or 0)
                print(f"  {server.name} c={row['concurrency']}: {row['right_per_second']:.1f} right/s, "
                      f"p50 {row['p50_ms']:.1f} ms, "
                      f"{row['errors']} errors, {correct:.1f}% its own answers", flush=True)  # fmt: skip
    print(f"\n{'right answers/s, p50':45}" + "".join(f"{'c=' + str(c):>14}{'p50 ms':>9}" for c in args.levels))
    names = servers(args.port, args.models)
    for key, rows in results.items():
        print(f"{names[key].name:45}" + "".join(f"{r['right_per_second']:14.1f}{r['p50_ms']:9.1f}" for r in rows))
    for i, c in enumerate(args.levels):
        base = max(results["pytorch"][i]["right_per_second"], 1e-9)
        ratios = ", ".join(
            f"{names[k].name} {results[k][i]['right_per_second'] / base:.2f}x" for k in results if k != "pytorch"
        )
        print(f"c={c}, against plain PyTorch: {ratios}")


if __name__ == "__main__":
    main()
