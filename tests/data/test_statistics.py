"""Tests for llm_tf/data/statistics.py."""

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
