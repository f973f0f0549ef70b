"""The one text tokenizer of the LSTM sentiment model, used by training and by serving (pure Python + numpy).

Standardisation: Unicode NFKC, lowercase, HTML line breaks (`<br />`, `<br>`) and other tags removed,
apostrophes dropped ("don't" -> "dont"), every other punctuation character (and `_`) replaced by a space,
then split on whitespace. Ids: 0 is padding, 1 is out-of-vocabulary, 2.. are the vocabulary words in order
of training-set frequency. A review longer than `max_length` tokens keeps its last `max_length` tokens
(`truncate="pre"`, where reviews state their verdict) or its first (`truncate="post"`); sequences are padded
with 0 on the right, and the model masks padding, so a batch is padded only to its longest review.

The tokenizer is saved in the artifact as tokenizer.json, so the service tokenises exactly as training did.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PAD_ID = 0
OOV_ID = 1
FORMAT = "deepserve-text-tokenizer/1"

_TAGS = re.compile(r"<[^>]{0,40}>")  # <br />, <br>, <i>, </i>...: IMDb's HTML
_APOSTROPHES = re.compile(r"['\u2019`\u00b4]")
_PUNCTUATION = re.compile(r"[^\w\s]|_")


def standardize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _TAGS.sub(" ", text)
    text = _APOSTROPHES.sub("", text)
    return _PUNCTUATION.sub(" ", text)


def split_words(text: str) -> list[str]:
    return standardize(text).split()


class TextTokenizer:
    def __init__(self, vocabulary: list[str], max_length: int, truncate: str = "pre") -> None:
        if truncate not in ("pre", "post"):
            raise ValueError(f"truncate must be 'pre' (keep the end) or 'post' (keep the start), not {truncate!r}")
        if max_length < 1:
            raise ValueError("max_length must be positive")
        self.vocabulary = list(vocabulary)
        self.max_length = max_length
        self.truncate = truncate
        self.index = {word: i + 2 for i, word in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary):
            raise ValueError("the vocabulary has duplicate words")

    @property
    def vocab_size(self) -> int:
        """Size of the id space the embedding needs: padding + OOV + words."""
        return len(self.vocabulary) + 2

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int, max_length: int, truncate: str = "pre") -> TextTokenizer:
        """The `vocab_size - 2` most frequent words (ties broken alphabetically, so the result is deterministic)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split_words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([word for word, _ in ranked[: max(0, vocab_size - 2)]], max_length, truncate)

    def ids(self, text: str) -> list[int]:
        """Token ids of one text, truncated to max_length, without padding; [OOV_ID] for a text with no words."""
        return self.ids_and_truncated(text)[0]

    def ids_and_truncated(self, text: str) -> tuple[list[int], bool]:
        """ids(text), and whether the text had more than max_length words (so part of it was dropped)."""
        ids = [self.index.get(word, OOV_ID) for word in split_words(text)] or [OOV_ID]
        if len(ids) <= self.max_length:
            return ids, False
        return (ids[-self.max_length :] if self.truncate == "pre" else ids[: self.max_length]), True

    def encode(self, texts: list[str], length: int | None = None) -> np.ndarray:
        """int32 (n, length) right-padded with 0; length defaults to the longest text (at least 1)."""
        return self.encode_and_truncated(texts, length)[0]

    def encode_and_truncated(self, texts: list[str], length: int | None = None) -> tuple[np.ndarray, list[bool]]:
        """encode(texts, length), and for each text whether it was truncated to max_length."""
        rows, truncated = zip(*map(self.ids_and_truncated, texts), strict=True) if texts else ((), ())
        width = length if length is not None else max([1, *map(len, rows)])
        out = np.full((len(rows), width), PAD_ID, dtype=np.int32)
        for i, row in enumerate(rows):
            row = row[:width]
            out[i, : len(row)] = row
        return out, list(truncated)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "standardize": "nfkc, lowercase, strip html tags, drop apostrophes, punctuation to spaces, split",
            "max_length": self.max_length,
            "truncate": self.truncate,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
            "vocabulary": self.vocabulary,
        }

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TextTokenizer:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (format: {data.get('format')!r})")
        return cls(data["vocabulary"], int(data["max_length"]), data["truncate"])
