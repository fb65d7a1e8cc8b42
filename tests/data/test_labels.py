"""Tests for llm_tf/data/labels.py."""

import collections

import pytest

from llm_tf.data import labels
from llm_tf.errors import DataError


def test_numeric_labels_sort_numerically():
    assert labels.infer_label_vocabulary(collections.Counter(["10", "2", "1", "2"])) == ("1", "2", "10")


def test_string_labels_sort_alphabetically():
    assert labels.infer_label_vocabulary(collections.Counter(["positive", "negative"])) == ("negative", "positive")


def test_ner_tags_put_o_first_and_group_entities():
    tags = collections.Counter(["I-PER", "B-LOC", "O", "B-PER", "I-LOC", "B-MISC"])
    assert labels.infer_label_vocabulary(tags, "token_classification") == ("O", "B-LOC", "I-LOC", "B-MISC", "B-PER",
                                                                           "I-PER")


def test_parse_given_labels_from_list_and_file(tmp_path):
    assert labels.parse_labels("neg, pos") == ("neg", "pos")
    assert labels.parse_labels(None) is None
    path = tmp_path / "labels.txt"
    labels.save_labels(str(path), ["b", "a"])
    assert labels.parse_labels(str(path)) == ("b", "a")
    with pytest.raises(DataError, match="duplicates: a"):
        labels.parse_labels("a,b,a")
