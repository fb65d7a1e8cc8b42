"""Tests for llm_tf/data/statistics.py."""

import numpy as np
import tensorflow as tf

from llm_tf.data import statistics


def test_summarize_lengths():
    summary = statistics.summarize_lengths(range(1, 101))
    assert summary["count"] == 100 and summary["min"] == 1 and summary["max"] == 100
    assert summary["p50"] == 50.5 and summary["mean"] == 50.5
    assert statistics.summarize_lengths([]) == {"count": 0}


def test_builder_counts_labels_duplicates_and_overlap():
    train = statistics.StatisticsBuilder("classification")
    for text, label in [("a b", "1"), ("c", "0"), ("a b", "1")]:
        train.add({"text": text, "label": label})
    result = train.result()
    assert result["count"] == 3 and result["duplicates"] == 1
    assert result["labels"] == {"0": {"count": 1, "fraction": 0.333333}, "1": {"count": 2, "fraction": 0.666667}}
    assert result["words"]["max"] == 2 and result["chars"]["max"] == 3
    evaluation = statistics.StatisticsBuilder("classification", reference_keys=train.keys)
    evaluation.add({"text": "a b", "label": "1"})
    evaluation.add({"text": "new", "label": "0"})
    assert evaluation.result()["overlap_with_train"] == 1


def test_token_statistics_truncation_and_oov(text_tokenizer):
    texts = ["the movie was great", "zzqx " * 20]
    dataset = tf.data.Dataset.from_tensor_slices({"text": texts}).batch(2)
    stats = statistics.token_statistics(text_tokenizer, dataset, "classification", max_seq_length=16)
    lengths = text_tokenizer.tokenize(tf.constant(texts)).row_lengths().numpy()
    assert stats["token_count"] == lengths.sum()
    assert stats["tokens"]["max"] == lengths.max()
    assert stats["truncated_fraction"] == 0.5  # only the long one exceeds 16 with [CLS]/[SEP]
    unk = (text_tokenizer.tokenize(tf.constant(texts)).flat_values.numpy() == text_tokenizer.unk_id).sum()
    assert stats["oov_rate"] == round(unk / lengths.sum(), 6)


def test_length_histogram_bins_depend_on_max_seq_length_only():
    histogram = statistics.length_histogram(np.array([0, 3, 4, 4, 255, 256, 900]), max_seq_length=128,
                                            special_tokens=2)
    assert histogram["bin_width"] == 4 and len(histogram["counts"]) == 64        # 0 to 2 x 128, 4 tokens a bin
    assert histogram["counts"][:2] == [2, 2] and histogram["counts"][63] == 1
    assert histogram["overflow"] == 2 and sum(histogram["counts"]) + histogram["overflow"] == 7
    assert (histogram["max_seq_length"], histogram["special_tokens"]) == (128, 2)
    short = statistics.length_histogram(np.array([], dtype=np.int64), max_seq_length=16, special_tokens=3)
    assert short["bin_width"] == 1 and short["counts"] == [0] * 32 and short["overflow"] == 0


def test_token_statistics_histogram_counts_every_example(text_tokenizer):
    texts = ["the movie was great", "zzqx " * 20, "fun"]
    dataset = tf.data.Dataset.from_tensor_slices({"text": texts}).batch(2)
    stats = statistics.token_statistics(text_tokenizer, dataset, "classification", max_seq_length=16)
    lengths = text_tokenizer.tokenize(tf.constant(texts)).row_lengths().numpy()
    histogram = stats["token_histogram"]
    assert histogram["special_tokens"] == 2 and histogram["max_seq_length"] == 16
    expected = [0] * 32
    for n in lengths:
        if n < 32:
            expected[n] += 1
    assert histogram["counts"] == expected and histogram["overflow"] == sum(lengths >= 32)
