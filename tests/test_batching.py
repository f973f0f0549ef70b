"""The micro-batcher: grouping, routing of results and errors, size limit, how long a lone request waits, settings."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from app.config import Settings, cpu_cores
from app.core import batching
from app.core.batching import MicroBatcher
from app.core.inference import Inference
from app.core.limiter import ConcurrencyLimiter
from app.core.metrics import Metrics
from app.core.registry import ModelRegistry
from app.errors import InvalidImage
from app.families.digit.runtime import DigitRuntime
from app.families.images import ImageUpload
from app.families.runtime import Runtime
from app.manifest import ManifestEntry
from tests.support.digit_images import render


class Recorder:
    """A synchronous 'model' that records the batches it was called with and doubles each input."""

    def __init__(self, delay: float = 0.01, fail_on: object = None) -> None:
        self.batches: list[list[int]] = []
        self.delay, self.fail_on = delay, fail_on
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        time.sleep(self.delay)
        if self.fail_on in items:
            raise ValueError(f"bad input {self.fail_on}")
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_calls_and_get_their_own_results() -> None:
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, max_batch_size=32, max_batch_wait=0.02, name="t")
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(40)))
        await batcher.close()
        return results

    results = run(main())
    assert results == [[2 * i] for i in range(40)]
    assert len(model.batches) < 40 / 4  # grouped: far fewer model calls than requests
    assert sorted(x for b in model.batches for x in b) == list(range(40))
    assert max(len(b) for b in model.batches) <= 32
    assert threading.main_thread().name not in model.threads  # the model ran off the event loop


def test_max_batch_size_is_respected() -> None:
    model = Recorder(delay=0.0)

    async def main():
        batcher = MicroBatcher(model, max_batch_size=4, max_batch_wait=0.05)
        out = await asyncio.gather(*(batcher.submit([i]) for i in range(10)), batcher.submit([100, 101, 102]))
        await batcher.close()
        return out

    out = run(main())
    assert out[-1] == [200, 202, 204]  # a multi-item request gets its outputs in order
    assert all(len(b) <= 4 for b in model.batches)
    assert sum(len(b) for b in model.batches) == 13


def test_a_failed_batch_fails_every_caller_in_it_and_the_batcher_keeps_serving() -> None:
    model = Recorder(fail_on=3)

    async def main():
        batcher = MicroBatcher(model, max_batch_size=8, max_batch_wait=0.05)
        first = await asyncio.gather(*(batcher.submit([i]) for i in range(5)), return_exceptions=True)
        second = await batcher.submit([7])
        await batcher.close()
        return first, second

    first, second = run(main())
    assert len(model.batches[0]) == 5  # the five requests shared one call
    assert all(isinstance(r, ValueError) and "bad input 3" in str(r) for r in first)
    assert second == [14]


def test_wrong_output_count_is_an_error_for_the_callers() -> None:
    async def main():
        batcher = MicroBatcher(lambda items: items[:-1], max_batch_size=8, max_batch_wait=0.01)
        with pytest.raises(RuntimeError, match="outputs for 2 inputs"):
            await batcher.submit([1, 2])
        await batcher.close()

    run(main())


def test_a_lone_request_waits_for_company_at_most_max_wait_then_runs_as_a_batch_of_one(monkeypatch) -> None:
    """The batcher's only wait is asyncio.wait_for on its wakeup event: record the timeouts it asks for."""
    model = Recorder(delay=0.0)
    waits: list[float] = []
    real_wait_for = asyncio.wait_for

    async def recording_wait_for(awaitable, timeout):
        waits.append(timeout)
        return await real_wait_for(awaitable, timeout)

    monkeypatch.setattr(batching.asyncio, "wait_for", recording_wait_for)

    async def main():
        batcher = MicroBatcher(model, max_batch_size=32, max_batch_wait=0.02)
        assert await batcher.submit([1]) == [2]
        await batcher.close()
        return batcher.calls

    assert run(main()) == 1
    assert model.batches == [[1]]  # went alone, in its own model call
    assert waits and all(0 < w <= 0.02 for w in waits)  # waited for company, never longer than max_batch_wait


def test_a_request_arriving_during_the_wait_joins_the_waiting_batch() -> None:
    model = Recorder(delay=0.0)

    async def main():
        # A 60 s wait that never elapses: the batch runs because it is full, not because the wait ran out.
        batcher = MicroBatcher(model, max_batch_size=2, max_batch_wait=60.0)
        first = asyncio.ensure_future(batcher.submit([1]))
        for _ in range(3):
            await asyncio.sleep(0)  # let the batcher run: it holds the first item and waits for company
        assert batcher.calls == 0 and not first.done()  # the first request has not gone alone
        second = asyncio.ensure_future(batcher.submit([2]))
        results = await asyncio.wait_for(asyncio.gather(first, second), timeout=30)
        await batcher.close()
        return results, batcher.calls

    assert run(main()) == ([[2], [4]], 1)
    assert model.batches == [[1, 2]]


def test_cancelled_caller_does_not_break_the_batch() -> None:
    model = Recorder(delay=0.05)

    async def main():
        batcher = MicroBatcher(model, max_batch_size=8, max_batch_wait=0.01)
        doomed = asyncio.ensure_future(batcher.submit([1]))
        kept = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0.02)  # both are in the running batch
        doomed.cancel()
        result = await kept
        await batcher.close()
        return result

    assert run(main()) == [4]


def test_close_cancels_the_task_and_waiting_callers() -> None:
    model = Recorder(delay=0.0)

    async def main():
        batcher = MicroBatcher(model, max_batch_size=8, max_batch_wait=10.0)  # would wait 10 s for company
        waiting = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.01)
        await batcher.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert batcher._task is None

    run(main())


