"""A fine-tuned transformer sentiment classifier (MiniLM, DistilBERT) served from its ONNX export (int8 or float).

No PyTorch or transformers at serving time: the tokenizer is the `tokenizers` package reading the tokenizer.json
that `save_pretrained` wrote, and the labels come from config.json's id2label. Text longer than the model's limit
(tokenization.json's max_length, at most 512 tokens with [CLS] and [SEP]) keeps its first `head` word pieces and
its last ones (app/families/transformer_text.py; artifacts without tokenization.json keep the start only) and the
output says `truncated: true`. A batch runs as model calls of texts of similar length, each padded to its longest
(dynamic padding).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from app.config import cpu_cores
from app.families import transformer_text
from app.families.runtime import onnx_session
from app.families.sentiment import SentimentResult, SentimentRuntime

log = logging.getLogger("deepserve.transformer")

MAX_LENGTH = 512  # BERT's and DistilBERT's position embeddings
MB = 2**20
# Working memory (bench/cost_factors.py, DistilBERT int8, real shape, random weights; MiniLM, 384 wide instead of
# 768, needs less, so these bound it too): per text ~29 KB/token + ~196
# B/token^2 (attention): 32 x 512 tokens +2,022 MB (63 MB a text), 32 x 103 +155 MB, 32 x 33 +36 MB, 8 x 67
# +18 MB. A batch is split into model calls of at most CALL_BYTES (`logits`), so no call, however the
# micro-batcher mixes requests, needs more.
BYTES_PER_TOKEN = 29.0 * 1024
BYTES_PER_TOKEN_SQUARED = 200.0
CALL_BYTES = 128 * MB
# A micro-batch of reviews of 20-80 words padded to its longest was ~35% padding (bench/sentiment_vs_pytorch.py):
# a model call holds texts of similar length, so padding is at most this share of its tokens.
MAX_PADDING = 0.2
FIXED_BYTES = 8 * MB
# Requests up to this many characters are tokenised to cost them, on the event loop (~0.12 ms for 400 characters,
# ~1.2 ms at this limit): the character bound charged a 350-character review (~80 word pieces) for 352, 43 MB, and
# 32 such reviews in flight overran the admission budget (429s at c=32, bench/sentiment_vs_pytorch.py).
TOKENIZE_CHARS = 4096


def text_bytes(tokens: int) -> float:
    """Working memory of one text of `tokens` word pieces in a model call."""
    return tokens * BYTES_PER_TOKEN + tokens * tokens * BYTES_PER_TOKEN_SQUARED


def chunks_within(lengths: np.ndarray, max_bytes: float, max_padding: float = MAX_PADDING) -> list[np.ndarray]:
    """Row indices grouped shortest first, each group as many texts as fit in `max_bytes` padded to its longest
    and whose padding stays at most `max_padding` of the group's tokens (at least one text per group)."""
    order = np.argsort(lengths, kind="stable")
    groups: list[list[int]] = [[]]
    tokens = 0  # the group's word pieces, unpadded
    for i in order:
        group, length = groups[-1], int(lengths[i])
        texts = len(group) + 1
        if group and (texts * text_bytes(length) > max_bytes or tokens + length < (1 - max_padding) * texts * length):
            groups.append(group := [])
            tokens = 0
        group.append(int(i))
        tokens += length
    return [np.array(g) for g in groups if g]


