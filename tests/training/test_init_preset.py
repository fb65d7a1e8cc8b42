"""Tests for llm_tf/training/init_preset.py: fine-tuning from a local keras-hub preset, then export.

The preset is a tiny BertBackbone + BertTokenizer written by save_to_preset in the test, over the
vocabulary llm_prepare learned on the shipped sample; the sample is prepared again with the
preset's vocabulary, as ``llm_prepare --preset`` does.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml

from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.errors import ConfigError
from llm_tf.models import presets
from llm_tf.text.tokenizer import load_vocab
from llm_tf.training import configs, init_preset, strategies, tasks, train_lib
from tests.conftest import CONLL_SAMPLE, SST2_SAMPLE
from tests.preset_fixtures import TINY, save_bert_preset
from tests.training.conftest import FAST


@pytest.fixture(scope="module")
def preset_and_data(prepared_sample, tmp_path_factory) -> tuple[str, str]:
    """(preset directory, the sample prepared with its vocabulary and lower-casing)."""
    root = tmp_path_factory.mktemp("preset")
    vocab = load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))
    preset = save_bert_preset(str(root / "bert"), vocab)
    settings = presets.tokenizer_settings(preset, "", True, False, "wordpiece")
    prepared = str(root / "prepared")
    prepare(PrepareConfig(output_dir=prepared, inputs=[str(SST2_SAMPLE / "train.tsv")],
                          eval_inputs=[str(SST2_SAMPLE / "dev.tsv")], text_field="sentence", **settings))
    return preset, prepared


@pytest.fixture(scope="module")
def conll_with_preset_vocab(preset_and_data, tmp_path_factory) -> str:
    """The CoNLL sample prepared for token classification with the preset's vocabulary."""
    preset, _ = preset_and_data
    prepared = str(tmp_path_factory.mktemp("preset") / "conll")
    prepare(PrepareConfig(output_dir=prepared, task="token_classification", inputs=[str(CONLL_SAMPLE / "train.txt")],
                          eval_inputs=[str(CONLL_SAMPLE / "dev.txt")],
                          **presets.tokenizer_settings(preset, "", True, False, "wordpiece")))
    return prepared


def experiment(prepared, preset, override="", name="sentence_classification"):
    config = tasks.experiment_config(name)
    return configs.apply_overrides(config, [], f"task.data.prepared_dir={prepared},task.init_preset={preset},{FAST}"
                                   + (f",{override}" if override else ""))


def test_encoder_starts_from_the_preset_with_its_dimensions_and_our_dropout(preset_and_data, tmp_path):
    preset, prepared = preset_and_data
    config = experiment(prepared, preset, "task.model.size=base,task.model.dropout=0.3")
    trainer = train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())
    assert trainer.initialized_from == os.path.abspath(preset)
    encoder = trainer.model.get_layer("encoder")
    assert {k: encoder.get_config()[k] for k in TINY} == TINY  # the preset's, not base's
    assert encoder.get_config()["dropout"] == 0.3
    assert config.task.model.num_layers == 1 and config.task.model.max_sequence_length == 32
    expected = presets.backbone_weights(presets.open_preset(preset))
    for variable in encoder.weights:
        np.testing.assert_array_equal(variable.numpy(), expected[variable.path])


@pytest.mark.parametrize("name", ["token_classification", "mlm_pretrain"])
def test_other_encoder_experiments_start_from_the_preset(preset_and_data, tmp_path, name, conll_with_preset_vocab):
    preset, prepared = preset_and_data
    prepared = conll_with_preset_vocab if name == "token_classification" else prepared
    trainer = train_lib.Trainer(experiment(prepared, preset, name=name), str(tmp_path), strategies.make_strategy())
    expected = presets.backbone_weights(presets.open_preset(preset))
    embedding = trainer.model.get_layer("encoder").get_layer("token_embedding").embeddings.numpy()
    np.testing.assert_array_equal(embedding, expected["token_embedding/embeddings"])


