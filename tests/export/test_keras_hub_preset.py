"""Tests for llm_tf/export/keras_hub_preset.py and ``llm_export --keras_hub_preset``."""

import json
import os
import shutil

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError, DataError
from llm_tf.export.keras_hub_preset import save_keras_hub_preset
from llm_tf.models import presets
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.text.tokenizer import TextTokenizer
from llm_tf.training import model_dir as model_dir_lib
from tests.bin.start_line import without_start_line
from tests.bin.test_export import llm_export
from tests.conftest import train_tiny

SENTENCES = ["the movie was great", "A dull , lifeless film with no charm!", "the director 's best work in years"]


@pytest.fixture(scope="module")
def saved(trained_classifier, tmp_path_factory):
    """(result, restored model) of the tiny classifier saved as a preset."""
    result = save_keras_hub_preset(trained_classifier, str(tmp_path_factory.mktemp("presets") / "sst2_bert"))
    return result, model_dir_lib.restore_trained_model(trained_classifier, "best")


def _inputs(trained, texts):
    inputs = trained.task.data.tokenizer(tf.constant(texts), seq_length=trained.config.task.data.seq_length)
    return {k: tf.cast(v, tf.int32) for k, v in inputs.items()}


def _assert_same_outputs(preset_dir, trained, texts=SENTENCES):
    backbone = keras_hub.models.BertBackbone.from_preset(preset_dir)
    inputs = _inputs(trained, texts)
    expected = trained.model.get_layer(ENCODER_NAME)(inputs, training=False)
    got = backbone(inputs, training=False)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6)
    return backbone


def _one_line(error) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_keras_hub_backbone_computes_what_the_trained_encoder_computes(saved):
    result, trained = saved
    assert sorted(os.listdir(result.path)) == ["assets", "config.json", "metadata.json", "model.weights.h5",
                                               "tokenizer.json"]
    assert os.listdir(os.path.dirname(result.path)) == ["sst2_bert"]  # no temporary directory left
    assert (result.step, result.checkpoint, result.lower_case) == (trained.step, trained.checkpoint, True)
    backbone = _assert_same_outputs(result.path, trained)
    assert result.num_parameters == backbone.count_params()
    assert backbone.dtype_policy.name == "float32"
    with open(os.path.join(result.path, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["config"]["dtype"]["config"]["name"] == "float32"


def test_keras_hub_tokenizer_gives_our_token_ids(saved):
    result, trained = saved
    theirs = keras_hub.models.BertTokenizer.from_preset(result.path)
    ours = trained.task.data.tokenizer
    texts = SENTENCES + ["café", "the CAFÉ was great"]
    expected = ours.tokenize(tf.constant(texts)).to_list()
    assert [list(map(int, ids)) for ids in theirs(texts)] == expected
    # lower_case also strips accents, on both sides.
    assert list(map(int, theirs("café"))) == list(map(int, theirs("cafe"))) == expected[-2]
    assert theirs.vocabulary == list(ours.vocab)


def test_llm_tf_opens_the_preset_and_can_start_from_it(saved, prepared_sample):
    result, trained = saved
    preset = presets.open_preset(result.path)
    model = trained.config.task.model
    encoder = trained.model.get_layer(ENCODER_NAME)
    assert preset.format == presets.KERAS_HUB_FORMAT and preset.lower_case is True
    assert preset.dimensions == {"num_layers": encoder.num_layers, "hidden_dim": encoder.hidden_dim,
                                 "num_heads": encoder.num_heads, "intermediate_dim": encoder.intermediate_dim,
                                 "max_sequence_length": model.max_sequence_length}
    assert preset.backbone_config["vocabulary_size"] == trained.task.data.tokenizer.vocab_size
    # task.init_preset accepts it with the data it was trained on, and loads the trained weights.
    from llm_tf.training import configs, init_preset, tasks

    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [], f"task.data.prepared_dir={prepared_sample},task.data.seq_length=32,"
                                        f"task.init_preset={result.path}")
    _, weights = init_preset.preset_weights(config, resuming=False)
    assert config.task.model.hidden_dim == encoder.hidden_dim
    ours = {v.path.removeprefix(encoder.name + "/"): v.numpy() for v in encoder.weights}
    assert sorted(weights) == sorted(ours)
    for path, value in weights.items():
        np.testing.assert_array_equal(value, ours[path])


def test_lora_run_saves_merged_weights(tmp_path, prepared_sample):
    run = train_tiny(prepared_sample, str(tmp_path / "lora"),
                     override="task.lora_rank=4,task.lora_targets=[query,value],trainer.train_steps=4,"
                              "trainer.steps_per_loop=2")
    result = save_keras_hub_preset(run, str(tmp_path / "preset"), checkpoint="latest")
    trained = model_dir_lib.restore_trained_model(run, "latest")
    assert result.step == 4
    backbone = _assert_same_outputs(result.path, trained)
    assert not [v for v in backbone.weights if "lora" in v.path]
    with open(os.path.join(result.path, "config.json"), encoding="utf-8") as f:
        assert "lora" not in f.read()


def test_cased_tagger_keeps_case_and_accents(trained_tagger, tmp_path):
    result = save_keras_hub_preset(trained_tagger, str(tmp_path / "ner"))
    assert result.lower_case is False
    assert presets.open_preset(result.path).lower_case is False
    theirs = keras_hub.models.BertTokenizer.from_preset(result.path)
    ours = TextTokenizer.from_directory(os.path.join(model_dir_lib.load_config(trained_tagger).task.data.prepared_dir,
                                                     "tokenizer"))
    texts = ["EU rejects German call", "Peter Blackburn", "José in Zürich"]
    assert [list(map(int, ids)) for ids in theirs(texts)] == ours.tokenize(tf.constant(texts)).to_list()


def test_existing_output_directory_needs_overwrite(trained_classifier, tmp_path):
    out = tmp_path / "preset"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError) as error:
        save_keras_hub_preset(trained_classifier, str(out))
    assert _one_line(error) == f"{out}: output directory exists and is not empty (pass --overwrite to replace it)"
    assert os.listdir(out) == ["notes.txt"]
    result = save_keras_hub_preset(trained_classifier, str(out), overwrite=True)
    assert "notes.txt" not in os.listdir(out) and "config.json" in os.listdir(out)
    assert sorted(os.listdir(tmp_path)) == ["preset"]
    # An empty directory is fine without overwrite.
    (tmp_path / "empty").mkdir()
    assert save_keras_hub_preset(trained_classifier, str(tmp_path / "empty")).step == result.step


