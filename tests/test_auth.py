"""Who may call the service: API keys and the admin role, per-client rate limits (by the peer, or the client a
trusted proxy names), CORS and the browser security headers, in-process and behind a real uvicorn."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.http.client_address import ClientAddresses, bucket
from app.http.main import create_app
from app.http.middleware.auth import main as auth_main
from app.http.middleware.rate_limit import RateLimitMiddleware, TokenBucketLimiter, group
from tests.support.digit_images import render
from tests.support.paths import ROOT
from tests.support.service import assert_error, cli_client, serve, uvicorn_client

PNG = render(7, "mnist_28")
ALPHA, GAMMA, DELTA = "alpha-0123456789abcdef", "gamma-0123456789abcdef", "delta-0123456789abcdef"
OMEGA = "omega-0123456789abcdef"
ADMIN = "admin-0123456789abcdef0123"
OPS = "ops-key-from-the-admin-file-0123456789"  # stored only as its SHA-256 in the admin keys file
RELOAD = "/admin/models/digit/reload"
BETA = "beta-key-from-the-file-0123456789"  # stored only as its SHA-256 in the keys file
ORIGIN = "https://app.example"
MODES = ["asgi", "uvicorn"]


def predict(client, headers: dict[str, str] | None = None):
    return client.post("/predict/digit", content=PNG, headers={"content-type": "image/png", **(headers or {})})


def keys_file(folder: Path, name: str = "beta", key: str = BETA) -> Path:
    path = folder / f"{name}_keys"
    path.write_text(f"# clients\n\n{name}:{hashlib.sha256(key.encode()).hexdigest()}\n")
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
        with pytest.raises(ValueError, match="app.http.middleware.auth hash") as raised:
            create_app(Settings(models_dir=trained_models_dir, api_keys_file=path))
        assert plaintext not in str(raised.value)


def test_hash_command_prints_a_key_and_its_line(capsys) -> None:
    auth_main(["hash", "ci-bot"])
    out = capsys.readouterr().out.splitlines()
    key = out[0].rsplit(" ", 1)[1]
    assert out[1].endswith(f"ci-bot:{hashlib.sha256(key.encode()).hexdigest()}") and len(key) >= 40


# --- roles: admin routes ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def roles(request, trained_models_dir: Path, tmp_path_factory):
    """Client keys (ALPHA, BETA from a file) and admin keys (ADMIN, and OPS from an admin keys file)."""
    folder = tmp_path_factory.mktemp("roles")
    settings = Settings(
        models_dir=trained_models_dir,
        api_keys=[ALPHA],
        api_keys_file=keys_file(folder),
        admin_keys=[ADMIN],
        admin_keys_file=keys_file(folder, "ops", OPS),
    )
    with serve(request.param, settings) as client:
        yield client


def test_admin_routes_need_an_admin_key_and_a_client_key_is_403(roles) -> None:
    for path in (RELOAD, RELOAD + "/", "/admin/nowhere", "/admin"):  # every spelling under /admin, routed or not
        assert_error(roles.post(path), 401, "unauthorized")
        assert_error(roles.post(path, headers={"x-api-key": ADMIN + "x"}), 401, "unauthorized")
        for client_key in (ALPHA, BETA):
            refused = roles.post(path, headers={"authorization": f"Bearer {client_key}"})
            error = assert_error(refused, 403, "forbidden")
            assert "admin key" in error["message"] and client_key not in refused.text
            assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
    for admin_key in (ADMIN, OPS):
        answer = roles.post(RELOAD, headers={"authorization": f"Bearer {admin_key}"})
        assert answer.status_code == 200 and answer.json()["name"] == "digit", answer.text


def test_an_admin_key_also_works_on_client_routes(roles) -> None:
    for key in (ADMIN, OPS):
        assert predict(roles, {"x-api-key": key}).status_code == 200
        assert roles.get("/models/digit", headers={"x-api-key": key}).status_code == 200
    assert_error(predict(roles), 401, "unauthorized")


def test_admin_keys_alone_guard_the_admin_routes_and_leave_the_rest_open(trained_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=trained_models_dir, admin_keys=[ADMIN])) as client:
        assert predict(client).status_code == 200
        assert_error(client.post(RELOAD), 401, "unauthorized")
        assert_error(client.post(RELOAD, headers={"x-api-key": ALPHA}), 401, "unauthorized")
        assert client.post(RELOAD, headers={"x-api-key": ADMIN}).status_code == 200


def test_a_name_or_key_in_both_roles_stops_the_service(trained_models_dir: Path, tmp_path: Path) -> None:
    same_key = Settings(models_dir=trained_models_dir, api_keys=[ALPHA], admin_keys=[ALPHA])
    (tmp_path / "clients").mkdir()
    same_name = Settings(
        models_dir=trained_models_dir,
        api_keys_file=keys_file(tmp_path / "clients", "ops", BETA),
        admin_keys_file=keys_file(tmp_path, "ops", OPS),
    )
    for settings in (same_key, same_name):
        with pytest.raises(ValueError, match="both a client key and an admin key"):
            create_app(settings)


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the one its default route would send from), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1; a UDP connect sends nothing
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def test_without_admin_keys_admin_routes_answer_only_this_host(trained_models_dir: Path) -> None:
    """A real uvicorn on this machine's network address: the peer is not loopback, whatever its headers say."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    for keys in ({}, {"api_keys": [ALPHA]}):  # no keys at all; client keys only
        with uvicorn_client(Settings(models_dir=trained_models_dir, **keys), host=address) as client:
            key = {"x-api-key": ALPHA} if keys else {}
            assert predict(client, key).status_code == 200
            forgeries = ({}, {"x-forwarded-for": "127.0.0.1"}, {"x-real-ip": "::1"}, {"forwarded": "for=127.0.0.1"})
            for forged in forgeries:
                error = assert_error(client.post(RELOAD, headers={**key, **forged}), 403, "forbidden")
                assert "DEEPSERVE_ADMIN_KEYS" in error["message"]


