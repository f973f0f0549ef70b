"""Schemathesis over the live OpenAPI document of a real uvicorn server serving every family trained in the session
(digit, lstm, anomaly; image is not installed there, so /predict/image answers its documented 503).

Positive and negative data for every operation, through the examples, coverage (the boundaries of every stated
constraint, wrong methods, wrong content types) and fuzzing phases, derandomized so CI is reproducible. Every
response must: not be a 5xx (503 only for a model the deployment does not have), have a documented status, content
type, headers and body, refuse schema-invalid data, and, for a schema-valid request, not be a 422: the schema states
every constraint but those it cannot, all documented: what an image shows (a blank image is 422), an image
model's class names as /explain/image's `target` (its artifact's labels) and anomaly timestamps matching the
values in number and strictly increasing (positive cases are made to obey them).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from tests.support.service import uvicorn_client

pytestmark = pytest.mark.slow  # about 1,700 requests: 30-60 s

MAX_EXAMPLES = 300  # per operation, for each phase that generates
IMAGE_ROUTES = {"/predict/digit", "/predict/image", "/explain/digit", "/explain/image"}
EPOCH = datetime(2001, 1, 1)
SENT: Counter[tuple[str, str]] = Counter()  # (operation, generation mode) -> requests sent


@pytest.fixture(scope="module")
def live_url(all_models_dir: Path):
    with uvicorn_client(Settings(models_dir=all_models_dir)) as client:
        yield str(client.base_url).rstrip("/")


@pytest.fixture(scope="module")
def http(live_url: str):
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def live_schema(live_url: str):
    config = schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
            "phases": {"stateful": {"enabled": False}},
            # 503 is the documented answer of a model this deployment does not have (image, distilbert);
            # `only_missing_models_are_unavailable` holds it to that.
            "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
        }
    )
    # The Open Inference Protocol's routes (/v2) are left out: a tensor's shape must match its data's length, which
    # JSON Schema cannot state, so schema-valid requests are refused there by design; tests/test_oip.py covers them.
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json", config=config).exclude(path_regex=r"^/v2(/|$)")


def schema_valid_request_is_not_refused(ctx, response, case) -> None:
    """The schema states every constraint: a request it allows is never refused as invalid (422)."""
    if response.status_code != 422 or case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if case.path in IMAGE_ROUTES and (not isinstance(case.body, dict) or "file" in case.body):
        return None  # documented: what the image shows (422 for a blank image), a model's class names as `target`
    raise AssertionError(f"A schema-valid request was refused with 422: {response.text[:500]}")


def only_missing_models_are_unavailable(ctx, response, case) -> None:
    """503 only for a model this deployment has no artifact for: every model it has is loaded before the run."""
    if response.status_code == 503 and case.path != "/health/ready":
        error = response.json()["error"]
        assert error["type"] == "model_not_installed", f"503 for an installed model: {response.text[:500]}"


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    schema_valid_request_is_not_refused,
    only_missing_models_are_unavailable,
]


MINUTES = count()  # handed out to positive cases' timestamps, so they increase across cases (a stream's too)
SERIES_PATHS = {"/predict/anomaly", "/anomaly/streams/{series_id}/points"}


def documented_series_rules(case) -> None:
    """The documented rules JSON Schema cannot state: a positive case's timestamps are made as many as its values
    and strictly increasing, after every earlier case's (a stream's next points come after its last ones), a
    series holds the documented number of present values (nulls, missing values, do not count: they are made
    numbers here), a series of rows has every row as long, with as many channel names (`channels` only with
    rows), and a stream's points have its channels (each shape is sent to streams of its own)."""
    body = case.body
    if case.path not in SERIES_PATHS or not case.meta.generation.mode.is_positive or not isinstance(body, dict):
        return
    timestamps, values = body.get("timestamps"), body.get("values")
    if isinstance(values, list):
        rows = bool(values) and isinstance(values[0], list)
        if rows:  # every row as long as the first, `channels` one name each (unique), or none
            width = len(values[0])
            values = [[0.0 if v is None else v for v in (row + row[:1] * width)[:width]] for row in values]
            if "channels" in body:
                body["channels"] = [f"c{i}" for i in range(width)]
        else:
            values = [0.0 if v is None else v for v in values]
            body.pop("channels", None)  # it names the values of rows
        if case.path == "/predict/anomaly" or rows:  # a stream's numbers may keep their nulls (no minimum)
            body["values"] = values
        stream_id = case.path_parameters.get("series_id") if isinstance(case.path_parameters, dict) else None
        if case.path != "/predict/anomaly" and isinstance(stream_id, str):
            # A stream's first points fix its channels: each shape (and naming) goes to streams of its own.
            shape = f"-w{width}{'n' if 'channels' in body else ''}" if rows else "-n"
            case.path_parameters["series_id"] = stream_id[:120] + shape
    if isinstance(timestamps, list) and isinstance(values, list):
        start = next(MINUTES)
        for _ in values:
            next(MINUTES)
        body["timestamps"] = [(EPOCH + timedelta(minutes=start + i)).isoformat() for i in range(len(values))]


schema = schemathesis.pytest.from_fixture("live_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy loader reads and rewrites Node._nodeid, which pytest 9.2 renamed (Node._id).
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_holds_for_every_request(case, http: requests.Session) -> None:
    if case.path.startswith("/v2"):  # excluded above, but the pytest loader still hands them over (schemathesis 4.32)
        return
    if case.meta is not None:
        documented_series_rules(case)
    case.call_and_validate(session=http, checks=CHECKS, timeout=30)
    SENT[(case.operation.label, case.meta.generation.mode.value if case.meta else "explicit")] += 1


def test_the_fuzzing_reached_every_operation_both_ways(live_schema) -> None:
    """Guard against a run that silently generates nothing (a schemathesis upgrade, a config key renamed)."""
    if not SENT:
        pytest.skip("the fuzz test did not run in this session")
    operations = {f"{o.method.upper()} {o.path}" for o in (r.ok() for r in live_schema.get_all_operations())}
    print(f"{sum(SENT.values())} requests:", dict(sorted(SENT.items())))
    for operation in operations:
        assert SENT[(operation, "positive")] >= 1 and SENT[(operation, "negative")] >= 1, operation
    assert sum(SENT.values()) >= 10 * len(operations)
