"""Contrast sentences for transformer training (training/common/contrast.py): the decisive clause's label."""

from __future__ import annotations

import re

import numpy as np
import pytest

from training import train_transformer
from training.common.contrast import TEMPLATES, contrast_examples

POSITIVE = ["a warm and witty film", "but the cast is wonderful throughout .", "one of the year 's best"]
NEGATIVE = ["a dull and lifeless mess", "the plot goes nowhere at all .", "tedious from start to finish"]
SHAPES = [
    re.compile("^" + re.escape(t).replace(r"\{a\}", "(?P<a>.+)").replace(r"\{b\}", "(?P<b>.+)") + "$")
    for t in TEMPLATES
]


def parts(sentence: str) -> tuple[str, str]:
    for shape in SHAPES:
        if m := shape.match(sentence):
            return m["a"], m["b"]
    raise AssertionError(f"no template makes {sentence!r}")


def test_the_decisive_clause_carries_the_label_and_the_other_clause_the_opposite() -> None:
    texts, labels = POSITIVE + NEGATIVE + ["too short", "x " * 30], [1, 1, 1, 0, 0, 0, 1, 0]
    sentences, targets = contrast_examples(texts, labels, 60, np.random.default_rng(0))
    assert len(sentences) == 60 and targets.count(1) == 30
    clauses = {  # as the phrases above, without a leading "but" or a trailing " ."
        1: {"a warm and witty film", "the cast is wonderful throughout", "one of the year 's best"},
        0: {"a dull and lifeless mess", "the plot goes nowhere at all", "tedious from start to finish"},
    }
    used = set()
    for sentence, label in zip(sentences, targets, strict=True):
        a, b = parts(sentence)
        assert b in clauses[label] and a in clauses[1 - label], sentence
        used.add(sentence.split(" ")[0] == "although" or " even though " in sentence)
    assert used == {True, False}  # more than one template
    assert contrast_examples(texts, labels, 60, np.random.default_rng(0))[0] == sentences  # seeded


def test_refuses_without_phrases_of_both_labels() -> None:
    with pytest.raises(ValueError, match="both labels"):
        contrast_examples(POSITIVE, [1, 1, 1], 4, np.random.default_rng(0))
    assert contrast_examples(POSITIVE, [1, 1, 1], 0, np.random.default_rng(0)) == ([], [])


def test_training_mix_adds_them_after_the_sst2_phrases(tmp_path) -> None:
    rows = "".join(f"{t}\t{y}\n" for t, y in zip(POSITIVE + NEGATIVE, [1, 1, 1, 0, 0, 0], strict=True))
    for split in ("train", "validation"):
        (tmp_path / f"{split}.tsv").write_text("sentence\tlabel\n" + rows)
    args = train_transformer.parse_args(["--tiny", "--out", str(tmp_path / "m"), "--sst2", str(tmp_path)])
    (texts, labels), mix, _ = train_transformer.load_data(args)
    assert len(texts) == 6 and "sst2_contrast_examples" not in mix
    args.contrast = 10
    (texts, labels), mix, _ = train_transformer.load_data(args)
    assert len(texts) == 16 and mix == {"sst2_train_examples": 6, "sst2_contrast_examples": 10}
    assert labels[6:] == [0, 1] * 5 and all(parts(t) for t in texts[6:])