def test_a_loopback_peer_that_is_a_trusted_proxy_is_not_this_host(trained_models_dir: Path) -> None:
    settings = Settings(models_dir=trained_models_dir, trusted_proxies=["127.0.0.1"])
    with uvicorn_client(settings) as client:
        for forwarded in ({}, {"x-forwarded-for": "127.0.0.1"}, {"x-forwarded-for": "::1, 127.0.0.1"}):
            assert_error(client.post(RELOAD, headers=forwarded), 403, "forbidden")
        assert predict(client).status_code == 200
    with uvicorn_client(Settings(models_dir=trained_models_dir)) as client:  # the same peer, not a proxy: this host
        assert client.post(RELOAD).status_code == 200


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
    middleware = RateLimitMiddleware(
        None, TokenBucketLimiter(1, 1), None, ["/predict/digit", "/models/{name}"], ClientAddresses()
    )
    assert middleware.groups == {"digit", "models"}
    assert group("/predict/digit") == "digit" and group("/models/lstm") == "models" and group("/metrics") == "metrics"
    assert group("/random/path") not in middleware.groups  # counted as "other"


# --- the client address: the peer, or the client a trusted proxy names -------------------------------------------


def scope(peer: str | None, *forwarded: str) -> dict:
    headers = [(b"x-forwarded-for", value.encode("latin-1")) for value in forwarded]
    return {"type": "http", "client": (peer, 50000) if peer else None, "headers": [(b"host", b"x"), *headers]}


