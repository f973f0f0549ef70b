# DeepServe images (CPU). The GPU image is Dockerfile.gpu.
#
#   docker build -t deepserve .                           # default target `runtime`: the API, no TensorFlow
#   docker build --target train -t deepserve-train .      # one-shot training image: the project with [train]
#
# `runtime` holds a virtualenv with `pip install .` (FastAPI, uvicorn, ONNX Runtime, Pillow, NumPy, ...) and
# the models/ folder baked in at /app/models; mount another models folder read-only over /app/models to serve
# other artifacts without rebuilding. `deepserve serve` runs 2 worker processes (DEEPSERVE_WORKERS) that share
# metrics, reloads and anomaly streams through /app/data (writable) and split the limits between them.

# ---- build: the serving virtualenv -------------------------------------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (from pyproject.toml only), so a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && pip install --no-cache-dir -r requirements.txt
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
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['train']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt
COPY app ./app
COPY training ./training
RUN pip install --no-cache-dir --no-deps . ./training
# Writes models/<name>/<version>/ (with its model.json) under /app/models (mount the host's models/ there).
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
