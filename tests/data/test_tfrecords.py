"""Tests for llm_tf/data/tfrecords.py."""

import os

import pytest
import tensorflow as tf

from llm_tf.data import tfrecords
from llm_tf.errors import DataError

RECORDS = [
    {"text": "a fine film", "label": "1"},
    {"text": "naïve, \"quoted\" — ünïcode", "label": "0"},
    {"text": "third", "label": "1"},
]
NER = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}, {"tokens": ["Peter"], "tags": ["B-PER"]}]


def test_round_trip_records_to_tfrecord_and_back(tmp_path):
    paths = tfrecords.write_tfrecords(RECORDS, str(tmp_path), "train", num_shards=2)
    assert [os.path.basename(p) for p in paths] == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    back = [tfrecords.from_tf_example(r) for p in paths for r in tf.data.TFRecordDataset(p).as_numpy_iterator()]
    key = lambda r: r["text"]  # noqa: E731 - shards interleave, compare as sets of records
    assert sorted(back, key=key) == sorted(RECORDS, key=key)


def test_read_tfrecords_parses_scalars_and_lists(tmp_path):
    tfrecords.write_tfrecords(NER, str(tmp_path), "eval")
    dataset = tfrecords.read_tfrecords(tfrecords.split_files(str(tmp_path), "eval"), ["tokens", "tags"])
    parsed = [{k: v.numpy().tolist() for k, v in x.items()} for x in dataset]
    assert parsed == [{"tokens": [b"EU", b"rejects"], "tags": [b"B-ORG", b"O"]},
                      {"tokens": [b"Peter"], "tags": [b"B-PER"]}]
    batched = next(iter(tfrecords.read_tfrecords(str(tmp_path / "eval-*"), ["tokens"], batch_size=8)))
    assert isinstance(batched["tokens"], tf.RaggedTensor)
    assert batched["tokens"].row_lengths().numpy().tolist() == [2, 1]


def test_failed_write_leaves_no_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with tfrecords.ShardedWriter(str(tmp_path), "train", 2) as writer:
            writer.write(RECORDS[0])
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_missing_split_and_unknown_feature_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no TFRecord shards for split 'train'"):
        tfrecords.split_files(str(tmp_path), "train")
    with pytest.raises(DataError, match="unknown feature 'txt'"):
        tfrecords.feature_spec(["txt"])


def test_int_and_float_features():
    example = tfrecords.to_tf_example({"ids": [1, 2], "score": 0.5})
    assert list(example.features.feature["ids"].int64_list.value) == [1, 2]
    assert example.features.feature["score"].float_list.value[0] == 0.5
