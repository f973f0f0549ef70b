"""Load bounds: admission by count and by estimated memory, the body timeout, and client disconnects."""

from __future__ import annotations

import asyncio
import io
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.config import Settings
from app.core.costs import MB
from app.core.inference import DEFERRED_CHARGE_BYTES, Inference
from app.core.limiter import ConcurrencyLimiter, share
from app.core.memory import QUIET_MIN_BYTES, QUIET_SECONDS, MemoryTrimmer
from app.core.metrics import Metrics
from app.errors import Overloaded, PayloadTooLarge
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.anomaly.schemas import AnomalyRequest
from app.families.anomaly.scoring import score_series
from app.families.digit.preprocess import normalise, preprocess_digit, to_gray
from app.families.digit.runtime import DigitRuntime
from app.families.images import ImageUpload
from app.families.lstm.runtime import LstmSentimentRuntime
from app.families.transformer_runtime import chunks_within, text_bytes
from app.http.main import create_app
from tests.support.digit_images import render
from tests.support.raw_http import read_response, stalled_upload, upload
from tests.support.service import assert_error, serve

PNG = render(3, "mnist_28")
PNG_HEADERS = {"content-type": "image/png"}


def png(size: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (size, size), (0, 0, 0, 0)).save(out, format="PNG")
    return out.getvalue()


# ---- the limiter: count cap and cost budget ---------------------------------------------------------------------


def test_count_cap_answers_429_with_retry_after() -> None:
    limiter = ConcurrencyLimiter(2)
    with limiter.slot(), limiter.slot():
        with pytest.raises(Overloaded) as caught:
            with limiter.slot():
                pass
    assert caught.value.headers["Retry-After"].isdigit() and int(caught.value.headers["Retry-After"]) >= 1
    assert limiter.in_flight == 0


def test_budget_admits_what_fits_and_refuses_the_rest_with_retry_after() -> None:
    limiter = ConcurrencyLimiter(10, budget_bytes=100)
    with limiter.slot(60):
        assert limiter.cost_in_flight == 60
        with limiter.slot(40):  # exactly the budget
            assert limiter.cost_in_flight == 100
            with pytest.raises(Overloaded) as caught:
                with limiter.slot(1):
                    pass
            assert caught.value.headers["Retry-After"].isdigit()
            with limiter.slot(0):  # free work still counts against the count cap only
                assert limiter.in_flight == 3
        with pytest.raises(Overloaded):
            with limiter.slot(41):
                pass
        with limiter.slot(40):
            pass
    assert (limiter.in_flight, limiter.cost_in_flight) == (0, 0)


def test_a_request_over_the_whole_budget_is_413_even_when_idle() -> None:
    limiter = ConcurrencyLimiter(10, budget_bytes=100 * MB)
    with pytest.raises(PayloadTooLarge) as caught:
        with limiter.slot(101 * MB):
            pass
    assert caught.value.status_code == 413 and "DEEPSERVE_MAX_INFLIGHT_MB" in caught.value.message
    assert caught.value.detail == {"estimated_mb": 101.0, "max_inflight_mb": 100.0}
    assert (limiter.in_flight, limiter.cost_in_flight) == (0, 0)


def test_slot_is_released_when_the_work_raises() -> None:
    limiter = ConcurrencyLimiter(1, budget_bytes=100)
    with pytest.raises(ZeroDivisionError):
        with limiter.slot(100):
            _ = 1 / 0
    assert (limiter.in_flight, limiter.cost_in_flight) == (0, 0)
    with limiter.slot(100):  # the whole budget and the only slot are free again
        pass


def test_no_budget_means_count_cap_only() -> None:
    limiter = ConcurrencyLimiter(1)
    with limiter.slot(10**15):
        assert limiter.cost_in_flight == 10**15


def digit_cost(pixels: int, mode: str) -> int:
    return DigitRuntime.cost(None, ImageUpload(b"", 10**9, pixels, mode))  # type: ignore[arg-type]


