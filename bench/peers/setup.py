"""Create one virtualenv per peer server, with pinned versions, under ~/.cache/deepserve-peers/<peer>.

    python -m bench.peers.setup [--peers naive,bentoml,litserve,triton,mlserver,perf_analyzer] [--root DIR]

Each peer gets its own environment so their dependencies never meet DeepServe's (BentoML and LitServe pin their
own FastAPI/Starlette/uvicorn). A finished environment is marked with a stamp holding its requirements, so running
this again only installs what changed. Not part of CI: it downloads TensorFlow (~250 MB), Triton (PyTriton's wheel
carries tritonserver) and the other frameworks. perf_analyzer also needs Debian's libb64-0d (said here if absent).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path.home() / ".cache" / "deepserve-peers"  # --root: elsewhere (run.py looks here)

# What a user would install to serve the same model each way; onnxruntime is the version DeepServe runs.
REQUIREMENTS: dict[str, list[str]] = {
    "naive": [
        "tensorflow-cpu==2.21.0",
        "fastapi==0.165.0",
        "uvicorn==0.54.0",
        "python-multipart==0.0.34",
        "pillow==12.3.0",
    ],
    "bentoml": ["bentoml==1.4.39", "onnxruntime==1.32.0", "pillow==12.3.0"],
    "litserve": ["litserve==0.2.19", "onnxruntime==1.32.0", "pillow==12.3.0", "python-multipart==0.0.34"],
    # PyTriton ships tritonserver 2.51 and its Python backend, which runs the model in this environment's Python
    "triton": ["nvidia-pytriton==0.7.0", "onnxruntime==1.32.0", "pillow==12.3.0"],
    # MLServer's worker crashes at start with uvloop 0.22 and 0.23
    "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0", "onnxruntime==1.32.0", "pillow==12.3.0"],
    # A load generator, not a server: Triton's perf_analyzer is in the 2.51 client wheel; it loads libcudart.so.12
    # even for HTTP (the CUDA runtime wheel has it) and libb64.so.0d (Debian's libb64-0d, see perf_analyzer.py)
    "perf_analyzer": ["tritonclient[all]==2.51.0", "nvidia-cuda-runtime-cu12==12.6.77"],
}


def python(peer: str, root: Path = ROOT) -> Path:
    """The peer environment's interpreter."""
    return root / peer / "bin" / "python"


def install(peer: str, root: Path = ROOT) -> None:
    folder = root / peer
    stamp = folder / "requirements.installed"
    wanted = "\n".join(REQUIREMENTS[peer]) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        print(f"{peer}: up to date in {folder}")
        return
    print(f"{peer}: installing {' '.join(REQUIREMENTS[peer])} into {folder}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    pip = [str(python(peer, root)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS[peer]], check=True)
    stamp.write_text(wanted)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", default=",".join(REQUIREMENTS), help="comma-separated, of: " + ", ".join(REQUIREMENTS))
    p.add_argument("--root", type=Path, default=ROOT)
    args = p.parse_args()
    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = sorted(set(peers) - set(REQUIREMENTS))
    if unknown:
        sys.exit(f"unknown peers: {', '.join(unknown)}")
    for peer in peers:
        install(peer, args.root)
    if "perf_analyzer" in peers and args.root == ROOT:
        from bench.peers.perf_analyzer import missing  # it imports ROOT from here

        if problem := missing():
            print(f"perf_analyzer: {problem}")


if __name__ == "__main__":
    main()
