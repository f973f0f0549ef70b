"""Faithfulness of word attributions: leaving out the 3 words that most support the predicted class must lower its
probability more than leaving out 3 random words."""

from __future__ import annotations

import random

import numpy as np

from app.families.explain_text import OcclusionExplainer, without


def drop(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = without(text, start, end)
    return text


def hide_words(explainer: OcclusionExplainer, texts: list[str], k: int = 3, seed: int = 0) -> tuple[float, float]:
    """Mean probability of each text's predicted class with its top-k supporting words left out, and with k random
    words left out (texts need more than k words)."""
    rng = random.Random(seed)
    top_texts, random_texts, positive = [], [], []
    for explained, text in zip(explainer.predict(texts), texts, strict=True):
        sign = 1.0 if explained.result.label == "POSITIVE" else -1.0
        ranked = sorted(explained.words, key=lambda w: -sign * w.attribution)
        top_texts.append(drop(text, [(w.start, w.end) for w in ranked[:k]]))
        random_texts.append(drop(text, [(w.start, w.end) for w in rng.sample(explained.words, k)]))
        positive.append(sign > 0)
    top = np.array([r.score for r in explainer.scores(top_texts)])
    rand = np.array([r.score for r in explainer.scores(random_texts)])
    chosen = np.array(positive)
    return float(np.where(chosen, top, 1 - top).mean()), float(np.where(chosen, rand, 1 - rand).mean())
