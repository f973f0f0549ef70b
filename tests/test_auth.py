"""Who may call the service: API keys, per-client rate limits and CORS, in-process and behind a real uvicorn."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from app.auth import main as auth_main
from app.config import Settings
from app.main import create_app
from app.rate_limit import RateLimitMiddleware, TokenBucketLimiter, group
from tests.support.digit_images import render
from tests.support.service import assert_error, serve

PNG = render(7, "mnist_28")
ALPHA, GAMMA, DELTA = "alpha-0123456789abcdef", "gamma-0123456789abcdef", "delta-0123456789abcdef"
OMEGA = "omega-0123456789abcdef"
BETA = "beta-key-from-the-file-0123456789"  # stored only as its SHA-256 in the keys file
ORIGIN = "https://app.example"
MODES = ["asgi", "uvicorn"]


def predict(client, headers: dict[str, str] | None = None):
    return client.post("/predict/digit", content=PNG, headers={"content-type": "image/png", **(headers or {})})


def keys_file(folder: Path) -> Path:
    path = folder / "api_keys"
    path.write_text(f"# clients\n\nbeta:{hashlib.sha256(BETA.encode()).hexdigest()}\n")
    return path


@pytest.fixture(scope="module", params=MODES)
def keyed(request, trained_models_dir: Path, tmp_path_factory):
    """Keys from the environment and from a hashed keys file, CORS for one origin; /metrics and docs left open."""
    settings = Settings(
        models_dir=trained_models_dir,
        api_keys=[ALPHA],
        api_keys_file=keys_file(tmp_path_factory.mktemp("keys")),
        cors_origins=[ORIGIN],
    )
    with serve(request.param, settings) as client:
        yield client


@pytest.fixture(scope="module", params=MODES)
def closed(request, trained_models_dir: Path):
    """Keys, /metrics behind them, no docs, and a rate limit of 3 requests per key (refill: one per 1,000 s)."""
    settings = Settings(
        models_dir=trained_models_dir,
        api_keys=[ALPHA, GAMMA, DELTA, OMEGA],
        auth_metrics=True,
        docs_enabled=False,
        rate_limit_per_second=0.001,
        rate_limit_burst=3,
    )
    with serve(request.param, settings) as client:
        yield client


# --- off by default ---------------------------------------------------------------------------------------------


def test_without_settings_everything_is_open_and_has_no_cors(client) -> None:
    assert predict(client).status_code == 200
    assert predict(client, {"authorization": "Bearer whatever"}).status_code == 200
    for path in ("/models", "/metrics", "/docs", "/openapi.json"):
        response = client.get(path, headers={"origin": ORIGIN})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    preflight = client.request(
        "OPTIONS", "/predict/digit", headers={"origin": ORIGIN, "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


# --- API keys ---------------------------------------------------------------------------------------------------


def test_no_key_is_401_with_www_authenticate(keyed) -> None:
    for response in (predict(keyed), keyed.get("/models"), keyed.get("/models/digit"), keyed.get("/nowhere")):
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {ALPHA}x"},
        {"x-api-key": "wrong-key-123"},
        {"authorization": "Basic YWxwaGE6eA=="},  # not a bearer token, and no X-API-Key
        {"authorization": "Bearer"},
        {"x-api-key": hashlib.sha256(BETA.encode()).hexdigest()},  # the stored digest is not a key
    ],
)
def test_wrong_key_is_401_and_not_echoed(keyed, headers: dict[str, str]) -> None:
    response = predict(keyed, headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    presented = headers.get("x-api-key") or headers["authorization"].partition(" ")[2]
    assert not presented or presented not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {ALPHA}"},
        {"authorization": f"bearer {ALPHA}"},
        {"x-api-key": ALPHA},
        {"authorization": f"Bearer {BETA}"},  # from the hashed keys file
        {"x-api-key": BETA},
    ],
)
def test_valid_key_is_served(keyed, headers: dict[str, str]) -> None:
    response = predict(keyed, headers)
    assert response.status_code == 200, response.text
    assert response.json()["model"]["name"] == "digit"
    assert keyed.get("/models/digit", headers=headers).status_code == 200


def test_probes_metrics_and_docs_stay_open_by_default(keyed) -> None:
    for path in ("/health/live", "/health/ready", "/metrics", "/docs", "/redoc", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_settings_close_metrics_and_remove_docs(closed) -> None:
    assert closed.get("/health/live").status_code == 200 and closed.get("/health/ready").status_code == 200
    assert_error(closed.get("/metrics"), 401, "unauthorized")
    for path in ("/docs", "/redoc", "/openapi.json"):  # removed: like any unknown path (3 requests: the burst)
        assert_error(closed.get(path), 401, "unauthorized")
        assert_error(closed.get(path, headers={"x-api-key": OMEGA}), 404, "not_found")


def test_request_log_names_the_client_not_the_key(trained_models_dir: Path, tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("deepserve.access")
    settings = Settings(models_dir=trained_models_dir, api_keys_file=keys_file(tmp_path))
    with serve("asgi", settings) as client:
        logger.addHandler(handler)
        try:
            assert client.get("/models", headers={"x-api-key": BETA}).status_code == 200
        finally:
            logger.removeHandler(handler)
    fields = [r.fields for r in records if r.__dict__.get("fields", {}).get("path") == "/models"]
    assert fields and fields[-1]["client"] == "beta" and BETA not in str(fields)


def test_keys_file_must_hold_hashes(trained_models_dir: Path, tmp_path: Path) -> None:
    plaintext = "my-plaintext-key-pasted-by-mistake"
    cases = {"plaintext": f"ci:{plaintext}\n", "no name": f"{'a' * 64}\n", "empty": "# nothing yet\n"}
    cases["duplicate"] = f"ci:{'a' * 64}\nci:{'b' * 64}\n"
    for text in cases.values():
        path = tmp_path / "keys"
        path.write_text(text)
        with pytest.raises(ValueError, match="app.auth hash") as raised:
            create_app(Settings(models_dir=trained_models_dir, api_keys_file=path))
        assert plaintext not in str(raised.value)


def test_hash_command_prints_a_key_and_its_line(capsys) -> None:
    auth_main(["hash", "ci-bot"])
    out = capsys.readouterr().out.splitlines()
    key = out[0].rsplit(" ", 1)[1]
    assert out[1].endswith(f"ci-bot:{hashlib.sha256(key.encode()).hexdigest()}") and len(key) >= 40


# --- rate limit -------------------------------------------------------------------------------------------------


def test_rate_limit_per_key_and_counted_per_model(closed) -> None:
    alpha = {"authorization": f"Bearer {ALPHA}"}
    assert [predict(closed, alpha).status_code for _ in range(3)] == [200, 200, 200]
    refused = predict(closed, alpha)
    error = assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1 and error["detail"]["burst"] == 3
    assert_error(closed.get("/models", headers=alpha), 429, "rate_limited")
    assert predict(closed, {"x-api-key": GAMMA}).status_code == 200  # another key, its own bucket
    assert closed.get("/health/ready").status_code == 200  # probes are exempt
    metrics = closed.get("/metrics", headers={"x-api-key": DELTA})
    assert metrics.status_code == 200
    assert 'deepserve_rate_limited_total{model="digit"} 1.0' in metrics.text
    assert 'deepserve_rate_limited_total{model="models"} 1.0' in metrics.text


@pytest.mark.parametrize("mode", MODES)
def test_rate_limit_per_address_without_keys(mode: str, trained_models_dir: Path) -> None:
    settings = Settings(models_dir=trained_models_dir, rate_limit_per_second=0.01, rate_limit_burst=2)
    with serve(mode, settings) as client:
        assert [predict(client).status_code for _ in range(2)] == [200, 200]
        refused = predict(client)
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/health/live").status_code == 200


def test_each_of_two_workers_takes_half_the_rate_limit(trained_models_dir: Path) -> None:
    settings = Settings(models_dir=trained_models_dir, workers=2, rate_limit_per_second=0.01, rate_limit_burst=4)
    with serve("asgi", settings) as client:  # one process of two: a client on one connection sees half the rate
        assert [predict(client).status_code for _ in range(2)] == [200, 200]
        error = assert_error(predict(client), 429, "rate_limited")
        assert error["detail"] == {"per_second": 0.005, "burst": 2}


@pytest.mark.parametrize("mode", MODES)
def test_key_and_rate_checks_come_before_the_body_limit(mode: str, trained_models_dir: Path) -> None:
    limits = {"max_upload_bytes": 1000, "rate_limit_per_second": 0.01, "rate_limit_burst": 1}
    settings = Settings(models_dir=trained_models_dir, api_keys=[ALPHA], **limits)
    big = {"content": b"x" * 2000, "headers": {"content-type": "image/png", "x-api-key": ALPHA}}
    with serve(mode, settings) as client:
        assert_error(client.post("/predict/digit", content=big["content"]), 401, "unauthorized")
        assert_error(client.post("/predict/digit", **big), 413, "payload_too_large")  # takes the only token
        assert_error(client.post("/predict/digit", **big), 429, "rate_limited")


def test_token_bucket_refills_with_the_clock() -> None:
    now = [100.0]
    limiter = TokenBucketLimiter(per_second=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # independent bucket
    now[0] += 0.25
    assert limiter.acquire("a") == pytest.approx(0.25)  # refusals take nothing
    now[0] += 0.25
    assert limiter.acquire("a") == 0.0
    now[0] += 60
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]  # never above the burst


def test_token_bucket_tracks_a_bounded_number_of_clients() -> None:
    limiter = TokenBucketLimiter(per_second=1.0, burst=1, max_clients=100, clock=lambda: 0.0)
    assert limiter.acquire("regular") == 0.0
    for i in range(10_000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
        if i % 50 == 0:
            assert limiter.acquire("regular") > 0  # recently used: kept, still out of tokens
    assert len(limiter.buckets) == 100 and "regular" in limiter.buckets and "10.0.0.0" not in limiter.buckets


def test_refusals_are_labelled_by_known_route_groups_only() -> None:
    middleware = RateLimitMiddleware(None, TokenBucketLimiter(1, 1), None, ["/predict/digit", "/models/{name}"])
    assert middleware.groups == {"digit", "models"}
    assert group("/predict/digit") == "digit" and group("/models/lstm") == "models" and group("/metrics") == "metrics"
    assert group("/random/path") not in middleware.groups  # counted as "other"


# --- CORS -------------------------------------------------------------------------------------------------------


def test_cors_allows_only_the_configured_origin(keyed) -> None:
    key = {"x-api-key": ALPHA}
    allowed = keyed.get("/models", headers={**key, "origin": ORIGIN})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    assert {"x-request-id", "retry-after"} <= set(allowed.headers["access-control-expose-headers"].lower().split(", "))
    refused = keyed.get("/models", headers={**key, "origin": "https://evil.example"})
    assert refused.status_code == 200 and "access-control-allow-origin" not in refused.headers
    unauthorized = keyed.get("/models", headers={"origin": ORIGIN})  # a browser can read the 401 body
    assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == ORIGIN


def test_cors_preflight_needs_no_key(keyed) -> None:
    asks = {"access-control-request-method": "POST", "access-control-request-headers": "x-api-key, content-type"}
    preflight = keyed.request("OPTIONS", "/predict/digit", headers={"origin": ORIGIN, **asks})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    other = keyed.request("OPTIONS", "/predict/digit", headers={"origin": "https://evil.example", **asks})
    assert_error(other, 400, "malformed_body")
    assert "access-control-allow-origin" not in other.headers
    put = keyed.request("OPTIONS", "/predict/digit", headers={"origin": ORIGIN, "access-control-request-method": "PUT"})
    assert_error(put, 400, "malformed_body")
