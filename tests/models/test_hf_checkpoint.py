"""Tests for Hugging Face BERT directories (llm_tf/models/hf_checkpoint.py through presets.open_preset).

The directories are written by the test (tests/preset_fixtures.py:save_hf_bert_directory): config.json,
model.safetensors via the safetensors package, vocab.txt, tokenizer_config.json.
"""

import json
import os
import shutil

import numpy as np
import pytest

from llm_tf.errors import ConfigError, DataError
from llm_tf.models import hf_checkpoint, presets
from llm_tf.models.encoder import build_encoder
from llm_tf.training import configs
from tests.preset_fixtures import TINY, save_hf_bert_directory

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> str:
    return save_hf_bert_directory(str(tmp_path_factory.mktemp("hf") / "bert"), VOCAB)


@pytest.fixture
def copy(hf_dir, tmp_path):
    return shutil.copytree(hf_dir, tmp_path / "copy")


def _edit_json(path, **changes):
    values = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    path.write_text(json.dumps(values))


def _error(path, field="task.init_preset") -> str:
    with pytest.raises(ConfigError) as error:
        presets.open_preset(str(path), field)
    message = str(error.value)
    assert "\n" not in message and message.startswith(field + ": ")
    return message


def test_open_reads_a_hugging_face_directory(hf_dir):
    preset = presets.open_preset(hf_dir)
    assert preset.format == presets.TRANSFORMERS_FORMAT
    assert preset.dimensions == TINY
    assert preset.backbone_config["vocabulary_size"] == len(VOCAB)
    assert preset.lower_case is True
    assert preset.vocab_file == os.path.join(os.path.abspath(hf_dir), "vocab.txt")
    assert preset.tokenizer_config_file.endswith("tokenizer_config.json")
    assert preset.name == hf_dir


def test_weights_come_from_keras_hubs_converter_and_our_encoder_gives_its_outputs(hf_dir):
    import keras_hub

    reference = keras_hub.models.BertBackbone.from_preset(hf_dir)
    weights = presets.backbone_weights(presets.open_preset(hf_dir))
    # The converter moved the safetensors values (PyTorch layout, transposed) into the backbone.
    from safetensors.numpy import load_file

    tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
    np.testing.assert_array_equal(weights["token_embedding/embeddings"], tensors["embeddings.word_embeddings.weight"])
    np.testing.assert_array_equal(weights["pooled_dense/kernel"], tensors["pooler.dense.weight"].T)
    encoder = build_encoder(configs.ModelConfig(**TINY), len(VOCAB))
    assert presets.assign_weights(encoder, weights, hf_dir) == len(encoder.weights)
    inputs = {"token_ids": np.array([[2, 7, 9, 11, 3, 0]]), "segment_ids": np.zeros((1, 6), "int32"),
              "padding_mask": np.array([[1, 1, 1, 1, 1, 0]])}
    ours, theirs = encoder(inputs), reference(inputs)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(theirs[key]), atol=1e-6)


def test_prefixed_tensor_names_load_too(tmp_path):
    # BertForMaskedLM / BertForSequenceClassification save the encoder under "bert.".
    directory = save_hf_bert_directory(str(tmp_path / "prefixed"), VOCAB, prefix="bert.")
    weights = presets.backbone_weights(presets.open_preset(directory))
    assert weights["token_embedding/embeddings"].shape == (len(VOCAB), TINY["hidden_dim"])


def test_cased_directory_and_special_tokens_as_added_token_dicts(tmp_path):
    directory = save_hf_bert_directory(str(tmp_path / "cased"), VOCAB, lowercase=False)
    assert presets.open_preset(directory).lower_case is False


def test_missing_weights_say_how_to_save_them(copy):
    os.remove(copy / "model.safetensors")
    assert "no model.safetensors (nor model.safetensors.index.json); save the model with " \
           "model.save_pretrained(DIR, safe_serialization=True)" in _error(copy)


