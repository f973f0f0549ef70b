"""The Open Inference Protocol (V2) routes, driven by a client nobody here wrote (`tritonclient[http]`, Triton's
own) against a real uvicorn serving the committed models: the same answers as the task endpoints for the same
inputs, in JSON, base64 and the binary-data extension; and the protocol's error form with the task endpoints'
statuses."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from app.config import Settings
from app.families.digit.preprocess import preprocess_digit
from bench.peers import perf_analyzer
from tests.support.digit_images import KINDS, noise_png, render
from tests.support.paths import COMMITTED_MODELS, ROOT
from tests.support.service import SERVER_MODES, asgi_client, cli_client, ray_client, uvicorn_client

EXAMPLES = ROOT / "examples"
DIGITS = [render(digit, kind, seed=digit) for digit, kind in zip(range(10), KINDS, strict=False)]
REVIEWS = [
    "Not bad at all.",
    "A moving, beautifully shot film with a wonderful cast.",
    "Dull, predictable and far too long; I walked out.",
    "<br />It was <b>fine</b>... " * 400,  # longer than the model reads: truncated
]


@pytest.fixture(scope="module", params=SERVER_MODES)
def http(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A real server on the committed models: uvicorn, and (DEEPSERVE_TEST_RAY=1) Ray Serve's proxy."""
    settings = Settings(models_dir=COMMITTED_MODELS)
    if request.param == "ray":
        with ray_client(request.getfixturevalue("ray_cluster"), settings) as client:
            yield client
        return
    with uvicorn_client(settings) as client:
        yield client


@pytest.fixture(scope="module")
def client(http: httpx.Client) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(str(http.base_url).removeprefix("http://").rstrip("/")) as c:
        yield c


def bytes_input(name: str, items: list[bytes], binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(items)], "BYTES")
    return tensor.set_data_from_numpy(np.array(items, dtype=np.object_), binary_data=binary)


def outputs(*names: str, binary: bool = False) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary) for name in names]


def test_server_and_model_metadata_and_readiness(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    served = {"lstm": "2", "fashion": "3", "digit": "4"}
    for name in ("digit", "fashion", "lstm", "anomaly"):
        assert client.is_model_ready(name) and client.is_model_ready(name, served.get(name, "1"))
    assert not client.is_model_ready("image")  # known, not installed: 503
    assert not client.is_model_ready("digit", "7") and not client.is_model_ready("nope")
    digit = client.get_model_metadata("digit")
    assert (digit["name"], digit["versions"], digit["platform"]) == ("digit", ["4"], "onnxruntime_onnx")
    assert [(t["name"], t["datatype"], t["shape"]) for t in digit["inputs"]] == [("image", "BYTES", [-1])]
    [pixels] = digit["parameters"]["other_inputs"]  # accepted instead; not listed where tools send every input
    assert (pixels["name"], pixels["datatype"], pixels["shape"]) == ("pixels", "FP32", [-1, 28, 28, 1])
    assert [(t["name"], t["datatype"], t["shape"]) for t in digit["outputs"]] == [
        ("digit", "INT64", [-1]),
        ("confidence", "FP32", [-1]),
        ("probabilities", "FP32", [-1, 10]),
        ("in_distribution", "BOOL", [-1]),  # the committed digit has out-of-distribution thresholds
        ("ood_score", "FP32", [-1]),
    ]
    fashion = client.get_model_metadata("fashion", "3")
    labels = fashion["outputs"][0]["parameters"]["labels"]
    assert fashion["outputs"][2]["shape"] == [-1, len(labels)] == [-1, 10] and "Ankle boot" in labels
    for name in ("lstm", "minilm"):
        inputs = client.get_model_metadata(name)["inputs"]
        assert client.is_model_ready(name) and [t["name"] for t in inputs] == ["text"]
    assert client.get_model_metadata("anomaly")["inputs"][0]["parameters"]["window"] == 336


def triton_type(datatype: str) -> str:
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def test_every_served_model_has_a_triton_style_config_listing_its_metadata_tensors(client, http) -> None:
    served = [model["name"] for model in http.get("/models").json() if model["state"] == "ready"]
    assert {"digit", "fashion", "lstm", "minilm", "anomaly", "nearest_context"} <= set(served)
    for name in served:
        metadata, config = client.get_model_metadata(name), client.get_model_config(name)  # Triton's own calls
        assert (config["name"], config["platform"], config["backend"]) == (name, "onnxruntime_onnx", "onnxruntime")
        assert config["max_batch_size"] == 0  # the row count is in the dims, as in the metadata's shapes
        assert config["version_policy"] == {"specific": {"versions": metadata["versions"]}}
        for tensors, spelled in (("inputs", "input"), ("outputs", "output")):
            assert [(t["name"], triton_type(t["datatype"]), t["shape"]) for t in metadata[tensors]] == [
                (t["name"], t["data_type"], t["dims"]) for t in config[spelled]
            ]
    digit = client.get_model_config("digit", "4")
    assert digit["input"] == [{"name": "image", "data_type": "TYPE_STRING", "dims": [-1]}]
    assert digit["output"][2] == {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, 10]}
    assert digit["parameters"]["task"] == {"string_value": "image-classification/digit"}
    anomaly = client.get_model_config("anomaly")
    assert anomaly["input"] == [{"name": "values", "data_type": "TYPE_FP32", "dims": [1, -1]}]
    assert [t["data_type"] for t in anomaly["output"]] == ["TYPE_FP64", "TYPE_BOOL", "TYPE_FP64"]


