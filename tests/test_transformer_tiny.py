"""The transformer pipeline end to end with a tiny random-weight DistilBERT: training script -> ONNX -> int8 ->
runtime -> service."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.core.metrics import Metrics
from app.families import transformer_text
from app.families.distilbert.runtime import DistilBertRuntime
from app.manifest import read_manifest
from tests.support.imdb_like import review, write_corpus
from tests.support.service import assert_error, serve
from training import train_transformer
from training.common import export

TEXTS = [
    "This movie was absolutely wonderful, I loved every minute of it.",
    "A dull, lifeless film.",
    "Terrible. Just terrible.",
    "meh",
    "The soundtrack is great; the rest is forgettable, and the ending drags on for far too long.",
    "Brilliant, moving and funny: a masterpiece.",
]
LONG = "an endless review " * 400  # ~1,200 word pieces: truncated to 512


@pytest.fixture(scope="module")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distilbert_models")
    train_transformer.main(["--tiny", "--out", str(out), "--keep-fp32-onnx"])
    return out


@pytest.fixture(scope="module")
def runtime(tiny_models_dir: Path) -> DistilBertRuntime:
    entry = read_manifest(tiny_models_dir).latest()["distilbert"]
    rt = DistilBertRuntime(entry, tiny_models_dir / entry.path, Settings(models_dir=tiny_models_dir))
    rt.load()
    rt.warmup()
    return rt


def pytorch_scores(artifact: Path, texts: list[str]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(artifact / "hf").eval()
    tokenizer = AutoTokenizer.from_pretrained(artifact / "hf")
    backend = transformer_text.prepare(tokenizer.backend_tokenizer)
    ids, mask, _ = transformer_text.encode(backend, texts, 512, 510, tokenizer.pad_token_id)
    logits = train_transformer.batched_logits(train_transformer.torch_runner(model), ids, mask)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True))[:, 1]


def test_tiny_artifact_is_complete_and_marked_random(tiny_models_dir: Path) -> None:
    [entry] = read_manifest(tiny_models_dir).models
    assert (entry.name, entry.version, entry.runtime) == ("distilbert", "random", "distilbert-onnx")
    assert entry.task == "text-classification/sentiment"
    artifact = tiny_models_dir / entry.path
    for role in ("onnx", "onnx_fp32", "tokenizer", "config", "tokenization", "metrics"):
        assert (artifact / entry.files[role]).is_file(), role
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["random_weights"] is True and entry.metrics["random_weights"] is True
    assert metrics["test_artifact"] is True
    assert metrics["onnx_fp32_max_abs_logit_diff"] < 1e-4  # the export computes what PyTorch computes
    assert metrics["onnx_fp32_label_agreement"] == 1.0
    assert metrics["served_label_agreement"] >= 0.85 and entry.files["onnx"] == "model.int8.onnx"
    checks = {r: metrics[f"int8_{r}_check"] for r in export.QUANTIZATION_RECIPES}  # each recipe was tried
    worst = {r: -min(check.values(), default=0.0) for r, check in checks.items()}
    kept = [r for r in export.QUANTIZATION_RECIPES if worst[r] <= train_transformer.INT8_TOLERANCE]
    assert metrics["quantization"] == min(kept, key=worst.__getitem__)  # the one that loses least
    assert sorted(p.name for p in artifact.glob("*.onnx")) == ["model.int8.onnx", "model.onnx"]  # no candidates left
    assert metrics["serving_tokenizer_matches"] is True  # the saved tokenizer.json tokenises as training did
    assert metrics["onnx_served_bytes"] < metrics["onnx_fp32_bytes"] / 3  # int8 weights
    assert entry.command.startswith("python -m training.train_transformer --tiny")


def test_tiny_never_writes_into_models() -> None:
    with pytest.raises(SystemExit):
        train_transformer.parse_args(["--tiny"])


def test_int8_runtime_agrees_with_pytorch(tiny_models_dir: Path, runtime: DistilBertRuntime) -> None:
    texts = [*TEXTS, LONG]
    reference = pytorch_scores(runtime.artifact_dir, texts)
    outputs = runtime.predict(texts)
    assert len(outputs) == len(texts)
    scores = np.array([o.score for o in outputs])
    assert np.abs(scores - reference).max() < 0.1
    confident = np.abs(reference - 0.5) > 0.05  # int8 may flip a coin-toss, never a clear call
    assert confident.sum() >= 3
    assert [o.label for o, sure in zip(outputs, confident, strict=True) if sure] == [
        "POSITIVE" if p >= 0.5 else "NEGATIVE" for p in reference[confident]
    ]
    assert all(o.label == ("POSITIVE" if o.score >= 0.5 else "NEGATIVE") for o in outputs)
    assert [o.truncated for o in outputs] == [False] * len(TEXTS) + [True]


def test_dynamic_padding_and_batch_independence(runtime: DistilBertRuntime) -> None:
    ids, mask, _ = runtime.tokenize(["short", "a somewhat longer sentence than the first"])
    assert ids.shape == mask.shape and ids.shape[1] == mask[1].sum()  # padded to the longest, not to 512
    assert mask[0].sum() == 3 and (ids[0, 3:] == 0).all()  # [CLS] short [SEP] then [PAD]s
    assert runtime.tokenize([LONG])[0].shape == (1, 512)
    assert runtime.head == 128  # the tiny artifact keeps the default head+tail split
    together = [o.score for o in runtime.predict(TEXTS)]
    alone = [runtime.predict([t])[0].score for t in TEXTS]
    assert np.allclose(together, alone, atol=0.05)  # int8 activation scales depend a little on the batch


def test_concurrent_infer_calls_are_batched(runtime: DistilBertRuntime) -> None:
    from app.core.inference import Inference

    texts = [f"review number {i}: {TEXTS[i % len(TEXTS)]}" for i in range(24)]
    alone = [runtime.predict([t])[0].score for t in texts]
    inference = Inference(runtime.settings, Metrics())

    async def main():
        outs = await asyncio.gather(*(inference(runtime, [t]) for t in texts))
        calls = inference.batcher(runtime).calls
        await inference.close()
        return [o for [o] in outs], calls

    outs, calls = asyncio.run(main())
    assert calls < len(texts) / 2
    assert np.allclose([o.score for o in outs], alone, atol=0.05)  # each caller got its own text's result


def test_served_through_the_registry_and_route(tiny_models_dir: Path, runtime: DistilBertRuntime) -> None:
    with serve("asgi", Settings(models_dir=tiny_models_dir)) as client:
        served = client.app.state.registry.runtime("distilbert")
        assert isinstance(served, DistilBertRuntime) and served.random_weights
        info = client.get("/models/distilbert")
        assert info.status_code == 200 and info.json()["state"] == "ready"
        r = client.post("/predict/sentiment", json={"texts": TEXTS, "model": "distilbert"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == {"name": "distilbert", "version": "random"}
        direct = runtime.predict(TEXTS)
        assert np.allclose([x["score"] for x in body["results"]], [d.score for d in direct], atol=1e-5)
        assert [x["label"] for x in body["results"]] == [d.label for d in direct]
        assert not any(x["truncated"] for x in body["results"])
        one = client.post("/predict/sentiment", json={"text": LONG, "model": "distilbert"})
        assert one.status_code == 200 and [x["truncated"] for x in one.json()["results"]] == [True]
        unnamed = client.post("/predict/sentiment", json={"text": "great film"})  # never the default, even alone
        assert assert_error(unnamed, 503, "model_not_installed")["detail"]["model"] == "minilm"


@pytest.mark.slow
def test_finetune_from_a_local_folder_learns_a_corpus(tiny_models_dir: Path, tmp_path: Path) -> None:
    """The path users run on IMDb (load a saved model folder, train, export, quantise, evaluate), here starting
    from the tiny random model on the generated corpus: it must go from chance to learning the labels."""
    data = tmp_path / "imdb_like"
    data.mkdir()
    write_corpus(data)
    base = tiny_models_dir / "distilbert" / "random" / "hf"
    args = ["--base", str(base), "--imdb", str(data), "--out", str(tmp_path / "models")]
    args += ["--imdb-limit", "0", "--holdout", "100", "--eval-limit", "0", "--train-max-length", "64"]
    args += ["--epochs", "6", "--learning-rate", "5e-3"]  # a random start needs far more than BERT's 5e-5
    artifact = train_transformer.main(args)
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["finetuned"] and metrics["base_model"] == str(base) and metrics["imdb_train_examples"] == 500
    losses = metrics["history"]["loss"]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    assert metrics["imdb_test_examples"] == 200 and metrics["onnx_fp32_imdb_test_accuracy"] >= 0.9
    assert metrics["imdb_test_accuracy"] >= 0.9 and metrics["served_label_agreement"] >= 0.9
    rng = random.Random(99)  # new reviews of the corpus' kind, served over HTTP
    labels = [i % 2 for i in range(20)]
    texts = [review(rng, label) for label in labels]
    with serve("asgi", Settings(models_dir=tmp_path / "models")) as client:
        r = client.post("/predict/sentiment", json={"texts": texts, "model": "distilbert"})
        assert r.status_code == 200, r.text
        served = [x["label"] == "POSITIVE" for x in r.json()["results"]]
        assert sum(s == bool(label) for s, label in zip(served, labels, strict=True)) >= 18


def test_not_installed_answers_503_with_the_install_command(tmp_path: Path) -> None:
    with serve("asgi", Settings(models_dir=tmp_path)) as client:
        r = client.post("/predict/sentiment", json={"text": "great film", "model": "distilbert"})
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["type"] == "model_not_installed"
        assert "python -m training.train_transformer" in error["message"]
        assert error["detail"]["install"].startswith("pip install -e '.[distilbert]', then python -m training")
        assert client.get("/models/distilbert").json()["state"] == "not_installed"


def test_evaluate_sentiment_scores_and_records_a_chosen_version(
    tiny_models_dir: Path, runtime: DistilBertRuntime, tmp_path: Path
) -> None:
    from training import evaluate_sentiment

    negation = tmp_path / "negation.tsv"
    negation.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(TEXTS)))
    args = ["--model", "distilbert", "--models-dir", str(tiny_models_dir), "--negation", str(negation)]
    found = evaluate_sentiment.main([*args, "--version", "random", "--record"])
    right = [(o.label == "POSITIVE") == bool(i % 2) for i, o in enumerate(runtime.predict(TEXTS))]
    assert found["negation_examples"] == len(TEXTS) and found["negation_accuracy"] == round(np.mean(right), 5)
    [entry] = read_manifest(tiny_models_dir).versions("distilbert")
    assert entry.metrics["negation_accuracy"] == found["negation_accuracy"]  # recorded on that version
    with pytest.raises(ValueError, match="no version '7'"):  # never silently the served one
        evaluate_sentiment.main([*args, "--version", "7"])
