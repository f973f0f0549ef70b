"""DistilBERT sentiment served from its int8-quantised ONNX export with ONNX Runtime and the fast tokenizer.

No PyTorch or transformers at serving time: the tokenizer is the `tokenizers` package reading the tokenizer.json
that `save_pretrained` wrote, and the labels come from config.json's id2label. Text longer than the model's
limit (512 tokens, [CLS] and [SEP] included) is truncated by the tokenizer: the model reads the first 510
word pieces and the output says `truncated: true`. A batch is padded to its longest text (dynamic padding).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from app.families.runtime import onnx_session
from app.families.sentiment import SentimentResult, SentimentRuntime

log = logging.getLogger("deepserve.distilbert")

MAX_LENGTH = 512  # DistilBERT's position embeddings
MB = 2**20
# Working memory (bench/cost_factors.py, int8, real shape, random weights): per text ~29 KB/token + ~196
# B/token^2 (attention): 32 x 512 tokens +2,022 MB (63 MB a text), 32 x 103 +155 MB, 32 x 33 +36 MB, 8 x 67
# +18 MB. A batch is split into model calls of at most CALL_BYTES (`logits`), so no call, however the
# micro-batcher mixes requests, needs more.
BYTES_PER_TOKEN = 29.0 * 1024
BYTES_PER_TOKEN_SQUARED = 200.0
CALL_BYTES = 128 * MB
FIXED_BYTES = 8 * MB


def text_bytes(tokens: int) -> float:
    """Working memory of one text of `tokens` word pieces in a model call."""
    return tokens * BYTES_PER_TOKEN + tokens * tokens * BYTES_PER_TOKEN_SQUARED


def chunks_within(lengths: np.ndarray, max_bytes: float) -> list[np.ndarray]:
    """Row indices grouped shortest first, each group as many texts as fit in `max_bytes` padded to its longest
    (at least one text per group)."""
    order = np.argsort(lengths, kind="stable")
    groups: list[list[int]] = [[]]
    for i in order:
        group = groups[-1]
        if group and (len(group) + 1) * text_bytes(int(lengths[i])) > max_bytes:
            groups.append(group := [])
        group.append(int(i))
    return [np.array(g) for g in groups if g]


class DistilBertRuntime(SentimentRuntime):
    kind = "distilbert-onnx"

    def load(self) -> None:
        from tokenizers import Tokenizer

        config = json.loads(self.file("config").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        upper = [label.upper() for label in self.labels]
        if len(upper) != 2 or "POSITIVE" not in upper:
            raise ValueError(f"config.json id2label must be NEGATIVE and POSITIVE, found {self.labels}")
        self.positive = upper.index("POSITIVE")
        self.max_length = min(MAX_LENGTH, int(config.get("max_position_embeddings", MAX_LENGTH)))
        self.tokenizer = Tokenizer.from_file(str(self.file("tokenizer")))
        pad_id = int(config.get("pad_token_id") or self.tokenizer.token_to_id("[PAD]") or 0)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=self.tokenizer.id_to_token(pad_id) or "[PAD]")
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads, shrink_arena=True)
        names = {i.name for i in self.session.get_inputs()}
        if names != {"input_ids", "attention_mask"}:
            raise ValueError(f"expected ONNX inputs input_ids and attention_mask, found {sorted(names)}")
        self.random_weights = bool(self.entry.metrics.get("random_weights", False))
        if self.random_weights:
            log.warning("%s v%s has RANDOM weights (a test artifact): its predictions mean nothing", *self._ref())

    def _ref(self) -> tuple[str, str]:
        return self.entry.name, self.entry.version

    def warmup(self) -> None:
        self.predict(["A warm-up sentence.", "Another, slightly longer warm-up sentence for the padding."])

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """input_ids and attention_mask (int64, padded to the longest text) and whether each text was truncated."""
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask, [bool(e.overflowing) for e in encodings]

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
        """Tokens bounded from characters (a word piece has at least one character), no tokenizing; model calls
        of at most CALL_BYTES (one text when it alone needs more)."""
        tokens = min(max(len(text) for text in request) + 2, self.max_length)
        one = text_bytes(tokens)
        return int(FIXED_BYTES + min(len(request) * one, max(CALL_BYTES, one)))

    def predict(self, batch: list[str]) -> list[SentimentResult]:
        logits, truncated = self.logits(list(batch))
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = z / z.sum(axis=1, keepdims=True)
        # score = probability of POSITIVE; with two labels, POSITIVE is the argmax exactly when >= 0.5
        return [
            SentimentResult.of(float(p), cut)
            for p, cut in zip(probabilities[:, self.positive], truncated, strict=True)
        ]

    def input_description(self) -> dict[str, Any]:
        description = {
            "content_types": ["application/json"],
            "body": '{"text": str} or {"texts": [str, ...]}, optional "model": "distilbert"',
            "text": f"English text; longer than {self.max_length} tokens is truncated (`truncated: true`)",
            "output": "label POSITIVE|NEGATIVE, score = probability of positive",
        }
        if self.random_weights:
            description["warning"] = "random weights: a test artifact, not a trained model"
        return description