@pytest.mark.parametrize(
    "peer, forwarded, client",
    [
        ("198.51.100.9", ["203.0.113.7"], "198.51.100.9"),  # not a trusted peer: its header counts for nothing
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy's own request
        ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("127.0.0.1", ["1.1.1.1, 203.0.113.7"], "203.0.113.7"),  # whatever the client wrote before its address
        ("127.0.0.1", ["1.1.1.1, 203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # through two trusted proxies
        ("127.0.0.1", ["1.1.1.1", "203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # several header lines, in order
        ("127.0.0.1", ["10.0.0.1, 10.1.2.3"], "10.0.0.1"),  # every hop a trusted proxy: the first one
        ("::1", [" 2001:DB8::1 "], "2001:db8::1"),  # normalised
        ("127.0.0.1", ["::ffff:203.0.113.7"], "203.0.113.7"),  # an IPv4-mapped address is the IPv4 one
        ("::ffff:127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("127.0.0.1", ["fe80::1%eth0"], "fe80::1"),  # no zone
        ("127.0.0.1", ["junk, 203.0.113.7"], "203.0.113.7"),  # junk left of the client is never read
        ("127.0.0.1", ["203.0.113.7, junk"], "127.0.0.1"),  # junk where it is read: the peer
        ("127.0.0.1", ["203.0.113.7:8080"], "127.0.0.1"),
        ("127.0.0.1", ["[2001:db8::1]:80"], "127.0.0.1"),
        ("127.0.0.1", ["unknown"], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7,"], "127.0.0.1"),
        ("127.0.0.1", [""], "127.0.0.1"),
        ("127.0.0.1", ["1" * 100], "127.0.0.1"),
        ("127.0.0.1", ["1.2.3.4, " * 1000 + "203.0.113.7"], "127.0.0.1"),  # oversized: the peer
        ("127.0.0.1", ["203.0.113.7\x00"], "127.0.0.1"),
        ("not-an-address", ["203.0.113.7"], None),
        (None, ["203.0.113.7"], None),  # a Unix socket
    ],
)
def test_the_client_is_the_right_most_forwarded_address_that_is_not_a_trusted_proxy(
    peer: str | None, forwarded: list[str], client: str | None
) -> None:
    addresses = ClientAddresses(Settings(trusted_proxies=["127.0.0.1", "::1", "10.0.0.0/8"]).trusted_proxies)
    found = addresses.client(scope(peer, *forwarded))
    assert (None if found is None else str(found)) == client


def test_rate_limit_keys_are_short_whatever_is_sent() -> None:
    addresses = ClientAddresses(["127.0.0.1"])
    keys = {bucket(addresses.client(scope("127.0.0.1", f"2001:db8::{i:x}"))) for i in range(1, 100)}
    assert keys == {"2001:db8::/64"}  # an IPv6 client counts by its /64, not per address
    assert bucket(None) == "unknown" and bucket(addresses.client(scope("127.0.0.1", "x" * 150_000))) == "127.0.0.1"


def test_this_host_is_a_loopback_peer_that_is_not_a_trusted_proxy() -> None:
    assert ClientAddresses().is_local(scope("127.0.0.1")) and ClientAddresses().is_local(scope("::1"))
    assert ClientAddresses().is_local(scope("127.8.9.10"))
    assert not ClientAddresses().is_local(scope("192.0.2.2", "127.0.0.1"))
    assert not ClientAddresses(["127.0.0.0/8"]).is_local(scope("127.0.0.1"))
    assert not ClientAddresses().is_local(scope(None))


@pytest.mark.parametrize("value", ["10.0.0.0/33", "localhost", "10.0.0.1, nonsense"])
def test_a_trusted_proxy_that_is_not_an_address_stops_the_service(value: str) -> None:
    with pytest.raises(ValidationError, match="DEEPSERVE_TRUSTED_PROXIES"):
        Settings(trusted_proxies=value)


def test_trusted_proxies_take_addresses_and_networks() -> None:
    settings = Settings(trusted_proxies=" 10.0.0.1 , 10.1.2.3/8,::1 ")
    assert settings.trusted_proxies == ["10.0.0.1/32", "10.0.0.0/8", "::1/128"]


# `deepserve serve` as a user starts it (one process, so one bucket per client), 2 requests per client.
LIMITED = {"DEEPSERVE_RATE_LIMIT_PER_SECOND": "0.001", "DEEPSERVE_RATE_LIMIT_BURST": "2", "DEEPSERVE_MODELS": "digit"}


def statuses(client, *forwarded: str | None) -> list[int]:
    headers = [{"x-forwarded-for": value} if value is not None else {} for value in forwarded]
    return [client.get("/models", headers=h).status_code for h in headers]


def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_rate_limit(trained_models_dir: Path) -> None:
    with cli_client(trained_models_dir, 1, LIMITED) as client:
        sent = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "127.0.0.2", None]
        assert statuses(client, *sent) == [200, 200, 429, 429, 429, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(trained_models_dir: Path) -> None:
    env = {**LIMITED, "DEEPSERVE_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"}
    with cli_client(trained_models_dir, 1, env) as client:
        # One client whatever it writes to the left, directly or through a second proxy; another has its own bucket.
        one_client = ["203.0.113.7", "1.1.1.1, 203.0.113.7", "6.6.6.6, 203.0.113.7, 10.9.9.9"]
        assert statuses(client, *one_client) == [200, 200, 429]
        assert statuses(client, "198.51.100.2", "198.51.100.2") == [200, 200]
        assert statuses(client, "2001:db8::1", "2001:db8::2", "2001:db8::ffff") == [200, 200, 429]  # one /64
        # Headers that name no client count as the proxy itself: one bucket, not an escape.
        assert statuses(client, "junk", "1.2.3.4, " * 1000 + "1.2.3.4", None) == [200, 200, 429]


@pytest.mark.slow
def test_a_flood_of_huge_forwarded_headers_leaves_memory_where_it_was(trained_models_dir: Path) -> None:
    """3,000 requests, each with its own 150 KB X-Forwarded-For, through a trusted proxy (the peer): the server's RSS
    stays within a few MB (the code before stored each header as a client: +432 MB)."""
    settings = Settings(
        models_dir=trained_models_dir, trusted_proxies=["127.0.0.1"], rate_limit_per_second=1000, rate_limit_burst=10
    )
    pad = "9" * 150_000

    def flood(client, first: int, count: int) -> None:
        for i in range(first, first + count):
            client.get("/models", headers={"x-forwarded-for": f"10.{i % 256}.{i // 256}.1{pad}"})

    with uvicorn_client(settings) as client:
        flood(client, 0, 300)  # the allocator's steady state for requests this size
        before = rss_mb(client.pid)
        flood(client, 300, 3000)
        after = rss_mb(client.pid)
    print(f"RSS before {before:.1f} MB, after 3,000 requests with a 150 KB X-Forwarded-For {after:.1f} MB")
    assert after - before < 16, (before, after)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_every_command_that_runs_uvicorn_turns_its_proxy_headers_off() -> None:
    """uvicorn's own X-Forwarded-For reader trusts 127.0.0.1 by default and rewrites the client before the app sees
    it: every uvicorn command line in the images and manifests turns it off (`deepserve serve` is tested above)."""
    files = [*ROOT.glob("Dockerfile*"), *ROOT.glob("docker-compose*.yml"), *(ROOT / "deploy").rglob("*.yaml")]
    lines = [line for f in files for line in f.read_text().splitlines()]
    commands = [line for line in lines if '["uvicorn"' in line.replace(" ", "")]  # CMD [...] and command: [...]
    assert commands and all("--no-proxy-headers" in line for line in commands), commands


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


def test_cors_preflight_allows_the_apis_own_methods_and_headers(keyed) -> None:
    """What the routes take: DELETE on streams, X-Model-Version on predictions, /v2's binary-body header."""
    asks = [
        ("/predict/digit", "POST", "x-api-key, x-model-version, content-type, x-request-id"),
        ("/anomaly/streams/s1", "DELETE", "authorization"),
        ("/v2/models/digit/infer", "POST", "inference-header-content-length, content-type, x-api-key"),
    ]
    for path, method, headers in asks:
        ask = {"origin": ORIGIN, "access-control-request-method": method, "access-control-request-headers": headers}
        preflight = keyed.request("OPTIONS", path, headers=ask)
        assert preflight.status_code == 200, preflight.text
        assert method in preflight.headers["access-control-allow-methods"]
        allowed = set(preflight.headers["access-control-allow-headers"].lower().split(", "))
        assert set(headers.split(", ")) <= allowed
    get = keyed.request("OPTIONS", "/models", headers={"origin": ORIGIN, "access-control-request-method": "GET"})
    assert set(get.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "DELETE"}
    other = {"origin": ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "x-evil"}
    error = assert_error(keyed.request("OPTIONS", "/predict/digit", headers=other), 400, "malformed_body")
    assert "X-Model-Version" in error["detail"]["allowed_headers"] and "DELETE" in error["detail"]["allowed_methods"]


def test_cors_exposes_the_response_headers_a_client_reads(keyed) -> None:
    response = keyed.get("/models", headers={"origin": ORIGIN})  # a 401: WWW-Authenticate says why
    exposed = set(response.headers["access-control-expose-headers"].lower().split(", "))
    assert {"x-request-id", "retry-after", "www-authenticate", "inference-header-content-length"} <= exposed


# --- browser security headers -----------------------------------------------------------------------------------


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy as directive -> sources."""
    directives = (d.strip().partition(" ") for d in response.headers["content-security-policy"].split(";"))
    return {name: sources for name, _, sources in directives}


@pytest.mark.parametrize("mode", MODES)
def test_html_pages_send_a_csp_deny_framing_and_every_answer_says_nosniff(mode: str, trained_models_dir: Path) -> None:
    with serve(mode, Settings(models_dir=trained_models_dir)) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = policy(page)  # the playground: its own files and calls only
        assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
        assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
        assert csp["img-src"] == "'self' data:" and csp["base-uri"] == "'none'" and csp["form-action"] == "'none'"
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):  # Swagger UI and ReDoc, their assets served here
            docs = client.get(path)
            csp = policy(docs)
            assert csp["frame-ancestors"] == "'none'" and "'unsafe-inline'" not in csp["script-src"]
            for script in re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL):  # each inline script, by hash
                digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
                assert f"'sha256-{digest}'" in csp["script-src"].split()
        for response in (page, docs, client.get("/docs")):
            assert response.headers["x-frame-options"] == "DENY"
        for response in (page, client.get("/models"), client.get("/static/playground.js"), client.get("/nowhere"),
                         client.post("/predict/digit", content=b"junk", headers={"content-type": "image/png"})):
            assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert "content-security-policy" not in client.get("/models").headers  # JSON runs no script