def test_each_worker_takes_a_share_no_larger_than_its_part_of_the_limit() -> None:
    assert [share(64, 2), share(7, 2), share(768 * MB, 2), share(64, 1)] == [32, 3, 384 * MB, 64]
    assert all(share(total, n) * n <= total for total in range(2, 100) for n in range(1, total + 1))
    assert share(1, 2) == 1  # never none: a process that admits nothing would refuse every request it gets


def test_the_configured_limits_bound_the_whole_service_of_two_workers(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path, workers=2, max_concurrent_requests=64, max_concurrent_explanations=4)
    app = create_app(settings.model_copy(update={"max_inflight_mb": 768}))
    assert (app.state.limiter.limit, app.state.limiter.budget) == (32, 384 * MB)
    assert app.state.explain_limiter.limit == 2


def test_cost_estimates_grow_with_the_input() -> None:
    assert ImageUpload.read(png(300), 10**8).pixels == 90_000 and ImageUpload.read(png(300), 10**8).mode == "RGBA"
    assert ImageUpload.read(png(300), 1000).pixels == 0  # over the pixel limit: decode refuses it before allocating
    assert ImageUpload.read(b"not an image", 10**8).pixels == 0
    assert digit_cost(4096 * 4096, "RGBA") > 10 * digit_cost(28 * 28, "L")
    assert digit_cost(4096 * 4096, "RGBA") > digit_cost(4096 * 4096, "L")
    series = [AnomalyRequest(values=[0.0] * n) for n in (336, 20_000)]
    assert AnomalyRuntime.cost(None, series[1]) > AnomalyRuntime.cost(None, series[0])  # type: ignore[arg-type]

    lstm = SimpleNamespace(tokenizer=SimpleNamespace(max_length=600))

    def text_cost(texts: list[str]) -> int:
        return LstmSentimentRuntime.cost(lstm, texts)  # type: ignore[arg-type]

    one, many = text_cost(["good film"]), text_cost(["word " * 1000] * 32)
    assert many > 32 * one / 2 and text_cost(["word " * 1000]) == text_cost(["word " * 5000])


def test_reserve_and_release_charge_the_budget_not_the_count() -> None:
    released: list[int] = []
    limiter = ConcurrencyLimiter(1, budget_bytes=100, on_release=released.append)
    body = limiter.reserve(70)
    assert (limiter.in_flight, limiter.cost_in_flight) == (0, 70)
    with pytest.raises(Overloaded):
        limiter.reserve(31)
    with limiter.slot(30):
        assert limiter.cost_in_flight == 100
    limiter.release(body)
    assert limiter.cost_in_flight == 0 and released == [30, 70]


class HeldDecode:
    """An image runtime (decoding blocks) whose decode waits for `release` and costs `cost` bytes."""

    decode_blocks = True
    entry = SimpleNamespace(name="held")

    def __init__(self, cost: int) -> None:
        self.charge, self.release = cost, threading.Event()
        self.decoded: list[object] = []

    def cost(self, request: object) -> int:
        return self.charge

    def batched(self) -> bool:
        return False

    def inline(self, request: object) -> bool:
        return False

    def decode(self, request: object) -> list[object]:
        self.release.wait(5)
        self.decoded.append(request)
        return [request]

    def predict(self, batch: list[int]) -> list[int]:
        return batch


def test_a_large_decode_is_charged_in_its_turn_on_the_image_pool_and_a_small_one_at_admission() -> None:
    async def in_flight(cost: int, calls: int) -> tuple[int, int]:
        """(count, bytes) charged while `calls` requests of `cost` wait on two image threads, then all answer."""
        inference, runtime = Inference(Settings(image_workers=2), Metrics()), HeldDecode(cost)
        limiter = ConcurrencyLimiter(16, budget_bytes=3 * 20 * MB)  # three 20 MB decodes at once, not eight
        pending = [asyncio.ensure_future(inference.outputs(runtime, i, limiter)) for i in range(calls)]
        await asyncio.sleep(0.2)
        charged = (limiter.in_flight, limiter.cost_in_flight)
        runtime.release.set()
        assert await asyncio.gather(*pending) == [[i] for i in range(calls)]
        assert (limiter.in_flight, limiter.cost_in_flight) == (0, 0)
        await inference.close()
        return charged

    assert 20 * MB >= DEFERRED_CHARGE_BYTES > MB
    assert asyncio.run(in_flight(20 * MB, 8)) == (8, 2 * 20 * MB)  # two decoding; six wait, uncharged, no 429
    assert asyncio.run(in_flight(MB, 8)) == (8, 8 * MB)  # small ones are charged (and refused) at admission


