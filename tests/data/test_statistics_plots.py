"""Tests for llm_tf/data/statistics_plots.py: the token length and label count charts of statistics.json."""

import numpy as np
import pytest

from llm_tf.data import statistics, statistics_plots
from llm_tf.errors import DataError
from tests.plot_checks import assert_png


def _split(lengths, labels=None, task="classification", max_seq_length=32):
    lengths = np.array(lengths)
    stats = {"task": task, "count": len(lengths), "tokens": statistics.summarize_lengths(lengths),
             "token_histogram": statistics.length_histogram(lengths, max_seq_length, 2),
             "truncated_fraction": float(np.mean(lengths + 2 > max_seq_length))}
    if labels is not None:
        stats["labels"] = {k: {"count": v, "fraction": v / sum(labels.values())} for k, v in labels.items()}
    return stats


def test_token_lengths_of_both_splits_with_long_ones_beyond_the_histogram(tmp_path):
    stats = {"train": _split([3, 5, 8, 8, 13, 40, 100]), "eval": _split([4, 9])}
    assert stats["train"]["token_histogram"]["overflow"] == 1          # 100 >= 2 x 32
    statistics_plots.render_token_lengths(stats, str(tmp_path / "lengths.png"))
    assert_png(tmp_path / "lengths.png", 600, 300)


def test_label_counts_in_the_vocabulary_order_and_on_a_log_scale_for_skewed_tags(tmp_path):
    stats = {"train": _split([3, 4], {"B-PER": 3, "I-PER": 2, "O": 900}, "token_classification"),
             "eval": _split([5], {"B-PER": 1, "O": 100}, "token_classification")}
    assert statistics_plots.has_labels(stats)
    statistics_plots.render_label_counts(stats, str(tmp_path / "tags.png"), ["O", "B-PER", "I-PER"])
    assert_png(tmp_path / "tags.png", 600, 200)


def test_unlabelled_or_old_statistics_are_refused(tmp_path):
    unlabelled = {"train": _split([3, 4])}
    assert not statistics_plots.has_labels(unlabelled)
    with pytest.raises(DataError, match="the statistics count no labels"):
        statistics_plots.render_label_counts(unlabelled, str(tmp_path / "labels.png"))
    old = {"train": {"count": 2, "tokens": {"count": 2, "max": 4}}, "rejected": {"count": 0}}
    with pytest.raises(DataError, match="no token_histogram .* prepare again"):
        statistics_plots.render_token_lengths(old, str(tmp_path / "lengths.png"))
    assert list(tmp_path.iterdir()) == []
