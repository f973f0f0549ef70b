"""The LSTM sentiment model served from its ONNX export, with the tokenizer saved by its training run."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.families.lstm.tokenizer import TextTokenizer
from app.families.runtime import onnx_session
from app.families.sentiment import SentimentResult, SentimentRuntime

# Working memory of the padded batch [texts, longest] (bench/cost_factors.py, 3 x BiLSTM(64) averaged):
# 32 x 600 tokens +66 MB (3.6 KB/token), 32 x 300 +33 MB, 32 x 100 +8.8 MB.
BYTES_PER_TOKEN = 4096.0
FIXED_BYTES = 2 * 2**20


class LstmSentimentRuntime(SentimentRuntime):
    kind = "lstm-onnx"

    def load(self) -> None:
        self.tokenizer = TextTokenizer.load(self.file("tokenizer"))
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads, shrink_arena=True)
        spec = self.session.get_inputs()[0]
        if len(spec.shape) != 2 or spec.type not in ("tensor(int32)", "tensor(int64)"):
            raise ValueError(f"expected an ONNX input of int ids [batch, length], found {spec.type} {spec.shape}")
        self.input_name = spec.name
        self.dtype = np.int32 if spec.type == "tensor(int32)" else np.int64

    def warmup(self) -> None:
        self.predict(["A warm-up review: the plot was fine."])

    def cost(self, request: list[str]) -> int:
        """Tokens bounded from characters (a word is at least one character and one separator), no tokenizing."""
        tokens = min(max(len(text) for text in request) // 2 + 1, self.tokenizer.max_length)
        return int(FIXED_BYTES + len(request) * tokens * BYTES_PER_TOKEN)

    def predict(self, batch: list[str]) -> list[SentimentResult]:
        """P(positive) per text. Padding is masked by the model, so a batch is padded only to its longest text."""
        ids, truncated = self.tokenizer.encode_and_truncated(list(batch))
        probabilities = self.session.run(None, {self.input_name: ids.astype(self.dtype, copy=False)})[0].reshape(-1)
        return self.results(list(batch), probabilities, list(truncated))

    def input_description(self) -> dict[str, Any]:
        return {
            "content_types": ["application/json"],
            "body": '{"text": str} or {"texts": [str, ...]}, optional "model": "lstm"',
            "text": f"raw English text; lowercased, HTML and punctuation stripped, {self.tokenizer.vocab_size} ids, "
            f"reviews over {self.tokenizer.max_length} words keep their "
            f"{'last' if self.tokenizer.truncate == 'pre' else 'first'} {self.tokenizer.max_length} "
            "(`truncated: true`)",
            "output": "label POSITIVE|NEGATIVE, score = probability of positive",
        }
