# DeepServe images (CPU). The GPU image is Dockerfile.gpu.
#
#   docker build -t deepserve .                           # default target `runtime`: the API, no TensorFlow
#   docker build --target train -t deepserve-train .      # one-shot training image: the project with [train]
#
# Both install their dependencies from the lock files in requirements/ (CPython 3.11, linux x86_64).
#
# `runtime` holds a virtualenv with requirements/serve.txt and the project (FastAPI, uvicorn, ONNX Runtime,
# Pillow, NumPy, ...) and the models/ folder baked in at /app/models; mount another models folder read-only over
# /app/models to serve other artifacts without rebuilding. `deepserve serve` runs 2 worker processes
# (DEEPSERVE_WORKERS) that share metrics, reloads and anomaly streams through /app/data (writable) and split the
# limits between them.

# ---- build: the serving virtualenv -------------------------------------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the lock file (exact versions, hash-checked; `make lock` writes it), so a code change
# reuses this layer.
COPY requirements/serve.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/serve.txt
COPY pyproject.toml README.md ./
COPY app ./app
# The serving package itself (app/ only: training/ is its own distribution, training/pyproject.toml), without
# extras; then drop the installers, which serving never uses.
RUN pip install --no-cache-dir --no-deps . \
 && pip uninstall -y -q pip setuptools \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

# ---- train: `docker compose --profile train run train` ----------------------------------------------------
FROM python:3.11-slim AS train
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp KERAS_HOME=/tmp/keras MPLCONFIGDIR=/tmp/matplotlib TF_CPP_MIN_LOG_LEVEL=2
RUN python -m venv /opt/venv
WORKDIR /app
# The service's dependencies and the [train] extra (TensorFlow, tf2onnx, onnx, matplotlib), from the lock file.
COPY requirements/train.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/train.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY training ./training
RUN pip install --no-cache-dir --no-deps . ./training
# Writes models/<name>/<version>/ (with its model.json) under /app/models (mount the host's models/ there); the
# `deepserve` command is here too (`deepserve models`, `deepserve promote`: docs/deployment.md).
# Without --data the scripts download their data set; with a data folder mounted at /data, pass --data.
CMD ["python", "-m", "training.train_digit"]

# ---- runtime (default): the API -----------------------------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp DEEPSERVE_MODELS_DIR=/app/models DEEPSERVE_DATA_DIR=/app/data UVICORN_HOST=0.0.0.0 UVICORN_PORT=8000
RUN groupadd --gid 10001 deepserve \
 && useradd --uid 10001 --gid deepserve --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin deepserve
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by root and read-only for the service user: the service never writes its models. Its own state (anomaly
# streams) goes to /app/data, the one folder it may write.
COPY models ./models
RUN install -d -o 10001 -g 10001 /app/data
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('UVICORN_PORT', '8000')}/health/ready\", timeout=2)"]
# UVICORN_HOST / UVICORN_PORT choose the bind address, DEEPSERVE_WORKERS the processes (2; 1 for a 1-CPU quota).
# The app logs one JSON line per request itself.
CMD ["deepserve", "serve"]
