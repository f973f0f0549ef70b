"""What a sentiment model's out-of-distribution checks measure of a text, cheaply and without the model: how many
of its words are English words the training reviews use (other languages, random letters and identifiers score
low), how much of it is programming punctuation (code, markup, logs), and how many of its lines look like source
code (code whose comments and docstrings are English prose, with little punctuation)."""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[^\W\d_]+")  # runs of letters, any script ("très", "фильм", "映画" are words, not English ones)
HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # IMDb's reviews carry <br /> as line breaks
SYMBOLS = frozenset("{}[]()<>=_#\\|*^~`$@%&+/;")
CODE_LINE = re.compile(
    r"^(?:\s{2,}|\t)\S"  # indented (a review is one paragraph: IMDb's line breaks are <br />)
    r"|^\s*(?:#|@\w|>>>|\"\"\"|''')"  # a comment, a decorator, a prompt, a docstring's quotes
    r"|^\s*(?:from\s+[\w.]+\s+import\b|import\s+[\w.]+(?:\s+as\s+\w+)?\s*$|def\s+\w+\s*\(|class\s+\w+\s*[(:])"
    r"|\b[a-z]+_\w+|\b[a-z]{2,}[A-Z][a-z]\w*|\b\w+\.\w+\(|\w\(\)"  # snake_case, camelCase, a.call(, f()
    r"|==|!=|\+=|->|=>|\w\s?=\s?[\w\"'\[({-]"  # comparisons, arrows, assignments
)


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


def code_share(text: str) -> float:
    """The share of the text's non-blank lines that look like source code (indented, a comment, an import, a
    definition, an identifier or an operator that prose does not use); 0.0 for a text without any. The text is
    stripped first: spaces before a one-line text are not indentation."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    return sum(CODE_LINE.search(line) is not None for line in lines) / len(lines) if lines else 0.0


def read_vocabulary(lines: Iterable[str]) -> frozenset[str]:
    return frozenset(line.strip() for line in lines if line.strip())
