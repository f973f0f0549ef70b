"""Contrast sentences made from SST-2 training phrases: in "A, but B" the clause after "but" carries the verdict.

This is the A-but-B rule Hu et al. (2016, "Harnessing Deep Neural Networks with Logic Rules") distilled into a
sentiment model on SST-2. Here it is data instead: two training phrases of opposite labels joined by a
contrasting template, labelled with the clause the template makes decisive. Users write such sentences ("The plot
is thin, but the acting more than makes up for it."); SST-2 has few whole sentences of that shape.
"""

from __future__ import annotations

import numpy as np

TEMPLATES = ("{a} , but {b} .", "although {a} , {b} .", "{b} , even though {a} .")  # b decides
LEADING = ("but ", "and ", "although ", "though ", "even though ")


def clause(phrase: str) -> str:
    text = phrase.strip(" ,;:-").rstrip(" .!?,;:")
    for word in LEADING:
        if text.startswith(word):
            text = text[len(word) :]
    return text


def contrast_examples(
    texts: list[str], labels: list[int], n: int, rng: np.random.Generator, words: tuple[int, int] = (4, 20)
) -> tuple[list[str], list[int]]:
    """n sentences, half labelled positive: a phrase of one label and a decisive phrase of the other (each of
    `words` words), joined by one of TEMPLATES."""
    by_label: dict[int, list[str]] = {0: [], 1: []}
    for text, label in zip(texts, labels, strict=True):
        if words[0] <= len(text.split()) <= words[1]:
            by_label[int(label)].append(clause(text))
    if n and not (by_label[0] and by_label[1]):
        raise ValueError(f"contrast sentences need phrases of {words[0]}-{words[1]} words of both labels")
    out: list[str] = []
    for k in range(n):
        decisive = k % 2
        a = by_label[1 - decisive][rng.integers(len(by_label[1 - decisive]))]
        b = by_label[decisive][rng.integers(len(by_label[decisive]))]
        out.append(TEMPLATES[rng.integers(len(TEMPLATES))].format(a=a, b=b))
    return out, [k % 2 for k in range(n)]
