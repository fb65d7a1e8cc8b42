"""Tests for llm_tf/text/vocab.py."""

import pytest
import tensorflow as tf

from llm_tf.errors import DataError
from llm_tf.text import vocab
from llm_tf.text.tokenizer import SPECIAL_TOKENS
from tests.conftest import CORPUS


def corpus():
    return tf.data.Dataset.from_tensor_slices(CORPUS * 20)


def test_wordpiece_is_reproducible_with_reserved_tokens_first():
    first = vocab.train_wordpiece(corpus(), vocab_size=150)
    assert first == vocab.train_wordpiece(corpus(), vocab_size=150)
    assert first[:5] == list(SPECIAL_TOKENS)
    assert len(first) <= 150 and len(set(first)) == len(first)
    assert "movie" in first and any(t.startswith("##") for t in first)


def test_count_words_splits_like_bert():
    counts = vocab.count_words(tf.data.Dataset.from_tensor_slices(["Hello, World!", "hello"]))
    assert counts == {b"hello": 2, b",": 1, b"world": 1, b"!": 1}


def test_sentencepiece_is_reproducible():
    model = vocab.train_sentencepiece(CORPUS * 5, vocab_size=80)
    assert model == vocab.train_sentencepiece(CORPUS * 5, vocab_size=80)


def test_errors():
    with pytest.raises(DataError, match="vocab_size must exceed the 5 reserved tokens"):
        vocab.train_wordpiece(corpus(), vocab_size=5)
    with pytest.raises(DataError, match="the corpus has no words"):
        vocab.train_wordpiece(tf.data.Dataset.from_tensor_slices(["   "]), vocab_size=50)
