"""Tests for llm_tf/models/presets.py: local keras-hub presets written by save_to_preset in the test."""

import os
import shutil

import numpy as np
import pytest

from llm_tf.errors import ConfigError
from llm_tf.models import presets
from llm_tf.models.encoder import build_encoder
from llm_tf.training import configs
from tests.preset_fixtures import TINY, save_bert_preset, save_gpt2_preset

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory) -> str:
    return save_bert_preset(str(tmp_path_factory.mktemp("presets") / "bert"), VOCAB)


def _copy(preset_dir, tmp_path) -> str:
    return shutil.copytree(preset_dir, tmp_path / "copy")


def test_open_reads_dimensions_tokenizer_and_vocabulary(preset_dir):
    preset = presets.open_preset(preset_dir)
    assert preset.directory == os.path.abspath(preset_dir)
    assert preset.dimensions == TINY
    assert preset.backbone_config["vocabulary_size"] == len(VOCAB)
    assert preset.lower_case is True
    assert preset.vocab_file == os.path.join(preset.directory, "assets", "tokenizer", "vocabulary.txt")
    assert open(preset.vocab_file, encoding="utf-8").read().split() == VOCAB


@pytest.mark.parametrize("name, message", [
    ("bert_tiny_en_uncased",
     "'bert_tiny_en_uncased' is not a local directory; only local keras-hub preset directories"),
    ("kaggle://keras/bert/keras/bert_tiny_en_uncased", "is a remote handle; only local keras-hub preset directories"),
    ("hf://google-bert/bert-base-uncased", "is a remote handle; only local keras-hub preset directories"),
])
def test_remote_presets_and_builtin_names_are_refused(name, message):
    with pytest.raises(ConfigError) as error:
        presets.open_preset(name)
    assert str(error.value).startswith("task.init_preset: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_files_are_listed(preset_dir, tmp_path):
    copy = _copy(preset_dir, tmp_path)
    os.remove(copy / "model.weights.h5")
    os.remove(copy / "assets" / "tokenizer" / "vocabulary.txt")
    with pytest.raises(ConfigError, match=r"not a complete keras-hub preset, missing model.weights.h5, "
                                          r"assets/tokenizer/vocabulary.txt \(write one with"):
        presets.open_preset(str(copy))
    os.remove(copy / "config.json")
    with pytest.raises(ConfigError, match="^--preset: .*missing config.json, model.weights.h5, "
                                          "assets/tokenizer/vocabulary.txt"):
        presets.open_preset(str(copy), "--preset")


def test_a_preset_that_is_not_bert_names_its_class(tmp_path):
    gpt2 = save_gpt2_preset(str(tmp_path / "gpt2"))
    with pytest.raises(ConfigError, match=r"config.json: the preset holds a GPT2Backbone, not a BertBackbone"):
        presets.open_preset(gpt2)


def test_a_tokenizer_that_is_not_bert_names_its_class(preset_dir, tmp_path):
    copy = _copy(preset_dir, tmp_path)
    text = (copy / "tokenizer.json").read_text().replace('"BertTokenizer"', '"GPT2Tokenizer"')
    (copy / "tokenizer.json").write_text(text.replace("keras_hub>BertTokenizer", "keras_hub>GPT2Tokenizer"))
    with pytest.raises(ConfigError,
                       match="tokenizer.json: the preset's tokenizer is a GPT2Tokenizer, not a BertTokenizer"):
        presets.open_preset(str(copy))
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: unreadable JSON"):
        presets.open_preset(str(copy))


def test_weights_load_with_keras_hub_and_fill_an_encoder_by_path(preset_dir):
    import keras_hub

    preset = presets.open_preset(preset_dir)
    values = presets.backbone_weights(preset)
    saved = keras_hub.models.BertBackbone.from_preset(preset.directory)
    assert set(values) == {v.path for v in saved.weights} and "token_embedding/embeddings" in values
    model_config = configs.ModelConfig(**{k: v for k, v in TINY.items()}, dropout=0.3)
    encoder = build_encoder(model_config, len(VOCAB))
    encoder.get_layer("pooled_dense").trainable = False  # as the token tagger and masked LM do
    assert not np.allclose(encoder.get_layer("token_embedding").embeddings.numpy(),
                           values["token_embedding/embeddings"])
    assert presets.assign_weights(encoder, values, preset.directory) == len(saved.weights)
    for variable in encoder.weights:
        np.testing.assert_array_equal(variable.numpy(), values[variable.path])


def test_weights_of_another_shape_are_refused_before_anything_changes(preset_dir):
    values = presets.backbone_weights(presets.open_preset(preset_dir))
    encoder = build_encoder(configs.ModelConfig(**{**TINY, "hidden_dim": 8}), len(VOCAB))
    before = encoder.get_layer("token_embedding").embeddings.numpy()
    with pytest.raises(ConfigError, match=r"does not fit this encoder: token_embedding/embeddings has shape \(45, 16\) "
                                          r"there, \(45, 8\) here"):
        presets.assign_weights(encoder, values, preset_dir)
    np.testing.assert_array_equal(encoder.get_layer("token_embedding").embeddings.numpy(), before)
    deeper = build_encoder(configs.ModelConfig(**{**TINY, "num_layers": 2}), len(VOCAB))
    with pytest.raises(ConfigError, match="transformer_layer_1/.* missing in the preset"):
        presets.assign_weights(deeper, values, preset_dir)


def test_tokenizer_settings_for_llm_prepare(preset_dir, tmp_path):
    preset = presets.open_preset(preset_dir)
    assert presets.tokenizer_settings(preset_dir, "", True, False, "wordpiece") == {
        "vocab_file": preset.vocab_file, "lower_case": True, "tokenizer": "wordpiece"}
    # The preset decides lower-casing unless the flag was given and disagrees.
    assert presets.tokenizer_settings(preset_dir, preset.vocab_file, False, False, "wordpiece")["lower_case"] is True
    with pytest.raises(ConfigError, match=r"--nolower_case contradicts --preset=.*tokenizer.json has lowercase=true"):
        presets.tokenizer_settings(preset_dir, "", False, True, "wordpiece")
    with pytest.raises(ConfigError, match="--vocab_file=.*other.txt contradicts --preset"):
        presets.tokenizer_settings(preset_dir, str(tmp_path / "other.txt"), True, False, "wordpiece")
    with pytest.raises(ConfigError, match="--tokenizer=sentencepiece contradicts --preset"):
        presets.tokenizer_settings(preset_dir, "", True, False, "sentencepiece")
    with pytest.raises(ConfigError, match="^--preset: 'nowhere' is not a local directory"):
        presets.tokenizer_settings("nowhere", "", True, False, "wordpiece")


def test_vocab_fingerprint_tells_lists_apart():
    assert presets.vocab_fingerprint(VOCAB) == presets.vocab_fingerprint(list(VOCAB))
    assert presets.vocab_fingerprint(VOCAB) != presets.vocab_fingerprint(VOCAB[:-1])
    assert len(presets.vocab_fingerprint(VOCAB)) == 12