def test_a_large_decode_whose_turn_finds_the_budget_in_use_is_429_and_one_over_it_413_at_once() -> None:
    async def attempt(limiter: ConcurrencyLimiter, cost: int) -> None:
        inference, runtime = Inference(Settings(image_workers=2), Metrics()), HeldDecode(cost)
        runtime.release.set()
        try:
            await inference.outputs(runtime, 0, limiter)
        finally:
            await inference.close()

    limiter = ConcurrencyLimiter(16, budget_bytes=100 * MB)
    held = limiter.reserve(90 * MB)  # request bodies, say
    with pytest.raises(Overloaded):
        asyncio.run(attempt(limiter, 20 * MB))
    with pytest.raises(PayloadTooLarge):
        asyncio.run(attempt(limiter, 101 * MB))
    assert (limiter.in_flight, limiter.cost_in_flight) == (0, 90 * MB)
    limiter.release(held)
    asyncio.run(attempt(limiter, 20 * MB))


class HungUp(Exception):
    pass


class Client:
    """A request and its `probe`, which raises once `gone` (app/http/uploads.py disconnect_probe)."""

    gone = False

    async def probe(self) -> None:
        if self.gone:
            raise HungUp


def test_a_large_decode_whose_client_hung_up_while_it_waited_is_dropped_in_its_turn() -> None:
    async def main() -> None:
        inference, runtime = Inference(Settings(image_workers=1), Metrics()), HeldDecode(20 * MB)
        limiter = ConcurrencyLimiter(16, budget_bytes=100 * MB)
        first, second = Client(), Client()
        answers = [asyncio.ensure_future(inference.outputs(runtime, c, limiter, c.probe)) for c in (first, second)]
        await asyncio.sleep(0.2)  # the first decodes on the only image thread; the second waits for its turn
        second.gone = True
        runtime.release.set()
        assert await answers[0] == [first]
        with pytest.raises(HungUp):
            await answers[1]
        assert runtime.decoded == [first] and (limiter.in_flight, limiter.cost_in_flight) == (0, 0)
        await inference.close()

    asyncio.run(main())


# ---- what keeps a request's memory small -------------------------------------------------------------------------


def test_large_transparent_canvas_is_shrunk_before_float_with_the_same_result() -> None:
    canvas = Image.new("RGBA", (2600, 1900), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(600, 500), (1500, 500), (900, 1500)], fill=(20, 20, 20, 255), width=120)
    shrunk, full = preprocess_digit(canvas)[..., 0], normalise(to_gray(canvas))
    cosine = float((shrunk * full).sum() / np.linalg.norm(shrunk) / np.linalg.norm(full))
    assert cosine > 0.999 and np.abs(shrunk - full).max() < 0.05


def test_anomaly_scores_do_not_depend_on_the_scoring_batch() -> None:
    rng = np.random.default_rng(0)
    values = np.sin(np.arange(500) / 8) * 100 + rng.normal(0, 5, 500) + 1000
    config = {"window": 48, "stride": 1, "mean": 1000.0, "std": 100.0, "smoothing": 3, "threshold": 0.5}

    def reconstruct(windows: np.ndarray) -> np.ndarray:  # any per-window function of the input
        return np.tanh(windows) * 0.9

    one = score_series(values, reconstruct, config, batch_size=10**6)
    for batch in (1, 7, 16):
        assert np.array_equal(score_series(values, reconstruct, config, batch_size=batch)["scores"], one["scores"])