class FakeRuntime:
    batchable = True
    batched = Runtime.batched  # the rule under test: settings name the model and allow batches over 1

    def __init__(self, name: str, settings: Settings) -> None:
        self.entry = ManifestEntry(name=name, version="1", task="t", runtime="r", path=".")
        self.settings = settings

    def predict(self, batch):
        return batch


def test_batching_is_per_model_and_configurable() -> None:
    settings = Settings(batch_models="distilbert,lstm", max_batch_size=16, max_batch_wait_ms=2)
    assert settings.batch_models == ["distilbert", "lstm"]
    assert Settings().batch_models == ["distilbert"]
    assert Settings(batch_models="").batch_models == []

    async def main():
        inference = Inference(settings, Metrics())
        bert, digit = FakeRuntime("distilbert", settings), FakeRuntime("digit", settings)
        assert inference.batcher(digit) is None  # off where it does not pay
        batcher = inference.batcher(bert)
        assert batcher is not None and batcher is inference.batcher(bert)  # one per model
        assert (batcher.max_batch_size, batcher.max_batch_wait) == (16, 0.002)
        assert await inference(bert, ["x", "y"]) == ["x", "y"] and batcher.calls == 1
        assert await inference(digit, ["z"]) == ["z"]  # unbatched path
        reloaded = FakeRuntime("distilbert", settings)  # a model loaded again gets a fresh batcher
        assert inference.batcher(reloaded) is not batcher
        one = Settings(max_batch_size=1)
        assert Inference(one, Metrics()).batcher(FakeRuntime("distilbert", one)) is None
        explainer = FakeRuntime("distilbert", settings)
        explainer.batchable = False  # an explainer of a batched model (one per request): never batched
        assert inference.batcher(explainer) is None
        await inference.close()
        assert batcher._task is None and not inference.batchers

    run(main())


def test_image_work_gets_a_thread_per_core_and_models_their_own_pool() -> None:
    async def threads(settings: Settings, image: bool) -> set[str]:
        """The names of the threads that ran 12 calls made at once: a pool starts a thread per call it cannot give
        to an idle one, up to its size."""
        inference = Inference(settings, Metrics())
        release = threading.Event()

        def hold() -> str:
            release.wait(5)
            return threading.current_thread().name

        calls = [asyncio.ensure_future(inference.offload(hold, image=image)) for _ in range(12)]
        await asyncio.sleep(0.2)
        release.set()
        names = set(await asyncio.gather(*calls))
        await inference.close()
        return names

    images = run(threads(Settings(), image=True))
    assert len(images) == max(2, cpu_cores()) and all(name.startswith("image") for name in images)
    models = run(threads(Settings(), image=False))
    assert len(models) == 8 and all(name.startswith("model") for name in models)
    assert len(run(threads(Settings(image_workers=5), image=True))) == 5


# --- the same-turn batcher (small digits on the event loop) -------------------------------------------------------


def test_requests_of_one_turn_share_a_pass_and_a_lone_one_waits_for_nothing() -> None:
    passes: list[list[int]] = []

    def work(requests: list[int]) -> list[batching.Outcome]:
        passes.append(list(requests))
        return [ValueError(f"bad {r}") if r < 0 else [r * 2] for r in requests]

    async def main() -> None:
        batcher = batching.TurnBatcher(work, max_batch_size=4)
        assert await batcher.submit(1) == [2]  # alone: its own pass, in the turn it came
        results = await asyncio.gather(*(batcher.submit(i) for i in (2, -3, 4, 5, 6, 7)), return_exceptions=True)
        assert results[0] == [4] and isinstance(results[1], ValueError) and results[2:] == [[8], [10], [12], [14]]

    run(main())
    assert passes == [[1], [2, -3, 4, 5], [6, 7]]  # the bad one failed alone; at most max_batch_size a pass


def test_a_cancelled_caller_is_left_out_of_its_pass() -> None:
    passes: list[list[int]] = []

    async def main() -> None:
        batcher = batching.TurnBatcher(lambda rs: passes.append(list(rs)) or [[r] for r in rs], max_batch_size=8)
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)  # both are waiting for the end of the turn
        gone.cancel()
        assert await kept == [2]

    run(main())
    assert passes == [[2]]


def test_concurrent_digits_share_model_calls_and_a_corrupt_one_fails_alone() -> None:
    """The committed digit model: 24 small digits reaching the model in one turn of the loop (one of them not an
    image) get their right answers from fewer model calls than digits, and the bad one fails alone. (Over a real
    server, requests share a turn when they queue up under load: bench/peers measures what that gives.)"""
    registry = ModelRegistry(Settings(models=["digit"]))
    registry.load_all()
    runtime = registry.runtime("digit", DigitRuntime)
    metrics = Metrics()
    inference, limiter = Inference(Settings(), metrics), ConcurrencyLimiter(64)
    bodies = [render(i % 10, "mnist_28", seed=i) for i in range(23)] + [b"not an image at all"]
    uploads = [ImageUpload.read(body, 4096 * 4096) for body in bodies]

    async def burst() -> list:
        return await asyncio.gather(*(inference.outputs(runtime, u, limiter) for u in uploads), return_exceptions=True)

    answers = run(burst())
    assert [a[0].digit for a in answers[:23]] == [i % 10 for i in range(23)]
    assert isinstance(answers[23], InvalidImage)
    text = metrics.exposition().decode()
    calls = float(re.search(r'deepserve_batch_size_count\{model="digit"\} (\S+)', text).group(1))
    assert calls < 23 / 4, calls
