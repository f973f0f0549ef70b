"""What a sentiment model's out-of-distribution checks measure of a text, cheaply and without the model: how many
of its words are English words the training reviews use (other languages, random letters and identifiers score
low), and how much of it is programming punctuation (code, markup, logs)."""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[^\W\d_]+")  # runs of letters, any script ("très", "фильм", "映画" are words, not English ones)
HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # IMDb's reviews carry <br /> as line breaks
SYMBOLS = frozenset("{}[]()<>=_#\\|*^~`$@%&+/;")


def words(text: str) -> list[str]:
    return WORD.findall(HTML_BREAK.sub(" ", text).lower())


def unknown_share(text: str, vocabulary: frozenset[str]) -> float:
    """The share of the text's words that are not in the vocabulary, counting one known word more (so one rare
    word in a two-word phrase is 1/3, not 1/2: short texts say little); 1.0 for a text without any word."""
    found = words(text)
    if not found:
        return 1.0
    return sum(word not in vocabulary for word in found) / (len(found) + 1)


def symbol_share(text: str) -> float:
    """The share of the text's non-space characters that are programming punctuation."""
    text = HTML_BREAK.sub(" ", text)
    visible = len(text) - sum(c.isspace() for c in text)
    return sum(c in SYMBOLS for c in text) / visible if visible else 0.0


def read_vocabulary(lines: Iterable[str]) -> frozenset[str]:
    return frozenset(line.strip() for line in lines if line.strip())