def test_distilbert_calls_group_similar_lengths_within_the_budget() -> None:
    lengths = np.array([512, 10, 300, 12, 512, 11, 20])
    groups = chunks_within(lengths, 128 * MB)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        longest = int(lengths[group].max())
        assert len(group) == 1 or len(group) * text_bytes(longest) <= 128 * MB
    assert [len(g) for g in groups if 512 in lengths[g]] == [1, 1]  # a long text never pads short ones to 512


def test_transformer_calls_pad_texts_of_similar_length_only() -> None:
    lengths = np.array([30, 32, 100, 31, 98, 60, 58, 33])  # a micro-batch of short and long reviews
    groups = chunks_within(lengths, 128 * MB)
    assert [sorted(lengths[g].tolist()) for g in groups] == [[30, 31, 32, 33], [58, 60], [98, 100]]
    for group in groups:
        assert lengths[group].sum() >= 0.8 * len(group) * lengths[group].max()  # at most 20% padding
    assert len(chunks_within(lengths, 128 * MB, max_padding=1.0)) == 1  # the memory bound alone: one call


def test_trimmer_runs_after_enough_work_and_never_on_the_caller() -> None:
    trimmer = MemoryTrimmer(after_bytes=100, small_bytes=0)
    if not trimmer.available:
        pytest.skip("malloc_trim is glibc-only")
    calls: list[int] = []
    trimmer.trim = calls.append

    async def main() -> None:
        trimmer.released(60)
        assert trimmer.pending == 60
        trimmer.released(60)  # 120 >= 100: one trim, in a worker thread
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert calls == [0] and trimmer.pending == 0 and trimmer.trims == 1

    async def tail_of_a_burst() -> None:
        trimmer.released(QUIET_MIN_BYTES)  # under after_bytes... but nothing else ends for QUIET_SECONDS
        await asyncio.sleep(QUIET_SECONDS + 1.0)

    trimmer.after_bytes = 10 * QUIET_MIN_BYTES
    asyncio.run(tail_of_a_burst())
    assert calls == [0, 0]

    async def burst_still_going() -> None:
        trimmer.released(QUIET_MIN_BYTES)
        for _ in range(5):  # requests keep ending, each sooner than QUIET_SECONDS after the one before
            await asyncio.sleep(QUIET_SECONDS / 2)
            trimmer.released(1)
            assert calls == [0, 0]
        await asyncio.sleep(QUIET_SECONDS + 1.0)  # then quiet: one trim

    asyncio.run(burst_still_going())  # a new loop, as when an app is started again
    assert calls == [0, 0, 0]


# ---- over HTTP ----------------------------------------------------------------------------------------------------


def test_request_over_the_budget_is_413_and_small_ones_still_pass(trained_models_dir: Path) -> None:
    budget_mb = math.ceil(digit_cost(28 * 28, "L") / MB) + 1
    big = png(2048)
    assert digit_cost(2048 * 2048, "RGBA") > budget_mb * MB
    with serve("asgi", Settings(models_dir=trained_models_dir, max_inflight_mb=budget_mb)) as client:
        error = assert_error(client.post("/predict/digit", content=big, headers=PNG_HEADERS), 413, "payload_too_large")
        assert error["detail"]["max_inflight_mb"] == budget_mb and "DEEPSERVE_MAX_INFLIGHT_MB" in error["message"]
        assert client.post("/predict/digit", content=PNG, headers=PNG_HEADERS).status_code == 200


def test_json_body_while_the_budget_is_in_use_is_429_and_releases_its_charge(all_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=all_models_dir, max_inflight_mb=64)) as client:
        limiter = client.app.state.limiter
        held = limiter.reserve(limiter.budget - 1000)  # other work holds all but 1,000 bytes
        response = client.post("/predict/sentiment", json={"text": "a good film " * 100, "model": "lstm"})
        assert_error(response, 429, "overloaded")
        assert response.headers["retry-after"].isdigit()
        limiter.release(held)
        assert limiter.cost_in_flight == 0  # the refused body's charge was given back
        assert client.post("/predict/sentiment", json={"text": "a good film", "model": "lstm"}).status_code == 200
        assert limiter.cost_in_flight == 0