def test_pytorch_only_directory_says_how_to_convert(copy):
    os.remove(copy / "model.safetensors")
    (copy / "pytorch_model.bin").write_bytes(b"not read")
    message = _error(copy, "--preset")
    assert f"{copy}: only pytorch_model.bin; keras-hub reads model.safetensors: convert them once" in message
    assert f"AutoModel.from_pretrained('{copy}').save_pretrained('{copy}', safe_serialization=True)" in message


@pytest.mark.parametrize("model_type", ["roberta", "distilbert", "gpt2"])
def test_unsupported_model_type_names_the_file(copy, model_type):
    _edit_json(copy / "config.json", model_type=model_type)
    assert f"config.json: model_type '{model_type}' is not supported; the encoder experiments start from BERT" \
           in _error(copy)


@pytest.mark.parametrize("key, value", [("hidden_act", "relu"), ("type_vocab_size", 1),
                                        ("position_embedding_type", "relative_key"), ("layer_norm_eps", 1e-5)])
def test_architecture_settings_keras_hub_does_not_have_are_refused(copy, key, value):
    _edit_json(copy / "config.json", **{key: value})
    assert f"config.json: {key}={value!r} is not supported (keras-hub's BertBackbone has {key}" in _error(copy)


def test_a_missing_dimension_is_named(copy):
    _edit_json(copy / "config.json", num_hidden_layers=None)
    assert "config.json: num_hidden_layers must be a positive integer, got None" in _error(copy)


def test_missing_vocabulary_or_tokenizer_config(copy):
    os.remove(copy / "tokenizer_config.json")
    assert "no tokenizer_config.json (it says whether the model is uncased)" in _error(copy)
    os.remove(copy / "vocab.txt")
    assert "no vocab.txt (the WordPiece vocabulary)" in _error(copy)


@pytest.mark.parametrize("changes, message", [
    ({"tokenizer_class": "RobertaTokenizer"}, "tokenizer_class 'RobertaTokenizer' is not supported"),
    ({"unk_token": "<unk>"}, "unk_token is '<unk>'; the BERT tokenizer here uses [UNK]"),
    ({"strip_accents": False}, "strip_accents=false with do_lower_case=true is not supported"),
    ({"tokenize_chinese_chars": False}, "tokenize_chinese_chars and do_basic_tokenize must be true"),
    ({"do_lower_case": "yes"}, "do_lower_case must be true or false"),
])
def test_tokenizers_the_in_graph_tokenizer_cannot_match_are_refused(copy, changes, message):
    _edit_json(copy / "tokenizer_config.json", **changes)
    assert message in _error(copy)


def test_a_directory_of_neither_format(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    assert "neither a keras-hub preset config (no class_name) nor a Hugging Face model config (no model_type)" \
        in _error(tmp_path)
    os.remove(tmp_path / "config.json")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert "a Hugging Face model directory without config.json" in _error(tmp_path)


def test_a_damaged_weights_file_is_one_line(copy):
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError) as error:
        presets.backbone_weights(presets.open_preset(str(copy)))
    assert str(error.value).startswith(f"{copy}: keras-hub could not load the checkpoint's weights: ")
    assert "\n" not in str(error.value)


def test_tokenizer_settings_follow_do_lower_case(tmp_path):
    directory = save_hf_bert_directory(str(tmp_path / "cased"), VOCAB, lowercase=False)
    settings = presets.tokenizer_settings(directory, "", False, False, "wordpiece")
    assert settings == {"vocab_file": os.path.join(directory, "vocab.txt"), "lower_case": False,
                        "tokenizer": "wordpiece"}
    with pytest.raises(ConfigError, match=r"--lower_case contradicts --preset=.*tokenizer_config.json has "
                                          r"do_lower_case=false\)"):
        presets.tokenizer_settings(directory, "", True, True, "wordpiece")


def test_marker_files_cover_every_weights_name():
    assert set(hf_checkpoint.UNREADABLE_WEIGHTS_FILES) < set(hf_checkpoint.MARKER_FILES)
    assert hf_checkpoint.WEIGHTS_FILE in hf_checkpoint.MARKER_FILES
