"""The LSTM sentiment tokenizer (app/families/lstm/tokenizer.py): standardisation, vocabulary, OOV, padding,
truncation."""

from __future__ import annotations

import numpy as np
import pytest

from app.families.lstm.tokenizer import OOV_ID, PAD_ID, TextTokenizer, split_words, standardize


def test_standardize_lowercases_and_removes_html_line_breaks() -> None:
    text = "Great film.<br /><br />The ACTING was superb!<br>Really<BR/>good"
    assert split_words(text) == ["great", "film", "the", "acting", "was", "superb", "really", "good"]
    assert "br" not in split_words(text) and "<" not in standardize(text)


def test_standardize_strips_punctuation_and_joins_apostrophes() -> None:
    assert split_words("Don't -- I repeat: DON'T watch it!!! (1/10)") == [
        "dont",
        "i",
        "repeat",
        "dont",
        "watch",
        "it",
        "1",
        "10",
    ]
    assert split_words("It\u2019s \u201cfine\u201d, isn't_it?") == ["its", "fine", "isnt", "it"]
    assert split_words("   \n\t ") == []


def test_standardize_keeps_non_ascii_letters_and_normalises_unicode() -> None:
    assert split_words("Amélie was CAFÉ-perfect") == ["amélie", "was", "café", "perfect"]
    assert split_words("ﬁne") == ["fine"]  # NFKC: the ligature becomes two letters


def test_fit_ranks_by_frequency_then_alphabetically_and_caps_the_size() -> None:
    tok = TextTokenizer.fit(["b a c", "a b", "a d", "z"], vocab_size=5, max_length=10)
    assert tok.vocabulary == ["a", "b", "c"]  # a:3, b:2, then c/d/z tie at 1 -> alphabetical, cut at 5 - 2 words
    assert tok.vocab_size == 5
    assert tok.ids("a b c") == [2, 3, 4]


def test_out_of_vocabulary_words_get_the_oov_id() -> None:
    tok = TextTokenizer(["good", "bad"], max_length=10)
    assert tok.ids("good unseen BAD") == [2, OOV_ID, 3]
    assert tok.ids("!!!") == [OOV_ID]  # no words at all: one OOV token rather than an all-padding row


def test_encode_pads_right_to_the_longest_or_a_given_length() -> None:
    tok = TextTokenizer(["good", "bad"], max_length=10)
    ids = tok.encode(["good", "bad good bad"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [[2, PAD_ID, PAD_ID], [3, 2, 3]]
    assert tok.encode(["good"], length=4).tolist() == [[2, 0, 0, 0]]


@pytest.mark.parametrize(("truncate", "expected"), [("pre", [5, 6, 7]), ("post", [2, 3, 4])])
def test_truncation_keeps_the_end_or_the_start(truncate: str, expected: list[int]) -> None:
    tok = TextTokenizer(list("abcdef"), max_length=3, truncate=truncate)
    assert tok.ids("a b c d e f") == expected
    assert tok.encode(["a b c d e f", "a"]).shape == (2, 3)


def test_save_and_load_round_trip(tmp_path) -> None:
    tok = TextTokenizer.fit(["Ça va <br /> très bien", "bien sûr"], vocab_size=50, max_length=7, truncate="post")
    tok.save(tmp_path / "tokenizer.json")
    loaded = TextTokenizer.load(tmp_path / "tokenizer.json")
    assert (loaded.vocabulary, loaded.max_length, loaded.truncate) == (tok.vocabulary, 7, "post")
    text = "très bien, ça va? inconnu"
    assert loaded.ids(text) == tok.ids(text)


def test_invalid_settings_and_files_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="truncate"):
        TextTokenizer(["a"], max_length=3, truncate="middle")
    with pytest.raises(ValueError, match="duplicate"):
        TextTokenizer(["a", "a"], max_length=3)
    (tmp_path / "other.json").write_text('{"vocab": []}')
    with pytest.raises(ValueError, match="not a"):
        TextTokenizer.load(tmp_path / "other.json")