def test_budget_in_use_is_429_with_retry_after(trained_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=trained_models_dir)) as client:
        limiter = client.app.state.limiter
        limiter.cost_in_flight = limiter.budget  # other requests hold the whole budget
        response = client.post("/predict/digit", content=PNG, headers=PNG_HEADERS)
        limiter.cost_in_flight = 0
        assert_error(response, 429, "overloaded")
        assert response.headers["retry-after"].isdigit()
        assert client.post("/predict/digit", content=PNG, headers=PNG_HEADERS).status_code == 200


def photo_png(size: int, mode: str) -> bytes:
    """A rendered 3 as a size x size PNG in `mode`: a photo-sized upload of a digit."""
    out = io.BytesIO()
    Image.open(io.BytesIO(render(3, "white_on_black_large"))).resize((size, size)).convert(mode).save(out, "PNG")
    return out.getvalue()


def metrics_with(client, lines: list[str], timeout: float = 10.0) -> str:
    """/metrics once it has every one of `lines` (the server logs a disconnect when it notices it), or at the
    timeout."""
    deadline = time.monotonic() + timeout
    while not all(line in (metrics := client.get("/metrics").text) for line in lines) and time.monotonic() < deadline:
        time.sleep(0.1)
    return metrics


def test_concurrent_photos_queue_for_the_image_threads_instead_of_429(trained_models_dir: Path) -> None:
    photo = photo_png(1024, "RGB")
    budget_mb = math.ceil(2.5 * digit_cost(1024 * 1024, "RGB") / MB)  # two photos' decoding at once, not twelve
    settings = Settings(models_dir=trained_models_dir, max_inflight_mb=budget_mb, image_workers=2)
    with serve("uvicorn", settings) as client:

        def post(_: int) -> tuple[int, object]:
            response = client.post("/predict/digit", content=photo, headers=PNG_HEADERS)
            return response.status_code, response.json().get("digit")

        alone = post(0)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, range(12)))
    assert alone[0] == 200 and answers == [alone] * 12


def test_a_photo_whose_client_hung_up_while_it_waited_is_not_decoded(trained_models_dir: Path) -> None:
    photo = photo_png(2048, "RGBA")  # ~80 ms to decode and predict here
    settings = Settings(models_dir=trained_models_dir, image_workers=1)
    with serve("uvicorn", settings) as client:
        # Seven uploads sent in turn from this thread, so that the six are ahead of the last one in the queue.
        port = client.base_url.port
        uploads = [upload(port, "/predict/digit", "image/png", len(photo), photo) for _ in range(7)]
        time.sleep(0.05)  # its body is in and it waits behind the six on the one image thread; then it hangs up
        uploads.pop().close()
        for sock in uploads:
            with sock:
                assert read_response(sock)[0] == 200
        left = 'route="/predict/digit",status="499"} 1.0'
        metrics = metrics_with(client, [left])
    assert left in metrics
    assert 'deepserve_inference_seconds_count{model="digit"} 6.0' in metrics  # the six, not the one that left


# ---- raw sockets against uvicorn: stalled uploads and disconnects -------------------------------------------------


