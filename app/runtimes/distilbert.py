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

from app.runtimes.base import Runtime, onnx_session

log = logging.getLogger("deepserve.distilbert")

MAX_LENGTH = 512  # DistilBERT's position embeddings


class DistilBertRuntime(Runtime):
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
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads)
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

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """input_ids and attention_mask (int64, padded to the longest text) and whether each text was truncated."""
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask, [bool(e.overflowing) for e in encodings]

    def logits(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        ids, mask, truncated = self.encode(texts)
        return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0], truncated

    def predict(self, batch: list[str]) -> list[dict[str, Any]]:
        logits, truncated = self.logits(list(batch))
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = z / z.sum(axis=1, keepdims=True)
        return [  # score = probability of POSITIVE; with two labels, POSITIVE is the argmax exactly when >= 0.5
            {"label": "POSITIVE" if p >= 0.5 else "NEGATIVE", "score": float(p), "truncated": cut}
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