def test_perf_analyzer_runs_against_the_digit_model_unchanged(http, tmp_path: Path) -> None:
    """Triton's perf_analyzer (bench/peers/perf_analyzer.py; not installed in CI) reads the metadata and config,
    sends the one default input, and stops at the first failed request."""
    if problem := perf_analyzer.missing():
        pytest.skip(problem)
    for digit, png in enumerate(DIGITS):
        (tmp_path / f"{digit}_0.png").write_bytes(png)
    data = perf_analyzer.write_input_data(tmp_path, tmp_path / "digits.json")
    address = str(http.base_url).removeprefix("http://").rstrip("/")
    result = perf_analyzer.run(address, "digit", 2, 1, data)
    assert result["requests"] >= 10 and result["p50_ms"] > 0


def test_digit_batch_over_the_binary_extension_matches_predict_digit(client, http) -> None:
    images = [*DIGITS, (EXAMPLES / "digit.png").read_bytes(), (EXAMPLES / "digit_photo.jpg").read_bytes()]
    result = client.infer("digit", [bytes_input("image", images)], request_id="batch-1")  # outputs binary too
    assert result.get_response()["id"] == "batch-1"
    assert result.get_response()["model_version"] == "4"
    assert result.get_response()["outputs"][0]["parameters"] == {"binary_data_size": 8 * len(images)}  # binary out
    digits, probabilities = result.as_numpy("digit"), result.as_numpy("probabilities")
    assert digits.dtype == np.int64 and digits.shape == (len(images),)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(images), 10)
    for image, digit, p in zip(images, digits, probabilities, strict=True):
        task = http.post("/predict/digit", files={"file": ("d", image, "image/png")}).json()
        assert digit == task["digit"]
        np.testing.assert_allclose(p, task["probabilities"], rtol=1e-6, atol=1e-7)
    assert list(digits[:10]) == list(range(10))  # the renders are read right, not only the same way