def test_stalled_uploads_time_out_with_408_and_hold_no_slot(all_models_dir: Path) -> None:
    settings = Settings(models_dir=all_models_dir, max_concurrent_requests=4, body_timeout_seconds=1.0)
    with serve("uvicorn", settings) as client:
        port = client.base_url.port
        started = time.monotonic()
        stalled = [stalled_upload(port, "/predict/digit") for _ in range(4)]
        time.sleep(0.2)  # the four are inside the app, reading their bodies
        series = [float(v % 48) for v in range(100)]
        answers = [
            client.post("/predict/digit", content=PNG, headers=PNG_HEADERS),
            client.post("/predict/sentiment", json={"text": "a good film", "model": "lstm"}),
            client.post("/predict/anomaly", json={"values": series, "method": "autoencoder"}),
        ]
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        for sock in stalled:
            with sock:
                status, headers, body, closed = read_response(sock)
                assert status == 408 and headers["content-type"].startswith("application/json")
                error = json.loads(body)["error"]
                assert error["type"] == "request_timeout" and "DEEPSERVE_BODY_TIMEOUT_SECONDS" in error["message"]
                assert headers.get("connection") == "close" and closed
        assert time.monotonic() - started < 10
        metrics = client.get("/metrics").text
        assert 'route="/predict/digit",status="408"} 4.0' in metrics


def test_uploads_stalled_short_of_the_size_limit_leave_the_budget_to_predictions(all_models_dir: Path) -> None:
    """64 uploads stalled just short of the 4 MB limit (12 MB of estimate each, 768 MB together: the whole budget)
    hold at most a quarter of the budget while they arrive; the others are 429 and closed. A digit and a text whose
    bodies are in are admitted (before: both 429 until the 30 s body timeout freed the budget)."""
    settings = Settings(models_dir=all_models_dir)
    with serve("uvicorn", settings) as client:
        port, limit = client.base_url.port, settings.max_upload_bytes
        stalled = []
        for _ in range(64):
            try:
                stalled.append(upload(port, "/predict/digit", "image/png", limit, b"\0" * (limit - 1024)))
            except OSError:
                pass  # the service refused it and closed the connection while it was being sent
        time.sleep(0.5)  # the bodies the service took are in its memory, waiting for their last kilobyte
        answers = [
            client.post("/predict/digit", content=PNG, headers=PNG_HEADERS),
            client.post("/predict/sentiment", json={"text": "a good film", "model": "lstm"}),
        ]
        assert [r.status_code for r in answers] == [200, 200], [r.text[:300] for r in answers]
        refused = waiting = 0
        for sock in stalled:
            with sock:
                sock.settimeout(1.0)
                try:
                    status, headers, body, closed = read_response(sock)
                except TimeoutError:
                    waiting += 1  # within the arriving quarter: it waits for its body (408 after 30 s)
                    continue
                except OSError:
                    refused += 1  # reset: closed with the rest of its body unread
                    continue
                assert status == 429 and json.loads(body)["error"]["type"] == "overloaded" and closed
                refused += 1
        assert waiting >= 10 and refused + (64 - len(stalled)) >= 30, (waiting, refused, len(stalled))


@pytest.mark.parametrize(
    ("path", "content_type", "first"),
    [
        ("/predict/sentiment", "application/json", b'{"text":'),
        ("/predict/digit", "multipart/form-data; boundary=xyz", b"--xyz\r\nC"),
    ],
)
def test_stalled_json_and_multipart_bodies_time_out_too(
    trained_models_dir: Path, path: str, content_type: str, first: bytes
) -> None:
    settings = Settings(models_dir=trained_models_dir, body_timeout_seconds=1.0)
    with serve("uvicorn", settings) as client:
        with stalled_upload(client.base_url.port, path, content_type, first) as sock:
            status, _, body, _ = read_response(sock)
        assert status == 408 and json.loads(body)["error"]["type"] == "request_timeout"


def test_client_disconnect_is_logged_as_499_not_500(trained_models_dir: Path) -> None:
    with serve("uvicorn", Settings(models_dir=trained_models_dir)) as client:
        for path, content_type in [("/predict/digit", "image/png"), ("/predict/sentiment", "application/json")]:
            sock = stalled_upload(client.base_url.port, path, content_type)
            time.sleep(0.3)
            sock.close()
        expected = [f'route="{path}",status="499"}} 1.0' for path in ("/predict/digit", "/predict/sentiment")]
        metrics = metrics_with(client, expected)
        assert all(line in metrics for line in expected), metrics
        assert 'status="500"' not in metrics
        assert client.post("/predict/digit", content=PNG, headers=PNG_HEADERS).status_code == 200
