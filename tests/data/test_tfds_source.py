"""Tests for llm_tf/data/tfds_source.py, with TFDS mock data (no download is possible here)."""

import json

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from llm_tf.data import tfds_source
from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.errors import DataError


@pytest.mark.parametrize("name, split, text_field",
                         [("glue/sst2", "train", "sentence"), ("imdb_reviews", "test", "text")])
def test_classification_rows_have_label_names(name, split, text_field):
    with tfds.testing.mock_data(num_examples=4):
        rows = list(tfds_source.tfds_rows(name, split))
    assert len(rows) == 4
    assert rows[0].source == f"tfds:{name}/{split}" and rows[0].line == 1
    assert isinstance(rows[0].fields[text_field], str)
    assert rows[0].fields["label"] in ("neg", "pos", "negative", "positive")


def _conll_examples(builder, split, **kwargs):
    ner = builder.info.features["ner"].feature
    sentences = [(["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
                 (["Peter", "Blackburn"], ["B-PER", "I-PER"])]
    return tf.data.Dataset.from_generator(
        lambda: ({"tokens": t, "ner": [ner.str2int(x) for x in g], "pos": [0] * len(t), "chunks": [0] * len(t)}
                 for t, g in sentences),
        output_signature={k: tf.TensorSpec([None], tf.string if k == "tokens" else tf.int64)
                          for k in ("tokens", "ner", "pos", "chunks")},
    )


def test_conll2003_rows_have_tag_names():
    with tfds.testing.mock_data(as_dataset_fn=lambda builder, split, **kw: _conll_examples(builder, split)):
        rows = list(tfds_source.tfds_rows("conll2003", "dev"))
    assert rows[0].fields["tokens"] == ["EU", "rejects", "German", "call"]
    assert rows[0].fields["ner"] == ["B-ORG", "O", "B-MISC", "O"]


def test_prepare_from_tfds_uses_the_preset(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=lambda builder, split, **kw: _conll_examples(builder, split)):
        result = prepare(PrepareConfig(output_dir=str(tmp_path / "out"), tfds="conll2003", vocab_size=60))
    assert result.counts == {"train": 2, "eval": 2}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["task"] == "token_classification"
    assert result.labels[0] == "O" and "B-PER" in result.labels


def test_unknown_data_set_is_a_clear_error():
    with pytest.raises(DataError, match="tfds:no_such_dataset_xyz/train: cannot load from TensorFlow Datasets"):
        list(tfds_source.tfds_rows("no_such_dataset_xyz", "train"))