def test_digit_as_base64_json_and_as_preprocessed_pixels(client, http) -> None:
    png = (EXAMPLES / "digit.png").read_bytes()
    task = http.post("/predict/digit", files={"file": ("d", png, "image/png")}).json()
    body = {
        "id": "b64",
        "inputs": [
            {
                "name": "image",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_type": "base64"},
                "data": [base64.b64encode(png).decode()],
            }
        ],
        "outputs": [{"name": "digit"}, {"name": "probabilities"}],
    }
    answer = http.post("/v2/models/digit/infer", json=body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    payload = answer.json()
    assert payload["id"] == "b64" and [o["name"] for o in payload["outputs"]] == ["digit", "probabilities"]
    assert payload["outputs"][0] == {"name": "digit", "shape": [1], "datatype": "INT64", "data": [task["digit"]]}
    np.testing.assert_allclose(payload["outputs"][1]["data"], task["probabilities"], rtol=1e-6, atol=1e-7)

    pixels = preprocess_digit(Image.open(io.BytesIO(png)))[np.newaxis].astype(np.float32)
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32").set_data_from_numpy(pixels, binary_data=False)
    result = client.infer("digit", [tensor], outputs=outputs("digit", "probabilities"))
    assert result.as_numpy("digit").tolist() == [task["digit"]]
    np.testing.assert_allclose(result.as_numpy("probabilities")[0], task["probabilities"], rtol=1e-5, atol=1e-6)


def test_fashion_label_index_and_probabilities_match_predict_image(client, http) -> None:
    photo = (EXAMPLES / "ankle_boot.jpg").read_bytes()
    task = http.post("/predict/image?model=fashion", files={"file": ("b", photo, "image/jpeg")}).json()
    labels = client.get_model_metadata("fashion")["outputs"][0]["parameters"]["labels"]
    result = client.infer("fashion", [bytes_input("image", [photo, photo])], outputs=outputs("label", "probabilities"))
    assert [labels[i] for i in result.as_numpy("label")] == [task["label"]] * 2 == ["Ankle boot"] * 2
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 10) and probabilities[0].sum() == pytest.approx(1, abs=1e-5)
    for top in task["top_k"]:
        assert probabilities[0][labels.index(top["label"])] == pytest.approx(top["score"], rel=1e-6)


@pytest.mark.parametrize("model", ["lstm", "minilm"])
def test_sentiment_texts_match_predict_sentiment(client, http, model) -> None:
    task = http.post("/predict/sentiment", json={"texts": REVIEWS, "model": model}).json()["results"]
    texts = [text.encode() for text in REVIEWS]
    result = client.infer(model, [bytes_input("text", texts, binary=False)], outputs=outputs("label", "probabilities", "truncated"))  # noqa: E501
    assert result.as_numpy("label").tolist() == [int(r["label"] == "POSITIVE") for r in task]
    np.testing.assert_allclose(result.as_numpy("probabilities")[:, 1], [r["score"] for r in task], rtol=1e-6)
    np.testing.assert_allclose(result.as_numpy("probabilities").sum(axis=1), 1, rtol=1e-6)
    assert result.as_numpy("truncated").tolist() == [r["truncated"] for r in task] == [False, False, False, True]


def test_anomaly_series_matches_predict_anomaly(client, http) -> None:
    values = np.array(json.loads((EXAMPLES / "series.json").read_text())["values"], dtype=np.float32)
    task = http.post("/predict/anomaly", json={"values": values.astype(float).tolist(), "method": "autoencoder"}).json()
    tensor = triton.InferInput("values", [1, len(values)], "FP32").set_data_from_numpy(values[np.newaxis])
    result = client.infer("anomaly", [tensor])
    np.testing.assert_allclose(result.as_numpy("scores")[0], task["scores"], rtol=1e-12)
    assert result.as_numpy("is_anomaly")[0].tolist() == task["is_anomaly"] and any(task["is_anomaly"])
    assert result.as_numpy("threshold").tolist() == [task["threshold"]]


