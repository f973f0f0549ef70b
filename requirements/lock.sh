#!/usr/bin/env bash
# `make lock`: regenerate the lock files in requirements/ from pyproject.toml, for CPython 3.11 on linux x86_64
# (the platform of the Makefile, the Docker images and CI). Every package is pinned with its sha256 hashes, so
# `pip install --require-hashes -r ...` installs exactly these files or fails:
#   torch.txt  PyTorch's CPU wheel, from PyTorch's CPU index (PyPI's torch is the CUDA build, several GB)
#   dev.txt    the [train,test,distilbert,tracking] extras and the service's own dependencies, torch's included
#              (make test; torch itself from torch.txt)
#   serve.txt  the service's dependencies alone (make serve, the runtime image)
#   train.txt  the service's and the [train] extra's (the Docker training image)
#   serve-gpu.txt  serve.txt for the GPU image (Dockerfile.gpu): CPython 3.12 (Ubuntu 24.04's), onnxruntime-gpu
#              instead of onnxruntime (both are the `onnxruntime` module: never both), below 1.27: PyPI's
#              onnxruntime-gpu is built for CUDA 12 up to 1.26 and for CUDA 13 from 1.28 on (libcublasLt.so.13),
#              and the image's base is CUDA 12.6 (with a newer one the CUDA provider fails and it runs on the CPU)
# Versions already pinned are kept while pyproject.toml still allows them; UPGRADE=1 takes the newest allowed.
# serve.txt and train.txt are resolved within dev.txt, serve-gpu.txt within serve.txt, so they agree on every
# version they share (onnxruntime-gpu aside).
# Needs PyPI and TORCH_INDEX; uv (pinned below) is installed into a scratch virtualenv, not into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never  # the lock files name a Python version; nothing needs one installed
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
UV_VENV=${UV_VENV:-${TMPDIR:-/tmp}/deepserve-uv}
UV_VERSION=0.13.9
if [ "$("$UV_VENV/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python3 -m venv "$UV_VENV"
  "$UV_VENV/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PLATFORM=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)
COMPILE=("$UV_VENV/bin/uv" pip compile -q pyproject.toml --generate-hashes "${PLATFORM[@]}"
         --custom-compile-command "make lock" ${UPGRADE:+--upgrade})

# torch: the version pyproject.toml pins in [distilbert], its CPU build's wheel, hashed here (pip, so the CPU
# index or a pip configuration's find-links provide it).
TORCH=$(python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print(next(r.split('==')[1] for r in p['optional-dependencies']['distilbert'] if r.startswith('torch==')))")
"$UV_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --implementation cp --index-url "$TORCH_INDEX" -d "$TMP/torch" "torch==$TORCH+cpu"
WHEEL=$(ls "$TMP"/torch/torch-*.whl)
{
  echo "# Written by \`make lock\` (requirements/lock.sh): PyTorch's CPU wheel for CPython 3.11, linux x86_64."
  echo "# Installed with --no-deps from PyTorch's CPU index (TORCH_INDEX); its dependencies are in dev.txt."
  echo "torch==$TORCH+cpu \\"
  echo "    --hash=sha256:$(sha256sum "$WHEEL" | cut -d' ' -f1)"
} > requirements/torch.txt

"${COMPILE[@]}" --extra train --extra test --extra distilbert --extra tracking \
  --find-links "$TMP/torch" -c requirements/torch.txt --no-emit-package torch \
  -o requirements/dev.txt
"${COMPILE[@]}" -c requirements/dev.txt -o requirements/serve.txt
"${COMPILE[@]}" --extra train -c requirements/dev.txt -o requirements/train.txt
python3 -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join([d for d in deps if not d.startswith('onnxruntime')] + ['onnxruntime-gpu>=1.19,<1.27']))" \
  | "$UV_VENV/bin/uv" pip compile -q - --generate-hashes --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
      --custom-compile-command "make lock" ${UPGRADE:+--upgrade} -c requirements/serve.txt -o requirements/serve-gpu.txt
wc -l requirements/*.txt