class TransformerSentimentRuntime(SentimentRuntime):
    """Subclasses name their manifest `runtime` (kind); everything else is shared."""

    def load(self) -> None:
        from tokenizers import Tokenizer

        config = json.loads(self.file("config").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        upper = [label.upper() for label in self.labels]
        if len(upper) != 2 or "POSITIVE" not in upper:
            raise ValueError(f"config.json id2label must be NEGATIVE and POSITIVE, found {self.labels}")
        self.positive = upper.index("POSITIVE")
        self.tokenizer = transformer_text.prepare(Tokenizer.from_file(str(self.file("tokenizer"))))
        tokenization = json.loads(self.file("tokenization").read_text()) if "tokenization" in self.entry.files else {}
        limit = min(MAX_LENGTH, int(config.get("max_position_embeddings", MAX_LENGTH)))
        self.max_length = min(limit, int(tokenization.get("max_length", limit)))
        self.head = int(tokenization.get("head", self.max_length - 2))  # without the file: the start only
        self.pad_id = int(tokenization.get("pad_id", config.get("pad_token_id") or 0))
        # Spinning: one call is milliseconds of work, and sleeping threads woke late between its ops (MiniLM, quiet
        # machine, bench.sentiment_latency over HTTP: short 4.1 -> 2.9 ms, 256 tokens 33.2 -> 29.6 ms; c=32 unbatched
        # 226 -> 208 right answers/s in bench.sentiment_vs_pytorch, within this machine's run-to-run noise).
        # Micro-batched, a worker process makes one call at a time, and each worker's call gets its share of the cores:
        # with all cores each, two workers' spinning threads fought over 2 cores (bench.sentiment_vs_pytorch, c=32,
        # batched: 177 -> 288 right answers/s with one thread each); unbatched, a lone long review keeps both cores.
        threads = self.settings.inference_threads or (self.batched_threads() if self.batched() else 0)
        self.session = onnx_session(self.file("onnx"), threads, shrink_arena=True, spinning=True)
        names = {i.name for i in self.session.get_inputs()}
        if names != {"input_ids", "attention_mask"}:
            raise ValueError(f"expected ONNX inputs input_ids and attention_mask, found {sorted(names)}")
        self.random_weights = bool(self.entry.metrics.get("random_weights", False))
        if self.random_weights:
            log.warning("%s v%s has RANDOM weights (a test artifact): its predictions mean nothing", *self._ref())

    def batched_threads(self) -> int:
        return max(1, cpu_cores() // self.settings.workers)

    def _ref(self) -> tuple[str, str]:
        return self.entry.name, self.entry.version

    def warmup(self) -> None:
        self.predict(["A warm-up sentence.", "Another, slightly longer warm-up sentence for the padding."])

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """input_ids and attention_mask (int64, padded to the longest text) and whether each text was truncated."""
        return transformer_text.encode(self.tokenizer, texts, self.max_length, self.head, self.pad_id)

    def logits(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Logits of every text, in model calls of texts of similar length whose working memory stays under
        CALL_BYTES: a batch padded to its longest text costs ~29 KB per token plus ~200 B per
        token^2 per text (attention), so 32 texts of 512 tokens in one call peaked at +2 GB; and a micro-batch
        mixing one long text with many short ones would pad them all to 512."""
        ids, mask, truncated = self.tokenize(texts)
        lengths = mask.sum(axis=1)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for rows in chunks_within(lengths, CALL_BYTES):
            width = int(lengths[rows].max())
            feed = {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]}
            out[rows] = self.session.run(["logits"], feed)[0]
        return out, truncated

    def cost(self, request: list[str]) -> int:
        """The longest text's word pieces, counted by the tokenizer for requests of up to TOKENIZE_CHARS characters
        and bounded from characters beyond (a word piece has at least one character); model calls of at most
        CALL_BYTES (one text when it alone needs more)."""
        if sum(map(len, request)) <= TOKENIZE_CHARS:
            tokens = min(max(len(self.tokenizer.encode(text).ids) for text in request), self.max_length)
        else:
            tokens = min(max(len(text) for text in request) + 2, self.max_length)
        one = text_bytes(tokens)
        return int(FIXED_BYTES + min(len(request) * one, max(CALL_BYTES, one)))

    def predict(self, batch: list[str]) -> list[SentimentResult]:
        logits, truncated = self.logits(list(batch))
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = z / z.sum(axis=1, keepdims=True)
        # score = probability of POSITIVE; with two labels, POSITIVE is the argmax exactly when >= 0.5
        return self.results(list(batch), probabilities[:, self.positive], list(truncated))

    def input_description(self) -> dict[str, Any]:
        description = {
            "content_types": ["application/json"],
            "body": f'{{"text": str}} or {{"texts": [str, ...]}}, optional "model": "{self.entry.name}"',
            "text": f"English text; longer than {self.max_length} word pieces keeps its first {self.head} and its "
            f"last {self.max_length - 2 - self.head} (`truncated: true`)",
            "output": "label POSITIVE|NEGATIVE, score = probability of positive",
        }
        if self.random_weights:
            description["warning"] = "random weights: a test artifact, not a trained model"
        return description