def test_refusals_are_one_line_and_write_nothing(trained_classifier, prepared_sample, tmp_path):
    with pytest.raises(DataError) as error:
        save_keras_hub_preset(str(tmp_path), str(tmp_path / "p"))
    assert "not a training directory" in _one_line(error)
    with pytest.raises(ConfigError) as error:
        save_keras_hub_preset(trained_classifier, "nope://bucket/preset")
    assert "no file system for 'nope://'" in _one_line(error)
    with pytest.raises(ConfigError) as error:
        save_keras_hub_preset(trained_classifier, trained_classifier, overwrite=True)
    assert "would replace the training directory" in _one_line(error)
    assert os.path.isfile(os.path.join(trained_classifier, "params.yaml"))
    # A SentencePiece tokenizer has no keras-hub BertTokenizer (refused before the restore).
    moved = tmp_path / "prepared"
    shutil.copytree(prepared_sample, moved)
    config_path = moved / "tokenizer" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "kind": "sentencepiece"}))
    with pytest.raises(ConfigError) as error:
        save_keras_hub_preset(trained_classifier, str(tmp_path / "p"), prepared_dir=str(moved))
    assert "a sentencepiece tokenizer; a keras-hub BERT preset needs a WordPiece vocabulary" in _one_line(error)
    assert not (tmp_path / "p").exists()


def test_causal_lm_run_is_refused(prepared_sample, tmp_path):
    run = train_tiny(prepared_sample, str(tmp_path / "clm"), "causal_lm",
                     "trainer.train_steps=2,trainer.steps_per_loop=2")
    with pytest.raises(ConfigError) as error:
        save_keras_hub_preset(run, str(tmp_path / "preset"))
    assert "experiment 'causal_lm' has a GPT2Backbone encoder; only BERT encoders" in _one_line(error)
    assert sorted(os.listdir(tmp_path)) == ["clm"]


@pytest.fixture
def quiet_tensorflow(monkeypatch):
    """Child processes log no TensorFlow errors (e.g. cuInit on a machine without a GPU) on stderr."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


def test_llm_export_writes_the_preset_and_prints_one_json_line(trained_classifier, tmp_path, quiet_tensorflow):
    out = tmp_path / "bert"
    result = llm_export(f"--model_dir={trained_classifier}", f"--keras_hub_preset={out}", "--checkpoint=latest")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    line = json.loads(lines[-1])
    assert list(line) == ["keras_hub_preset"]
    assert line["keras_hub_preset"]["path"] == str(out) and line["keras_hub_preset"]["step"] == 30
    assert line["keras_hub_preset"]["lower_case"] is True
    assert keras_hub.models.BertTokenizer.from_preset(str(out)).vocabulary_size() > 0


def test_llm_export_needs_a_destination(tmp_path, quiet_tensorflow):
    result = llm_export(f"--model_dir={tmp_path}")
    assert result.returncode == 1
    assert without_start_line(result.stderr).strip().splitlines() == [
        "llm_export: error: give --model_base_path (a TF Serving export), --keras_hub_preset (a keras-hub preset "
        "directory) or both"]