def test_the_default_anomaly_detector_matches_predict_anomaly(client, http) -> None:
    values = np.array(json.loads((EXAMPLES / "series.json").read_text())["values"], dtype=np.float64)
    task = http.post("/predict/anomaly", json={"values": values.tolist()}).json()
    meta = client.get_model_metadata("nearest_context")
    assert meta["inputs"][0]["parameters"]["warmup"] == task["warmup"]
    tensor = triton.InferInput("values", [1, len(values)], "FP64").set_data_from_numpy(values[np.newaxis])
    result = client.infer("nearest_context", [tensor])
    np.testing.assert_allclose(result.as_numpy("scores")[0], task["scores"], rtol=1e-12)
    assert result.as_numpy("is_anomaly")[0].tolist() == task["is_anomaly"] and any(task["is_anomaly"])
    assert result.as_numpy("threshold").tolist() == [task["threshold"]]


def v2_error(response: httpx.Response, status: int) -> str:
    """The protocol's error form: this status, a JSON body that is exactly {"error": message}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


def infer_body(name: str, datatype: str, data: list, shape: list[int] | None = None, **parameters) -> dict:
    tensor = {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}
    return {"inputs": [{**tensor, "parameters": parameters}] if parameters else [tensor]}


B64 = {"content_type": "base64"}
SHORT_SERIES = [1.0] * 10
# (v2 model, v2 body, the task endpoint's request for the same input, their shared status)
SAME_INPUT = [
    ("digit", infer_body("image", "BYTES", ["bm90IGFuIGltYWdl"], **B64), ("/predict/digit", {"content": b"not an image", "headers": {"content-type": "image/png"}}), 400),  # noqa: E501
    ("digit", infer_body("image", "BYTES", [""], **B64), ("/predict/digit", {"content": b"", "headers": {"content-type": "image/png"}}), 400),  # noqa: E501
    ("lstm", infer_body("text", "BYTES", ["   "]), ("/predict/sentiment", {"json": {"texts": ["   "], "model": "lstm"}}), 422),  # noqa: E501
    ("lstm", infer_body("text", "BYTES", ["x" * 20_001]), ("/predict/sentiment", {"json": {"text": "x" * 20_001, "model": "lstm"}}), 422),  # noqa: E501
    ("lstm", infer_body("text", "BYTES", ["ok"] * 33), ("/predict/sentiment", {"json": {"texts": ["ok"] * 33, "model": "lstm"}}), 422),  # noqa: E501
    ("anomaly", infer_body("values", "FP32", SHORT_SERIES), ("/predict/anomaly", {"json": {"values": SHORT_SERIES, "method": "autoencoder"}}), 422),  # noqa: E501
    ("image", infer_body("image", "BYTES", ["aGk="], **B64), ("/predict/image", {"content": b"hi", "headers": {"content-type": "image/png"}}), 503),  # noqa: E501
]


@pytest.mark.parametrize(("model", "body", "task", "status"), SAME_INPUT)
def test_bad_input_gets_the_task_endpoints_status_in_the_protocols_error_form(http, model, body, task, status) -> None:
    path, request = task
    assert http.post(path, **request).status_code == status
    v2_error(http.post(f"/v2/models/{model}/infer", json=body), status)


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"json": {"inputs": []}}, 422),  # no input
        ({"json": infer_body("image", "BYTES", ["aGk=", "aGk="], shape=[3], **B64)}, 422),  # shape vs data
        ({"json": infer_body("image", "BYTES", ["not base64!"], **B64)}, 422),
        ({"json": infer_body("image", "FP32", [1.0])}, 422),  # the image input is BYTES
        ({"json": infer_body("pixels", "FP32", [0.5] * 784, shape=[1, 28, 28])}, 422),  # the model's shape is 4-D
        ({"json": infer_body("pixels", "FP32", ["0.5"] * 784, shape=[1, 28, 28, 1])}, 422),
        ({"json": {**infer_body("pixels", "FP32", [0.5] * 784, shape=[1, 28, 28, 1]), "outputs": [{"name": "x"}]}}, 422),  # noqa: E501
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"{}", "headers": {"content-type": "text/plain"}}, 415),
        ({"content": b'{"inputs": []}', "headers": {"Inference-Header-Content-Length": "99"}}, 400),
    ],
)
def test_malformed_inference_requests_are_refused_in_the_protocols_error_form(http, request_args, status) -> None:
    v2_error(http.post("/v2/models/digit/infer", **request_args), status)


def test_unknown_models_versions_and_routes_answer_404_in_the_protocols_form(http, client) -> None:
    assert "Unknown model 'nope'" in v2_error(http.get("/v2/models/nope"), 404)
    v2_error(http.post("/v2/models/nope/infer", json=infer_body("text", "BYTES", ["ok"])), 404)
    v2_error(http.get("/v2/models/digit/versions/7"), 404)
    assert "Unknown model 'nope'" in v2_error(http.get("/v2/models/nope/config"), 404)
    assert "'7'" in v2_error(http.get("/v2/models/digit/versions/7/config"), 404)
    assert "not installed" in v2_error(http.get("/v2/models/image/config"), 503)
    v2_error(http.post("/v2/models/digit/versions/7/infer", json=infer_body("image", "BYTES", ["aGk="])), 404)
    v2_error(http.get("/v2/no/such/route"), 404)
    v2_error(http.get("/v2/models/digit/infer"), 405)
    assert http.get("/predict/nope").json()["error"]["type"] == "not_found"  # the task routes keep their own form
    with pytest.raises(InferenceServerException) as raised:  # and the real client reads the message
        client.infer("digit", [bytes_input("image", [b"not an image"])])
    assert raised.value.status() == "400" and "not an image" in raised.value.message()


def test_reject_ood_as_a_request_parameter_refuses_a_flagged_input_naming_it(http, client) -> None:
    """`"parameters": {"reject_ood": true}` does what ?reject_ood=true does on /predict/digit: a flagged input is a
    422 (the protocol's form) naming its row; false or absent, the answer is unchanged; not a boolean, a 422."""
    images = [DIGITS[3], noise_png(48, 1)]
    body = infer_body("image", "BYTES", [base64.b64encode(image).decode() for image in images], **B64)
    plain = http.post("/v2/models/digit/infer", json=body)
    flags = {o["name"]: o["data"] for o in plain.json()["outputs"]}["in_distribution"]
    assert flags == [True, False]  # the noise is flagged, and answered
    task = http.post("/predict/digit?reject_ood=true", content=images[1], headers={"content-type": "image/png"})
    assert task.status_code == 422 and task.json()["error"]["type"] == "out_of_distribution"
    message = v2_error(http.post("/v2/models/digit/infer", json={**body, "parameters": {"reject_ood": True}}), 422)
    assert "'image[1]'" in message and "image[0]" not in message and "reject_ood" in message
    unchanged = http.post("/v2/models/digit/infer", json={**body, "parameters": {"reject_ood": False}})
    assert unchanged.json() == plain.json()
    digit = infer_body("image", "BYTES", [body["inputs"][0]["data"][0]], **B64)
    assert http.post("/v2/models/digit/infer", json={**digit, "parameters": {"reject_ood": True}}).status_code == 200
    noise = np.random.default_rng(0).uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    pixels = triton.InferInput("pixels", [2, 28, 28, 1], "FP32").set_data_from_numpy(noise)
    with pytest.raises(InferenceServerException) as raised:  # Triton's client sends request parameters as such
        client.infer("digit", [pixels], parameters={"reject_ood": True})
    assert raised.value.status() == "422" and "'pixels[0]' (and 1 more)" in raised.value.message()
    for value in ("true", 1, None, [True]):
        assert "reject_ood" in v2_error(http.post("/v2/models/digit/infer", json={**body, "parameters": {"reject_ood": value}}), 422)  # noqa: E501


def test_reject_ood_refuses_a_flagged_text_and_a_series_model_ignores_it(http, client) -> None:
    texts = bytes_input("text", [REVIEWS[1].encode(), b"asdf qwerty zxcv"])
    answered = client.infer("lstm", [texts], parameters={"reject_ood": False})
    assert answered.as_numpy("in_distribution").tolist() == [True, False]
    with pytest.raises(InferenceServerException) as raised:
        client.infer("lstm", [texts], parameters={"reject_ood": True})
    assert raised.value.status() == "422" and "'text[1]'" in raised.value.message()
    client.infer("lstm", [bytes_input("text", [REVIEWS[1].encode()])], parameters={"reject_ood": True})
    series = {**infer_body("values", "FP64", [1.0, 2.0] * 200), "parameters": {"reject_ood": True}}
    assert http.post("/v2/models/nearest_context/infer", json=series).status_code == 200  # no such check: ignored


def test_v2_requests_share_the_task_endpoints_admission_limit() -> None:
    with asgi_client(Settings(models_dir=COMMITTED_MODELS)) as asgi:
        limiter = asgi.app.state.limiter
        limiter.in_flight = limiter.limit  # every slot taken by requests in flight, on either API
        png = (EXAMPLES / "digit.png").read_bytes()
        body = infer_body("image", "BYTES", [base64.b64encode(png).decode()], **B64)
        for response in (
            asgi.post("/v2/models/digit/infer", json=body),
            asgi.post("/v2/models/lstm/infer", json=infer_body("text", "BYTES", ["fine"])),
        ):
            v2_error(response, 429)
            assert response.headers["retry-after"] == "1"
        assert asgi.post("/predict/digit", content=png, headers={"content-type": "image/png"}).status_code == 429
        limiter.in_flight = 0
        assert asgi.post("/v2/models/digit/infer", json=body).status_code == 200


def photo_b64(side: int) -> str:
    """A drawn 3 as a side x side RGB PNG, base64."""
    out = io.BytesIO()
    Image.open(io.BytesIO(DIGITS[3])).convert("RGB").resize((side, side)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.slow
def test_v2_batches_are_admitted_by_their_memory_not_by_a_workers_share_of_the_count_cap(tmp_path) -> None:
    """Two workers, each admitting 32 predictions and 8 MB of estimated memory: a batch of 40 digits, and one of
    three 300x300 photos (5.3 MB each, 16 MB together), are served on the idle service (both were 429: one slot
    and one charge per image at once); a 400x400 photo (8.6 MB) alone could never fit and is 413."""
    env = {"DEEPSERVE_DATA_DIR": str(tmp_path), "DEEPSERVE_MAX_INFLIGHT_MB": "16", "DEEPSERVE_IMAGE_WORKERS": "2"}
    with cli_client(COMMITTED_MODELS, 2, env) as client:
        small = [render(digit, "mnist_28", seed=digit) for digit in range(10)]  # ~1 MB of estimate each
        digits = [base64.b64encode(small[i % 10]).decode() for i in range(40)]
        batch = client.post("/v2/models/digit/infer", json=infer_body("image", "BYTES", digits, **B64))
        assert batch.status_code == 200, batch.text
        answer = {o["name"]: o for o in batch.json()["outputs"]}
        png = {"content-type": "image/png"}
        single = [client.post("/predict/digit", content=small[i], headers=png).json()["digit"] for i in range(10)]
        assert answer["digit"]["data"] == [single[i % 10] for i in range(40)]
        photos = client.post("/v2/models/digit/infer", json=infer_body("image", "BYTES", [photo_b64(300)] * 3, **B64))
        assert photos.status_code == 200, photos.text
        assert len({o["name"]: o for o in photos.json()["outputs"]}["digit"]["data"]) == 3
        too_big = client.post("/v2/models/digit/infer", json=infer_body("image", "BYTES", [photo_b64(400)], **B64))
        assert "DEEPSERVE_MAX_INFLIGHT_MB" in v2_error(too_big, 413)