def test_fine_tune_resume_and_export_without_the_preset(preset_and_data, tmp_path):
    from llm_tf.export import exporter
    from llm_tf.training import model_dir as model_dir_lib

    preset, prepared = preset_and_data
    copy = shutil.copytree(preset, tmp_path / "preset")
    model_dir = str(tmp_path / "run")
    steps = "trainer.train_steps=10,trainer.steps_per_loop=10"
    run = experiment(prepared, str(copy), f"{steps},trainer.optimizer.learning_rate=0.003")
    train_lib.run_experiment(run, "train", model_dir)
    params = yaml.safe_load(open(os.path.join(model_dir, "params.yaml")))
    assert params["task"]["init_preset"] == str(copy)
    assert {k: params["task"]["model"][k] for k in TINY} == TINY
    assert json.load(open(os.path.join(model_dir, "encoder.json")))["hidden_dim"] == TINY["hidden_dim"]
    # Training moved the preset's weights.
    trained = model_dir_lib.restore_trained_model(model_dir, "latest")
    start = presets.backbone_weights(presets.open_preset(preset))["token_embedding/embeddings"]
    assert not np.allclose(trained.model.get_layer("encoder").get_layer("token_embedding").embeddings.numpy(), start)
    # A resumed run takes its weights from its checkpoint, not the preset.
    resumed = train_lib.Trainer(experiment(prepared, str(copy), steps), model_dir, strategies.make_strategy())
    assert resumed.initialized_from is None and resumed.restore() == 10
    # Export rebuilds the model from params.yaml alone: the preset may be gone.
    shutil.rmtree(copy)
    exported = exporter.export_saved_model(model_dir, str(tmp_path / "models"), checkpoint="latest", warmup_count=0)
    served = tf.saved_model.load(exported.path).signatures["serving_default"](text=tf.constant(["a fine film"]))
    inputs = trained.task.data.tokenizer(tf.constant(["a fine film"]), seq_length=32)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    expected = tf.nn.softmax(trained.model(inputs, training=False)).numpy()
    np.testing.assert_allclose(served["scores"].numpy(), expected, atol=1e-5)


def test_model_dimensions_in_the_config_must_agree(preset_and_data):
    preset, prepared = preset_and_data
    config = experiment(prepared, preset, "task.model.num_layers=4")
    with pytest.raises(ConfigError, match=r"^task.model.num_layers=4 disagrees with num_layers=1 of .*/config.json; "
                                          r"leave it 0"):
        init_preset.resolve(config)
    agreeing = experiment(prepared, preset, "task.model.num_layers=1,task.model.max_sequence_length=512")
    init_preset.resolve(agreeing)
    assert agreeing.task.model.max_sequence_length == 32 and agreeing.task.model.hidden_dim == 16


def test_seq_length_above_the_presets_max_sequence_length(preset_and_data):
    preset, prepared = preset_and_data
    with pytest.raises(ConfigError,
                       match=r"^task.data.seq_length=64 exceeds max_sequence_length=32 of .*/config.json$"):
        init_preset.resolve(experiment(prepared, preset, "task.data.seq_length=64"))


def test_data_prepared_with_another_vocabulary_names_both_files(preset_and_data, prepared_conll_sample):
    preset, _ = preset_and_data
    with pytest.raises(ConfigError) as error:
        init_preset.resolve(experiment(prepared_conll_sample, preset, name="token_classification"))
    message = str(error.value)
    assert message.startswith("task.init_preset: vocabulary mismatch: ")
    assert os.path.join(prepared_conll_sample, "tokenizer", "vocab.txt") in message
    assert presets.open_preset(preset).vocab_file in message and "sha256" in message
    assert message.endswith(f"prepare the data with llm_prepare --preset={os.path.abspath(preset)}")


def test_data_prepared_with_other_lower_casing(preset_and_data, tmp_path):
    preset, prepared = preset_and_data
    copy = shutil.copytree(prepared, tmp_path / "prepared")
    settings_path = copy / "tokenizer" / "tokenizer_config.json"
    settings = json.loads(settings_path.read_text())
    settings["lower_case"] = False
    settings_path.write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"lower-casing mismatch: lower_case=false in .*/tokenizer_config.json, "
                                          r"lowercase=true in .*/tokenizer.json"):
        init_preset.resolve(experiment(str(copy), preset))


def test_preset_vocabulary_must_match_its_backbone(preset_and_data, tmp_path):
    preset, prepared = preset_and_data
    copy = shutil.copytree(preset, tmp_path / "preset")
    config_path = copy / "config.json"
    config = json.loads(config_path.read_text())
    config["config"]["vocabulary_size"] += 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"vocabulary.txt has \d+ tokens but vocabulary_size is \d+ in .*config.json"):
        init_preset.resolve(experiment(prepared, str(copy)))


def test_causal_lm_cannot_start_from_a_bert_preset(preset_and_data, tmp_path):
    preset, prepared = preset_and_data
    with pytest.raises(ConfigError, match="encoder is a GPT2Backbone; only the BERT encoder experiments"):
        train_lib.Trainer(experiment(prepared, preset, name="causal_lm"), str(tmp_path), strategies.make_strategy())


def test_remote_preset_is_refused_before_anything_is_written(prepared_sample, tmp_path):
    config = experiment(prepared_sample, "bert_tiny_en_uncased")
    with pytest.raises(ConfigError, match="only local keras-hub preset directories, Hugging Face model directories and "
                                          "named presets \\(all_minilm_l6_v2\\) work here"):
        train_lib.run_experiment(config, "train", str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
